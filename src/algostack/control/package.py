"""The controller Lambda packages: one deterministic zip per controller module. Stdlib only.

The file set is declared here, once: the stdlib-only parts of ``core/`` the controllers
import, every ``control/*.py``, and the module's ``run.sh`` at the zip root for the two
controllers that send it through SSM. ``algostack lambdas package`` (``make lambdas``) writes
``infra/build/<module>.zip``; Terraform reads those files and refuses to plan with a clear
message when one is missing (``infra/modules/controller_lambda``).

The same sources always give the same bytes, on any machine: entries sorted, a fixed
timestamp, fixed Unix modes, no compression (zlib's output may differ between versions), and
the file written atomically. So ``source_code_hash`` changes only when a packaged file does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from algostack.errors import ConfigError, FileWriteError

# The stdlib-only core modules the controllers import (a test imports the unpacked zip with
# every third-party package but boto3 blocked, so a missing one fails there).
CORE_FILES = (
    "algostack/__init__.py",
    "algostack/errors.py",
    "algostack/core/__init__.py",
    "algostack/core/naming.py",
    "algostack/core/sessions.py",
    "algostack/core/calendar_data.py",
    "algostack/core/backoff.py",
    "algostack/core/unit_state.py",
)
CONTROL_GLOB = "algostack/control/*.py"
# Controller Terraform module -> whether its run.sh goes at the zip root.
MODULES = {
    "alpaca_websocket": True,
    "trading_server": True,
    "trading_server_shutdown": False,
}
DEFAULT_OUT = Path("infra") / "build"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
SCRIPT_MODE = 0o100755
_UNIX = 3


@dataclass(frozen=True)
class Package:
    """One built zip."""

    module: str
    path: Path
    sha256_b64: str
    size: int
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "module": self.module,
            "path": str(self.path),
            "source_code_hash": self.sha256_b64,
            "bytes": self.size,
            "files": list(self.files),
        }


def find_root(start: Path | None = None) -> Path:
    """The repository root: the first folder holding ``src/algostack`` and ``infra/modules``,
    looking up from ``start`` (default: this file, then the working directory)."""
    starts = [start] if start is not None else [Path(__file__).resolve(), Path.cwd().resolve()]
    for base in starts:
        for cand in (base, *base.parents):
            if (cand / "src" / "algostack").is_dir() and (cand / "infra" / "modules").is_dir():
                return cand
    where = start if start is not None else Path.cwd()
    raise ConfigError(
        f"no algostack checkout (src/algostack and infra/modules) at or above {where}: "
        "run from the repository or pass --root"
    )


def file_set(module: str, root: Path) -> dict[str, Path]:
    """The entries of ``module``'s zip: name in the zip -> file on disk."""
    if module not in MODULES:
        raise ConfigError(f"unknown controller module {module!r}: one of {', '.join(MODULES)}")
    src = root / "src"
    files = {name: src / name for name in CORE_FILES}
    for path in sorted(src.glob(CONTROL_GLOB)):
        files[path.relative_to(src).as_posix()] = path
    if MODULES[module]:
        files["run.sh"] = root / "infra" / "modules" / module / "run.sh"
    missing = sorted(str(p) for p in files.values() if not p.is_file())
    if missing:
        raise ConfigError(f"{module}: files of the Lambda package are missing: {missing}")
    return files


def zip_bytes(files: dict[str, Path]) -> bytes:
    """A deterministic zip of ``files`` (sorted names, fixed time and modes, stored)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = _UNIX
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = (SCRIPT_MODE if name.endswith(".sh") else FILE_MODE) << 16
            zf.writestr(info, files[name].read_bytes())
    return buf.getvalue()


def source_code_hash(data: bytes) -> str:
    """Base64 SHA-256 of ``data``: Terraform's ``filebase64sha256`` and Lambda's CodeSha256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def build(module: str, out_dir: Path, root: Path | None = None) -> Package:
    """Write ``<out_dir>/<module>.zip`` atomically and return what was written."""
    root = root if root is not None else find_root()
    files = file_set(module, root)
    data = zip_bytes(files)
    path = out_dir / f"{module}.zip"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{module}.", suffix=".zip.tmp", dir=out_dir)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Package(module, path, source_code_hash(data), len(data), tuple(sorted(files)))


def build_all(out_dir: Path | None = None, root: Path | None = None) -> list[Package]:
    """Build every controller zip; ``out_dir`` defaults to ``<root>/infra/build``."""
    root = root if root is not None else find_root()
    out = out_dir if out_dir is not None else root / DEFAULT_OUT
    return [build(module, out, root) for module in MODULES]

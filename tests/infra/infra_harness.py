"""Helpers for the infra tests: find the toolchain, stage infra/ with a Python-built Lambda zip,
run terraform and moto_server. Nothing here talks to anything but loopback.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SRC = REPO / "src"
MODULES = ("alpaca_websocket", "trading_server", "trading_server_shutdown")
ENVIRONMENTS = ("dev", "qa", "prod")
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
# Fixed timestamp so the same files always give the same zip (and the same hash).
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def load_hcl(path: Path) -> dict[str, Any]:
    """Parse one HCL file into python-hcl2's dict-of-lists form."""
    with path.open() as fh:
        return hcl2.load(fh, serialization_options=HCL_OPTIONS)


def find_terraform() -> str | None:
    """Return the terraform binary on the PATH, or None."""
    return shutil.which("terraform")


def find_mirror() -> Path | None:
    """Return a mirror holding hashicorp/aws: ALGOSTACK_TF_MIRROR, then well-known places."""
    configured = os.environ.get("ALGOSTACK_TF_MIRROR")
    candidates = [configured] if configured else []
    candidates += list(MIRROR_CANDIDATES)
    for cand in candidates:
        path = Path(cand).expanduser()
        if (path / AWS_PROVIDER).is_dir():
            return path
    return None


def find_shellcheck() -> str | None:
    """Return the shellcheck binary, or None."""
    return shutil.which("shellcheck")


def find_checkov() -> Path | None:
    """Return checkov from its own virtualenv (make tools), or None."""
    path = REPO / ".venv-checkov" / "bin" / "checkov"
    return path if path.exists() else None


def find_moto_server() -> Path | None:
    """Return the moto_server script next to this interpreter, or None."""
    path = Path(sys.executable).parent / "moto_server"
    return path if path.exists() else None


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_cli_config(path: Path, mirror: Path, cache_dir: Path) -> Path:
    """Write a terraform CLI config installing hashicorp/aws from ``mirror`` only."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'plugin_cache_dir = "{cache_dir}"\n'
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        f'    include = ["{AWS_PROVIDER}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{AWS_PROVIDER}"]\n  }}\n'
        "}\n"
    )
    return path


# --- Lambda packaging (the Python twin of infra/modules/*/package.tf) ----------------------


def package_spec(module_dir: Path) -> tuple[list[str], str]:
    """Read the file set declared in a module's package.tf: (fixed core files, control glob)."""
    doc = load_hcl(module_dir / "package.tf")
    for block in doc.get("locals", []):
        if "lambda_core_files" in block:
            return list(block["lambda_core_files"]), str(block["lambda_control_glob"])
    raise AssertionError(f"{module_dir}/package.tf declares no lambda_core_files")


def lambda_file_set(module_dir: Path, src_root: Path = SRC) -> dict[str, Path]:
    """The zip entries of a module's Lambda: name in the zip -> file on disk."""
    core, control_glob = package_spec(module_dir)
    files = {name: src_root / name for name in core}
    for path in sorted(src_root.glob(control_glob)):
        files[path.relative_to(src_root).as_posix()] = path
    run_sh = module_dir / "run.sh"
    if run_sh.exists():
        files["run.sh"] = run_sh
    return files


def build_zip(files: dict[str, Path], out: Path) -> str:
    """Write a deterministic zip of ``files``; return its base64 SHA-256 (source_code_hash)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name].read_bytes())
    return base64.b64encode(hashlib.sha256(out.read_bytes()).digest()).decode()


def stage_infra(dest: Path) -> Path:
    """Copy infra/ to ``dest`` and swap every module's package.tf for a prebuilt zip.

    Returns the staged infra directory. The copy is what terraform runs on, so nothing is
    ever written into the tracked tree.
    """
    staged = dest / "infra"
    shutil.copytree(
        INFRA,
        staged,
        ignore=shutil.ignore_patterns(".terraform", ".build", "*.tfstate*", ".terraform.lock.hcl"),
    )
    for module in MODULES:
        mdir = staged / "modules" / module
        files = lambda_file_set(INFRA / "modules" / module)
        zip_path = mdir / ".build" / "lambda.zip"
        digest = build_zip(files, zip_path)
        (mdir / "package.tf").write_text(
            "# Staged by tests/infra: a zip Python built from the same file set as package.tf.\n"
            "locals {\n"
            f'  lambda_zip_path = "{zip_path}"\n'
            f'  lambda_zip_hash = "{digest}"\n'
            "}\n"
        )
    return staged


# --- Running terraform and moto_server ----------------------------------------------------


@dataclass
class Terraform:
    """Run terraform offline with the mirror config and fake credentials."""

    binary: str
    cli_config: Path
    endpoint: str | None = None

    def env(self) -> dict[str, str]:
        """Environment of every terraform run (no real credentials, ever)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "TF_"))
            or k == "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"
        }
        env.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def run(
        self, cwd: Path, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in ``cwd``; on failure raise with the output if ``check``."""
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed in {cwd} ({proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc


class MotoServer:
    """A moto_server subprocess on a free loopback port."""

    def __init__(self, script: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
        self.proc = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto_server exited at start") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not listen within 30 s")

    def stop(self) -> None:
        """Terminate the server (only the process this object started)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

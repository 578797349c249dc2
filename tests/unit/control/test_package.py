"""The controller Lambda packages (``algostack lambdas package``): the declared file set, byte-
for-byte determinism, fixed metadata, and a zip whose handlers import from the zip alone with
every third-party package but boto3 blocked."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from algostack.commands import lambdas
from algostack.control import package
from algostack.errors import ConfigError
from algostack.testing.lambda_imports import BLOCK_THIRD_PARTY

ROOT = package.find_root()
SRC = ROOT / "src"


def test_file_set_is_core_plus_control_plus_run_sh_where_the_module_has_one() -> None:
    control = {p.relative_to(SRC).as_posix() for p in (SRC / "algostack" / "control").glob("*.py")}
    assert "algostack/control/package.py" in control
    for module, has_script in package.MODULES.items():
        files = package.file_set(module, ROOT)
        expected = set(package.CORE_FILES) | control | ({"run.sh"} if has_script else set())
        assert set(files) == expected, module
        if has_script:
            assert files["run.sh"] == ROOT / "infra" / "modules" / module / "run.sh"
    assert set(package.MODULES) == {
        p.name for p in (ROOT / "infra" / "modules").iterdir() if (p / "lambda.tf").exists()
    }


def test_same_sources_give_the_same_bytes_and_hash(tmp_path: Path) -> None:
    first = package.build_all(tmp_path / "a", ROOT)
    second = package.build_all(tmp_path / "b", ROOT)
    assert [p.path.name for p in first] == [
        "alpaca_websocket.zip",
        "trading_server.zip",
        "trading_server_shutdown.zip",
    ]
    for a, b in zip(first, second, strict=True):
        data = a.path.read_bytes()
        assert data == b.path.read_bytes()
        assert a.sha256_b64 == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert a.size == len(data)
    assert not list((tmp_path / "a").glob(".*.tmp")), "no temporary file left behind"


def test_entries_are_sorted_with_fixed_time_and_modes(tmp_path: Path) -> None:
    built = package.build("trading_server", tmp_path, ROOT)
    with zipfile.ZipFile(built.path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names) == list(built.files)
        for info in infos:
            assert info.date_time == package.ZIP_DATE
            assert info.create_system == 3
            assert info.compress_type == zipfile.ZIP_STORED
            mode = package.SCRIPT_MODE if info.filename == "run.sh" else package.FILE_MODE
            assert info.external_attr >> 16 == mode, info.filename
        assert zf.read("run.sh") == (ROOT / "infra/modules/trading_server/run.sh").read_bytes()


def test_a_changed_source_changes_the_hash(tmp_path: Path) -> None:
    files = package.file_set("trading_server_shutdown", ROOT)
    before = package.source_code_hash(package.zip_bytes(files))
    changed = tmp_path / "naming.py"
    changed.write_bytes(files["algostack/core/naming.py"].read_bytes() + b"\n# changed\n")
    after = package.source_code_hash(
        package.zip_bytes({**files, "algostack/core/naming.py": changed})
    )
    assert before != after


BLOCKER = (
    BLOCK_THIRD_PARTY
    + r"""
task_root = sys.argv[1]
sys.path.insert(0, task_root)
import algostack.control.handlers as h
for name in ("ingest_handler", "trading_handler", "shutdown_handler"):
    assert callable(getattr(h, name)), name
outside = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] == "algostack"
                 and not str(getattr(mod, "__file__", "") or "").startswith(task_root))
assert not outside, outside
print("ok")
"""
)


@pytest.mark.parametrize("module", sorted(package.MODULES))
def test_the_unpacked_zip_alone_runs_the_handlers(module: str, tmp_path: Path) -> None:
    built = package.build(module, tmp_path / "out", ROOT)
    task_root = tmp_path / "task"
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(task_root)
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(task_root)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_find_root_outside_a_checkout_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--root"):
        package.find_root(tmp_path)


def test_unknown_module_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown controller module"):
        package.file_set("nope", ROOT)


def _app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """root"""

    lambdas.register(a)
    return a


def test_cli_writes_the_three_zips_where_asked(tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), ["lambdas", "package", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for module in package.MODULES:
        assert (tmp_path / f"{module}.zip").exists()
        assert f"{module}.zip" in res.output
    assert res.output.count("sha256=") == 3


def test_cli_with_a_wrong_root_fails_clearly(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        _app(), ["lambdas", "package", "--root", str(tmp_path), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "no algostack checkout" in res.output


def test_cli_that_cannot_write_a_zip_says_which_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / "build"
    res = CliRunner().invoke(_app(), ["lambdas", "package", "--out", str(out)])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}/"), res.output

"""The Lambda zip holds stdlib + boto3 only: import every control module with every other
third-party package blocked, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import algostack.control
from algostack.control.package import CORE_FILES
from algostack.testing.lambda_imports import BLOCK_THIRD_PARTY

CONTROL = Path(algostack.control.__file__).parent
SRC = CONTROL.parents[1]

BLOCKER = (
    BLOCK_THIRD_PARTY
    + r"""
import importlib
for mod in sys.argv[1:]:
    importlib.import_module(mod)
bad = sorted(m for m in sys.modules if m.split(".")[0] == "algostack"
             and m.split(".")[1:2] not in (["errors"], ["control"], ["core"], []))
core = sorted(m for m in sys.modules if m.startswith("algostack.core."))
print("core:", ",".join(core))
assert not bad, bad
"""
)


def test_control_modules_import_with_only_stdlib_and_boto3() -> None:
    mods = [
        f"algostack.control.{p.stem}" for p in sorted(CONTROL.glob("*.py")) if p.stem != "__init__"
    ]
    assert "algostack.control.handlers" in mods and "algostack.control.fakes" in mods
    proc = subprocess.run(
        [sys.executable, "-I", "-c", BLOCKER, *mods],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC)},
    )
    assert proc.returncode == 0, proc.stderr
    core = set(proc.stdout.split("core:")[1].strip().split(","))
    # every core module the controllers import is in the Lambda zip (package.CORE_FILES)
    allowed = {
        f.removesuffix(".py").replace("/", ".")
        for f in CORE_FILES
        if f.startswith("algostack/core/") and not f.endswith("__init__.py")
    }
    assert "algostack.core.sessions" in allowed
    assert core <= allowed, core - allowed


def test_blocker_really_blocks_other_packages() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", BLOCKER, "algostack.config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC)},
    )
    assert proc.returncode != 0 and "blocked third-party import: pydantic" in proc.stderr

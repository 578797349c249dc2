"""Tests patch no project code: they inject the clock, the sleeper and the seams instead.

The rule, checked on every file under tests/ with ``ast``:

- ``monkeypatch.setattr/delattr/setitem/delitem``, ``setattr``/``delattr`` and
  ``mock.patch`` / ``patch.object`` / ``patch.dict`` / ``patch.multiple`` may target only a
  dotted string outside ``algostack``, or an object reached from a name the test file imports
  from outside ``algostack`` (stdlib, third party, test helpers) or defines itself. A project
  module, class or object, or anything reached through one (``feed_mod.asyncio``), is refused,
  and so is a local variable or fixture (it may hold a project object).
- Assigning or deleting an attribute or item of a name imported from ``algostack``
  (``handlers._config = cfg``) is refused.
- ``monkeypatch.setenv/delenv/chdir/syspath_prepend`` are not patches of code: allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PATCH_METHODS = {"setattr", "delattr", "setitem", "delitem"}
MOCK_PATCHES = {"patch", "mock.patch", "unittest.mock.patch"}
MOCK_VARIANTS = {"", ".object", ".dict", ".multiple"}


def _is_project(module: str) -> bool:
    return module == "algostack" or module.startswith("algostack.")


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([node.id, *reversed(parts)])


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _bindings(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to project imports, and names safe to patch (other imports, own defs)."""
    project: set[str] = set()
    safe: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                (project if _is_project(a.name) else safe).add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for a in node.names:
                (project if node.level == 0 and _is_project(module) else safe).add(
                    a.asname or a.name
                )
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            safe.add(node.name)
    return project, safe - project


def _patch_target(call: ast.Call) -> ast.expr | None:
    """The patched target when ``call`` is a patch, else None."""
    func = call.func
    if not call.args:
        return None
    if isinstance(func, ast.Attribute) and func.attr in PATCH_METHODS:
        return call.args[0]
    if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
        return call.args[0]
    name = _dotted(func)
    if any(name == base + v for base in MOCK_PATCHES for v in MOCK_VARIANTS):
        return call.args[0]
    return None


def project_patches(source: str) -> list[int]:
    """Lines of ``source`` that patch project code (see the module docstring)."""
    tree = ast.parse(source)
    project, safe = _bindings(tree)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (target := _patch_target(node)) is not None:
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                bad = _is_project(target.value)
            else:
                bad = _root(target) not in safe
            if bad:
                lines.append(node.lineno)
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute | ast.Subscript) and _root(t) in project:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_no_test_patches_project_code() -> None:
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        lines = project_patches(path.read_text(encoding="utf-8"))
        if lines:
            found[path.relative_to(TESTS).as_posix()] = lines
    assert not found, f"inject a seam instead of patching the project: {found}"


def test_project_patches_flags_every_kind_of_patch() -> None:
    sample = """
from unittest import mock
from unittest.mock import patch
import algostack.services.trader.service as service_mod
from algostack.control import handlers
from algostack.core.risk import RiskEngine

def test_x(monkeypatch, engine):
    monkeypatch.setattr(service_mod, "save_state", None)
    monkeypatch.setattr("algostack.control.handlers._config", None)
    monkeypatch.setattr(service_mod.asyncio, "sleep", None)
    monkeypatch.setattr(engine, "sizing", None)
    mock.patch("algostack.core.risk.RiskEngine.sizing")
    patch.object(RiskEngine, "sizing")
    handlers._config = None
    setattr(handlers, "_clients", None)
"""
    assert project_patches(sample) == [9, 10, 11, 12, 13, 14, 15, 16]


def test_project_patches_allows_the_outside_world() -> None:
    sample = """
import asyncio
from unittest import mock
from algostack.control import handlers

class Fake:
    pass

def test_x(monkeypatch, tmp_path):
    monkeypatch.setenv("ALGOSTACK_ENV", "qa")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(asyncio, "sleep", None)
    monkeypatch.setattr(Fake, "x", 1)
    mock.patch("time.sleep")
    service = handlers.make()
    service.ready = True
"""
    assert project_patches(sample) == []

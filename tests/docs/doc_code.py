"""The code the docs talk about, as the docs check sees it: the CLI's command tree and
``--help`` (one in-process call per command path), script options, make targets, and what
each module of src defines (read with ``ast``; nothing is imported but the CLI)."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import typer
from doc_markdown import strip_token
from typer.testing import CliRunner

from algostack.cli import app

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "algostack"


@functools.cache
def _cli_tree() -> object:
    return typer.main.get_command(app)


def subcommands(path: tuple[str, ...]) -> dict[str, object] | None:
    """The subcommands of a command path (None: a command, not a group). Typer vendors its
    own click, so a group is told by its ``commands``."""
    node = _cli_tree()
    for name in path:
        node = node.commands[name]  # type: ignore[attr-defined]
    commands = getattr(node, "commands", None)
    return dict(commands) if commands is not None else None


def leaves(path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The commands under a path (itself when it is one)."""
    below = subcommands(path)
    if below is None:
        return [path]
    return [leaf for name in below for leaf in leaves((*path, name))]


@functools.cache
def cli_help(path: tuple[str, ...]) -> tuple[int, str]:
    """``algostack <path> --help``: exit code and output, one call per command path."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def resolve_cli(words: tuple[str, ...]) -> tuple[list[tuple[str, ...]], str]:
    """The command paths ``algostack <words...>`` names (``a|b`` is two), or an error."""
    paths: list[tuple[str, ...]] = [()]
    for raw in words:
        word = strip_token(raw)
        done, grown = [], []
        for path in paths:
            below = subcommands(path)
            if below is None or not word or "<" in word or word.isupper() or "..." in word:
                done.append(path)  # a command's argument, or a placeholder for a command
                continue
            for alt in word.split("|"):
                if alt not in below:
                    return [], f"`algostack {' '.join((*path, alt))}`: no such command"
                grown.append((*path, alt))
        paths = done + grown
        if not grown:
            break
    return paths, ""


def has_option(command: tuple[str, ...], flag: str) -> bool:
    """``flag`` is in the command's ``--help`` (or, for ("script", path), its argparse)."""
    if command[:1] == ("script",):
        return flag in (script_options(ROOT / command[1]) or ())
    code, output = cli_help(command)
    return code == 0 and re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", output) is not None


@functools.cache
def script_options(path: Path) -> frozenset[str] | None:
    """The ``--options`` a script defines with ``add_argument`` (None: no such file)."""
    if not path.is_file():
        return None
    options = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    options.add(arg.value)
    return frozenset(options)


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([a-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))


def bench_scripts() -> list[str]:
    """What `make bench` runs."""
    return sorted(f"bench/{p.name}" for p in (ROOT / "bench").glob("[a-z]*.py"))


# --- the Python the docs name ---------------------------------------------------------------


@dataclass
class ModuleIndex:
    """What a module defines, read with ``ast``."""

    names: set[str] = field(default_factory=set)  # top level: defined or imported
    strings: set[str] = field(default_factory=set)  # string constants (stream names, ...)
    imported_modules: set[str] = field(default_factory=set)  # every component of its imports
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted origin


@functools.cache
def module_index(path: Path) -> ModuleIndex:
    tree = ast.parse(path.read_text())
    index = ModuleIndex()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            index.strings.add(node.value)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                index.imported_modules.update((module or alias.name).split("."))
                if module:
                    index.imported_modules.add(alias.name)
    for node in _top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            index.names.add(node.name)
            if isinstance(node, ast.ClassDef):
                index.classes[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                index.names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                index.names.add(local)
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    index.imports[local] = f"{node.module}.{alias.name}"
    return index


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module statements, looking into ``if``/``try`` blocks (``TYPE_CHECKING``, fallbacks)."""
    for node in body:
        if isinstance(node, ast.If | ast.Try):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)
        else:
            yield node


def module_file(dotted: str) -> Path | None:
    """``algostack.core.risk`` -> its file (a package's ``__init__.py``), or None."""
    base = ROOT / "src" / Path(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def class_attributes(cls: ast.ClassDef) -> set[str]:
    """Methods, class-level names and fields, ``self.x = ...`` anywhere in it, nested classes."""
    attrs = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            attrs.add(node.name)
        elif isinstance(node, ast.Assign):
            attrs.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            attrs.add(node.target.id)
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            attrs.add(node.attr)
    return attrs


@functools.cache
def src_modules() -> tuple[Path, ...]:
    return tuple(sorted(SRC.rglob("*.py")))


@functools.cache
def classes_named(name: str) -> tuple[ast.ClassDef, ...]:
    """Every class called ``name`` in src (one name may be defined in several modules)."""
    return tuple(
        module_index(path).classes[name]
        for path in src_modules()
        if name in module_index(path).classes
    )


# Bases from outside src that add no attributes a doc would name.
_PLAIN_BASES = frozenset({"object", "Protocol", "Struct", "NamedTuple", "Generic", "ABC"})


def has_class_attr(cls_name: str, attr: str, seen: frozenset[str] = frozenset()) -> bool | None:
    """True or False when src tells; None when a base from outside src might define it."""
    unknown = False
    for cls in classes_named(cls_name):
        if attr in class_attributes(cls):
            return True
        for base in cls.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if isinstance(base, ast.Subscript):
                name = getattr(base.value, "id", "")
            if not name or name in seen or name in _PLAIN_BASES:
                continue
            if classes_named(name):
                found = has_class_attr(name, attr, seen | {cls_name})
                if found is not False:
                    return found
            else:
                unknown = True
    return None if unknown else False


def name_in_module(path: Path, name: str, via: str = "") -> bool:
    """``name`` is defined or imported at the top of the module, an attribute of a class
    there (or of ``via``), a string constant of it (a stream or subject name), or a module
    it imports (the ``trade_updates`` it uses)."""
    index = module_index(path)
    if name in index.names or name in index.strings or name in index.imported_modules:
        return True
    if via and has_class_attr(via, name):
        return True
    return any(name in class_attributes(cls) for cls in index.classes.values())


def resolve_dotted(dotted: str) -> tuple[bool | None, str]:
    """``algostack.a.b.Name[.attr]``: (True, ""), (False, why), or (None, "") when the last
    part belongs to something outside src."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        path = module_file(".".join(parts[:cut]))
        if path is not None:
            return _resolve_in(path, parts[cut:], dotted) if parts[cut:] else (True, "")
    return False, f"`{dotted}`: no such module"


def _resolve_in(path: Path, rest: list[str], dotted: str) -> tuple[bool | None, str]:
    index = module_index(path)
    name, rel = rest[0], path.relative_to(ROOT)
    if name not in index.names:
        return False, f"`{dotted}`: `{name}` is not defined in {rel}"
    if len(rest) == 1:
        return True, ""
    if name in index.classes:
        found = has_class_attr(name, rest[1])
        if found is False:
            return False, f"`{dotted}`: class `{name}` ({rel}) has no `{rest[1]}`"
        return found, ""
    origin = index.imports.get(name, "")
    if origin.startswith("algostack."):
        return resolve_dotted(".".join([origin, *rest[1:]]))
    return None, ""


def module_prefix(dotted: str) -> Path | None:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 1, -1):
        if path := module_file(".".join(parts[:cut])):
            return path
    return None

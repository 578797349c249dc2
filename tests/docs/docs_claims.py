"""What README.md and docs/*.md claim about the code, read from the Markdown and checked.

Claims: ``algostack`` commands and their ``--flags`` (against each command's ``--help``),
``make`` targets, the options of bench scripts and ``python -m`` modules (their
``add_argument`` calls), file paths and links, and Python names (dotted, ``Class.attr``, and
the names a table row lists beside its module). ``check_markdown`` returns every problem
with its file and line; nothing is imported but the CLI, modules are read with ``ast``.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import typer
from typer.testing import CliRunner

from algostack.cli import app

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "algostack"

# First path components that name a repository directory, and where they resolve.
PATH_ROOTS = {
    "src": ROOT / "src",
    "tests": ROOT / "tests",
    "bench": ROOT / "bench",
    "infra": ROOT / "infra",
    "docs": ROOT / "docs",
    "modules": ROOT / "infra" / "modules",
    "environments": ROOT / "infra" / "environments",
}
# The short forms the docs use for src/algostack/<package>/...
SRC_PACKAGES = ("core", "adapters", "services", "control", "local", "testing", "commands")
# Made by a build step (`make lambdas`), not committed.
GENERATED = (ROOT / "infra" / "build",)
# `name.ext` is a file name, not a Python attribute.
FILE_EXTENSIONS = frozenset(
    {"py", "sh", "json", "jsonl", "md", "csv", "log", "txt", "tf", "tfvars", "zip", "html"}
    | {"onnx", "parquet", "yaml", "yml", "toml", "png"}
)

_ROOTS = "|".join([*PATH_ROOTS, *SRC_PACKAGES])
_PATH_RE = re.compile(rf"(?<![\w./<>$-])((?:{_ROOTS})/[\w./{{}},<>*\[\]-]*)")
_BARE_PY_RE = re.compile(r"(?<![\w./<>-])(\w+\.py)(?![\w/])")
_DOTTED_RE = re.compile(r"(?<![\w.<>/$-])([A-Za-z_]\w*(?:\.(?:\{[\w,]+\}\w*|\w+))+)(?![\w/<-])")
_LINK_RE = re.compile(r"\]\(([^)\s]+)\)")
_FLAG_RE = re.compile(r"^--[a-z0-9][a-z0-9-]*$")
_IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")
_FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_HEADING_RE = re.compile(r"^(#{1,6})\s")
_INLINE_RE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_SUBSHELL_RE = re.compile(r"\$\(([^()]*)\)")
_MODULE_REF_RE = re.compile(rf"^(?:src/algostack/)?((?:{'|'.join(SRC_PACKAGES)})/[\w/]+\.py)$")


# --- the Markdown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A code-block line (backslash continuations joined), an inline code span, or a line of
    prose (table rows included)."""

    line: int
    text: str
    kind: str  # "code" | "inline" | "prose"
    lang: str = ""
    sections: tuple[int, ...] = (0,)  # its heading and every enclosing one, innermost first


def read_spans(text: str) -> list[Span]:
    """Split Markdown into code-block lines, inline code spans and prose lines, in order."""
    spans: list[Span] = []
    lines = text.splitlines()
    prose = [""] * len(lines)
    where: dict[int, tuple[int, ...]] = {}
    stack: list[tuple[int, int]] = []  # (level, section) of the open headings
    sections: tuple[int, ...] = (0,)
    fence, lang = "", ""
    pending: tuple[int, str] | None = None  # a code line continued with a backslash
    for number, line in enumerate(lines, start=1):
        fence_mark = _FENCE_RE.match(line)
        if fence:
            if fence_mark and fence_mark.group(1).startswith(fence):
                fence = ""
                continue
            start, joined = pending if pending else (number, "")
            joined = f"{joined} {line.strip()}" if pending else line
            pending = None
            if joined.rstrip().endswith("\\"):
                pending = (start, joined.rstrip()[:-1])
            elif _continues_usage(joined, spans):
                last = spans.pop()
                text = f"{last.text} {joined.strip()}"
                spans.append(Span(last.line, text, "code", lang, sections))
            else:
                spans.append(Span(start, joined, "code", lang, sections))
            continue
        if fence_mark:
            fence, lang = fence_mark.group(1), fence_mark.group(2)
            continue
        if heading := _HEADING_RE.match(line):
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, number))
            sections = (*(s for _, s in reversed(stack)), 0)
        where[number] = sections
        prose[number - 1] = line
    for number, line in enumerate(prose, start=1):
        if line:
            spans.append(Span(number, line, "prose", sections=where[number]))
    spans.extend(_inline_spans(prose, where))
    spans.sort(key=lambda s: (s.line, s.kind != "prose"))
    return spans


def _continues_usage(line: str, spans: list[Span]) -> bool:
    """An indented line of options under a command's usage line continues it (no ``\\``)."""
    return (
        line[:1].isspace()
        and re.match(r"^\s+[\[(]*--", line) is not None
        and bool(spans)
        and spans[-1].kind == "code"
        and "algostack " in spans[-1].text
    )


def _inline_spans(prose: list[str], where: dict[int, tuple[int, ...]]) -> Iterator[Span]:
    """Inline code; it may run over a line break inside a paragraph, never over a blank line."""
    starts = [0]
    for line in prose:
        starts.append(starts[-1] + len(line) + 1)
    joined = "\n".join(prose)
    for paragraph in re.finditer(r"(?:[^\n]+\n?)+", joined):
        for m in _INLINE_RE.finditer(paragraph.group(0)):
            offset = paragraph.start() + m.start()
            number = next(n for n in range(len(prose)) if starts[n + 1] > offset) + 1
            if prose[number - 1].lstrip().startswith("|") and "\n" in m.group(2):
                continue  # a backtick pair across two table rows is not a span
            text = " ".join(m.group(2).split())
            yield Span(number, text, "inline", sections=where.get(number, (0,)))


def table_cells(row: str) -> list[str]:
    """A table row's cells (a ``|`` inside inline code does not split)."""
    cells, current, code = [], "", False
    for ch in row.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(current)
            current = ""
        else:
            current += ch
    cells.append(current)
    return cells


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command shown in a doc and the ``--flags`` given to it."""

    line: int
    program: str  # "algostack" | "make" | "script"
    words: tuple[str, ...]  # algostack: the words after it; make: (target,); script: (path,)
    flags: tuple[str, ...]
    sections: tuple[int, ...] = (0,)


def _strip(token: str) -> str:
    return token.strip("`'\"[](){},;:")


def flag_names(token: str) -> list[str]:
    """``[--warmup/--no-warmup]`` -> ``--warmup``, ``--no-warmup``; ``--speed=3`` -> ``--speed``."""
    token = token.lstrip("[({'\"`").rstrip("])}'\"`,.;:")
    if not token.startswith("--"):
        return []
    parts = (part.split("=", 1)[0] for part in token.split("/"))
    return [part for part in parts if _FLAG_RE.match(part)]


def _pieces(span: Span) -> Iterator[str]:
    """The shell-like pieces of a span: each backtick-quoted part of a code line and each
    ``$(...)`` is a piece of its own (a ``$(...)`` leaves a placeholder word behind)."""
    texts = span.text.split("`") if span.kind == "code" else [span.text]
    for text in texts:
        while m := _SUBSHELL_RE.search(text):
            yield m.group(1)
            text = text[: m.start()] + "SUBSHELL" + text[m.end() :]
        yield text


def _starts_command(tokens: list[str], i: int) -> str:
    word = _strip(tokens[i])
    if word == "algostack" or word.endswith("/algostack"):
        return "algostack"
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if word == "make" and re.match(r"^[a-z]+$", nxt):
        return "make"
    if re.match(r"^bench/\w+\.py$", word):
        return "script"
    if word == "-m" and nxt.startswith("algostack."):
        return "module"
    return ""


def commands_in(span: Span) -> list[Command]:
    """Every command a span shows: env-var prefixes, ``$(...)``, ``\\`` continuations,
    comments, ``a|b`` alternatives and ``make run ARGS=...`` understood."""
    found = []
    for text in _pieces(span):
        tokens = text.split()
        i = 0
        while i < len(tokens):
            start = _starts_command(tokens, i)
            if not start:
                i += 1
                continue
            words, flags, i = _read_command(tokens, i, start)
            program = {"module": "script"}.get(start, start)
            if program == "make":
                words = words[:1]
            found.append(Command(span.line, program, tuple(words), tuple(flags), span.sections))
    return found


def _read_command(tokens: list[str], i: int, start: str) -> tuple[list[str], list[str], int]:
    words: list[str] = []
    flags: list[str] = []
    if start == "script":
        words.append(_strip(tokens[i]))
    elif start == "module":
        i += 1
        words.append("src/" + _strip(tokens[i]).replace(".", "/") + ".py")
    depth = 0  # brackets of a usage line: `(--model P | --models P1,P2)` is one command
    i += 1
    while i < len(tokens):
        token = tokens[i]
        if (
            token.startswith("#")
            or token in (";", "&&", "||", ">", "2>")
            or (token == "|" and depth <= 0)
            or _starts_command(tokens, i)
        ):
            break
        if start == "make" and re.match(r"^[A-Z_]+=", token):
            token = token.split("=", 1)[1]  # make run ARGS="--flag ..."
        depth += token.count("(") + token.count("[") - token.count(")") - token.count("]")
        names = flag_names(token)
        if names:
            flags.extend(names)
        elif not flags and start in ("algostack", "make"):
            words.append(token)
        i += 1
        if token.endswith(";"):
            break
    return words, flags, i


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
        word = _strip(raw)
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


# --- the check ------------------------------------------------------------------------------


@dataclass
class Report:
    """Problems found, and the distinct claims verified."""

    problems: list[str] = field(default_factory=list)
    commands: set[tuple[str, ...]] = field(default_factory=set)
    flags: set[tuple[tuple[str, ...], str]] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


Problem = Callable[[int, str], None]


def check_markdown(text: str, where: str, report: Report | None = None) -> Report:
    """Check one document; ``where`` (its path from the repository root) starts each problem."""
    report = report if report is not None else Report()

    def problem(line: int, what: str) -> None:
        report.problems.append(f"{where}:{line}: {what}")

    spans = read_spans(text)
    commands = [c for s in spans if s.kind != "prose" for c in commands_in(s)]
    for command in commands:
        _check_command(command, problem, report)
    _check_bare_flags(spans, commands, problem, report)
    context: list[Path] = []  # directories the doc has named so far, the latest last
    for span in spans:
        if span.kind == "prose":
            for m in _LINK_RE.finditer(span.text):
                _check_link(m.group(1), ROOT / Path(where).parent, span.line, problem, report)
            if span.text.lstrip().startswith("|"):
                _check_table_row(span, context, problem, report)
            text = re.sub(r"`[^`]*`", " ", span.text)  # inline code is a span of its own
        else:
            text = span.text
        for m in _PATH_RE.finditer(text):
            context.extend(_check_path(m.group(1), span.line, problem, report))
        if span.kind == "prose":
            continue
        for m in _BARE_PY_RE.finditer(span.text):
            _check_bare_file(m.group(1), context, span.line, problem, report)
        context.extend(_check_names(span, problem, report))
    return report


def _check_command(command: Command, problem: Problem, report: Report) -> None:
    if command.program == "make":
        target = command.words[0] if command.words else ""
        if target not in make_targets():
            problem(command.line, f"`make {target}`: no such target in the Makefile")
            return
        if target != "run":
            return
        command = Command(command.line, "algostack", ("run",), command.flags)
    if command.program == "script":
        script = command.words[0]
        if script_options(ROOT / script) is None:
            problem(command.line, f"`{script}`: no such file")
            return
        report.paths.add(script)
        paths = [("script", script)]
    else:
        paths, error = resolve_cli(command.words)
        if error:
            problem(command.line, error)
            return
    for path in paths:
        if path[:1] != ("script",):
            code, _ = cli_help(path)
            if code != 0:
                problem(command.line, f"`algostack {' '.join(path)} --help` exits {code}")
                continue
            report.commands.add(path)
        for flag in command.flags:
            if flag == "--help" or has_option(path, flag):
                report.flags.add((path, flag))
            else:
                problem(command.line, f"`{show(path)} {flag}`: no such option ({_source(path)})")


def show(command: tuple[str, ...]) -> str:
    if command[:1] == ("script",):
        return command[1]
    return " ".join(("algostack", *command))


def _source(command: tuple[str, ...]) -> str:
    return "its add_argument calls" if command[:1] == ("script",) else "its --help"


def _check_bare_flags(
    spans: list[Span], commands: list[Command], problem: Problem, report: Report
) -> None:
    """An inline ``--flag`` standing alone is an option of a command its section (or an
    enclosing one) shows; ``ARGS="--flag"`` one of ``make run``'s."""
    shown: dict[int, set[tuple[str, ...]]] = {}
    for command in commands:
        if command.program == "make":
            keys = {"run": [("run",)], "bench": [("script", s) for s in bench_scripts()]}
            paths = keys.get(command.words[0] if command.words else "", [])
        elif command.program == "script":
            paths = [("script", command.words[0])]
        else:
            paths = [leaf for path in resolve_cli(command.words)[0] for leaf in leaves(path)]
        shown.setdefault(command.sections[0], set()).update(paths)
    for span in spans:
        if span.kind != "inline":
            continue
        if span.text.startswith("ARGS="):
            text, candidates = span.text[5:].strip("\"'"), {("run",)}
        elif span.text.startswith("--"):
            text = span.text
            candidates = set().union(*(shown.get(s, set()) for s in span.sections))
        else:
            continue
        if not candidates:
            continue  # nothing in its sections says whose option it is
        for flag in (f for token in text.split() for f in flag_names(token)):
            owners = {c for c in candidates if has_option(c, flag)}
            if owners:
                report.flags.update((c, flag) for c in owners)
            else:
                names = ", ".join(sorted(show(c) for c in candidates))
                problem(span.line, f"`{flag}`: an option of none of the commands shown ({names})")


def expand(text: str) -> list[str]:
    """Brace expansion: ``environments/{dev,qa}`` -> two paths."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", text)
    if not m:
        return [text]
    return [
        out
        for alt in m.group(1).split(",")
        for out in expand(text[: m.start()] + alt + text[m.end() :])
    ]


def _check_path(raw: str, line: int, problem: Problem, report: Report) -> list[Path]:
    """Check one path; return the directories it names (where bare file names are looked up)."""
    raw = raw.rstrip(".,:;)")
    if raw.endswith("]") and "[" not in raw:
        raw = raw[:-1]
    dirs = []
    for text in expand(raw):
        parts = text.split("/")
        keep = []
        for part in parts:
            if "<" in part or ">" in part or part == "...":
                break  # a placeholder: the path up to it is what is claimed
            keep.append(part)
        if not keep or not keep[0]:
            continue
        base = PATH_ROOTS.get(keep[0], SRC / keep[0])
        target = base.joinpath(*[p for p in keep[1:] if p])
        if any(target == g or g in target.parents for g in GENERATED):
            continue
        if "*" in text or "[" in text:
            pattern = "/".join(keep[1:])
            if not list(base.glob(pattern)):
                problem(line, f"`{text}` matches no file")
            continue
        if target.exists():
            report.paths.add(str(target.relative_to(ROOT)))
            dirs.append(target if target.is_dir() else target.parent)
            continue
        # core/execution.BatchBook, adapters/storage.open_store: a module and a name in it
        stem, _, name = target.name.partition(".")
        module = target.with_name(stem + ".py")
        if name and _IDENT_RE.match(name) and module.is_file():
            report.paths.add(str(module.relative_to(ROOT)))
            if name_in_module(module, name):
                report.names.add(f"{module.relative_to(SRC)}:{name}")
            else:
                problem(line, f"`{text}`: `{name}` is not defined in {module.relative_to(ROOT)}")
            dirs.append(module.parent)
            continue
        problem(line, f"`{text}`: no such file or directory ({target.relative_to(ROOT)})")
    return dirs


def _check_bare_file(
    name: str, context: list[Path], line: int, problem: Problem, report: Report
) -> None:
    """A bare ``file.py`` is in one of the directories the doc named above it."""
    for directory in reversed(context):
        if (directory / name).is_file():
            report.paths.add(str((directory / name).relative_to(ROOT)))
            return
    tried = ", ".join(sorted({str(d.relative_to(ROOT)) for d in context})) or "none"
    problem(line, f"`{name}`: in none of the directories named above it ({tried})")


def _check_link(target: str, doc_dir: Path, line: int, problem: Problem, report: Report) -> None:
    if re.match(r"^[a-z]+:", target) or target.startswith("#"):
        return
    path = (doc_dir / target.split("#", 1)[0]).resolve()
    if path.exists():
        report.paths.add(str(path.relative_to(ROOT)))
    else:
        problem(line, f"link `{target}`: no such file")


def _check_names(span: Span, problem: Problem, report: Report) -> list[Path]:
    """``from algostack.x import a``, ``algostack.x.Name``, ``core.x.Name`` and
    ``Class.attr`` (a class of src); returns the directories of the modules named."""
    dirs = []
    if span.lang == "python":
        for m in re.finditer(r"from\s+(algostack[\w.]*)\s+import\s+\(?([\w\s,]+)\)?", span.text):
            for name in (n.strip().split(" as ")[0] for n in m.group(2).split(",")):
                if name:
                    _check_dotted(f"{m.group(1)}.{name}", span.line, problem, report)
    for m in _DOTTED_RE.finditer(span.text):
        for dotted in expand(m.group(1)):
            parts = dotted.split(".")
            if parts[-1] in FILE_EXTENSIONS:
                continue
            if parts[0] in SRC_PACKAGES:
                parts = ["algostack", *parts]
            if parts[0] == "algostack":
                top = SRC / parts[1]
                if top.is_dir() or top.with_suffix(".py").is_file() or len(parts) > 2:
                    dotted = ".".join(parts)
                    _check_dotted(dotted, span.line, problem, report)
                    path = module_file(dotted) or _module_prefix(dotted)
                    if path is not None:
                        dirs.append(path.parent)
            elif parts[0][:1].isupper() and classes_named(parts[0]):
                found = has_class_attr(parts[0], parts[1])
                if found:
                    report.names.add(f"{parts[0]}.{parts[1]}")
                elif found is False:
                    problem(span.line, f"`{dotted}`: class `{parts[0]}` has no `{parts[1]}`")
    return dirs


def _module_prefix(dotted: str) -> Path | None:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 1, -1):
        if path := module_file(".".join(parts[:cut])):
            return path
    return None


def _check_dotted(dotted: str, line: int, problem: Problem, report: Report) -> None:
    ok, why = resolve_dotted(dotted)
    if ok:
        report.names.add(dotted)
    elif ok is False:
        problem(line, why)


def _row_module(cell: str, context: list[Path]) -> tuple[Path | None, str]:
    """The module a table cell names first thing (and the class of its ``(via `X`)``)."""
    m = re.match(r"\s*`([^`]+)`", cell)
    if not m:
        return None, ""
    ref = m.group(1).strip()
    via = re.search(r"\(via `(\w+)`\)", cell)
    module = None
    if found := _MODULE_REF_RE.match(ref):
        module = SRC / found.group(1)
    elif re.match(r"^\w+\.py$", ref):
        module = next((d / ref for d in reversed(context) if (d / ref).is_file()), None)
    elif ref.startswith("algostack."):
        module = module_file(ref) or _module_prefix(ref)
    if module is None or SRC not in module.parents:
        return None, ""
    return module, via.group(1) if via else ""


def _check_table_row(span: Span, context: list[Path], problem: Problem, report: Report) -> None:
    """``| core/backoff.py | Backoff, retry_async |``: each name listed is in the module."""
    cells = table_cells(span.text)
    for i, cell in enumerate(cells):
        module, via = _row_module(cell, context)
        if module is None:
            continue
        others = " ".join(c for j, c in enumerate(cells) if j != i)
        for code in re.findall(r"`([^`]+)`", others):
            name = code.strip().removesuffix("()")
            if not _IDENT_RE.match(name):
                continue
            if name_in_module(module, name, via):
                report.names.add(f"{module.relative_to(SRC)}:{name}")
            else:
                problem(
                    span.line,
                    f"`{name}` is not defined in {module.relative_to(ROOT)} (this row's module)",
                )
        return


def doc_files() -> list[Path]:
    """README.md and every docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def check_docs(files: list[Path]) -> Report:
    report = Report()
    for path in files:
        check_markdown(path.read_text(), str(path.relative_to(ROOT)), report)
    return report

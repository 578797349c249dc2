"""What README.md and docs/*.md claim about the code, checked claim by claim.

Claims: ``algostack`` commands and their ``--flags``, ``make`` targets, bench and
``python -m`` options, file paths and links, and Python names (dotted, ``Class.attr``, the
names a table row lists beside its module). ``doc_markdown`` reads the Markdown, ``doc_code``
the code; ``check_markdown`` returns every problem with its file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from doc_code import (
    ROOT,
    SRC,
    bench_scripts,
    classes_named,
    cli_help,
    has_class_attr,
    has_option,
    leaves,
    make_targets,
    module_file,
    module_prefix,
    name_in_module,
    resolve_cli,
    resolve_dotted,
    script_options,
)
from doc_markdown import Command, Span, commands_in, flag_names, read_spans, table_cells

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
_IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")
_MODULE_REF_RE = re.compile(rf"^(?:src/algostack/)?((?:{'|'.join(SRC_PACKAGES)})/[\w/]+\.py)$")


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
    enclosing one) shows, or of some command when they show none; ``ARGS="--flag"`` is one
    of ``make run``'s."""
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
        shown_here = ", ".join(sorted(show(c) for c in candidates))
        if not candidates:  # nothing around it says whose option it is: any command's
            candidates = set(leaves(()))
        for flag in (f for token in text.split() for f in flag_names(token)):
            owners = {c for c in candidates if has_option(c, flag)}
            if owners:
                report.flags.update((c, flag) for c in owners)
            elif shown_here:
                problem(
                    span.line, f"`{flag}`: an option of none of the commands shown ({shown_here})"
                )
            else:
                problem(span.line, f"`{flag}`: an option of no algostack command")


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
                    path = module_file(dotted) or module_prefix(dotted)
                    if path is not None:
                        dirs.append(path.parent)
            elif parts[0][:1].isupper() and classes_named(parts[0]):
                found = has_class_attr(parts[0], parts[1])
                if found:
                    report.names.add(f"{parts[0]}.{parts[1]}")
                elif found is False:
                    problem(span.line, f"`{dotted}`: class `{parts[0]}` has no `{parts[1]}`")
    return dirs


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
        module = module_file(ref) or module_prefix(ref)
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

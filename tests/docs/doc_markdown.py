"""Markdown as the docs check reads it: code-block lines, inline code, prose, and the
commands (``algostack ...``, ``make ...``, bench scripts, ``python -m``) they show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_FLAG_RE = re.compile(r"^--[a-z0-9][a-z0-9-]*$")
_FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_HEADING_RE = re.compile(r"^(#{1,6})\s")
_INLINE_RE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_SUBSHELL_RE = re.compile(r"\$\(([^()]*)\)")

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


def strip_token(token: str) -> str:
    """A word without the quotes, brackets and punctuation around it."""
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
    word = strip_token(tokens[i])
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
        words.append(strip_token(tokens[i]))
    elif start == "module":
        i += 1
        words.append("src/" + strip_token(tokens[i]).replace(".", "/") + ".py")
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

"""How a command prints what it found: ``print_whole``, at the terminal's width on a terminal,
at the output's own width in a pipe or a CI log (Rich would squeeze it into 80 columns: a
name cut to "…" cannot be copied, a figure folded over three lines cannot be read)."""

from __future__ import annotations

from typing import Any

PIPE_MAX_WIDTH = 400
"""A pipe gets no wider than this: a long note folds past it instead of widening a table."""


def print_whole(renderable: Any, console: Any = None, *, soft_wrap: bool = False) -> None:
    """Print ``renderable`` on ``console`` (default: stdout), never squeezed in a pipe;
    ``soft_wrap``: its lines of text are not folded either (a note stays one line)."""
    from rich.console import Console
    from rich.measure import Measurement

    out = console if console is not None else Console()
    if not out.is_terminal:
        wide = out.options.update(max_width=PIPE_MAX_WIDTH)
        out.width = max(out.width, Measurement.get(out, wide, renderable).maximum)
    out.print(renderable, soft_wrap=soft_wrap)

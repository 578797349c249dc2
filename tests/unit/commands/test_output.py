from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from algostack.commands.output import PIPE_MAX_WIDTH, print_whole

CELLS = ("trading-server-prod-BRK.B-gradient_boosting-12", "up to the caps", "100 sh, $25,000")


def _table() -> Table:
    table = Table(title="models")
    for col in ("instance Name tag", "sizing", "limits", "a column with a long header"):
        table.add_column(col)
    table.add_row(*CELLS, "x")
    return table


def _pipe(width: int = 80) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False), out


def test_a_pipe_gets_the_table_at_its_own_width_with_every_cell_whole() -> None:
    console, out = _pipe()
    print_whole(_table(), console)
    rows = [ln for ln in out.getvalue().splitlines() if CELLS[0] in ln]
    assert len(rows) == 1 and all(cell in rows[0] for cell in CELLS), out.getvalue()
    assert max(len(ln) for ln in out.getvalue().splitlines()) > 80


def test_a_terminal_keeps_its_width_and_a_long_note_does_not_widen_a_pipe_past_the_cap() -> None:
    out = io.StringIO()
    terminal = Console(file=out, width=80, force_terminal=True)
    print_whole(_table(), terminal)
    assert max(len(ln) for ln in Text.from_ansi(out.getvalue()).plain.splitlines()) <= 80
    console, piped = _pipe()
    note = "note: " + "x" * (PIPE_MAX_WIDTH * 2)
    print_whole(Group(_table(), Text(note)), console, soft_wrap=True)
    lines = piped.getvalue().splitlines()
    assert note in lines  # soft wrap: the note is one line
    table_lines = [ln for ln in lines if ln != note]
    assert 80 < max(len(ln) for ln in table_lines) <= PIPE_MAX_WIDTH

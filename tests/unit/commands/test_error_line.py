"""Every command reports its error one way: ``error: <message>``, one line, plain text."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from algostack.cli import app
from algostack.commands.error_line import print_error
from algostack.testing.tiny_disk import fill, tiny_disk


def test_print_error_is_one_plain_line_with_secrets_masked() -> None:
    out = io.StringIO()
    console = Console(file=out, width=30, force_terminal=False)
    print_error("bad row [/x] in\nfile.csv: password=hunter2 key PKABCDEFGHIJKLMNOPQR", console)
    assert out.getvalue() == "error: bad row [/x] in file.csv: password=*** key ***\n"


def test_a_command_quoting_brackets_from_the_user_says_them_on_one_line(tmp_path: Path) -> None:
    """A path that reads as Rich markup ('[/x]') used to end in a MarkupError traceback."""
    where = tmp_path / "[/x]" / "store"
    for argv in (
        ["models", "list", "--dir", str(where)],
        ["data", "list", "--dir", str(where)],
        ["drift", "--day", "2024-03-15", "--bucket", str(where)],
    ):
        res = CliRunner().invoke(app, argv, env={"COLUMNS": "60"})
        assert isinstance(res.exception, SystemExit), (argv, res.exception)  # no traceback
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, (argv, res.stderr)
        assert lines[0].startswith("error: ") and "[/x]" in lines[0], (argv, lines)


def test_an_error_line_stderr_cannot_take_leaves_the_exit_code_the_commands_own(
    tmp_path: Path,
) -> None:
    """A service's stderr is its log: on a full disk the line is lost, but the exit code (3:
    do not restart into this disk) must not become a traceback's 1 or a failed flush's 120."""
    code = (
        "import sys; from algostack.commands.error_line import print_error; "
        "print_error('trade failed: journal: No space left on device'); sys.exit(3)"
    )
    with tiny_disk(tmp_path / "logs", "64k") as logs, open(logs / "trader.log", "ab") as log:
        fill(logs)
        res = subprocess.run([sys.executable, "-c", code], stderr=log, timeout=60, check=False)
    assert res.returncode == 3

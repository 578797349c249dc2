"""``algostack sync``: upload a trader's journals to its model's live prefix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import Bucket
from algostack.commands.output import print_whole

_PREFIX_RE = re.compile(r"^models/([^/]+)/([^/]+)/([^/]+)$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def live_prefix_for(model_prefix: str, day: str) -> str:
    """``<model prefix>/live/<day>`` after checking both; ``ConfigError`` when malformed."""
    from algostack.core.naming import ModelSpec
    from algostack.errors import ConfigError

    m = _PREFIX_RE.match(model_prefix.strip("/"))
    if m is None:
        raise ConfigError(
            f"--model {model_prefix!r} is not a model prefix: expected "
            "models/<model_type>/<symbol>/<model_id>"
        )
    if not _DAY_RE.match(day):
        raise ConfigError(f"--day {day!r} is not a date: expected YYYY-MM-DD")
    return ModelSpec(m.group(1), m.group(2), m.group(3), 0).live_prefix(day)


def sync_command(
    bucket: Bucket,
    model: Annotated[
        str, typer.Option("--model", help="the model prefix models/<type>/<symbol>/<model_id>")
    ],
    journal_dir: Annotated[
        Path, typer.Option("--journal-dir", help="where trades_*.csv and live_trader.log are")
    ],
    day: Annotated[
        str | None,
        typer.Option(
            "--day",
            help="YYYY-MM-DD (default: the newest session day in the journal, else today in "
            "New York)",
        ),
    ] = None,
    final: Annotated[
        bool, typer.Option("--final", help="also write manifest.json (end of the day)")
    ] = False,
) -> None:
    """Upload changed journal files to <model prefix>/live/<day>/ (idempotent)."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from algostack.adapters.storage import open_store
    from algostack.core.sessions import new_york_date
    from algostack.errors import AlgostackError, exit_code
    from algostack.services.sync import journal_day, sync_journals

    err = Console(stderr=True)
    try:
        the_day = day or journal_day(journal_dir) or new_york_date(datetime.now(UTC)).isoformat()
        prefix = live_prefix_for(model, the_day)
        store = open_store(bucket)
        report = sync_journals(journal_dir, store, prefix, day=the_day, final=final)
    except AlgostackError as exc:
        print_error(f"sync failed: {exc}", err)
        raise typer.Exit(exit_code(exc)) from None  # 2 for bad input, 1 for a failed upload
    table = Table(title=f"sync -> {store.url}/{prefix}")
    table.add_column("key")
    table.add_column("result")
    for key in report.uploaded:
        table.add_row(key, "uploaded")
    for key in report.unchanged:
        table.add_row(key, "unchanged")
    print_whole(table)
    Console().print(
        f"{len(report.uploaded)} uploaded ({report.bytes_uploaded} bytes), "
        f"{len(report.unchanged)} unchanged"
    )


def register(app: typer.Typer) -> None:
    """Add ``sync`` to the CLI."""
    app.command("sync")(sync_command)

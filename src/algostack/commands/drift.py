"""``algostack drift``: a day's live trades against the replay of the archived day."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import AsJson, BucketOpt, DirOpt, SlippageBps


def drift(
    day: Annotated[str, typer.Option("--day", help="The session YYYY-MM-DD to compare.")],
    bucket: BucketOpt = None,
    directory: DirOpt = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Model store (s3://<bucket> or a directory holding models/; default: the bucket).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write drift_<D>.json and drift_<D>.html here (default: .)."),
    ] = None,
    slippage_bps: SlippageBps = 1.0,
    as_json: AsJson = False,
) -> None:
    """Replay the archived day through each model that traded it live and compare the fills.

    Exit 0: every live fill matches the replay.
    Exit 1: differences were found.
    Exit 2: bad input, one line naming the key (a day not archived, no live trades that day).
    """
    import json
    import logging

    from rich.console import Console

    from algostack.commands.options import open_bucket
    from algostack.errors import AlgostackError, exit_code
    from algostack.local.drift import drift_day, open_models_store, table_lines, write_report
    from algostack.local.session import parse_day

    # The replay's traders log as live ones do; the report is the output, not their lines.
    logging.getLogger("algostack").addHandler(logging.NullHandler())
    err = Console(stderr=True)
    try:
        when = parse_day(day)
        assert when is not None
        store = open_bucket(bucket, directory)
        report = drift_day(store, open_models_store(models, store), when, slippage_bps=slippage_bps)
        js, page = write_report(report, out if out is not None else Path.cwd())
    except AlgostackError as exc:
        print_error(exc, err)
        raise typer.Exit(exit_code(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
    else:
        typer.echo("\n".join([*table_lines(report), f"written: {js} {page}"]))
    raise typer.Exit(1 if report.differences else 0)


def register(app: typer.Typer) -> None:
    """Add ``drift`` to the algostack app."""
    app.command("drift")(drift)

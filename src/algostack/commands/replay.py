"""``algostack replay``: a backtest through the live trader's per-bar code path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import AsJson, Home, Report, SlippageBps

if TYPE_CHECKING:
    from algostack.core.market import Bar


def replay(
    models: Annotated[
        Path, typer.Option("--models", help="Model store (a directory holding models/).")
    ],
    bars: Annotated[
        Path | None, typer.Option("--bars", help="Bars file (.csv or .parquet).")
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="The market-data archive (s3://<bucket> or a bucket directory) to replay "
            "--day (to --to) from, instead of --bars.",
        ),
    ] = None,
    day: Annotated[
        str | None, typer.Option("--day", help="With --archive: the first session YYYY-MM-DD.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="With --archive: the last session (default --day).")
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="With --archive: replay unfinished days as they are.")
    ] = False,
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated model prefixes or keys.")
    ] = None,
    slippage_bps: SlippageBps = 1.0,
    commission: Annotated[float, typer.Option(help="Commission per share.")] = 0.0,
    journal_dir: Annotated[
        Path | None,
        typer.Option(help="Write each model's journals under DIR/<model key> (default: none)."),
    ] = None,
    home: Home = None,
    as_json: AsJson = False,
    report: Report = True,
) -> None:
    """Replay bars through every model as fast as possible (same code as live); summarise."""
    started = time.monotonic()  # the wall time printed runs from here to the summary written
    import asyncio

    from rich.console import Console

    from algostack.commands.run import finish, write_report_page, write_summary_file
    from algostack.config import load_settings
    from algostack.errors import AlgostackError, ConfigError, exit_code
    from algostack.local import session as ls
    from algostack.local.replay import (
        load_store_models,
        refuse_untraded,
        replay_bars,
        resolve_store_root,
    )
    from algostack.local.summary import RunSummary
    from algostack.logs import setup_logging

    err = Console(stderr=True)
    settings = load_settings()
    try:
        paths = ls.RunPaths(Path(home or settings.home).resolve(), ls.new_run_id() + "-replay")
        paths.run_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(
            settings.log_level, stream=(paths.run_dir / "replay.log").open("a", buffering=1)
        )
        root = resolve_store_root(models)
        wanted = tuple(p.strip() for p in only.split(",") if p.strip()) if only else ()
        loaded, ignored = load_store_models(root, only=wanted)
        traded = {spec.symbol for spec, _ in loaded}
        source = _source(bars, archive, day, to, partial, sorted(traded))
        refuse_untraded(source.where, source.symbols, traded)
        if slippage_bps < 0 or commission < 0:
            raise ConfigError("--slippage-bps and --commission must be >= 0")
        outcome = asyncio.run(
            replay_bars(
                source.bars(),
                loaded,
                slippage_bps=slippage_bps,
                commission_per_share=commission,
                journal_root=journal_dir,
                fsync=False,
            )
        )
    except AlgostackError as exc:
        print_error(exc, err)
        raise typer.Exit(exit_code(exc)) from None
    notes = list(outcome.notes)
    notes += ignored
    if source.note:
        notes.append(source.note)
    notes.append(
        f"replay loop (file read included): {outcome.bars:,} bars in {outcome.loop_s:.3f} s "
        f"({outcome.bars_per_s:,.0f} bars/s)"
    )
    summary = RunSummary(
        mode="replay",
        run_id=paths.run_id,
        day=ls.new_york_date_of_ts(source.first_ts).isoformat(),
        source=source.where,
        wall_s=round(time.monotonic() - started, 3),
        bars=outcome.bars,
        models=outcome.models,
        notes=notes,
        summary_path=str(paths.summary_json),
    )
    if report:
        write_report_page(paths.report_html, summary, outcome.curves, outcome.prices)
    # The wall time covers everything the command did: loading, the replay, the report.
    summary.wall_s = round(time.monotonic() - started, 3)
    code = 0 if write_summary_file(paths.summary_json, summary) else 1
    if code:  # a full disk: one line, and the summary on stdout all the same
        print_error(summary.notes[-1], err)
    finish(summary, as_json=as_json, exit_code=code)


class _Input(NamedTuple):
    """What the replay reads, whichever it comes from."""

    where: str
    symbols: list[str]
    first_ts: int
    bars: Callable[[], Iterable[Bar]]
    note: str
    """What the source says of itself: bad rows skipped, archived days that end early ("" when
    nothing)."""


def _source(
    bars: Path | None,
    archive: str | None,
    day: str | None,
    to: str | None,
    partial: bool,
    symbols: list[str],
) -> _Input:
    """The bars to replay: a file (``--bars``) or archived sessions (``--archive --day``)."""
    from algostack.errors import ConfigError

    if (bars is None) == (archive is None):
        raise ConfigError("give exactly one of --bars FILE or --archive s3://<bucket>|DIR --day D")
    if bars is not None:
        from algostack.local.replay import bad_rows_note, open_bars

        if day or to or partial:
            raise ConfigError("--day, --to and --partial go with --archive, not --bars")
        src = open_bars(bars)  # checked in one pass; replay_bars reads it again as it goes
        note = bad_rows_note(src)
        return _Input(str(bars), list(src.file_symbols), src.first_ts or 0, src.bars, note)
    from algostack.adapters.storage import open_store
    from algostack.local.session import parse_day
    from algostack.services.archive_reader import ArchiveRange

    first = parse_day(day)
    if first is None:
        raise ConfigError("--archive needs --day YYYY-MM-DD (and --to for a range)")
    last = parse_day(to, "--to") or first
    assert archive is not None
    rng = ArchiveRange(open_store(archive), first, last, symbols, partial).check()
    return _Input(rng.url, rng.file_symbols, rng.first_ts(), rng.bars, rng.note)


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the algostack app."""
    app.command("replay")(replay)

"""``algostack replay``: a backtest through the live trader's per-bar code path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from algostack.commands.options import AsJson, Home, Report, SlippageBps


def replay(
    bars: Annotated[Path, typer.Option("--bars", help="Bars file (.csv or .parquet).")],
    models: Annotated[
        Path, typer.Option("--models", help="Model store (a directory holding models/).")
    ],
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

    from algostack.commands.run import _write_summary, finish
    from algostack.config import load_settings
    from algostack.errors import AlgostackError, ConfigError, DataError, exit_code
    from algostack.local import session as ls
    from algostack.local.replay import (
        load_store_models,
        open_bars,
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
        loaded, problems = load_store_models(root, only=wanted)
        source = open_bars(bars)  # checked in one pass; replay_bars reads it again as it goes
        traded = {spec.symbol for spec, _ in loaded}
        if not traded & set(source.file_symbols):
            held = ", ".join(sorted(source.file_symbols)[:10])
            raise DataError(
                f"{bars}: none of its symbols ({held}) is traded by the models "
                f"({', '.join(sorted(traded))}): nothing to replay"
            )
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
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from None
    notes = list(outcome.notes)
    notes += [f"model skipped: {p}: {m}" for p, m in problems.items()]
    if source.stats.malformed:
        notes.append(f"{source.stats.malformed} bad row(s) skipped, first: {source.problems[0]}")
    notes.append(
        f"replay loop (file read included): {outcome.bars:,} bars in {outcome.loop_s:.3f} s "
        f"({outcome.bars_per_s:,.0f} bars/s)"
    )
    summary = RunSummary(
        mode="replay",
        run_id=paths.run_id,
        day=ls.new_york_date_of_ts(source.first_ts or 0).isoformat(),
        source=str(bars),
        wall_s=round(time.monotonic() - started, 3),
        bars=outcome.bars,
        models=outcome.models,
        notes=notes,
        summary_path=str(paths.summary_json),
    )
    if report:
        from algostack.local.report import write_report

        try:
            summary.report = str(paths.report_html)
            write_report(paths.report_html, summary, outcome.curves, outcome.prices)
        except Exception as exc:  # a chart must never hide the summary
            summary.report = ""
            summary.notes.append(f"report not written: {exc}")
    # The wall time covers everything the command did: loading, the replay, the report.
    summary.wall_s = round(time.monotonic() - started, 3)
    _write_summary(paths.summary_json, summary)
    finish(summary, as_json=as_json, exit_code=0)


def register(app: typer.Typer) -> None:
    """Add ``replay`` to the algostack app."""
    app.command("replay")(replay)

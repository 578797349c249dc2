"""``algostack run``: the whole trading desk on this machine, ending with a summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import AsJson, Home, Report, SlippageBps
from algostack.commands.output import print_whole

if TYPE_CHECKING:
    from algostack.local.desk import LocalDesk
    from algostack.local.summary import RunSummary


def _progress_columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    return (
        TextColumn("[bold]{task.fields[phase]:<14}"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[clock]}"),
        TextColumn("bars {task.fields[bars]:>6}"),
        TextColumn("orders {task.fields[orders]:>4}"),
        TextColumn("PnL {task.fields[pnl]}"),
        TimeElapsedColumn(),
    )


def session_clock(ts: int) -> str:
    """``HH:MM`` New York time of a bar start (``--:--`` before the first bar)."""
    if ts <= 0:
        return "--:--"
    from datetime import datetime

    from algostack.core.sessions import NEW_YORK

    return datetime.fromtimestamp(ts / 1e9, NEW_YORK).strftime("%H:%M")


def finish(summary: RunSummary, *, as_json: bool, exit_code: int) -> None:
    """Print the summary (Rich or JSON) and exit with ``exit_code``."""
    if as_json:
        import orjson

        typer.echo(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_whole(_render(summary), soft_wrap=True)  # a note is one line, even in a pipe
    raise typer.Exit(exit_code)


def _render(summary: RunSummary) -> Any:
    from algostack.local.summary import render

    return render(summary)


def run(
    speed: Annotated[
        float | None,
        typer.Option(help="Session speed-up (N x real time); default: 390 minutes in ~30 s."),
    ] = None,
    max_speed: Annotated[
        bool, typer.Option("--max-speed", help="As fast as the traders keep up.")
    ] = False,
    day: Annotated[
        str | None, typer.Option(help="Session day YYYY-MM-DD (default: latest NYSE session).")
    ] = None,
    source: Annotated[
        str, typer.Option(help="Market data: synthetic, replay (with --replay) or alpaca.")
    ] = "synthetic",
    replay: Annotated[
        Path | None, typer.Option("--replay", help="Bars file (.csv/.parquet) to replay.")
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models", help="Model store (holds models/); default: demo models."),
    ] = None,
    packed: Annotated[
        bool, typer.Option("--packed", help="All models in one trader process.")
    ] = False,
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="Also serve the dashboard on 127.0.0.1.")
    ] = False,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard port.")] = 8501,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market and demo models.")] = 7,
    home: Home = None,
    slippage_bps: SlippageBps = 1.0,
    as_json: AsJson = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show the live progress bar.")
    ] = True,
    report: Report = True,
) -> None:
    """Run a whole trading day locally, then print a summary and write a report.

    NATS, the ingest, the gateway (sim broker), a trader per model; synced to <home>/bucket."""
    import asyncio

    from rich.console import Console

    from algostack.config import load_settings
    from algostack.errors import AlgostackError, exit_code
    from algostack.local import session as ls

    err = Console(stderr=True)
    settings = load_settings()
    try:
        kind = ls.SourceKind(source)
    except ValueError:
        print_error(f"--source must be synthetic, replay or alpaca: {source!r}", err)
        raise typer.Exit(2) from None
    if replay is not None:
        kind = ls.SourceKind.REPLAY
    try:
        paths, cfg, specs, _lock, source_notes = _prepare(
            settings,
            err,
            kind=kind,
            home=home,
            day=day,
            speed=None if max_speed else (ls.DEFAULT_SPEED if speed is None else speed),
            replay=replay,
            models_dir=models_dir,
            packed=packed,
            dashboard=dashboard,
            dashboard_port=dashboard_port,
            seed=seed,
            slippage_bps=slippage_bps,
        )
        from algostack.errors import EXIT_FAILED
        from algostack.local.desk import EXIT_INTERRUPTED, LocalDesk

        desk = LocalDesk(cfg, specs)
    except AlgostackError as exc:
        print_error(exc, err)  # plain text: an error may quote the user's data ('[/x]')
        raise typer.Exit(exit_code(exc)) from None
    except OSError as exc:  # the home cannot be written (a full disk, a read-only mount)
        from algostack.core.atomic_file import write_error

        print_error(write_error(Path(exc.filename or home or "."), exc), err)
        raise typer.Exit(1) from None

    err.print(
        f"algostack run {cfg.day_text}: {len(specs)} models on {', '.join(desk.symbols)}, "
        f"{'packed' if packed else 'one process per model'}, source {kind.value}, "
        f"speed {'max' if cfg.speed is None else f'{cfg.speed:g}x'}",
        highlight=False,
        soft_wrap=True,  # one line in a pipe or a CI log too (not wrapped at 80 columns)
    )
    notes, code = _drive(desk, err, progress and err.is_terminal, asyncio)
    summary, curves = desk.summarize(paths.run_id, notes)
    summary.notes += source_notes
    summary.summary_path = str(paths.summary_json)
    if report:
        write_report_page(paths.report_html, summary, curves, desk.collector.prices)
    if desk.interrupted:  # a signal in the report phase is noted, not obeyed
        summary.interrupted, code = True, EXIT_INTERRUPTED
    if not write_summary_file(paths.summary_json, summary):
        code = code or EXIT_FAILED
    if code == EXIT_FAILED:  # the first cause, on one line, where a pipe or CI log shows it
        why = summary.notes[0] if summary.notes else "a component failed (see the summary)"
        print_error(f"run failed: {why}", err)
    finish(summary, as_json=as_json, exit_code=EXIT_INTERRUPTED if desk.interrupted else code)


def _prepare(
    settings: Any, err: Any, *, kind: Any, **opts: Any
) -> tuple[Any, Any, list[Any], Any, list[str]]:
    """Check the options, the replay file and the models; create the run's directories.

    Returns the paths, the config, the model specs, the home's lock and the notes the
    summary adds (a replay file's bad rows)."""
    from dataclasses import replace

    from algostack.adapters.storage import LocalDirStore
    from algostack.errors import ConfigError
    from algostack.local import session as ls
    from algostack.local.replay import resolve_store_root
    from algostack.logs import setup_logging
    from algostack.services.catalog import list_catalog, validate_catalog

    home = Path(opts["home"] or settings.home).resolve()
    store_dir = resolve_store_root(opts["models_dir"]).resolve() if opts["models_dir"] else None
    paths = ls.RunPaths(home, ls.new_run_id(), store_dir=store_dir)
    lock = ls.HomeLock(home).acquire()  # held by run() until the process ends
    day = ls.parse_day(opts["day"])
    cfg = ls.RunConfig(  # every option checked before anything is written
        paths=paths,
        day=day or ls.latest_session_day(),
        source=kind,
        speed=opts["speed"],
        replay_file=opts["replay"],
        packed=opts["packed"],
        dashboard=opts["dashboard"],
        dashboard_port=opts["dashboard_port"],
        seed=opts["seed"],
        env=settings.env,
        slippage_bps=opts["slippage_bps"],
    )
    paths.create()
    setup_logging(settings.log_level, stream=(paths.logs / "run.log").open("a", buffering=1))
    bars, notes = None, []
    if opts["replay"] is not None:
        from algostack.local.replay import bad_rows_note, open_bars

        # One pass, nothing held; its refused rows are logged to run.log (not the terminal)
        # and said once in the summary, as `replay` says them.
        bars = open_bars(opts["replay"])
        notes = [n for n in (bad_rows_note(bars),) if n]
        assert bars.first_ts is not None  # open_bars refuses a file without a usable bar
        if day is None:  # the file's first day
            cfg = replace(cfg, day=ls.new_york_date_of_ts(bars.first_ts))
    if store_dir is None:
        from algostack.local.demo_models import ensure_demo_models

        if not paths.models.is_dir() or not any(paths.models.iterdir()):
            err.print(f"first run: training demo models into {paths.models} ...",
                      highlight=False, soft_wrap=True)  # fmt: skip
        ensure_demo_models(paths.store, seed=cfg.seed, before=cfg.day)
    store = LocalDirStore(paths.store)
    catalog = list_catalog(store, environment="dev")
    # Every model loaded and scored before any process starts (as `models validate` does):
    # a corrupt artifact is one line and exit 2 now, not a trader's log line after the run.
    broken = [v for v in validate_catalog(store, catalog) if not v.ok]
    if broken:
        raise ConfigError(
            f"{len(broken)} model(s) cannot trade: "
            + "; ".join(f"{v.prefix}: {v.message}" for v in broken)
        )
    specs = [e.spec for e in catalog.entries if e.ok]
    for line in catalog.ignored_lines():
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if not specs:
        raise ConfigError(f"no usable models under {paths.store / 'models'}")
    if bars is not None:  # as `replay` refuses it: a session of no bar, exit 0, said nothing
        from algostack.local.replay import refuse_untraded

        refuse_untraded(str(opts["replay"]), bars.file_symbols, {s.symbol for s in specs})
    return paths, cfg, specs, lock, notes


def _drive(desk: LocalDesk, err: Any, show: bool, asyncio: Any) -> tuple[list[str], int]:
    """Run the desk's event loop, with a Rich progress bar on a terminal."""
    from rich.progress import Progress

    cfg = desk.cfg
    sess = cfg.session
    total = float(sess.minutes if sess is not None else 390)
    open_ts = int(sess.open.timestamp()) * 1_000_000_000 if sess is not None else 0
    if not show:
        return asyncio.run(desk.run())  # type: ignore[no-any-return]
    with Progress(*_progress_columns(), console=err, transient=False) as bar:
        task = bar.add_task(
            "session", total=total, phase="starting", clock="--:--", bars=0, orders=0, pnl="0.00"
        )

        def update(d: LocalDesk) -> None:
            col = d.collector
            ts = col.session_ts()
            done = (ts - open_ts) / 60e9 + 1 if ts and open_ts else 0.0
            orders, pnl = col.totals()
            bar.update(
                task,
                completed=min(total, max(0.0, done)),
                phase=d.phase,
                clock=session_clock(ts),
                bars=col.bars,
                orders=orders,
                pnl=f"{pnl:,.2f}",
            )

        desk._on_progress = update
        return asyncio.run(desk.run())  # type: ignore[no-any-return]


def _write_summary(path: Path, summary: RunSummary) -> None:
    """Write ``summary.json`` whole or not at all (``core.atomic_file.replace_file``): a
    failed write (a full disk) leaves the previous file, or none, and no temporary file, and
    raises ``FileWriteError`` naming the file. A plain write left a 0-byte summary."""
    import orjson

    from algostack.core.atomic_file import replace_file

    replace_file(path, orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")


def write_summary_file(path: Path, summary: RunSummary) -> bool:
    """``_write_summary``, a failure kept as a note (the summary still goes to stdout):
    False when the file could not be written. For ``run`` and ``replay`` alike."""
    from algostack.errors import FileWriteError

    try:
        _write_summary(path, summary)
    except FileWriteError as exc:
        summary.summary_path = ""
        summary.notes.append(f"summary not written: {exc}")
        return False
    return True


def write_report_page(path: Path, summary: RunSummary, curves: Any, prices: Any) -> None:
    """The HTML report, or a note saying why not (a chart never hides the summary); a page
    that could not be written whole is removed (no half page)."""
    from algostack.local.report import write_report

    try:
        summary.report = str(path)
        write_report(path, summary, curves, prices)
    except Exception as exc:
        summary.report = ""
        summary.notes.append(f"report not written: {exc}")
        if isinstance(exc, OSError):
            path.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the algostack app."""
    app.command("run")(run)

"""``algostack ingest``: market data (Alpaca, synthetic or replay) -> NATS JetStream."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import NatsUrl

if TYPE_CHECKING:
    from algostack.config import Settings
    from algostack.core.source import MarketSource
    from algostack.services.archive import ArchiveWriter


class SourceName(StrEnum):
    """Where market data comes from."""

    alpaca = "alpaca"
    synthetic = "synthetic"
    replay = "replay"


class FeedName(StrEnum):
    """Alpaca market-data feeds (``test`` streams the symbol FAKEPACA)."""

    iex = "iex"
    sip = "sip"
    delayed_sip = "delayed_sip"
    test = "test"


def parse_speed(text: str | None) -> float | None:
    """``max`` (or nothing) -> as fast as possible; a positive number -> N x real time."""
    from algostack.errors import ConfigError

    if text is None or text.strip().lower() in ("max", "inf", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--speed must be a positive number or 'max', got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"--speed must be a positive number or 'max', got {text!r}")
    return value


def parse_symbols(text: str | None) -> list[str] | None:
    """Split ``AAPL,MSFT`` and validate each symbol (``ConfigError`` names the bad one)."""
    if text is None:
        return None
    from algostack.adapters.offline.synthetic import validate_symbols

    return validate_symbols([s.strip() for s in text.split(",") if s.strip()])


def default_day(today: date | None = None) -> date:
    """The latest NYSE session on or before today (New York date)."""
    from datetime import UTC, datetime

    from algostack.core.sessions import new_york_date, previous_session, session

    day = today or new_york_date(datetime.now(UTC))
    return day if session(day) is not None else previous_session(day).day


def build_source(
    settings: Settings,
    source: SourceName,
    symbols: list[str] | None,
    *,
    replay_file: Path | None,
    speed: float | None,
    day: date | None,
    seed: int,
    feed: FeedName | None,
) -> MarketSource:
    """Build and validate the source; every bad option fails here, before any connection."""
    from algostack.errors import ConfigError

    if source is SourceName.synthetic:
        from algostack.adapters.offline.synthetic import SyntheticSource

        if not symbols:
            raise ConfigError("--source synthetic needs --symbols, e.g. --symbols AAPL,MSFT")
        return SyntheticSource(symbols, day=day or default_day(), seed=seed, speed=speed)
    if source is SourceName.replay:
        from algostack.adapters.offline.bars_file import ReplaySource

        if replay_file is None:
            raise ConfigError("--source replay needs --replay-file F (.csv or .parquet)")
        return ReplaySource(replay_file, speed=speed, symbols=symbols)
    if not symbols:
        raise ConfigError("--source alpaca needs --symbols, e.g. --symbols AAPL,MSFT")
    alpaca = settings.alpaca
    if feed is not None:
        alpaca = alpaca.model_copy(update={"feed": feed.value})
    if not alpaca.has_keys:
        raise ConfigError(
            "--source alpaca needs Alpaca keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY"
        )
    from algostack.adapters.alpaca.stream import AlpacaStreamSource

    src: MarketSource = AlpacaStreamSource.from_settings(alpaca, symbols)
    return src


def ingest(
    source: Annotated[SourceName, typer.Option(help="Market data source.")],
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. AAPL,MSFT.")
    ] = None,
    nats_url: NatsUrl = None,
    embedded_nats: Annotated[
        bool, typer.Option(help="Start an embedded nats-server (JetStream) for this run.")
    ] = False,
    replay_file: Annotated[
        Path | None, typer.Option(help="Bars file for --source replay (.csv/.parquet).")
    ] = None,
    speed: Annotated[
        str | None, typer.Option(help="Offline pace: N times real time, or 'max'.")
    ] = "max",
    day: Annotated[
        str | None, typer.Option(help="Session day for synthetic data (YYYY-MM-DD).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    feed: Annotated[
        FeedName | None, typer.Option(help="Alpaca feed (default ALGOSTACK_ALPACA_FEED).")
    ] = None,
    log_every: Annotated[float, typer.Option(help="Seconds between progress logs.")] = 10.0,
    connect_timeout: Annotated[
        float | None, typer.Option(help="Give up on NATS after this many seconds.")
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            help="Archive bars and statuses as Parquet into s3://<bucket> or a local bucket "
            "directory (default ALGOSTACK_ARCHIVE; none when unset)."
        ),
    ] = None,
) -> None:
    """Stream market data into NATS JetStream (stream MARKET, subjects market.>)."""
    import asyncio

    from rich.console import Console

    from algostack.config import load_settings
    from algostack.errors import AlgostackError, ConfigError, service_exit_code
    from algostack.logs import setup_logging

    err = Console(stderr=True)
    settings = load_settings()
    setup_logging(settings.log_level)
    try:
        day_value = None
        if day is not None:
            try:
                day_value = date.fromisoformat(day)
            except ValueError:
                raise ConfigError(f"--day must be YYYY-MM-DD, got {day!r}") from None
        src = build_source(
            settings,
            source,
            parse_symbols(symbols),
            replay_file=replay_file,
            speed=parse_speed(speed),
            day=day_value,
            seed=seed,
            feed=feed,
        )
        password = settings.nats.password.get_secret_value() if settings.nats.password else None
        writer = open_archive(archive or settings.archive)
        from algostack.services.ingest import run_ingest

        coro = run_ingest(
            src,
            nats_url=None if embedded_nats else (nats_url or settings.nats.url),
            user=settings.nats.user,
            password=password,
            connect_timeout_s=connect_timeout or settings.nats.connect_timeout_s,
            embedded=embedded_nats,
            store_dir=settings.home / "nats" if embedded_nats else None,
            log_every_s=log_every,
            archive=writer,
        )
        try:
            import uvloop

            stats = uvloop.run(coro)
        except ImportError:  # pragma: no cover - uvloop is absent on Windows
            stats = asyncio.run(coro)
    except AlgostackError as exc:
        print_error(exc, err)
        # 2: bad input (options, files), fixed by the user; 3: a full disk or store, refused
        # keys (a restart cannot help); 1: a runtime failure a restart may cure.
        raise typer.Exit(service_exit_code(exc)) from None
    err.print(
        f"ingest done: received={stats.received} published={stats.published} "
        f"duplicates={stats.duplicates} malformed={stats.malformed} "
        f"reconnects={stats.reconnects} in {stats.elapsed_s:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    if writer is not None and stats.archive_complete:
        err.print(
            f"archive: {stats.archived} event(s) in {writer.store.url}, complete",
            highlight=False,
            soft_wrap=True,
        )
    elif writer is not None:  # the verdict the ingest exits 1 for: one line, the cause in it
        why = writer.stats.last_error or "see the log"
        print_error(
            f"archive in {writer.store.url} not complete "
            f"({writer.stats.archived} event(s) written): {why}",
            err,
        )
    sys.stderr.flush()
    if writer is not None and not stats.archive_complete:
        raise typer.Exit(writer.stats.last_exit_code or 1)  # 3 on a full disk: not restarted


def open_archive(url: str | None) -> ArchiveWriter | None:
    """The archive writer for ``--archive`` (``None`` without one). A local directory is
    created; an S3 bucket is listed once, so a missing bucket or a denied key is a
    ``ConfigError`` before anything connects."""
    if not url:
        return None
    from algostack.adapters.storage import open_store
    from algostack.errors import ConfigError
    from algostack.services.archive import ROOT, ArchiveWriter

    store = open_store(url)
    if not url.startswith("s3://"):
        try:
            Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--archive {url}: cannot create the directory: {exc}") from None
    next(iter(store.list_keys(f"{ROOT}/_probe")), None)  # lists (almost) nothing
    return ArchiveWriter(store)


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the algostack app."""
    app.command("ingest")(ingest)

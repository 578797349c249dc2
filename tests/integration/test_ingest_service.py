"""The ingest service and `algostack ingest` against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path

import pytest

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.adapters.offline.replay import ReplaySource, write_bars
from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core import codec
from algostack.core.market import Bar, MarketEvent, Trade
from algostack.services.ingest import IngestService

DAY = date(2024, 3, 15)
ALGOSTACK = str(Path(sys.executable).parent / "algostack")


async def subject_counts(bus: NatsBus) -> dict[str, int]:
    info = await bus._nc.jsm().stream_info(codec.STREAM_NAME, subjects_filter="market.>")
    return dict(info.state.subjects or {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(server: EmbeddedNats | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALGOSTACK_"))}
    if server is not None:
        env["ALGOSTACK_NATS_USER"] = server.user
        env["ALGOSTACK_NATS_PASSWORD"] = server.password
    env.update(extra)
    return env


def json_lines(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def test_ingest_synthetic_lands_every_event_once_and_rerun_adds_nothing(
    bus: NatsBus,
) -> None:
    src = SyntheticSource(["AAPL", "BRK.B"], day=DAY, seed=1)
    stats = await IngestService(src, bus).run()
    trades = src.stats.received - 2 * 390
    assert stats.received == src.stats.received == stats.published
    counts = await subject_counts(bus)
    assert counts["market.bars.AAPL"] == counts["market.bars.BRK_B"] == 390
    assert counts["market.trades.AAPL"] + counts["market.trades.BRK_B"] == trades
    again = await IngestService(SyntheticSource(["AAPL", "BRK.B"], day=DAY, seed=1), bus).run()
    assert again.duplicates == stats.received and again.published == stats.published
    assert (await bus.stream_info()).state.messages == stats.received


async def test_ingest_replay_skips_bad_rows_and_publishes_the_rest(
    bus: NatsBus, tmp_path: Path
) -> None:
    src = SyntheticSource(["MSFT"], day=DAY, include_trades=False)
    bars = [e async for b in src.stream() for e in b if isinstance(e, Bar)]
    path = tmp_path / "bars.csv"
    write_bars(path, bars[:100])
    with path.open("a") as fh:
        fh.write("MSFT,2024-03-15T13:30:00Z,1,1,1,1,1,0,0\n")  # goes back in time
    replay = ReplaySource(path)
    stats = await IngestService(replay, bus).run()
    assert (stats.received, stats.published, stats.malformed) == (100, 100, 1)
    assert await subject_counts(bus) == {"market.bars.MSFT": 100}


async def test_ingest_stop_mid_stream_flushes_every_received_event(bus: NatsBus) -> None:
    src = SyntheticSource(["AAPL"], day=DAY, speed=3000.0)  # a session minute per 20 ms
    service = IngestService(src, bus)
    run = asyncio.create_task(service.run())
    while service.stats.batches < 5:  # noqa: ASYNC110 - polling the service's own counter
        await asyncio.sleep(0.01)
    service.stop()
    stats = await asyncio.wait_for(run, 10)
    assert 5 <= stats.batches < 390
    assert stats.received == stats.published == (await bus.stream_info()).state.messages
    assert bus.inflight == 0


async def test_ingest_progress_log_reports_counters_and_last_bar_age(
    bus: NatsBus, caplog: pytest.LogCaptureFixture
) -> None:
    src = SyntheticSource(["AAPL", "MSFT"], day=DAY, include_trades=False)
    assert src.session is not None
    close_s = src.session.close.timestamp()
    service = IngestService(src, bus, log_every_s=0.0, wall_clock=lambda: close_s + 30)
    with caplog.at_level(logging.INFO, logger="algostack.ingest"):
        await service.run()
    done = next(r for r in caplog.records if r.getMessage() == "ingest finished")
    fields = done.fields  # type: ignore[attr-defined]
    assert fields["received"] == fields["published"] == 780
    assert fields["last_bar_age_s"] == {"AAPL": 90.0, "MSFT": 90.0}  # last bar 15:59 + 90 s
    assert any(r.getMessage() == "ingest progress" for r in caplog.records)


async def test_ingest_cli_sigterm_exits_zero_with_everything_acked(
    embedded_nats: EmbeddedNats, bus: NatsBus
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *[ALGOSTACK, "ingest", "--source", "synthetic", "--symbols", "AAPL,MSFT"],
        *["--day", "2024-03-15", "--speed", "300", "--log-every", "0.1"],
        *["--nats-url", embedded_nats.url],
        env=cli_env(embedded_nats),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if (await bus.stream_info()).state.messages > 50:
                break
        proc.send_signal(signal.SIGTERM)
        _, raw_err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    err = raw_err.decode()
    assert proc.returncode == 0, err
    finished = [r for r in json_lines(err) if r["msg"] == "ingest finished"]
    assert len(finished) == 1, err
    summary = finished[0]
    stored = (await bus.stream_info()).state.messages
    assert summary["received"] == summary["published"] == stored
    assert summary["inflight"] == 0
    assert summary["batches"] < 390  # it really was stopped mid-session
    assert embedded_nats.password not in err


def test_ingest_cli_nats_unreachable_logs_retries_then_fails_clearly() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [
            *[ALGOSTACK, "ingest", "--source", "synthetic", "--symbols", "AAPL"],
            *["--day", "2024-03-15", "--nats-url", url, "--connect-timeout", "1.5"],
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    retries = [r for r in json_lines(proc.stderr) if "retrying in" in str(r["msg"])]
    assert len(retries) >= 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: NATS at {url} unreachable") and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--source", "synthetic", "--symbols", "AAPL,bad sym"], "invalid symbol 'bad sym'"),
        (["--source", "synthetic"], "needs --symbols"),
        (["--source", "synthetic", "--symbols", "AAPL", "--day", "2024-12-25"], "not an NYSE"),
        (["--source", "synthetic", "--symbols", "AAPL", "--speed", "-1"], "--speed must be"),
        (["--source", "replay"], "needs --replay-file"),
        (["--source", "replay", "--replay-file", "/nonexistent.csv"], "replay file not found"),
        (
            ["--source", "alpaca", "--symbols", "AAPL"],
            "APCA_API_KEY_ID and APCA_API_SECRET_KEY",
        ),
    ],
)
def test_ingest_cli_bad_input_fails_before_connecting(args: list[str], match: str) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens: a connect attempt would log
    proc = subprocess.run(
        [ALGOSTACK, "ingest", *args, "--nats-url", url],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert "retrying" not in proc.stderr


async def test_ingest_trades_keep_their_ids_through_the_bus(bus: NatsBus) -> None:
    src = SyntheticSource(["AAPL"], day=DAY, seed=9)
    await IngestService(src, bus).run()
    consumer = await bus.durable_consumer("check-trades", ["market.trades.AAPL"])
    got = await consumer.fetch(batch=50, timeout_s=2)
    assert [d.event.trade_id for d in got if isinstance(d.event, Trade)] == list(range(1, 51))
    await consumer.close()


def test_ingest_cli_embedded_nats_runs_a_whole_day_and_cleans_up(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *[ALGOSTACK, "ingest", "--source", "synthetic", "--symbols", "AAPL"],
            *["--day", "2024-11-29", "--embedded-nats"],
        ],
        env=cli_env(ALGOSTACK_HOME=str(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    summary = next(r for r in json_lines(proc.stderr) if r["msg"] == "ingest finished")
    assert summary["batches"] == 210  # early close at 13:00
    assert summary["received"] == summary["published"]
    stopped = [r for r in json_lines(proc.stderr) if r["msg"] == "embedded nats-server stopped"]
    assert len(stopped) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(int(str(stopped[0]["pid"])), 0)
    assert (tmp_path / "home" / "nats").is_dir()  # JetStream data kept under ALGOSTACK_HOME


class StubbornSource:
    """A source that ignores ``aclose()`` and blocks forever after two batches."""

    name = "stubborn"

    def __init__(self) -> None:
        from algostack.core.source import SourceStats

        self.stats = SourceStats()
        self.closed = False

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        src = SyntheticSource(["AAPL"], day=DAY, include_trades=False)
        batches = [b async for b in src.stream()][:2]
        for b in batches:
            yield b
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


async def test_ingest_stop_cancels_a_source_that_ignores_aclose_after_grace(
    bus: NatsBus,
) -> None:
    src = StubbornSource()
    service = IngestService(src, bus, stop_grace_s=0.2)
    run = asyncio.create_task(service.run())
    while service.stats.received < 2:  # noqa: ASYNC110 - polling the service's own counter
        await asyncio.sleep(0.01)
    service.stop()
    stats = await asyncio.wait_for(run, 5)
    assert src.closed
    assert stats.received == stats.published == 2

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
from algostack.adapters.offline.bars_file import ReplaySource, write_bars
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
    upto = await bus.last_stream_seq()
    got = [codec.decode(m.data) for m in await bus.read_history("market.trades.AAPL", upto)]
    trades = [e.trade_id for e in got if isinstance(e, Trade)]
    assert trades[:50] == list(range(1, 51)) and len(trades) == len(got) > 50


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


# -- receive time: Algostack-Recv-Ns on every message -------------------------------------------


class Counter:
    """An injected wall clock in ns: 1000, 2000, 3000, ... (one step per call)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls * 1000


class ListSource:
    """Yields fixed batches; with ``recv`` it sets ``last_recv_ns`` before each one."""

    name = "list"

    def __init__(self, batches: list[list[MarketEvent]], recv: list[int] | None) -> None:
        from algostack.core.source import SourceStats

        self.stats = SourceStats()
        self.batches, self.recv = batches, recv

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        for i, b in enumerate(self.batches):
            if self.recv is not None:
                self.last_recv_ns = self.recv[i]
            yield b

    async def aclose(self) -> None:
        pass


async def recv_by_ts(bus: NatsBus, subject: str) -> dict[int, int]:
    """Bar timestamp -> its ``Algostack-Recv-Ns`` header, for every bar on ``subject``."""
    from algostack.core.market_bus import recv_ns_of

    msgs = await bus.read_history(subject, await bus.last_stream_seq())
    return {codec.decode(m.data).ts: recv_ns_of(m.headers) for m in msgs}


async def test_ingest_stamps_each_batch_receive_time_on_its_messages(bus: NatsBus) -> None:
    bars = [e async for b in SyntheticSource(["AAPL"], day=DAY).stream() for e in b]
    bars = [e for e in bars if isinstance(e, Bar)][:6]
    src = ListSource([bars[:2], bars[2:5], bars[5:]], recv=[11, 22, 33])
    await IngestService(src, bus, wall_ns=lambda: 999).run()  # type: ignore[arg-type]
    got = await recv_by_ts(bus, "market.bars.AAPL")
    assert list(got.values()) == [11, 11, 22, 22, 22, 33]


async def test_ingest_source_without_receive_time_stamps_when_batch_taken(bus: NatsBus) -> None:
    bars = [e async for b in SyntheticSource(["MSFT"], day=DAY).stream() for e in b]
    bars = [e for e in bars if isinstance(e, Bar)][:3]
    clock = Counter()
    src = ListSource([bars[:1], bars[1:]], recv=None)
    await IngestService(src, bus, wall_ns=clock).run()  # type: ignore[arg-type]
    assert list((await recv_by_ts(bus, "market.bars.MSFT")).values()) == [1000, 2000, 2000]


async def test_ingest_synthetic_receive_time_is_when_each_minute_was_produced(
    bus: NatsBus,
) -> None:
    clock = Counter()
    src = SyntheticSource(["AAPL"], day=DAY, include_trades=False, wall_ns=clock)
    await IngestService(src, bus, wall_ns=lambda: 0).run()
    got = await recv_by_ts(bus, "market.bars.AAPL")
    assert len(got) == 390 and list(got.values()) == [1000 * (i + 1) for i in range(390)]


async def test_ingest_alpaca_receive_time_is_per_websocket_frame(bus: NatsBus) -> None:
    from algostack.adapters.alpaca.stream import AlpacaStreamSource
    from algostack.testing.fake_alpaca import FakeAlpacaServer

    bars = [e async for b in SyntheticSource(["AAPL"], day=DAY).stream() for e in b]
    bars = [e for e in bars if isinstance(e, Bar)][:5]
    clock = Counter()
    async with FakeAlpacaServer(key_id="k", secret_key="s") as fake:
        src = AlpacaStreamSource(
            ["AAPL"],
            key_id="k",
            secret_key="s",
            url=fake.ws_url,
            channels=("bars",),
            market_open=lambda _: True,
            wall_ns=clock,
        )
        service = IngestService(src, bus, wall_ns=lambda: 0)
        run = asyncio.create_task(service.run())
        await fake.wait_subscribed(1, timeout_s=10)
        calls_before = clock.calls
        await fake.publish(bars[:2], batch=2)  # one frame of two bars
        await fake.publish(bars[2:], batch=3)  # one frame of three
        while service.stats.received < 5:  # noqa: ASYNC110 - polling the service's own counter
            await asyncio.sleep(0.01)
        service.stop()
        await asyncio.wait_for(run, 10)
    got = list((await recv_by_ts(bus, "market.bars.AAPL")).values())
    first, second = (calls_before + 1) * 1000, (calls_before + 2) * 1000
    assert got == [first, first, second, second, second]


async def test_a_restarted_ingest_resumes_where_the_stream_stands(
    bus: NatsBus, embedded_nats: EmbeddedNats, tmp_path: Path
) -> None:
    from algostack.services.ingest import run_ingest

    day = SyntheticSource(["AAPL", "MSFT"], day=DAY, include_trades=False)
    bars = [e async for b in day.stream() for e in b if isinstance(e, Bar)]
    first, whole = tmp_path / "first.csv", tmp_path / "whole.csv"
    write_bars(first, bars[:400])  # 200 minutes of 2 symbols, then the ingest "died"
    write_bars(whole, bars)
    await IngestService(ReplaySource(first), bus).run()
    # Restarted, it re-sends only the stream's last minute (de-duplicated) and goes on from
    # there, instead of the whole session again (at its pace: minutes of a paced run).
    stats = await run_ingest(
        ReplaySource(whole),
        nats_url=embedded_nats.url, user=embedded_nats.user, password=embedded_nats.password,
        handle_signals=False, max_age_s=86_400.0,
    )  # fmt: skip
    assert stats.received == 2 * (390 - 199) and stats.duplicates == 2
    counts = await subject_counts(bus)
    assert counts["market.bars.AAPL"] == counts["market.bars.MSFT"] == 390

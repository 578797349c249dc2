"""Done-when: ``algostack trade`` killed with SIGKILL mid-session resumes with no duplicate
order and no missed bar (real nats-server, real subprocesses): with a SimBroker in the
trader, and with its orders going through a real ``algostack gateway`` (simulated account),
where the kill leaves intents and reports in flight."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from algostack.adapters.artifacts.export import write_fold
from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import EnsembleModel
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.broker import SimBroker
from algostack.adapters.nats import order_channel as orders
from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.adapters.storage import LocalDirStore
from algostack.core.events import Heartbeat, decode_event
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.market_bus import BusMessage
from algostack.core.naming import ModelSpec, parse_artifact_key, trader_subject
from algostack.core.risk import RiskLimits
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.state import decisions_file_name, read_journal_fills

DAY = "2024-03-05"
OPEN_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))
KEY = "models/sma/AAPL/model_1-outer_0_inner_0.json"
PREFIX = "models/sma/AAPL/model_1"
N_BARS = 90
KILL_AFTER = 37


def fold_bytes() -> bytes:
    return dump_native(
        kind="linear",
        features=["sma_ratio_2_4"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
    )


def session_bars() -> list[Bar]:
    out = []
    for i in range(N_BARS):
        p = 100.0 + 3.0 * math.sin(i / 2.5) + 0.01 * i  # turns every few bars: many orders
        out.append(
            Bar(
                symbol="AAPL",
                ts=OPEN_NS + i * NS_PER_MIN,
                open=round(p - 0.05, 4),
                high=round(p + 0.3, 4),
                low=round(p - 0.3, 4),
                close=round(p, 4),
                volume=1000.0 + i,
            )
        )
    return out


async def reference_fills(bars: list[Bar]) -> list[tuple[str, int, int, float]]:
    art = parse_artifact_key(KEY)
    assert art is not None
    spec = ModelSpec("sma", "AAPL", "model_1", 1, (art,))
    broker = SimBroker(1.0, model=spec.key)
    runner = ModelRunner(
        spec, EnsembleModel(spec, [parse_fold(KEY, fold_bytes())]), broker, limits=RiskLimits()
    )
    for b in bars:
        await runner.on_bar(b)
    return [(f.side.value, f.qty, f.ts, round(f.price, 6)) for f in broker.fills]


def _env(server: EmbeddedNats) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ALGOSTACK_NATS_USER=server.user,
        ALGOSTACK_NATS_PASSWORD=server.password,
        ALGOSTACK_ENV="local",
        ALGOSTACK_LOG_LEVEL="INFO",
    )
    return env


def start_trader(
    server: EmbeddedNats, bucket: Path, journal: Path, log: Path, broker: str = "sim"
) -> subprocess.Popen[bytes]:
    cmd = [
        str(Path(sys.executable).parent / "algostack"), "trade",
        "--model", PREFIX, "--bucket", str(bucket), "--journal-dir", str(journal),
        "--nats-url", server.url, "--broker", broker, "--day", DAY,
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(server), stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def start_gateway(server: EmbeddedNats, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """``algostack gateway`` with the simulated account (1 bp slippage, as the trader's sim)."""
    cmd = [
        str(Path(sys.executable).parent / "algostack"), "gateway", "--broker", "sim",
        "--state-dir", str(state), "--nats-url", server.url, "--slippage-bps", "1.0",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(server), stdout=subprocess.DEVNULL, stderr=log.open("ab"))


async def wait_for(
    cond: Callable[[], bool], limit_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"trader exited with {proc.returncode}")
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("broker", ["sim", "gateway"])
async def test_trader_sigkill_mid_session_resumes_without_duplicate_or_missed_bar(
    embedded_nats: EmbeddedNats, bus: NatsBus, tmp_path: Path, broker: str
) -> None:
    bucket, journal, log = tmp_path / "bucket", tmp_path / "journal", tmp_path / "trader.log"
    await bus.reset_stream(orders.STREAM, orders.SUBJECTS)
    gateway = None
    if broker == "gateway":
        gateway = start_gateway(embedded_nats, tmp_path / "gw", tmp_path / "gateway.log")
    write_fold(LocalDirStore(bucket), KEY, fold_bytes())
    bars = session_bars()
    key = ModelSpec("sma", "AAPL", "model_1", 1).key
    decided: list[int] = []
    beats: list[bytes] = []

    async def on_decision(msg: BusMessage) -> None:
        decided.append(1)

    async def on_beat(msg: BusMessage) -> None:
        beats.append(msg.data)

    await bus.subscribe(trader_subject("local", key, "decision"), on_decision)
    await bus.subscribe(trader_subject("local", key, "heartbeat"), on_beat)

    proc = start_trader(embedded_nats, bucket, journal, log, broker)
    try:
        await wait_for(lambda: bool(beats), proc=proc)  # consumer bound, trading
        for b in bars[:KILL_AFTER]:
            await bus.publish_events([b])
            await asyncio.sleep(0.01)
        await bus.flush_acks()
        await wait_for(lambda: len(decided) >= KILL_AFTER - 5, proc=proc)
        proc.send_signal(signal.SIGKILL)  # mid-stream: some bars decided, not committed
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        await bus.publish_events(bars[KILL_AFTER:])  # the session goes on while it is down
        await bus.flush_acks()

        first_life = [decode_event(b) for b in beats]
        beats.clear()
        proc = start_trader(embedded_nats, bucket, journal, log, broker)
        await wait_for(lambda: bool(beats), proc=proc)
        rows_path = journal / key / decisions_file_name(DAY)

        def all_decided() -> bool:
            return rows_path.read_text().count("\n") - 1 >= N_BARS

        await wait_for(all_decided, proc=proc)
        if broker == "gateway":  # the last fills come as reports: let them be booked
            await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()[-2000:]
        # the dashboard learns of the restart: the day's first life said 0, the second 1
        assert {e.restarts for e in first_life if isinstance(e, Heartbeat)} == {0}
        assert {decode_event(b).restarts for b in beats} == {1}
    finally:
        for p in (proc, gateway):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)

    text = (journal / key / decisions_file_name(DAY)).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["bar_ts"]) for r in rows] == [b.ts for b in bars]  # each bar decided once
    fills = read_journal_fills(journal / key, DAY)
    cids = [f.client_order_id for f in fills]
    assert len(cids) == len(set(cids)) and len(cids) >= 6  # every order once
    prefix = ("gw-", "x-") if broker == "gateway" else ("sim-",)
    assert all(f.broker_order_id.startswith(prefix) for f in fills)
    expected = await reference_fills(bars)
    got = [(f.side.value, f.qty, f.ts, round(f.price, 6)) for f in fills]
    assert got == expected[: len(got)] and len(expected) - len(got) <= 1  # last may be open
    text = log.read_text()
    assert "Traceback" not in text
    # the restart rebuilt the features from the stream before deciding again
    assert re.search(r"warm-up [1-9][0-9]* bars, position -?[0-9]+, resumed", text), text[-1500:]

"""The nats-server config ``algostack node ingest`` renders, run by a real nats-server: each
role can do its job and no more (a trader reads through its durable consumer, heartbeats, and
is refused publishing market data). Passwords with config-syntax characters survive."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import find_nats_server
from algostack.core import codec
from algostack.core.market import Bar
from algostack.services import node

CREDS = {
    "ingest": node.NatsCredential("ingest", "in#g w$x\"'`z\\"),
    "trader": node.NatsCredential("trader", "tr {a}: d"),
    "dashboard": node.NatsCredential("dashboard", "dash"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("node-nats")
    layout = node.NodeLayout(app_dir=root)
    port, http = _free_port(), _free_port()
    conf = node.render_nats_conf(layout, "qa")
    conf = conf.replace(f"listen: 0.0.0.0:{node.NATS_PORT}", f"listen: 127.0.0.1:{port}")
    conf = conf.replace(f"http: {node.NATS_MONITOR}", f"http: 127.0.0.1:{http}")
    path = root / "nats-server.conf"
    path.write_text(conf)
    env = {**os.environ, **node.nats_env_values(CREDS)}
    proc = subprocess.Popen(
        [find_nats_server(), "-c", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "") from None
                import time

                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def _bus(url: str, role: str) -> NatsBus:
    c = CREDS[role]
    return await NatsBus.connect(url, user=c.user, password=c.password, connect_timeout_s=5)


@pytest.fixture
async def ingest(server: str) -> AsyncIterator[NatsBus]:
    bus = await _bus(server, "ingest")
    await bus.ensure_market_stream()
    try:
        yield bus
    finally:
        await bus.close()


def _bar(ts: int) -> Bar:
    return Bar(
        symbol="SPY", ts=ts * 60_000_000_000, open=1.0, high=2.0, low=0.5, close=1.5, volume=100.0
    )


async def test_trader_reads_through_its_durable_consumer_and_heartbeats(
    server: str, ingest: NatsBus
) -> None:
    await ingest.publish_events([_bar(1), _bar(2)])
    await ingest.flush_acks()
    trader = await _bus(server, "trader")
    try:
        start, existed = await trader.resume_point("xgb-SPY-model_7")
        assert start == 0 and not existed
        last = await trader.last_stream_seq()
        assert last >= 2
        history = await trader.read_history(codec.subject_for("bars", "SPY"), last)
        assert len(history) >= 2
        feed = await trader.feed_consumer(
            "xgb-SPY-model_7", [codec.subject_for("bars", "SPY")], start_seq=1
        )
        got = await feed.fetch(10)
        assert len(got) >= 2
        await got[-1].ack()
        await trader.publish("algostack.qa.trader.xgb-SPY-model_7.heartbeat", b"{}")
        await trader.flush()
        await feed.close()
    finally:
        await trader.close()


@pytest.mark.parametrize(
    ("role", "subject"),
    [
        ("trader", "market.bars.X"),
        ("trader", "algostack.qa.control.kill"),
        ("trader", "$JS.API.STREAM.DELETE.MARKET"),
        ("dashboard", "market.bars.X"),
        ("ingest", "algostack.qa.control.kill"),
    ],
)
async def test_roles_are_refused_what_is_not_theirs(server: str, role: str, subject: str) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    c = CREDS[role]
    nc = await nats.connect(server, user=c.user, password=c.password, error_cb=on_error)
    try:
        await nc.publish(subject, b"x")
        await nc.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.02)
    finally:
        await nc.close()
    assert any("permissions violation" in str(e).lower() for e in errors), errors


async def test_dashboard_may_publish_the_kill_switch_and_read_trader_events(
    server: str, ingest: NatsBus
) -> None:
    dash = await _bus(server, "dashboard")
    trader = await _bus(server, "trader")
    got: list[str] = []
    done = asyncio.Event()

    async def on_msg(msg: object) -> None:
        got.append(getattr(msg, "subject", ""))
        done.set()

    try:
        await dash.subscribe("algostack.qa.trader.>", on_msg)  # type: ignore[arg-type]
        await trader.subscribe("algostack.qa.control.kill", on_msg)  # type: ignore[arg-type]
        await dash.flush()
        await trader.flush()
        await dash.publish("algostack.qa.control.kill", b"stop")
        await asyncio.wait_for(done.wait(), 5)
        done.clear()
        await trader.publish("algostack.qa.trader.m.heartbeat", b"{}")
        await asyncio.wait_for(done.wait(), 5)
        assert got == ["algostack.qa.control.kill", "algostack.qa.trader.m.heartbeat"]
    finally:
        await dash.close()
        await trader.close()


def test_config_file_itself_holds_no_secret(tmp_path: Path) -> None:
    conf = node.render_nats_conf(node.NodeLayout(app_dir=tmp_path), "qa")
    assert all(c.password not in conf for c in CREDS.values())

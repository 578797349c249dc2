"""The nats-server config ``algostack node ingest`` renders, run by a real nats-server: each
role can do its job and no more (a trader reads through its durable consumer, heartbeats,
sends intents and reads its reports, and is refused publishing market data or reports and
binding the gateway's consumer; the gateway, run for real, trades a model's intent with no
permission violation in the server's log). Passwords with config-syntax characters survive."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from algostack.adapters.nats import order_channel as orders
from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import find_nats_server
from algostack.core import codec
from algostack.core.backoff import Backoff
from algostack.core.events import Heartbeat, encode_event
from algostack.core.market import Bar
from algostack.core.market_bus import BusMessage
from algostack.core.naming import kill_subject, trader_subject
from algostack.core.orders import Fill, OrderIntent, Side
from algostack.services import node
from algostack.services.gateway.service import GatewayService
from algostack.services.gateway.venue import BarHistory, SimVenue

CREDS = {
    "ingest": node.NatsCredential("ingest", "in#g w$x\"'`z\\"),
    "trader": node.NatsCredential("trader", "tr {a}: d"),
    "dashboard": node.NatsCredential("dashboard", "dash"),
    "gateway": node.NatsCredential("gateway", "gw #{x}"),
}
ENV = "qa"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node-nats-log") / "nats-server.log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_log: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("node-nats")
    layout = node.NodeLayout(app_dir=root)
    port, http = _free_port(), _free_port()
    conf = node.render_nats_conf(layout, "qa")
    conf = conf.replace(f"listen: 0.0.0.0:{node.NATS_PORT}", f"listen: 127.0.0.1:{port}")
    conf = conf.replace(f"http: {node.NATS_MONITOR}", f"http: 127.0.0.1:{http}")
    path = root / "nats-server.conf"
    path.write_text(conf)
    env = {**os.environ, **node.nats_env_values(CREDS)}
    log = server_log.open("wb")
    proc = subprocess.Popen(
        [find_nats_server(), "-c", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(server_log.read_text()) from None
                import time

                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


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


OPEN_NS = 1_710_509_400_000_000_000  # 2024-03-15 09:30 New York: the simulator fills only
# on bars of the regular session


def _bar(minute: int, symbol: str = "SPY") -> Bar:
    """A bar ``minute`` minutes into the 2024-03-15 session."""
    ts = OPEN_NS + minute * 60_000_000_000
    return Bar(symbol=symbol, ts=ts, open=1.0, high=2.0, low=0.5, close=1.5, volume=100.0)


async def test_a_restarted_ingest_may_read_where_market_stands(
    server: str, ingest: NatsBus
) -> None:
    await ingest.publish_events([_bar(7), _bar(8)])
    await ingest.flush_acks()
    again = await _bus(server, "ingest")  # the ingest restarted (day two on AWS)
    try:
        assert await again.last_market_ts() >= _bar(8).ts
    finally:
        await again.close()


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
        ("trader", "orders.report.xgb-SPY-model_7"),
        ("trader", "$JS.API.STREAM.DELETE.ORDERS"),
        ("trader", "$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.gateway"),
        ("trader", "$JS.API.CONSUMER.CREATE.ORDERS.gateway.orders.intent.>"),
        ("trader", "$JS.API.CONSUMER.MSG.NEXT.ORDERS.gateway"),
        ("trader", "$JS.API.CONSUMER.DELETE.ORDERS.gateway"),
        ("trader", "$JS.API.CONSUMER.CREATE.ORDERS.spy.orders.intent.>"),
        ("trader", "$JS.ACK.ORDERS.gateway.1.5.5.0.0"),
        ("trader", "algostack.qa.gateway.status"),
        ("gateway", "market.bars.X"),
        ("gateway", "orders.intent.xgb-SPY-model_7"),
        ("gateway", "algostack.qa.trader.xgb-SPY-model_7.heartbeat"),
        ("gateway", "$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.report-xgb-SPY-model_7"),
        ("gateway", "$JS.API.CONSUMER.DURABLE.CREATE.MARKET.gateway"),
        ("gateway", "$JS.API.STREAM.DELETE.ORDERS"),
        ("dashboard", "market.bars.X"),
        ("dashboard", "orders.intent.xgb-SPY-model_7"),
        ("dashboard", "orders.report.xgb-SPY-model_7"),
        ("ingest", "algostack.qa.control.kill"),
        ("ingest", "orders.intent.xgb-SPY-model_7"),
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


async def test_a_trader_cannot_bind_the_gateways_consumer(server: str) -> None:
    trader = await _bus(server, "trader")
    try:
        await orders.ensure_orders_stream(trader)
        with pytest.raises((TimeoutError, nats.errors.Error)):
            await asyncio.wait_for(
                orders.push_consumer(trader, orders.GATEWAY_CONSUMER, "orders.intent.>", _ignore),
                3,
            )
    finally:
        await trader.close()


async def _ignore(msg: object) -> None:
    """A consumer callback that drops what it gets."""


def _log_end(log: Path) -> int:
    return log.stat().st_size


def _violations(log: Path, since: int) -> list[str]:
    lines = log.read_bytes()[since:].decode(errors="replace").splitlines()
    return [line for line in lines if "violation" in line.lower()]


async def test_the_gateway_trades_a_models_intent_with_no_permission_violation(
    server: str, server_log: Path, ingest: NatsBus, tmp_path: Path
) -> None:
    """The real gateway (simulated venue) and a real trader's ``GatewayBroker``, each with
    its own NATS user: heartbeat in, intent in, bars followed, fill report out, status to
    the dashboard, the kill switch out; the server logged no violation meanwhile."""
    since = _log_end(server_log)
    gw_bus = await _bus(server, "gateway")
    trader = await _bus(server, "trader")
    dash = await _bus(server, "dashboard")
    model, symbol = "xgb-QQQ-model_3", "QQQ"
    statuses: list[str] = []
    kills: list[bytes] = []

    async def on_status(msg: BusMessage) -> None:
        statuses.append(msg.subject)

    async def on_kill(msg: BusMessage) -> None:
        kills.append(msg.data)

    history = BarHistory()
    gateway = GatewayService(
        gw_bus,
        SimVenue(history, slippage_bps=0.0),
        history,
        state_dir=tmp_path / "gateway",
        env=ENV,
        batch_window_s=0.05,
        reconcile_every_s=0.2,
        status_every_s=0.1,
        fsync=False,
    )
    broker = orders.GatewayBroker(trader, model, backoff=Backoff(0.01, 2.0, 0.1))
    try:
        await dash.subscribe(f"algostack.{ENV}.gateway.>", on_status)
        await trader.subscribe(kill_subject(ENV), on_kill)
        await dash.flush()
        await trader.flush()
        await ingest.publish_events([_bar(100, symbol)])
        await ingest.flush_acks()
        await gateway.start()
        await broker.restore([], {}, 0)
        hb = Heartbeat(
            model=model, ts=0, symbol=symbol, state="ACTIVE", position=0, last_bar_ts=0,
            bars=0, decisions=0, orders=0, latency_p50_us=0.0, latency_p99_us=0.0,
            warmed_up=True,
        )  # fmt: skip
        await trader.publish(trader_subject(ENV, model, "heartbeat"), encode_event(hb))
        await _until(lambda: gateway.models.get(model) == symbol, "the gateway hears heartbeats")
        bar_ts = _bar(100).ts
        await broker.submit(
            OrderIntent(model=model, symbol=symbol, side=Side.BUY, qty=7, bar_ts=bar_ts, price=1.5)
        )
        await _until(lambda: gateway.counters["intents"] == 1, "the intent reaches the gateway")
        await ingest.publish_events([_bar(101, symbol)])
        await ingest.flush_acks()
        fills: list[Fill] = []

        async def filled() -> bool:
            fills.extend(await broker.on_bar(None))
            return sum(f.signed_qty for f in fills) == 7

        await _until_async(filled, "the fill report reaches the trader")
        await broker.committed(broker.checkpoint())
        await _until(lambda: bool(statuses), "the dashboard hears the gateway's status")
        await gw_bus.publish(kill_subject(ENV), b"desk loss limit")
        await _until(lambda: kills == [b"desk loss limit"], "the trader hears the gateway's kill")
        assert await gateway.venue.positions() == {symbol: 7}
    finally:
        await broker.close()
        await gateway.shutdown()
        for bus in (gw_bus, trader, dash):
            await bus.close()
    assert _violations(server_log, since) == []


async def _until(cond: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


async def _until_async(cond: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


def test_config_file_itself_holds_no_secret(tmp_path: Path) -> None:
    conf = node.render_nats_conf(node.NodeLayout(app_dir=tmp_path), "qa")
    assert all(c.password not in conf for c in CREDS.values())

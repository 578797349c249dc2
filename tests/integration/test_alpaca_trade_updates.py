"""TradeUpdatesStream against the fake Alpaca trading server: socket and REST both real.

Orders go in over REST, the fake executes them on command, and the client's updates are
awaited through a condition, never a sleep. Reconnect backoffs are a few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
import requests
from websockets.asyncio.client import connect

from algostack.adapters.alpaca.trade_updates import (
    TradeUpdate,
    TradeUpdatesStream,
    decode_frame,
    parse_update,
)
from algostack.adapters.alpaca.trading import AlpacaBroker, BrokerOrder
from algostack.core.backoff import Backoff
from algostack.core.market import datetime_to_ts
from algostack.errors import AuthError, DataError
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading

KEY, SECRET = "PKTEST0000000000000000", "fake-secret"
T0 = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
WAIT_S = 5.0


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(KEY, SECRET, fill_immediately=False, now=T0) as srv:
        srv.set_price("AAPL", 100.0)
        srv.set_price("MSFT", 400.0)
        yield srv


class Client:
    """A running ``TradeUpdatesStream`` and what it delivered."""

    def __init__(self, fake: FakeAlpacaTrading, secret: str = SECRET, **kw: Any) -> None:
        self.updates: list[TradeUpdate] = []
        self.connects = 0
        self.disconnects = 0
        self.sleeps: list[float] = []
        self.changed = asyncio.Condition()
        self.stream = TradeUpdatesStream(
            KEY,
            secret,
            url=fake.stream_url,
            on_update=self._on_update,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            backoff=Backoff(base=0.005, cap=0.02, rng=random.Random(7)),
            sleep=self._sleep,
            **kw,
        )
        self.task = asyncio.create_task(self.stream.run())
        self.task.add_done_callback(lambda _t: asyncio.ensure_future(self._notify()))

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _on_update(self, u: TradeUpdate) -> None:
        self.updates.append(u)
        await self._notify()

    async def _on_connected(self) -> None:
        self.connects += 1
        await self._notify()

    async def _on_disconnected(self) -> None:
        self.disconnects += 1

    async def _sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(delay)

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S), self.changed:
            await self.changed.wait_for(lambda: predicate() or self.task.done())
        if self.task.done():
            await self.task  # raises what ended it
        assert predicate()

    def events(self) -> list[str]:
        return [u.event for u in self.updates]

    async def stop(self) -> None:
        self.stream.stop()
        async with asyncio.timeout(WAIT_S):
            await self.task


async def submit(fake: FakeAlpacaTrading, side: str, qty: int, symbol: str = "AAPL") -> str:
    def post() -> str:
        r = requests.post(
            fake.url + "/v2/orders",
            json={"symbol": symbol, "qty": str(qty), "side": side, "type": "market"},
            headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
            timeout=WAIT_S,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    return await asyncio.to_thread(post)


async def started(fake: FakeAlpacaTrading, **kw: Any) -> Client:
    c = Client(fake, **kw)
    await fake.wait_listening(1, WAIT_S)
    await c.until(lambda: c.connects == 1)
    return c


# -- protocol ---------------------------------------------------------------------------------


async def test_trade_updates_wrong_secret_raises_auth_error_and_never_retries(
    fake: FakeAlpacaTrading,
) -> None:
    c = Client(fake, secret="wrong")
    with pytest.raises(AuthError, match="refused the keys"):
        async with asyncio.timeout(WAIT_S):
            await c.task
    assert c.sleeps == [] and c.connects == 0 and fake.stream_clients == 0
    assert not c.stream.connected


@pytest.mark.parametrize("frames", ["binary", "text"])
async def test_fake_stream_speaks_alpaca_handshake_and_frame_type(
    frames: Literal["binary", "text"],
) -> None:
    with FakeAlpacaTrading(KEY, SECRET, fill_immediately=False, stream_frames=frames) as srv:
        srv.set_price("AAPL", 100.0)
        async with asyncio.timeout(WAIT_S), connect(srv.stream_url) as ws:
            # alpaca-py's older auth form is accepted too.
            auth = {"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}}
            await ws.send(json.dumps(auth))
            reply = await ws.recv()
            assert isinstance(reply, bytes if frames == "binary" else str)
            assert json.loads(reply) == {
                "stream": "authorization",
                "data": {"action": "authenticate", "status": "authorized"},
            }
            await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            assert json.loads(await ws.recv()) == {
                "stream": "listening",
                "data": {"streams": ["trade_updates"]},
            }
            assert srv.stream_clients == 1
            oid = await submit(srv, "buy", 3)
            msg = json.loads(await ws.recv())
            assert msg["stream"] == "trade_updates" and msg["data"]["event"] == "new"
            assert msg["data"]["order"]["id"] == oid and msg["data"]["order"]["status"] == "new"


async def test_fake_stream_unauthorized_reply_then_close() -> None:
    with FakeAlpacaTrading(KEY, SECRET) as srv:
        async with asyncio.timeout(WAIT_S), connect(srv.stream_url) as ws:
            await ws.send(json.dumps({"action": "auth", "key": KEY, "secret": "nope"}))
            assert json.loads(await ws.recv())["data"]["status"] == "unauthorized"
            await ws.wait_closed()
        assert srv.stream_clients == 0


# -- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize("frames", ["binary", "text"])
async def test_trade_updates_new_partial_fill_fill_carry_executions_and_totals(
    frames: Literal["binary", "text"],
) -> None:
    with FakeAlpacaTrading(KEY, SECRET, fill_immediately=False, now=T0, stream_frames=frames) as f:
        f.set_price("AAPL", 100.0)
        c = await started(f)
        assert c.stream.connected
        oid = await submit(f, "buy", 10)
        f.fill_open(qty=4, price=100.0)
        f.fill_open(price=102.0)
        await c.until(lambda: len(c.updates) == 3)
        new, part, fill = c.updates
        assert c.events() == ["new", "partial_fill", "fill"]
        assert {u.order.id for u in c.updates} == {oid}
        assert [(u.qty, u.order.filled_qty, u.position_qty) for u in c.updates] == [
            (0, 0, None),
            (4, 4, 4),
            (6, 10, 10),
        ]
        assert [u.order.status for u in c.updates] == ["new", "partially_filled", "filled"]
        assert (part.price, fill.price, fill.order.filled_avg_price) == (100.0, 102.0, 101.2)
        assert new.execution_id == "" and part.execution_id != fill.execution_id
        acts = f.activities()
        assert [a["id"].split("::")[1] for a in acts] == [part.execution_id, fill.execution_id]
        assert (fill.order.symbol, fill.order.side, fill.order.qty, fill.ts) == (
            "AAPL",
            "buy",
            10,
            datetime_to_ts(T0),
        )
        await c.stop()
        assert c.connects == 1 and not c.stream.connected


async def test_trade_updates_cancel_and_expire_events(fake: FakeAlpacaTrading) -> None:
    c = await started(fake)
    first = await submit(fake, "buy", 1)
    second = await submit(fake, "buy", 2, "MSFT")
    r = await asyncio.to_thread(
        requests.delete,
        f"{fake.url}/v2/orders/{first}",
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=WAIT_S,
    )
    assert r.status_code == 204
    assert fake.expire_open() == 1
    await c.until(lambda: len(c.updates) == 4)
    assert [(u.event, u.order.id, u.order.status) for u in c.updates[2:]] == [
        ("canceled", first, "canceled"),
        ("expired", second, "expired"),
    ]
    await c.stop()


# -- faults -----------------------------------------------------------------------------------


async def test_trade_updates_duplicated_fill_delivered_once(fake: FakeAlpacaTrading) -> None:
    c = await started(fake)
    await submit(fake, "buy", 5)
    fake.stream_duplicate(1)
    fake.fill_open()
    await submit(fake, "buy", 1, "MSFT")  # its `new` follows the duplicate on the socket
    await c.until(lambda: c.events()[-1:] == ["new"] and len(c.updates) >= 3)
    assert c.events() == ["new", "fill", "new"]
    assert c.stream.duplicates == 1
    await c.stop()


async def test_trade_updates_dropped_fill_absent_but_in_fill_activities(
    fake: FakeAlpacaTrading,
) -> None:
    c = await started(fake)
    oid = await submit(fake, "buy", 5)
    fake.stream_drop(1)
    fake.fill_open()
    later = await submit(fake, "buy", 1, "MSFT")
    await c.until(lambda: any(u.order.id == later for u in c.updates))
    assert c.events() == ["new", "new"]  # the fill never came
    broker = AlpacaBroker(KEY, SECRET, url=fake.url, retry_wait_s=0.0)
    fills = await broker.fill_activities()
    await broker.close()
    assert [(a.order_id, a.qty, a.cum_qty, a.type) for a in fills] == [(oid, 5, 5, "fill")]
    await c.stop()


async def test_trade_updates_reordered_events_both_delivered(fake: FakeAlpacaTrading) -> None:
    c = await started(fake)
    fake.stream_reorder()
    oid = await submit(fake, "buy", 5)  # `new` is held back ...
    fake.fill_open()  # ... and sent after the fill
    await c.until(lambda: len(c.updates) == 2)
    assert [(u.event, u.order.id) for u in c.updates] == [("fill", oid), ("new", oid)]
    assert c.updates[0].order.filled_qty == 5
    await c.stop()


async def test_trade_updates_server_disconnect_reconnects_and_calls_on_connected(
    fake: FakeAlpacaTrading,
) -> None:
    c = await started(fake)
    fake.refuse_stream(0.2)
    assert fake.disconnect_stream() == 1
    await fake.wait_listening(2, WAIT_S)
    await c.until(lambda: c.connects == 2)
    assert c.disconnects == 1 and c.stream.connected
    assert fake.stream_refused >= 1 and c.stream.reconnects == fake.stream_refused + 1
    assert len(c.sleeps) == c.stream.reconnects and max(c.sleeps) <= 0.02
    oid = await submit(fake, "buy", 2)
    await c.until(lambda: len(c.updates) == 1)
    assert c.updates[0].order.id == oid
    await c.stop()


async def test_trade_updates_unknown_event_passed_on_and_logged_once(
    fake: FakeAlpacaTrading, caplog: pytest.LogCaptureFixture
) -> None:
    c = await started(fake)
    oid = await submit(fake, "buy", 1)
    order = next(o for o in fake.orders() if o["id"] == oid)
    caplog.set_level(logging.WARNING, logger="algostack.adapters.alpaca.trade_updates")
    fake.emit_raw({"event": "held_for_review", "timestamp": "2024-01-03T15:00:00Z", "order": order})
    fake.emit_raw({"event": "held_for_review", "order": order})
    fake.fill_open()
    await c.until(lambda: len(c.updates) == 4)
    assert c.events() == ["new", "held_for_review", "held_for_review", "fill"]
    assert c.updates[2].ts == 0 and c.updates[1].ts == datetime_to_ts(T0)
    assert [r.message for r in caplog.records].count(
        "trade_updates: unknown event 'held_for_review' passed on as is"
    ) == 1
    await c.stop()


async def test_trade_updates_execution_id_memory_is_bounded(fake: FakeAlpacaTrading) -> None:
    c = await started(fake, remember=2)
    oid = await submit(fake, "buy", 4)
    order = next(o for o in fake.orders() if o["id"] == oid)
    for xid in ("a", "b", "a", "c", "a"):  # "a" is forgotten once "c" is remembered
        fake.emit_raw({"event": "partial_fill", "order": order, "qty": "1", "execution_id": xid})
    fake.fill_open()
    await c.until(lambda: c.events()[-1:] == ["fill"])
    assert [u.execution_id for u in c.updates[1:-1]] == ["a", "b", "c", "a"]
    assert c.stream.duplicates == 1
    await c.stop()


async def test_trade_updates_malformed_frames_counted_not_fatal(fake: FakeAlpacaTrading) -> None:
    c = await started(fake)
    fake.emit_raw({"event": "fill"})  # no order
    oid = await submit(fake, "buy", 1)
    await c.until(lambda: len(c.updates) == 1)
    assert c.updates[0].order.id == oid and c.stream.malformed == 1
    await c.stop()


# -- wire parsing (no socket) -----------------------------------------------------------------

ALPACA_FILL = (
    b'{"stream":"trade_updates","data":{"event":"fill","execution_id":"e1",'
    b'"timestamp":"2024-01-03T15:00:00.123456789Z","price":"179.08","qty":"100",'
    b'"position_qty":"-100","order":{"id":"o1","client_order_id":"c1","symbol":"AAPL",'
    b'"side":"sell","qty":"100","filled_qty":"100","filled_avg_price":"179.08",'
    b'"status":"filled","order_type":"market"}}}'
)


def test_parse_update_alpaca_fill_nanosecond_timestamp() -> None:
    stream, data = decode_frame(ALPACA_FILL)
    assert stream == "trade_updates"
    assert parse_update(data) == TradeUpdate(
        event="fill",
        order=BrokerOrder(
            id="o1",
            client_order_id="c1",
            symbol="AAPL",
            side="sell",
            status="filled",
            qty=100,
            filled_qty=100,
            filled_avg_price=179.08,
            ts=0,
        ),
        execution_id="e1",
        price=179.08,
        qty=100,
        ts=1_704_294_000_123_456_789,
        position_qty=-100,
    )
    assert decode_frame(ALPACA_FILL.decode())[0] == "trade_updates"


@pytest.mark.parametrize(
    "frame", [b"not json", b'{"data":{}}', b'{"stream":"trade_updates","data":{"event":"new"}}']
)
def test_parse_update_malformed_raises_data_error(frame: bytes) -> None:
    with pytest.raises(DataError):
        parse_update(decode_frame(frame)[1])

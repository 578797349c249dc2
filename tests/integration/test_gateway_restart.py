"""``algostack gateway`` as a real process, SIGKILLed with orders working and intents in
flight, then restarted: nothing is lost, nothing is doubled, the books sum to the account.
A trader that dies with intents in flight sends them again on restart; the gateway drops
the copies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gateway_desk import Desk, intent, wait_for

from algostack.adapters.nats import order_channel as orders
from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core.backoff import Backoff
from algostack.core.events import decode_desk_status
from algostack.core.market_bus import BusMessage
from algostack.services.gateway.service import status_subject
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    f = FakeAlpacaTrading(fill_immediately=False)
    f.set_price("AAPL", 100.0)
    f.set_price("MSFT", 200.0)
    with f:
        yield f


class GatewayProcess:
    """``algostack gateway --broker alpaca`` against the fake, in its own process group."""

    def __init__(self, server: EmbeddedNats, fake: FakeAlpacaTrading, state: Path) -> None:
        self.argv = [
            sys.executable, "-c", "from algostack.cli import main; main()", "gateway",
            "--broker", "alpaca", "--state-dir", str(state), "--nats-url", server.url,
            "--env", "local", "--batch-window-ms", "50", "--reconcile-every-s", "0.3",
            "--status-every-s", "0.2",
        ]  # fmt: skip
        self.env = dict(
            os.environ,
            APCA_API_KEY_ID=fake.key_id,
            APCA_API_SECRET_KEY=fake.secret_key,
            ALGOSTACK_ALPACA_TRADING_URL=fake.url,
            ALGOSTACK_ALPACA_TRADING_STREAM_URL=fake.stream_url,
            ALGOSTACK_NATS_USER=server.user,
            ALGOSTACK_NATS_PASSWORD=server.password,
        )
        self.log = state.parent / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


async def gateway_knows(bus: NatsBus, n: int) -> None:
    """Wait for a gateway status naming ``n`` models (the gateway has their heartbeats)."""
    known: list[int] = []

    async def on_status(msg: BusMessage) -> None:
        known.append(len(decode_desk_status(msg.data).models))

    sub = await bus.subscribe(status_subject("local"), on_status)
    try:
        await wait_for(lambda: bool(known) and known[-1] >= n, 30, "the gateway knows the models")
    finally:
        await sub.unsubscribe()


@pytest.fixture
async def channel_bus(bus: NatsBus) -> AsyncIterator[NatsBus]:
    await bus.reset_stream(orders.STREAM, orders.SUBJECTS)
    yield bus


async def test_gateway_sigkill_and_restart_loses_and_doubles_nothing(
    channel_bus: NatsBus, embedded_nats: EmbeddedNats, fake: FakeAlpacaTrading, tmp_path: Path
) -> None:
    gw = GatewayProcess(embedded_nats, fake, tmp_path / "state")
    gw.start()
    desk = Desk(channel_bus, gateway=None)  # type: ignore[arg-type]
    try:
        for key, sym in (("a-AAPL", "AAPL"), ("b-AAPL", "AAPL"), ("c-MSFT", "MSFT")):
            await desk.connect(key, sym)
        await wait_for(lambda: fake.stream_clients == 1, 30, "the gateway listens")
        await gateway_knows(channel_bus, 3)
        # minute 1: AAPL nets to one buy of 70, MSFT one buy of 10
        await desk.send(
            intent("a-AAPL", "AAPL", "buy", 100, 1),
            intent("b-AAPL", "AAPL", "sell", 30, 1),
            intent("c-MSFT", "MSFT", "buy", 10, 1),
        )
        await wait_for(lambda: len(fake.orders()) == 2, 30, "both venue orders placed")
        # minute 2 in flight while the gateway dies with both orders working
        await desk.send(intent("a-AAPL", "AAPL", "sell", 100, 2, reason="flatten"))
        await desk.send(intent("b-AAPL", "AAPL", "buy", 30, 2, reason="flatten"))
        gw.kill()
        fake.fill_open(price=101.0)  # executions nobody hears
        await desk.send(intent("c-MSFT", "MSFT", "sell", 10, 2, reason="flatten"))
        gw.start()
        await desk.until(
            lambda: desk.filled("a-AAPL") == 100 and desk.filled("b-AAPL") == -30
            and desk.filled("c-MSFT") == 10,
            30, "minute 1 booked after the restart",
        )  # fmt: skip
        await wait_for(lambda: len(fake.orders()) == 4, 30, "minute 2 placed once each")
        fake.fill_open(price=102.0)
        await desk.until(
            lambda: all(desk.filled(k) == 0 for k in desk.brokers)
            and all(len(f) >= 2 for f in desk.fills.values()),
            30, "minute 2 booked",
        )  # fmt: skip
        booked = {k: [(f.side, f.qty, f.price) for f in v] for k, v in desk.fills.items()}
        await asyncio.sleep(0.8)  # a reconciliation or two later: nothing more comes
        await desk.pump()
        assert {k: [(f.side, f.qty, f.price) for f in v] for k, v in desk.fills.items()} == booked
        bought = {k: sum(f.qty for f in v if f.side == "buy") for k, v in desk.fills.items()}
        assert bought == {"a-AAPL": 100, "b-AAPL": 30, "c-MSFT": 10}
    except AssertionError:
        print(gw.log.read_text()[-6000:], desk.fills, fake.orders())
        raise
    finally:
        await desk.close()
        code = gw.stop()
    cids = [o["client_order_id"] for o in fake.orders()]
    assert len(cids) == len(set(cids)) == 4
    assert fake.state.positions == {}
    assert code == 0, gw.log.read_text()[-2000:]


async def test_trader_restart_resends_pending_intents_and_the_gateway_drops_copies(
    channel_bus: NatsBus, embedded_nats: EmbeddedNats, fake: FakeAlpacaTrading, tmp_path: Path
) -> None:
    gw = GatewayProcess(embedded_nats, fake, tmp_path / "state")
    gw.start()
    desk = Desk(channel_bus, gateway=None)  # type: ignore[arg-type]
    try:
        await desk.connect("a-AAPL", "AAPL")
        await wait_for(lambda: fake.stream_clients == 1, 30, "the gateway listens")
        first = intent("a-AAPL", "AAPL", "buy", 10, 1)
        await desk.send(first)
        await wait_for(lambda: len(fake.orders()) == 1, 30)
        await desk.brokers["a-AAPL"].close()  # the trader dies; it restarts with the intent
        again = orders.GatewayBroker(channel_bus, "a-AAPL", backoff=Backoff(0.01, 2.0, 0.1))
        await again.restore([("", first)], {"AAPL": 0}, 0)
        desk.brokers["a-AAPL"] = again
        await wait_for(lambda: again.sent == 1, 10, "re-sent")
        fake.fill_open(price=100.0)
        await desk.until(lambda: desk.filled("a-AAPL") == 10, 30)
        await asyncio.sleep(0.5)
        await desk.pump()
        assert desk.filled("a-AAPL") == 10 and len(fake.orders()) == 1
    finally:
        await desk.close()
        gw.stop()

"""AlpacaBroker (real alpaca-py TradingClient) against the fake Alpaca trading server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from algostack.adapters.alpaca.trading import AlpacaBroker, check_keys
from algostack.core.orders import OrderIntent, OrderStatus, Side, client_order_id
from algostack.errors import AuthError, ConfigError, RetryableError
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading

PAPER_KEY = "PKTEST0000000000000000"
LIVE_KEY = "AKTEST0000000000000000"
SECRET = "fake-secret"
MODEL = "onnx-AAPL-model_7"
T0 = 1_704_294_000_000_000_000  # 2024-01-03 15:00 UTC


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(PAPER_KEY, SECRET) as srv:
        srv.set_price("AAPL", 185.25)
        yield srv


async def _nosleep(_: float) -> None:
    return None


def _broker(fake: FakeAlpacaTrading, **kw: object) -> AlpacaBroker:
    args: dict[str, object] = {
        "url": fake.url,
        "retry_wait_s": 0.0,
        "sleep": _nosleep,
    }
    args.update(kw)
    return AlpacaBroker(PAPER_KEY, SECRET, **args)  # type: ignore[arg-type]


def _intent(qty: int = 10, side: Side = Side.BUY, bar_ts: int = T0) -> OrderIntent:
    return OrderIntent(model=MODEL, symbol="AAPL", side=side, qty=qty, bar_ts=bar_ts)


async def test_alpaca_submit_fills_and_positions_match(fake: FakeAlpacaTrading) -> None:
    broker = _broker(fake)
    ack = await broker.submit(_intent(10))
    assert ack.accepted and not ack.duplicate
    assert ack.client_order_id == client_order_id(MODEL, "AAPL", T0, Side.BUY)
    held = await broker.order_by_client_id(ack.client_order_id)
    assert held is not None and str(held.id) == ack.broker_order_id
    assert (float(held.filled_qty or 0), float(held.filled_avg_price or 0)) == (10, 185.25)
    assert await broker.positions() == {"AAPL": 10}
    assert await broker.order_by_client_id("never-placed") is None
    by_id = await broker.order_by_id(ack.broker_order_id)  # Alpaca's own id finds it too
    assert by_id is not None and by_id.client_order_id == ack.client_order_id
    assert await broker.order_by_id("00000000-0000-0000-0000-000000000000") is None
    await broker.close()


async def test_alpaca_resubmit_same_intent_places_one_order(fake: FakeAlpacaTrading) -> None:
    broker = _broker(fake)
    await broker.submit(_intent(5))
    again = await broker.submit(_intent(5))
    assert again.duplicate
    # A fresh broker (a restarted trader) resubmitting: Alpaca answers 422, we look it up.
    other = _broker(fake)
    third = await other.submit(_intent(5))
    assert third.duplicate and third.broker_order_id == again.broker_order_id
    assert len(fake.orders()) == 1
    assert await other.positions() == {"AAPL": 5}


@pytest.mark.parametrize("status", [429, 504])
async def test_alpaca_retried_post_after_gateway_error_never_doubles(
    fake: FakeAlpacaTrading, status: int
) -> None:
    # The order reaches the server, the answer is lost as 429/504; alpaca-py re-POSTs.
    fake.inject(status, "POST", "/v2/orders", after=True)
    broker = _broker(fake)
    ack = await broker.submit(_intent(7))
    assert ack.accepted and ack.duplicate
    assert fake.count("POST", "/v2/orders") == 2
    assert len(fake.orders()) == 1
    assert await broker.positions() == {"AAPL": 7}


async def test_alpaca_429_before_processing_is_retried_once(fake: FakeAlpacaTrading) -> None:
    fake.inject(429, "POST", "/v2/orders")
    broker = _broker(fake)
    ack = await broker.submit(_intent(3))
    assert ack.accepted and not ack.duplicate
    assert fake.count("POST", "/v2/orders") == 2
    assert len(fake.orders()) == 1


async def test_alpaca_429_retry_after_is_honoured(fake: FakeAlpacaTrading) -> None:
    slept: list[float] = []

    async def sleep(d: float) -> None:
        slept.append(d)

    fake.inject(429, "POST", "/v2/orders", retry_after=7)
    broker = _broker(fake, sleep=sleep)
    ack = await broker.submit(_intent(3))
    assert ack.accepted and len(fake.orders()) == 1
    assert slept == [7.0]  # the server's wait, not the client's (0 s here)


async def test_alpaca_429_storm_past_the_resends_is_retryable_and_places_nothing(
    fake: FakeAlpacaTrading,
) -> None:
    for _ in range(4):
        fake.inject(429, "POST", "/v2/orders")
    broker = _broker(fake)
    with pytest.raises(RetryableError, match="HTTP 429"):
        await broker.submit(_intent(3))
    assert fake.count("POST", "/v2/orders") == 4  # the first try and 3 resends
    assert fake.orders() == []


async def test_alpaca_500_after_processing_resolved_by_lookup(fake: FakeAlpacaTrading) -> None:
    fake.inject(500, "POST", "/v2/orders", after=True)
    broker = _broker(fake)
    ack = await broker.submit(_intent(4))
    assert ack.accepted and "lookup" in ack.message
    assert len(fake.orders()) == 1


async def test_alpaca_500_before_processing_raises_retryable_then_retry_places_one(
    fake: FakeAlpacaTrading,
) -> None:
    fake.inject(500, "POST", "/v2/orders")
    broker = _broker(fake)
    with pytest.raises(RetryableError, match="HTTP 500"):
        await broker.submit(_intent(4))
    assert fake.orders() == []
    ack = await broker.submit(_intent(4))
    assert ack.accepted and len(fake.orders()) == 1


async def test_alpaca_rejection_insufficient_buying_power_is_clear(
    fake: FakeAlpacaTrading,
) -> None:
    fake.buying_power = 100.0
    broker = _broker(fake)
    ack = await broker.submit(_intent(10))
    assert ack.status is OrderStatus.REJECTED and not ack.accepted
    assert "insufficient buying power" in ack.message and "403" in ack.message
    assert fake.orders() == []


async def test_alpaca_unknown_symbol_422_is_rejection_not_duplicate(
    fake: FakeAlpacaTrading,
) -> None:
    broker = _broker(fake)
    intent = OrderIntent(model=MODEL, symbol="ZZZZ", side=Side.BUY, qty=1, bar_ts=T0)
    ack = await broker.submit(intent)
    assert ack.status is OrderStatus.REJECTED and "not found" in ack.message
    assert fake.count("GET", "/v2/orders:by_client_order_id") == 0


async def test_alpaca_bad_secret_raises_auth_error(fake: FakeAlpacaTrading) -> None:
    broker = AlpacaBroker(PAPER_KEY, "wrong", url=fake.url, retry_wait_s=0.0, sleep=_nosleep)
    with pytest.raises(AuthError, match="credentials refused"):
        await broker.submit(_intent())
    assert fake.orders() == []


async def test_alpaca_rate_budget_waits_instead_of_bursting(fake: FakeAlpacaTrading) -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(d: float) -> None:
        slept.append(d)
        now[0] += d

    broker = _broker(fake, rate_per_min=60, burst=2, sleep=sleep, clock=lambda: now[0])
    for _ in range(4):
        await broker.positions()
    # 2 from the burst, then one per second at 60/min.
    assert sum(slept) == pytest.approx(2.0)
    assert fake.count("GET", "/v2/positions") == 4


async def test_alpaca_live_mode_refuses_paper_account(fake: FakeAlpacaTrading) -> None:
    fake.key_id = LIVE_KEY
    broker = AlpacaBroker(
        LIVE_KEY, SECRET, paper=False, live=True, url=fake.url, retry_wait_s=0.0, sleep=_nosleep
    )
    with pytest.raises(ConfigError, match="paper account"):
        await broker.submit(_intent())
    assert fake.orders() == []


@pytest.mark.parametrize(
    ("key", "paper", "live", "match"),
    [
        (LIVE_KEY, True, False, "paper key id"),
        (PAPER_KEY, False, True, "not a live key"),
        (PAPER_KEY, False, False, "explicit live flag"),
        (LIVE_KEY, True, True, "choose paper or live"),
    ],
)
def test_alpaca_live_interlock_wrong_keys_refused(
    key: str, paper: bool, live: bool, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_keys(key, paper=paper, live=live)
    with pytest.raises(ConfigError, match=match):
        AlpacaBroker(key, SECRET, paper=paper, live=live, url="http://127.0.0.1:9")


def test_alpaca_live_interlock_live_keys_with_flag_accepted() -> None:
    check_keys(LIVE_KEY, paper=False, live=True)
    check_keys(PAPER_KEY, paper=True, live=False)

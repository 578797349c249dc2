"""The fake Alpaca trading server refuses what the real account refuses.

Exercised as a client would: alpaca-py's ``TradingClient``, raw HTTP with ``requests``, and
``AlpacaBroker``'s read methods.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from algostack.adapters.alpaca.trading import AlpacaBroker
from algostack.core.market import datetime_to_ts
from algostack.testing.fake_alpaca_trading import FakeAlpacaTrading

KEY, SECRET = "PKTEST0000000000000000", "fake-secret"
T0 = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 New York
HTTP_TIMEOUT_S = 5.0


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(KEY, SECRET, fill_immediately=False, now=T0) as srv:
        srv.set_price("AAPL", 100.0)
        srv.set_price("MSFT", 400.0)
        yield srv


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> Iterator[TradingClient]:
    c = TradingClient(KEY, SECRET, paper=True, url_override=fake.url)
    c._retry = 0  # type: ignore[assignment]
    yield c
    c._session.close()


def order(client: TradingClient, side: str, qty: int, symbol: str = "AAPL") -> Order:
    req = MarketOrderRequest(
        symbol=symbol, qty=qty, side=OrderSide(side), time_in_force=TimeInForce.DAY
    )
    placed: Order = client.submit_order(req)  # type: ignore[assignment]
    return placed


def refused(client: TradingClient, side: str, qty: int, symbol: str = "AAPL") -> APIError:
    with pytest.raises(APIError) as info:
        order(client, side, qty, symbol)
    return info.value


def get(fake: FakeAlpacaTrading, path: str, **params: Any) -> Any:
    reply = requests.get(
        fake.url + path,
        params=params,
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=HTTP_TIMEOUT_S,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def broker(fake: FakeAlpacaTrading) -> AlpacaBroker:
    return AlpacaBroker(KEY, SECRET, url=fake.url, retry_wait_s=0.0)


# -- wash trades ------------------------------------------------------------------------------


def test_wash_trade_opposite_side_while_open_refused_422(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    order(client, "buy", 10)
    err = refused(client, "sell", 5)
    assert err.status_code == 422
    assert err.code == 42210000
    assert err.message == "potential wash trade detected. use complex orders"
    # Same side and other symbols are fine; nothing was stored for the refused order.
    order(client, "buy", 1)
    order(client, "sell", 1, "MSFT")
    assert [(o["side"], o["qty"]) for o in fake.orders()] == [
        ("buy", "10"),
        ("buy", "1"),
        ("sell", "1"),
    ]
    fake.fill_open("AAPL")
    order(client, "sell", 5)  # nothing open on the buy side any more


def test_wash_trade_partially_filled_order_still_blocks(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    order(client, "sell", 10)
    fake.fill_open(qty=4)
    assert refused(client, "buy", 1).code == 42210000
    fake.fill_open()
    assert order(client, "buy", 1).symbol == "AAPL"


def test_wash_trade_cannot_happen_when_orders_fill_at_once(client: TradingClient) -> None:
    with FakeAlpacaTrading(KEY, SECRET, now=T0) as srv:
        srv.set_price("AAPL", 100.0)
        c = TradingClient(KEY, SECRET, paper=True, url_override=srv.url)
        order(c, "buy", 10)
        order(c, "sell", 10)
        assert [o["status"] for o in srv.orders()] == ["filled", "filled"]
        c._session.close()


# -- pattern day trader protection ----------------------------------------------------------


def round_trip(fake: FakeAlpacaTrading, client: TradingClient, qty: int = 10) -> None:
    order(client, "buy", qty)
    fake.fill_open()
    order(client, "sell", qty)
    fake.fill_open()


async def test_pdt_fourth_day_trade_refused_403_under_25k(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.equity = 20_000.0
    fake.set_daytrade_count(2)
    round_trip(fake, client)  # the 3rd: allowed
    view = await broker(fake).account_view()
    assert (view.daytrade_count, view.pattern_day_trader, view.equity) == (3, False, 20_000.0)
    assert view.account_number.startswith("PA")
    order(client, "buy", 10)
    fake.fill_open()
    err = refused(client, "sell", 10)
    assert err.status_code == 403
    assert err.code == 40310100
    assert err.message == "trade denied due to pattern day trading protection"
    assert fake.state.positions["AAPL"][0] == 10
    # Adding to the position is no day trade and stays allowed.
    order(client, "buy", 1)


async def test_pdt_fourth_day_trade_allowed_at_25k_and_flags_the_account(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.equity = 25_000.0
    fake.set_daytrade_count(3)
    round_trip(fake, client)
    view = await broker(fake).account_view()
    assert (view.daytrade_count, view.pattern_day_trader) == (4, True)
    raw = get(fake, "/v2/account")
    assert (raw["equity"], raw["daytrade_count"], raw["pattern_day_trader"]) == (
        "25000.00",
        4,
        True,
    )


def test_pdt_closing_a_position_opened_on_an_earlier_day_is_allowed(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.equity = 10_000.0
    order(client, "buy", 10)
    fake.fill_open()
    fake.new_day(T0 + timedelta(days=1))
    fake.set_daytrade_count(3)
    order(client, "sell", 10)
    fake.fill_open()
    assert "AAPL" not in fake.state.positions
    assert get(fake, "/v2/account")["daytrade_count"] == 3


def test_pdt_partial_fills_of_one_closing_order_count_once_and_window_rolls(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.equity = 10_000.0
    order(client, "buy", 10)
    fake.fill_open()
    order(client, "sell", 10)
    fake.fill_open(qty=3)
    fake.fill_open(qty=3)
    fake.fill_open()
    assert get(fake, "/v2/account")["daytrade_count"] == 1
    fake.set_daytrade_count(2)  # 2 on Tue 2024-01-02, 1 today (Wed)
    assert get(fake, "/v2/account")["daytrade_count"] == 3
    fake.new_day(datetime(2024, 1, 8, 15, 0, tzinfo=UTC))  # window Tue..Mon: all 3
    assert get(fake, "/v2/account")["daytrade_count"] == 3
    fake.new_day(datetime(2024, 1, 9, 15, 0, tzinfo=UTC))  # Tue's 2 rolled off
    assert get(fake, "/v2/account")["daytrade_count"] == 1


# -- partial fills --------------------------------------------------------------------------


def test_partial_fills_update_status_quantities_and_vwap(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    placed = order(client, "buy", 15)
    assert fake.fill_open("MSFT") == 0
    assert fake.fill_open(qty=10, price=100.0) == 1
    mid = client.get_order_by_id(placed.id)
    assert isinstance(mid, Order)
    assert (mid.status.value, mid.filled_qty, float(mid.filled_avg_price or 0)) == (
        "partially_filled",
        "10",
        100.0,
    )
    assert mid.filled_at is None
    assert fake.fill_open(price=103.0) == 1
    done = client.get_order_by_id(placed.id)
    assert isinstance(done, Order)
    assert (done.status.value, done.filled_qty, float(done.filled_avg_price or 0)) == (
        "filled",
        "15",
        101.0,
    )
    assert done.filled_at is not None
    pos = client.get_open_position("AAPL")
    assert (pos.qty, float(pos.avg_entry_price)) == ("15", 101.0)  # type: ignore[union-attr]
    assert fake.fill_open() == 0


# -- account activities ---------------------------------------------------------------------

ACTIVITY_ID = re.compile(r"^\d{17}::[0-9a-f-]{36}$")


def test_fill_activities_newest_first_with_alpaca_fields(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    placed = order(client, "buy", 15)
    fake.fill_open(qty=10, price=100.0)
    fake.advance(1.5)
    fake.fill_open(price=103.0)
    acts = get(fake, "/v2/account/activities/FILL")
    assert acts == get(fake, "/v2/account/activities", activity_types="FILL")
    assert [a["id"] for a in acts] == [a["id"] for a in reversed(fake.activities())]
    newest, oldest = acts
    assert all(ACTIVITY_ID.match(a["id"]) for a in acts)
    assert newest["id"].startswith("20240103150001500::")
    assert {k: v for k, v in newest.items() if k != "id"} == {
        "activity_type": "FILL",
        "transaction_time": "2024-01-03T15:00:01.500000Z",
        "type": "fill",
        "price": "103",
        "qty": "5",
        "side": "buy",
        "symbol": "AAPL",
        "leaves_qty": "0",
        "order_id": str(placed.id),
        "cum_qty": "15",
        "order_status": "filled",
    }
    assert (oldest["type"], oldest["qty"], oldest["cum_qty"], oldest["leaves_qty"]) == (
        "partial_fill",
        "10",
        "10",
        "5",
    )
    assert oldest["order_status"] == "partially_filled"


async def test_fill_activities_after_direction_and_pages(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    for i in range(5):
        order(client, "buy", i + 1)
        fake.fill_open()
        fake.advance(60)
    all_desc = get(fake, "/v2/account/activities/FILL")
    assert [a["qty"] for a in all_desc] == ["5", "4", "3", "2", "1"]
    cut = (T0 + timedelta(seconds=90)).isoformat()
    assert [a["qty"] for a in get(fake, "/v2/account/activities/FILL", after=cut)] == [
        "5",
        "4",
        "3",
    ]
    asc = get(fake, "/v2/account/activities/FILL", direction="asc", page_size=2)
    assert [a["qty"] for a in asc] == ["1", "2"]
    nxt = get(
        fake, "/v2/account/activities/FILL", direction="asc", page_size=2, page_token=asc[-1]["id"]
    )
    assert [a["qty"] for a in nxt] == ["3", "4"]
    # The adapter reads every page, oldest first, and honours ``after``.
    b = broker(fake)
    fills = await b.fill_activities(page_size=2)
    assert [f.qty for f in fills] == [1, 2, 3, 4, 5]
    assert fake.count("GET", "/v2/account/activities/FILL") == 4 + 3  # 4 raw reads above, 3 pages
    assert fills[1].ts == datetime_to_ts(T0 + timedelta(seconds=60))
    assert (fills[1].type, fills[1].side, fills[1].price, fills[1].cum_qty) == (
        "fill",
        "buy",
        100.0,
        2,
    )
    later = await b.fill_activities(after=T0 + timedelta(seconds=90), page_size=2)
    assert [f.qty for f in later] == [3, 4, 5]
    await b.close()


# -- orders listing -------------------------------------------------------------------------


def test_orders_status_limit_symbols_and_after(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    first = order(client, "buy", 1)
    fake.fill_open()
    fake.advance(60)
    order(client, "buy", 2, "MSFT")
    fake.advance(60)
    third = order(client, "buy", 3)
    client.cancel_order_by_id(third.id)
    fake.advance(60)
    order(client, "buy", 4)

    def qtys(**kw: Any) -> list[str]:
        got = client.get_orders(GetOrdersRequest(**kw))
        return [str(o.qty) for o in got]  # type: ignore[union-attr]

    assert qtys(status=QueryOrderStatus.OPEN) == ["4", "2"]  # newest first, as Alpaca
    assert qtys(status=QueryOrderStatus.CLOSED) == ["3", "1"]
    assert qtys(status=QueryOrderStatus.ALL) == ["4", "3", "2", "1"]
    assert qtys(status=QueryOrderStatus.ALL, limit=2) == ["4", "3"]
    assert qtys(status=QueryOrderStatus.ALL, symbols=["MSFT"]) == ["2"]
    assert qtys(status=QueryOrderStatus.ALL, after=T0 + timedelta(seconds=90)) == ["4", "3"]
    assert [o["qty"] for o in get(fake, "/v2/orders", status="all", direction="asc")] == [
        "1",
        "2",
        "3",
        "4",
    ]
    statuses = {o["qty"]: o["status"] for o in get(fake, "/v2/orders", status="all")}
    assert statuses == {"1": "filled", "2": "new", "3": "canceled", "4": "new"}
    assert str(first.id) == fake.orders()[0]["id"]

"""Batch netting and attribution: split, crosses, venue executions, close, invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algostack.core.execution import (
    Attributed,
    BatchBook,
    Execution,
    OverfillError,
    split,
)
from algostack.core.orders import OrderIntent, Side
from algostack.core.simfill import FillRules

BAR = 1_704_300_000_000_000_000
TS = BAR + 60_000_000_000
FREE = FillRules(0.0)


def intent(
    model: str, side: Side, qty: int, symbol: str = "AAPL", bar_ts: int = BAR
) -> OrderIntent:
    return OrderIntent(model=model, symbol=symbol, side=side, qty=qty, bar_ts=bar_ts)


def ex(eid: str, qty: int, price: float = 100.0, ts: int = TS) -> Execution:
    return Execution(eid, qty, price, ts)


def by_model(fills: list[Attributed]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in fills:
        out[a.fill.model] = out.get(a.fill.model, 0) + a.fill.signed_qty
    return out


# -- split -------------------------------------------------------------------------------


def test_split_proportional_largest_remainder() -> None:
    assert split(10, [4, 4, 4]) == [4, 3, 3]
    assert split(7, [50, 30, 20]) == [4, 2, 1]
    assert split(5, [5, 0, 3]) == [3, 0, 2]
    assert split(0, [3, 4]) == [0, 0]
    assert split(0, []) == []
    assert split(6, [2, 4]) == [2, 4]


def test_split_ties_go_to_lower_index() -> None:
    assert split(1, [1, 1]) == [1, 0]
    assert split(2, [1, 1, 1, 1]) == [1, 1, 0, 0]


def test_split_rejects_impossible_totals() -> None:
    with pytest.raises(ValueError, match="summing to 3"):
        split(4, [1, 2])
    with pytest.raises(ValueError, match="negative total"):
        split(-1, [1])
    with pytest.raises(ValueError, match=">= 0"):
        split(1, [2, -1])


@given(st.lists(st.integers(0, 1000), max_size=12), st.data())
def test_split_property_sums_and_caps(weights: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(0, sum(weights)))
    parts = split(total, weights)
    assert sum(parts) == total
    assert all(0 <= p <= w for p, w in zip(parts, weights, strict=True))
    whole = sum(weights)
    if whole:
        # Largest remainder: every part within one share of its exact quota.
        assert all(abs(p * whole - total * w) < whole for p, w in zip(parts, weights, strict=True))
    assert split(total, weights) == parts


# -- construction ------------------------------------------------------------------------


def test_batch_rejects_bad_input_naming_the_cause() -> None:
    a = intent("m1", Side.BUY, 10)
    with pytest.raises(ValueError, match="no intents"):
        BatchBook("b1", [], FREE)
    with pytest.raises(ValueError, match="mixed symbols AAPL and MSFT"):
        BatchBook("b1", [a, intent("m2", Side.BUY, 5, symbol="MSFT")], FREE)
    with pytest.raises(ValueError, match="mixed bar_ts"):
        BatchBook("b1", [a, intent("m2", Side.BUY, 5, bar_ts=BAR + 1)], FREE)
    with pytest.raises(ValueError, match="appears twice"):
        BatchBook("b1", [a, intent("m1", Side.BUY, 3)], FREE)
    with pytest.raises(ValueError, match="must be positive"):
        BatchBook("b1", [intent("m1", Side.BUY, 0)], FREE)
    with pytest.raises(ValueError, match=r"\[A-Za-z0-9_.-\]"):
        BatchBook("b 1", [a], FREE)
    with pytest.raises(ValueError, match="at most 128"):
        BatchBook("b" * 126, [a], FREE)
    assert BatchBook("b" * 125, [a], FREE).venue_client_order_id == "gw-" + "b" * 125


def test_batch_same_model_both_sides_is_two_intents() -> None:
    b = BatchBook("b1", [intent("m1", Side.BUY, 10), intent("m1", Side.SELL, 4)], FREE)
    assert (b.net, b.crossed, b.venue_side, b.venue_qty) == (6, 4, Side.BUY, 6)


def test_batch_figures() -> None:
    b = BatchBook(
        "AAPL.1704300000",
        [intent("m1", Side.BUY, 60), intent("m2", Side.SELL, 25), intent("m3", Side.BUY, 40)],
        FREE,
    )
    assert (b.symbol, b.bar_ts, b.batch_id) == ("AAPL", BAR, "AAPL.1704300000")
    assert (b.buy_qty, b.sell_qty, b.net, b.crossed) == (100, 25, 75, 25)
    assert (b.venue_side, b.venue_qty) == (Side.BUY, 75)
    assert b.venue_client_order_id == "gw-AAPL.1704300000"
    assert len(b.intents) == 3 and not b.done


# -- crosses and executions --------------------------------------------------------------


def test_cross_books_minority_in_full_and_net_side_pro_rata() -> None:
    m1, m2, m3 = intent("m1", Side.BUY, 60), intent("m2", Side.SELL, 25), intent("m3", Side.BUY, 40)
    b = BatchBook("b1", [m1, m2, m3], FillRules(slippage_bps=10.0, commission_per_share=0.01))
    fills = b.cross(100.0, TS)
    # 25 crossed on the buy side split 60:40 -> 15 and 10
    assert [(a.fill.model, a.fill.side, a.fill.qty) for a in fills] == [
        ("m1", Side.BUY, 15),
        ("m2", Side.SELL, 25),
        ("m3", Side.BUY, 10),
    ]
    assert [a.fill_id for a in fills] == ["b1:x:0", "b1:x:1", "b1:x:2"]
    assert all(a.fill.broker_order_id == "x-b1" and a.fill.ts == TS for a in fills)
    assert [a.fill.client_order_id for a in fills] == [
        m1.client_order_id,
        m2.client_order_id,
        m3.client_order_id,
    ]
    buy, sell = fills[0].fill, fills[1].fill
    assert buy.price == pytest.approx(100.1) and sell.price == pytest.approx(99.9)
    assert buy.commission == pytest.approx(0.15) and sell.commission == pytest.approx(0.25)
    assert sum(a.fill.signed_qty for a in fills) == 0
    assert b.cross(101.0, TS) == []
    assert (b.filled(m2.client_order_id), b.remaining(m2.client_order_id)) == (25, 0)
    assert (b.filled(m1.client_order_id), b.remaining(m1.client_order_id)) == (15, 45)
    assert not b.done


def test_net_zero_batch_completes_on_cross() -> None:
    b = BatchBook("b1", [intent("m1", Side.BUY, 30), intent("m2", Side.SELL, 30)], FREE)
    assert b.venue_side is None and b.venue_qty == 0
    fills = b.cross(50.0, TS)
    assert by_model(fills) == {"m1": 30, "m2": -30}
    assert b.done
    with pytest.raises(OverfillError, match="b1"):
        b.execute(ex("e1", 1))


def test_execute_crosses_first_at_execution_price_then_splits_venue_shares() -> None:
    b = BatchBook(
        "b1",
        [intent("m1", Side.BUY, 60), intent("m2", Side.SELL, 25), intent("m3", Side.BUY, 40)],
        FREE,
    )
    first = b.execute(ex("e1", 30, price=101.0))
    assert [a.fill_id for a in first] == ["b1:e1:0", "b1:x:1", "b1:e1:2"]
    assert all(a.fill.price == 101.0 for a in first)
    venue = [a.fill for a in first if a.fill.broker_order_id == "gw-b1"]
    # crossed 25 split 60:40 -> 15 and 10; venue shares 45 and 30: 30 split 45:30 -> 18
    # and 12; each net-side intent gets its crossed and venue shares as one fill
    assert [(f.model, f.qty) for f in venue] == [("m1", 33), ("m3", 22)]
    assert by_model(first) == {"m1": 33, "m2": -25, "m3": 22}
    rest = b.execute(ex("e2", 45, price=102.0))
    assert by_model(rest) == {"m1": 27, "m3": 18}
    assert b.done and b.venue_remaining == 0
    assert {i.model: b.filled(i.client_order_id) for i in b.intents} == {
        "m1": 60,
        "m2": 25,
        "m3": 40,
    }


def test_execute_duplicate_execution_is_ignored_and_counted() -> None:
    b = BatchBook("b1", [intent("m1", Side.BUY, 10)], FREE)
    assert len(b.execute(ex("e1", 4))) == 1
    assert b.execute(ex("e1", 4)) == []
    assert b.duplicates == 1 and b.executed == 4


def test_execute_overfill_raises_and_leaves_the_book_unchanged() -> None:
    m1 = intent("m1", Side.BUY, 10)
    b = BatchBook("b7", [m1, intent("m2", Side.SELL, 4)], FREE)
    with pytest.raises(OverfillError, match="batch b7: execution e1 of 7 shares exceeds"):
        b.execute(ex("e1", 7))
    assert not b.is_crossed and b.executed == 0 and b.filled(m1.client_order_id) == 0
    assert len(b.execute(ex("e1", 6))) == 2  # the same id is still usable


def test_execute_rejects_bad_executions() -> None:
    b = BatchBook("b1", [intent("m1", Side.BUY, 10)], FREE)
    with pytest.raises(ValueError, match="positive"):
        b.execute(ex("e1", 0))
    with pytest.raises(ValueError, match="invalid execution id"):
        b.execute(ex("x", 1))
    with pytest.raises(ValueError, match="price"):
        b.execute(ex("e1", 1, price=float("nan")))
    assert b.executed == 0 and not b.is_crossed


def test_filled_unknown_cid_raises_key_error() -> None:
    b = BatchBook("b1", [intent("m1", Side.BUY, 10)], FREE)
    with pytest.raises(KeyError, match="no intent"):
        b.filled("nope")


# -- close -------------------------------------------------------------------------------


def test_close_after_partial_fill_keeps_crosses_and_reports_the_rest() -> None:
    m1, m2 = intent("m1", Side.BUY, 10), intent("m2", Side.SELL, 4)
    b = BatchBook("b1", [m1, m2], FREE)
    b.execute(ex("e1", 2))
    assert b.close("canceled") == [(m1, 4)]  # 4 crossed + 2 executed of 10
    assert b.done and b.close_reason == "canceled"
    assert b.close("again") == []
    assert b.filled(m2.client_order_id) == 4


def test_close_before_any_execution_gives_up_the_crosses() -> None:
    m1, m2 = intent("m1", Side.BUY, 10), intent("m2", Side.SELL, 4)
    b = BatchBook("b1", [m1, m2], FREE)
    assert b.close("rejected") == [(m1, 10), (m2, 4)]
    assert b.cross(100.0, TS) == [] and b.done


def test_close_after_explicit_cross_keeps_the_crosses() -> None:
    m1, m2 = intent("m1", Side.BUY, 10), intent("m2", Side.SELL, 4)
    b = BatchBook("b1", [m1, m2], FREE)
    b.cross(100.0, TS)
    assert b.close("rejected") == [(m1, 6)]


def test_execution_after_close_is_still_booked() -> None:
    m1 = intent("m1", Side.SELL, 10)
    b = BatchBook("b1", [m1], FREE)
    b.execute(ex("e1", 3))
    assert b.close("canceled") == [(m1, 7)]
    late = b.execute(ex("e2", 2))
    assert by_model(late) == {"m1": -2} and b.filled(m1.client_order_id) == 5


# -- invariants --------------------------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn) -> tuple[BatchBook, FillRules]:
    n = draw(st.integers(1, 6))
    intents = []
    for i in range(n):
        side = draw(st.sampled_from([Side.BUY, Side.SELL]))
        intents.append(intent(f"m{i}", side, draw(st.integers(1, 500))))
    rules = FillRules(
        slippage_bps=draw(st.sampled_from([0.0, 2.5])),
        commission_per_share=draw(st.sampled_from([0.0, 0.005])),
        min_commission=draw(st.sampled_from([0.0, 1.0])),
    )
    return BatchBook("b", intents, rules), rules


@settings(max_examples=300, deadline=None)
@given(batches(), st.data())
def test_batch_property_books_sum_to_the_venue(
    made: tuple[BatchBook, FillRules], data: st.DataObject
) -> None:
    b, rules = made
    fills: list[Attributed] = []
    sign = b.venue_side.sign if b.venue_side else 0
    if data.draw(st.booleans()):
        fills += b.cross(data.draw(st.floats(1.0, 500.0)), TS)
    seen: list[Execution] = []
    k = 0
    while b.venue_remaining > 0 and data.draw(st.integers(0, 9)) > 0:
        if seen and data.draw(st.integers(0, 3)) == 0:
            e = data.draw(st.sampled_from(seen))  # a replayed execution
        else:
            qty = data.draw(st.integers(1, b.venue_remaining + 2))
            e = ex(f"e{k}", qty, price=data.draw(st.floats(1.0, 500.0)))
            k += 1
        before = (b.executed, [b.filled(c.client_order_id) for c in b.intents])
        if e.qty > b.venue_remaining and e not in seen:
            with pytest.raises(OverfillError):
                b.execute(e)
            assert (b.executed, [b.filled(c.client_order_id) for c in b.intents]) == before
            continue
        fills += b.execute(e)
        seen.append(e)
        _check(b, fills, sign, rules)
    if data.draw(st.booleans()):
        unfilled = b.close("canceled")
        assert [(i, b.remaining(i.client_order_id)) for i, _ in unfilled] == unfilled
        assert all(q > 0 for _, q in unfilled)
        assert sum(i.qty for i in b.intents) - sum(q for _, q in unfilled) == sum(
            a.fill.qty for a in fills
        )
        assert b.done
    _check(b, fills, sign, rules)
    if b.venue_remaining > 0 and b.close_reason is None:
        fills += b.execute(ex("last", b.venue_remaining))
        _check(b, fills, sign, rules)
        assert all(b.remaining(i.client_order_id) == 0 for i in b.intents)
        assert b.done


def _check(b: BatchBook, fills: list[Attributed], sign: int, rules: FillRules) -> None:
    assert sum(a.fill.signed_qty for a in fills) == sign * b.executed
    assert len({a.fill_id for a in fills}) == len(fills)
    for it in b.intents:
        cid = it.client_order_id
        mine = [a.fill for a in fills if a.fill.client_order_id == cid]
        got = sum(f.qty for f in mine)
        assert got == b.filled(cid) <= it.qty
        assert b.remaining(cid) == it.qty - got
        assert all(f.side == it.side and f.model == it.model and f.qty > 0 for f in mine)
        assert all(f.commission == rules.commission(f.qty) for f in mine)

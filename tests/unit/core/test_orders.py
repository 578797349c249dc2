"""Client order ids and order values."""

from __future__ import annotations

import msgspec
import pytest

from algostack.core.orders import (
    MAX_CLIENT_ORDER_ID,
    OrderAck,
    OrderIntent,
    OrderStatus,
    Side,
    client_order_id,
    order_prefix,
)

TS = 1_704_294_000_000_000_000


def test_client_order_id_same_inputs_same_id_readable() -> None:
    a = client_order_id("onnx-AAPL-model_7", "AAPL", TS, Side.BUY)
    assert a == client_order_id("onnx-AAPL-model_7", "AAPL", TS, Side.BUY)
    assert a.startswith(order_prefix("onnx-AAPL-model_7"))
    assert "-AAPL-b-20240103T1500-" in a


@pytest.mark.parametrize(
    "other",
    [
        ("onnx-AAPL-model_8", "AAPL", TS, Side.BUY),
        ("onnx-AAPL-model_7", "MSFT", TS, Side.BUY),
        ("onnx-AAPL-model_7", "AAPL", TS + 60_000_000_000, Side.BUY),
        ("onnx-AAPL-model_7", "AAPL", TS, Side.SELL),
        ("onnx-AAPL-model_7", "AAPL", TS + 1, Side.BUY),  # same minute, different ns
    ],
)
def test_client_order_id_any_input_change_changes_id(
    other: tuple[str, str, int, Side],
) -> None:
    assert client_order_id(*other) != client_order_id("onnx-AAPL-model_7", "AAPL", TS, Side.BUY)


def test_client_order_id_long_model_bounded_and_prefixes_distinct() -> None:
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    cid = client_order_id(long_a, "BRK.B", TS, Side.SELL)
    assert len(cid) <= MAX_CLIENT_ORDER_ID
    assert order_prefix(long_a) != order_prefix(long_b)
    assert not cid.startswith(order_prefix(long_b))


def test_intent_roundtrips_msgpack_and_signs() -> None:
    it = OrderIntent(model="m", symbol="AAPL", side=Side.SELL, qty=5, bar_ts=TS, score=-0.4)
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(it), type=OrderIntent)
    assert back == it and back.signed_qty == -5
    assert it.client_order_id == client_order_id("m", "AAPL", TS, Side.SELL)


def test_side_for_delta_and_zero_refused() -> None:
    assert Side.for_delta(3) is Side.BUY and Side.for_delta(-1) is Side.SELL
    with pytest.raises(ValueError, match="zero"):
        Side.for_delta(0)


def test_ack_rejected_is_not_accepted() -> None:
    ack = OrderAck(client_order_id="c", broker_order_id="", status=OrderStatus.REJECTED)
    assert not ack.accepted

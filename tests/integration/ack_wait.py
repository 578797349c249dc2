"""Waiting for the server's ack floor (shared by the tests of durable consumers).

A JetStream ack is a plain publish that the server applies on its own queue, so an info
request sent after it can overtake it: a test waits for the server, bounded."""

from __future__ import annotations

import asyncio

from nats.js.api import ConsumerInfo

from algostack.adapters.nats.feed_consumer import FeedConsumer


async def server_ack_floor(consumer: FeedConsumer, seq: int, limit_s: float = 10.0) -> ConsumerInfo:
    """The consumer's info once the server's ack floor is ``seq``; fails past it or the limit."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        info = await consumer.info()
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        if floor == seq:
            return info
        assert floor < seq, f"server ack floor {floor} is past the acked seq {seq}"
        assert asyncio.get_running_loop().time() < deadline, f"ack floor {floor}, expected {seq}"
        await asyncio.sleep(0.02)

"""NatsBus and EmbeddedNats against a real nats-server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime

import pytest
from ack_wait import server_ack_floor

from algostack.adapters.nats.bus import NatsBus, NatsUnreachableError
from algostack.adapters.nats.feed_consumer import Delivery, FeedConsumer
from algostack.adapters.nats.publisher import PublishError
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core import codec
from algostack.core.backoff import Backoff
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, Trade, datetime_to_ts
from algostack.core.market_bus import PREV_HEADER, SEQ_HEADER, BusMessage, recv_ns_of, seq_of
from algostack.errors import AuthError, ConfigError

T0 = datetime_to_ts(datetime(2024, 3, 15, 13, 30, tzinfo=UTC))


def make_bars(symbol: str, n: int, start: int = 0) -> list[MarketEvent]:
    return [
        Bar(
            symbol=symbol,
            ts=T0 + (start + i) * NS_PER_MIN,
            open=100.0 + i,
            high=101.0 + i,
            low=99.0 + i,
            close=100.5 + i,
            volume=1000.0 + i,
        )
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def subject_counts(bus: NatsBus) -> dict[str, int]:
    info = await bus._nc.jsm().stream_info(codec.STREAM_NAME, subjects_filter="market.>")
    return dict(info.state.subjects or {})


def test_embedded_nats_stop_leaves_no_process() -> None:
    server = EmbeddedNats().start()
    pid = server.pid
    assert pid is not None and server.url.startswith("nats://127.0.0.1:")
    assert server.password not in server.url and server.password in server.client_url
    server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


async def test_embedded_nats_wrong_password_raises_auth_error(embedded_nats: EmbeddedNats) -> None:
    with pytest.raises(AuthError, match="refused the login"):
        await NatsBus.connect(
            embedded_nats.url, user=embedded_nats.user, password="wrong", connect_timeout_s=5
        )


async def test_bus_publish_events_lands_each_on_its_subject_once(bus: NatsBus) -> None:
    trade = Trade(symbol="BRK.B", ts=T0 + 5, price=400.0, size=10, trade_id=1)
    events = [*make_bars("AAPL", 50), *make_bars("MSFT", 30), trade]
    await bus.publish_events(events)
    await bus.flush_acks()
    assert bus.stats.published == 81 and bus.stats.duplicates == 0 and bus.inflight == 0
    counts = await subject_counts(bus)
    assert counts == {"market.bars.AAPL": 50, "market.bars.MSFT": 30, "market.trades.BRK_B": 1}


async def test_bus_republish_same_events_adds_nothing(bus: NatsBus) -> None:
    events = make_bars("AAPL", 40)
    await bus.publish_events(events)
    await bus.flush_acks()
    await bus.publish_events(events[10:])
    await bus.flush_acks()
    info = await bus.stream_info()
    assert info.state.messages == 40
    assert (bus.stats.published, bus.stats.duplicates) == (40, 30)


async def test_bus_window_smaller_than_batch_acks_everything(embedded_nats: EmbeddedNats) -> None:
    b = await NatsBus.connect(
        embedded_nats.url,
        user=embedded_nats.user,
        password=embedded_nats.password,
        max_inflight=8,
    )
    try:
        await b.reset_stream()
        await b.publish_events(make_bars("AAPL", 1000))
        assert b.inflight <= 8
        await b.flush_acks()
        assert b.stats.published == 1000
        assert (await b.stream_info()).state.messages == 1000
    finally:
        await b.close()


async def test_bus_publish_without_stream_raises_publish_error(bus: NatsBus) -> None:
    await bus.delete_stream_if_exists()
    bus._publisher.max_resends = 1  # give up after one re-send
    await bus.publish_events(make_bars("AAPL", 3))
    with pytest.raises(PublishError, match="refused 3 message"):
        await bus.flush_acks()
    assert bus.stats.failed == 3 and bus.stats.published == 0


async def test_ensure_market_stream_wrong_subjects_raises_config_error(bus: NatsBus) -> None:
    from nats.js import api

    await bus.delete_stream_if_exists()
    await bus._nc.jsm().add_stream(api.StreamConfig(name="MARKET", subjects=["market.bars.>"]))
    with pytest.raises(ConfigError, match=r"expected \['market\.>'\]"):
        await bus.ensure_market_stream()


async def test_ensure_market_stream_is_idempotent_and_updates_limits(bus: NatsBus) -> None:
    info = await bus.ensure_market_stream(max_age_s=3600, duplicate_window_s=60)
    assert info.config.max_age == 3600 and info.config.duplicate_window == 60
    again = await bus.ensure_market_stream(max_age_s=3600, duplicate_window_s=60)
    assert again.config.subjects == ["market.>"]
    with pytest.raises(ConfigError, match="duplicate_window_s"):
        await bus.ensure_market_stream(max_age_s=10, duplicate_window_s=60)


async def test_bus_connect_unreachable_logs_retries_then_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    url = f"nats://u:secretpw@127.0.0.1:{free_port()}"
    with (
        caplog.at_level(logging.WARNING, logger="algostack.nats.bus"),
        pytest.raises(NatsUnreachableError, match=r"unreachable .*connect timeout 3 s") as ei,
    ):
        await NatsBus.connect(
            url,
            connect_timeout_s=3,
            sleep=fake_sleep,
            clock=lambda: now[0],
            backoff=Backoff(base=0.5, cap=1.0, floor=0.5),
        )
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == len(slept) >= 3
    assert sum(slept) <= 3
    assert "secretpw" not in str(ei.value) and "secretpw" not in caplog.text


async def test_bus_core_publish_reaches_subscriber(bus: NatsBus) -> None:
    got: list[BusMessage] = []
    done = asyncio.Event()

    async def cb(msg: BusMessage) -> None:
        got.append(msg)
        done.set()

    sub = await bus.subscribe("algostack.local.trader.>", cb)
    await bus.publish("algostack.local.trader.m1.fill", b"x", headers={"k": "v"})
    await asyncio.wait_for(done.wait(), 5)
    await sub.unsubscribe()
    assert got[0].subject == "algostack.local.trader.m1.fill" and got[0].data == b"x"
    assert got[0].headers == {"k": "v"}
    with pytest.raises(ValueError, match="invalid NATS subject"):
        await bus.publish("bad subject", b"")


async def test_bus_server_restart_mid_stream_keeps_every_event_once(tmp_path: object) -> None:
    from pathlib import Path

    store = Path(str(tmp_path)) / "js"
    first = EmbeddedNats(store).start()
    port, user, pw = first.port, first.user, first.password
    assert port is not None
    b = await NatsBus.connect(first.url, user=user, password=pw)
    second: EmbeddedNats | None = None
    try:
        await b.ensure_market_stream()
        events = make_bars("AAPL", 300)
        await b.publish_events(events[:150], recv_ns=7)
        await asyncio.to_thread(first.stop)
        second = await asyncio.to_thread(
            EmbeddedNats(store, port=port, user=user, password=pw).start
        )
        await b.publish_events(events[150:], recv_ns=7)
        await b.flush_acks(timeout_s=30)
        info = await b.stream_info()
        assert info.state.messages == 300
        assert b.stats.reconnects >= 1
        # Re-sent messages keep their receive time.
        stored = await b.read_history("market.bars.AAPL", 300)
        assert [recv_ns_of(m.headers) for m in stored] == [7] * 300
    finally:
        await b.close(timeout_s=5)
        if second is not None:
            second.stop()


async def test_bus_server_stopped_then_killed_stores_every_subject_in_publish_order(
    tmp_path: object,
) -> None:
    """A nats-server stopped (SIGSTOP) while the bus publishes, then killed and started again
    on its store: the messages written to the dead socket are lost, those nats-py still held
    and those published during the reconnect would have been stored first, ahead of the lost
    ones re-sent after it (a trader then skipped 90 minutes of bars as out of date). Every
    message is stored once, each subject in publish order."""
    import signal
    from pathlib import Path

    store = Path(str(tmp_path)) / "js"
    server = EmbeddedNats(store).start()
    b = await NatsBus.connect(server.url, user=server.user, password=server.password)
    try:
        await b.ensure_market_stream()
        events = make_bars("AAPL", 600)
        await b.publish_events(events[:100])
        await b.flush_acks(timeout_s=10)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)

        async def paced() -> None:  # as the ingest sends a session: through the outage
            for i in range(100, 600, 10):
                await b.publish_events(events[i : i + 10])
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(paced())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(0.3)  # the client notices, and the source goes on meanwhile
        await asyncio.to_thread(server.restart)
        await asyncio.wait_for(sender, 30)
        await b.flush_acks(timeout_s=30)
        stored = await b.read_history("market.bars.AAPL", 10_000)
        times = [codec.decode(m.data).ts for m in stored]
        assert times == [e.ts for e in events]
        assert b.stats.reconnects >= 1
    finally:
        await b.close(timeout_s=5)
        server.stop()


def test_embedded_nats_missing_binary_raises_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="does not exist or is not executable"):
        EmbeddedNats(binary="/nonexistent/nats-server")


def test_embedded_nats_port_in_use_fails_with_server_log(embedded_nats: EmbeddedNats) -> None:
    from algostack.adapters.nats.server import NatsServerError

    clash = EmbeddedNats(port=embedded_nats.port or 0, ready_timeout_s=10)
    with pytest.raises(NatsServerError, match="exited with code") as ei:
        clash.start()
    assert "address already in use" in str(ei.value)
    assert not clash.running
    assert embedded_nats.running  # the first server is untouched


async def test_bus_publish_after_close_raises_publish_error(embedded_nats: EmbeddedNats) -> None:
    b = await NatsBus.connect(
        embedded_nats.url, user=embedded_nats.user, password=embedded_nats.password
    )
    await b.close()
    with pytest.raises(PublishError, match="closed"):
        await b.publish_events(make_bars("AAPL", 1))


# -- feed consumers, history, receive-time and sequence headers -------------------------------


async def collect_feed(
    bus: NatsBus, name: str, subjects: list[str], start_seq: int, n: int
) -> tuple[FeedConsumer, list[Delivery]]:
    consumer = await bus.feed_consumer(name, subjects, start_seq=start_seq)
    got: list[Delivery] = []
    for _ in range(100):
        got += await consumer.fetch(8)
        if len(got) >= n:
            break
    return consumer, got


async def test_feed_consumer_from_start_seq_delivers_in_order_with_recv_time(
    bus: NatsBus,
) -> None:
    await bus.publish_events(make_bars("AAPL", 5) + make_bars("MSFT", 5), recv_ns=123_456)
    await bus.publish_events(make_bars("AAPL", 5, start=5), recv_ns=789)
    await bus.flush_acks()
    history = await bus.read_history("market.bars.AAPL", 10_000)
    start = history[3].stream_seq
    consumer, got = await collect_feed(bus, "m-AAPL-feed", ["market.bars.AAPL"], start, 7)
    assert await consumer.fetch(8) == [] and consumer.status == "404"  # nothing more
    await consumer.close()
    assert [codec.decode(d.data).ts for d in got] == [b.ts for b in make_bars("AAPL", 7, start=3)]
    assert [d.stream_seq for d in got] == [m.stream_seq for m in history[3:]]
    assert [d.recv_ns for d in got] == [123_456, 123_456, 789, 789, 789, 789, 789]
    assert [d.num_pending for d in got] == [6, 5, 4, 3, 2, 1, 0]
    assert all(d.subject == "market.bars.AAPL" for d in got)


async def test_feed_consumer_fetch_returns_at_most_the_batch_in_slices(bus: NatsBus) -> None:
    await bus.publish_events(make_bars("AAPL", 20))
    await bus.flush_acks()
    consumer = await bus.feed_consumer("m-AAPL-slices", ["market.bars.AAPL"], start_seq=1)
    sizes = []
    while batch := await consumer.fetch(8):
        sizes.append(len(batch))
    await consumer.close()
    assert sizes == [8, 8, 4]


async def test_feed_consumer_ack_all_moves_floor_and_restart_resumes_after_it(
    bus: NatsBus,
) -> None:
    await bus.publish_events(make_bars("AAPL", 10))
    await bus.flush_acks()
    consumer, got = await collect_feed(bus, "m-AAPL-ack", ["market.bars.AAPL"], 1, 10)
    await got[5].ack()  # AckPolicy.ALL: the five before it are acked too
    await bus.flush()
    await server_ack_floor(consumer, got[5].stream_seq)
    await consumer.close()

    start, existed = await bus.resume_point("m-AAPL-ack")
    assert (start, existed) == (got[6].stream_seq, True)
    # A commit the caller made durable whose ack was lost: resume after it.
    later, _ = await bus.resume_point("m-AAPL-ack", committed_seq=got[7].stream_seq)
    assert later == got[8].stream_seq
    again, rest = await collect_feed(bus, "m-AAPL-ack", ["market.bars.AAPL"], start, 4)
    await again.close()
    assert [d.stream_seq for d in rest] == [d.stream_seq for d in got[6:]]


async def test_feed_consumer_restart_at_moves_it_without_reading(bus: NatsBus) -> None:
    await bus.publish_events(make_bars("AAPL", 10))
    await bus.flush_acks()
    consumer = await bus.feed_consumer("m-AAPL-move", ["market.bars.AAPL"], start_seq=1)
    await consumer.restart_at(8)
    assert consumer.position == 8
    info = await consumer.info()
    assert info.ack_floor is not None and info.ack_floor.stream_seq == 7
    got = await consumer.fetch(8)
    await consumer.close()
    assert [d.stream_seq for d in got] == [8, 9, 10] and consumer.position == 11


async def test_resume_point_unknown_consumer_uses_committed_seq(bus: NatsBus) -> None:
    assert await bus.resume_point("m-none") == (0, False)
    assert await bus.resume_point("m-none", committed_seq=41) == (42, False)


async def test_resume_point_consumer_held_by_another_process_raises_config_error(
    bus: NatsBus, embedded_nats: EmbeddedNats
) -> None:
    await bus.publish_events(make_bars("AAPL", 1))
    await bus.flush_acks()
    other = await NatsBus.connect(
        embedded_nats.url, user=embedded_nats.user, password=embedded_nats.password
    )
    try:
        consumer, _ = await collect_feed(other, "m-AAPL-busy", ["market.bars.AAPL"], 1, 1)
        with pytest.raises(ConfigError, match="bound by another running process"):
            await bus.resume_point("m-AAPL-busy", bound_wait_s=0.3)
        await consumer.close()  # released: the next process may take it at once
        assert await bus.resume_point("m-AAPL-busy", bound_wait_s=0.3) == (1, True)
    finally:
        await other.close()


async def test_feed_consumer_bad_name_or_subjects_raises_config_error(bus: NatsBus) -> None:
    with pytest.raises(ConfigError, match="consumer name"):
        await bus.feed_consumer("bad.name", ["market.bars.AAPL"], start_seq=1)
    with pytest.raises(ConfigError, match="under market"):
        await bus.feed_consumer("ok", ["bars.AAPL"], start_seq=1)


async def test_bus_numbers_messages_per_subject_and_tells_where_the_previous_was_stored(
    bus: NatsBus,
) -> None:
    await bus.publish_events(make_bars("AAPL", 2) + make_bars("MSFT", 1))
    await bus.flush_acks()  # acked: the next message of each subject knows where these went
    await bus.publish_events(make_bars("AAPL", 1, start=2) + make_bars("MSFT", 1, start=1))
    await bus.flush_acks()
    aapl = await bus.read_history("market.bars.AAPL", 10)
    msft = await bus.read_history("market.bars.MSFT", 10)
    keys = [seq_of(m.headers) for m in aapl + msft]
    epochs = {k[0] for k in keys if k is not None}
    assert len(epochs) == 1  # one publisher life
    assert [k[1] for k in keys if k is not None] == [1, 2, 3, 1, 2]
    assert aapl[0].headers is not None and SEQ_HEADER in aapl[0].headers
    prev = [(m.headers or {}).get(PREV_HEADER) for m in aapl + msft]
    # Message 2 of AAPL was published before message 1's ack came back: no hint.
    assert prev == [None, None, str(aapl[1].stream_seq), None, str(msft[0].stream_seq)]


async def test_bus_resend_keeps_the_message_number(bus: NatsBus) -> None:
    await bus.publish_events(make_bars("AAPL", 1))
    publisher = bus._publisher
    entry = next(iter(publisher._pending.values()))
    await publisher._resend(list(publisher._pending))  # as after an ack timeout
    await bus.flush_acks()
    assert not publisher._pending and bus.stats.resent == 1
    assert bus.stats.duplicates == 1  # the re-send; the original's late ack is not counted
    msgs = await bus.read_history("market.bars.AAPL", 10)
    assert len(msgs) == 1 and seq_of(msgs[0].headers) == seq_of(entry.headers)


async def test_read_history_returns_one_subject_up_to_seq(bus: NatsBus) -> None:
    await bus.publish_events(make_bars("AAPL", 3) + make_bars("MSFT", 3) + make_bars("AAPL", 3, 3))
    await bus.flush_acks()
    assert await bus.last_stream_seq() == 9
    upto6 = await bus.read_history("market.bars.AAPL", 6)
    assert [m.stream_seq for m in upto6] == [1, 2, 3]
    everything = await bus.read_history("market.bars.AAPL", 9)
    assert [m.stream_seq for m in everything] == [1, 2, 3, 7, 8, 9]
    assert [codec.decode(m.data).ts for m in everything] == [b.ts for b in make_bars("AAPL", 6)]
    assert await bus.read_history("market.bars.AAPL", 0) == []
    assert await bus.read_history("market.bars.NONE", 9) == []


async def test_bus_publish_events_without_recv_ns_stamps_publish_time(bus: NatsBus) -> None:
    import time

    before = time.time_ns()
    await bus.publish_events(make_bars("AAPL", 2))
    after = time.time_ns()
    await bus.flush_acks()
    msgs = await bus.read_history("market.bars.AAPL", 2)
    assert len(msgs) == 2
    for m in msgs:
        assert m.headers is not None and m.headers["Nats-Msg-Id"].startswith("bars:AAPL:")
        assert before <= recv_ns_of(m.headers) <= after
    assert recv_ns_of({"Algostack-Recv-Ns": "garbage"}) == recv_ns_of(None) == 0


async def test_reset_stream_never_brings_back_the_old_messages(bus: NatsBus) -> None:
    # nats-server answers a delete before the stream's files are gone: a stream created at
    # once under the same name could come back holding them (and their ids, as duplicates).
    for _ in range(15):
        await bus.publish_events(make_bars("AAPL", 3))
        await bus.flush_acks()
        await bus.reset_stream()
        assert (await bus.stream_info()).state.messages == 0
    await bus.publish_events(make_bars("AAPL", 3))
    await bus.flush_acks()
    assert (await bus.stream_info()).state.messages == 3 and bus.stats.duplicates == 0


async def test_embedded_nats_restart_after_sigkill_keeps_port_store_and_clients(
    tmp_path: object,
) -> None:
    import os
    import signal
    from pathlib import Path

    server = EmbeddedNats(Path(str(tmp_path)) / "js").start()
    b = await NatsBus.connect(server.url, user=server.user, password=server.password)
    try:
        await b.ensure_market_stream()
        events = make_bars("MSFT", 40)
        await b.publish_events(events[:20], recv_ns=1)
        await b.flush_acks(timeout_s=10)
        port, pid = server.port, server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for _ in range(500):  # poll() reaps it
            if not server.running:
                break
            await asyncio.sleep(0.02)
        assert not server.running and server.returncode == -signal.SIGKILL
        server.restart()
        assert server.running and server.port == port and server.pid != pid
        await b.publish_events(events[20:], recv_ns=1)
        await b.flush_acks(timeout_s=30)
        assert (await b.stream_info()).state.messages == 40  # the store survived the kill
        assert b.stats.reconnects >= 1
    finally:
        await b.close(timeout_s=5)
        server.stop()


async def test_ordered_subscription_follows_the_stream_again_soon_after_a_server_restart(
    tmp_path: object,
) -> None:
    """nats-server killed and started again on its store: the ephemeral ordered consumer is
    gone with it. nats-py re-creates one after two idle heartbeats unheard, 10-20 s at its
    default of 5 s, and the gateway's bars (the simulator's prices) stopped that long: at
    twice the default pace that was the rest of the session, and 100 orders never placed.
    Every bar is delivered once, in order, within a few seconds of the restart."""
    from pathlib import Path

    store = Path(str(tmp_path)) / "js"
    server = EmbeddedNats(store).start()
    pub = await NatsBus.connect(server.url, user=server.user, password=server.password)
    sub_bus = await NatsBus.connect(server.url, user=server.user, password=server.password)
    got: list[int] = []
    reached = {20: asyncio.Event(), 40: asyncio.Event()}

    async def on_msg(m: BusMessage) -> None:
        got.append(codec.decode(m.data).ts)
        if len(got) in reached:
            reached[len(got)].set()

    try:
        await pub.ensure_market_stream()
        events = make_bars("AAPL", 40)
        await pub.publish_events(events[:20])
        await sub_bus.ordered_subscribe(["market.bars.>"], on_msg)
        await asyncio.wait_for(reached[20].wait(), 5)
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.restart)
        await pub.publish_events(events[20:])
        await pub.flush_acks(timeout_s=10)
        restarted = asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reached[40].wait(), 30)
        waited = asyncio.get_running_loop().time() - restarted
        assert got == [e.ts for e in events]
        assert waited < 5, f"the ordered subscription came back {waited:.1f} s after the restart"
    finally:
        await sub_bus.close(timeout_s=5)
        await pub.close(timeout_s=5)
        server.stop()

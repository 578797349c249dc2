"""LiveGate: every message handled exactly once, in publish order, by the live or durable path."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from algostack.core.live_gate import LiveGate
from algostack.core.market_bus import PREV_HEADER, SEQ_HEADER, seq_of

A, B = "market.bars.AAPL", "market.status.AAPL"


def headers(epoch: str, n: int, prev: int | None = None) -> dict[str, str]:
    out = {SEQ_HEADER: f"{epoch}:{n}"}
    if prev is not None:
        out[PREV_HEADER] = str(prev)
    return out


def test_seq_of_parses_and_refuses_malformed() -> None:
    assert seq_of({SEQ_HEADER: "ab12:7"}) == ("ab12", 7)
    assert seq_of({SEQ_HEADER: "a:b:9"}) == ("a:b", 9)
    for bad in ("", "7", ":7", "ab:x", "ab:"):
        assert seq_of({SEQ_HEADER: bad}) is None
    assert seq_of(None) is None
    assert seq_of({}) is None


def test_closed_gate_passes_live_over_until_the_durable_path_caught_up() -> None:
    gate = LiveGate()
    assert not gate.take_live(A, headers("e", 1))  # nothing known yet: passed over
    assert gate.waiting == {A: ("e", 1)}
    gate.caught_up()
    assert not gate.open  # still owed message 1
    assert gate.take_durable(A, headers("e", 1), stream_seq=5)
    gate.caught_up()
    assert gate.open and gate.safe_seq == 5
    assert gate.take_live(A, headers("e", 2, prev=5))
    assert not gate.take_durable(A, headers("e", 2), stream_seq=6)  # already handled
    assert gate.live == 1 and gate.confirmed == 1


def test_gap_new_epoch_or_missing_header_close_the_gate() -> None:
    gate = LiveGate()
    gate.take_durable(A, headers("e", 1), 1)
    gate.caught_up()
    assert not gate.take_live(A, headers("e", 3))  # 2 is missing
    assert not gate.open and gate.closes == 1
    gate.take_durable(A, headers("e", 2), 2)
    gate.take_durable(A, headers("e", 3), 3)
    gate.caught_up()
    assert gate.open
    assert not gate.take_live(A, headers("f", 1))  # the ingest restarted
    assert not gate.open
    gate.take_durable(A, headers("f", 1), 4)
    gate.caught_up()
    assert not gate.take_live(A, None)  # someone else's message: durable path only
    assert not gate.open


def test_after_a_loss_the_gate_waits_for_a_later_live_message_to_come_durably() -> None:
    gate = LiveGate()
    gate.take_durable(A, headers("e", 1), 1)
    gate.caught_up()
    gate.lost()  # a disconnect: the status message below was lost on the live path
    gate.caught_up()  # everything stored so far is handled, but the status is not stored yet
    assert not gate.open
    assert not gate.take_live(A, headers("e", 2))  # the next bar, though contiguous: passed over
    gate.caught_up()
    assert not gate.open
    assert gate.take_durable(B, headers("e", 1), 2)  # the status, in stream order first
    assert gate.take_durable(A, headers("e", 2), 3)
    gate.caught_up()
    assert gate.open
    assert gate.take_live(A, headers("e", 3))


def test_prev_seq_moves_safe_seq_and_a_malformed_one_is_ignored() -> None:
    gate = LiveGate()
    gate.take_durable(A, headers("e", 1), 4)
    gate.caught_up()
    assert gate.take_live(A, headers("e", 2, prev=4))
    assert gate.take_live(A, {SEQ_HEADER: "e:3", PREV_HEADER: "not-a-number"})
    assert gate.safe_seq == 4 and gate.open  # handled, resume point kept
    assert gate.take_live(A, headers("e", 4, prev=9))
    assert gate.safe_seq == 9


def test_resend_of_a_handled_message_is_ignored_without_closing() -> None:
    gate = LiveGate()
    gate.take_durable(A, headers("e", 1), 1)
    gate.caught_up()
    assert gate.take_live(A, headers("e", 2))
    assert not gate.take_live(A, headers("e", 2))
    assert gate.open


def test_durable_message_never_stored_in_order_does_not_block_the_gate_forever() -> None:
    gate = LiveGate()
    gate.take_durable(A, headers("e", 1), 1)
    gate.caught_up()
    assert not gate.take_live(A, headers("e", 3))  # 2 lost everywhere (refused by JetStream)
    assert gate.take_durable(A, headers("e", 4), 2)  # a later one of the subject arrives
    gate.caught_up()
    assert gate.open


@dataclass
class World:
    """One publisher, two subjects, a stream, a live subscription and a durable consumer."""

    subjects: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    prevs: list[int | None] = field(default_factory=list)
    stored: int = 0
    live_next: int = 0
    durable_next: int = 0
    handled: list[int] = field(default_factory=list)
    gate: LiveGate = field(default_factory=LiveGate)

    def publish(self, subject: str) -> None:
        same = [j for j, s in enumerate(self.subjects) if s == subject]
        # The publisher knows where message n - 1 was stored once JetStream acked it.
        prev = same[-1] + 1 if same and same[-1] < self.stored else None
        self.subjects.append(subject)
        self.numbers.append(len(same) + 1)
        self.prevs.append(prev)

    def headers(self, i: int) -> dict[str, str]:
        return headers("e", self.numbers[i], self.prevs[i])

    def live(self, drop: bool) -> None:
        i = self.live_next
        if i >= len(self.subjects):
            return
        self.live_next += 1
        if drop:
            self.gate.lost()  # what the bus's gap hook does on a disconnect / slow consumer
            return
        if self.gate.take_live(self.subjects[i], self.headers(i)):
            self.handled.append(i)

    def store(self) -> None:
        self.stored = min(len(self.subjects), self.stored + 1)

    def fetch(self, k: int) -> None:
        got = range(self.durable_next, min(self.stored, self.durable_next + k))
        for i in got:
            if self.gate.take_durable(self.subjects[i], self.headers(i), i + 1):
                self.handled.append(i)
        self.durable_next = got.stop if got else self.durable_next
        if self.durable_next == self.stored:
            self.gate.caught_up()

    def check_safe_seq(self) -> None:
        # every message stored at or below safe_seq has been handled
        assert set(range(self.gate.safe_seq)) <= set(self.handled)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from([A, A, A, B])),
        st.tuples(st.just("live"), st.just(0)),
        st.tuples(st.just("live"), st.just(0)),
        st.tuples(st.just("drop"), st.just(0)),
        st.tuples(st.just("store"), st.just(0)),
        st.tuples(st.just("fetch"), st.integers(1, 8)),
    ),
    max_size=120,
)


@settings(max_examples=2000, deadline=None)
@given(steps)
def test_any_interleaving_handles_each_message_once_in_publish_order(
    ops: list[tuple[str, object]],
) -> None:
    w = World()
    for op, arg in ops:
        if op == "publish":
            w.publish(str(arg))
        elif op == "live":
            w.live(drop=False)
        elif op == "drop":
            w.live(drop=True)
        elif op == "store":
            w.store()
        else:
            w.fetch(int(str(arg)))
        w.check_safe_seq()
        assert w.handled == sorted(set(w.handled))  # in order, never twice
    # Let everything arrive: live deliveries, storage, then the durable path catches up.
    while w.live_next < len(w.subjects) or w.stored < len(w.subjects):
        w.live(drop=False)
        w.store()
        w.check_safe_seq()
    w.fetch(len(w.subjects) + 1)
    assert w.handled == list(range(len(w.subjects)))
    assert not w.gate.waiting
    assert w.gate.open or w.gate.blind  # after a loss: shut until a new live message...
    w.publish(A)
    w.live(drop=False)
    w.store()
    w.fetch(1)
    assert w.gate.open  # ...has come through the durable path
    assert w.handled == list(range(len(w.subjects)))

"""``LiveGate``: which of a trader's two feed paths (live core NATS, durable JetStream)
handles each market message, in publish order, from the ingest's ``Algostack-Seq``
numbering. Pure bookkeeping; docs/trader.md, "The feed", says how and why.
"""

from __future__ import annotations

import contextlib

from algostack.core.market_bus import PREV_HEADER, seq_of


class LiveGate:
    """Which path handles each message of one model's feed: live or durable (see the module).

    Pure bookkeeping, no I/O; call every method from the event loop, with the model's
    processing lock held from ``take_*`` until the message is handled, so the two paths
    never interleave. ``last`` is the last ``(epoch, n)`` handled per subject.
    """

    __slots__ = ("blind", "closes", "confirmed", "last", "live", "open", "safe_seq", "waiting")

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, int]] = {}
        self.safe_seq = 0
        """A stream sequence up to which every message of the feed has been handled: what a
        commit may record as its resume point. Handled messages form a prefix of the
        publish order, so the stream sequence of any handled message qualifies."""
        self.waiting: dict[str, tuple[str, int]] = {}
        """Per subject: a message the live path passed over; the gate stays shut until the
        durable path has handled it (or a later one of its subject)."""
        self.open = False
        self.blind = False
        """Set by ``lost()``: the next live message is passed over whatever its number, so the
        gate reopens only once the durable path has handled it, and with it every message
        published before it (which the live path may have lost on any subject)."""
        self.live = 0
        """Messages handled by the live path."""
        self.confirmed = 0
        """Durable deliveries of messages the live path had already handled."""
        self.closes = 0

    def take_live(self, subject: str, headers: dict[str, str] | None) -> bool:
        """True when the live path must handle this message now (it is the next one)."""
        key = seq_of(headers)
        if key is None:
            self.close()  # not provably next: the durable path brings it
            return False
        last = self.last.get(subject)
        if last is not None and key[0] == last[0]:
            if key[1] <= last[1]:
                return False  # a re-send of a message already handled
            if key[1] == last[1] + 1 and self.open:  # (open implies not blind)
                self.last[subject] = key
                self.live += 1
                stored = headers.get(PREV_HEADER) if headers else None
                if stored:  # message n - 1, handled, was stored at this sequence
                    with contextlib.suppress(ValueError):
                        self.safe_seq = max(self.safe_seq, int(stored))
                return True
        self.waiting[subject] = key
        self.blind = False
        self.close()
        return False

    def take_durable(
        self, subject: str, headers: dict[str, str] | None, stream_seq: int = 0
    ) -> bool:
        """True when the durable path must handle this message (the live path did not).

        ``stream_seq`` (the delivery's) becomes ``safe_seq``: the caller handles the message
        before it releases the lock.
        """
        if stream_seq > self.safe_seq:
            self.safe_seq = stream_seq
        key = seq_of(headers)
        if key is None:
            return True  # not from an algostack publisher: only this path sees it
        last = self.last.get(subject)
        if last is not None and key[0] == last[0] and key[1] <= last[1]:
            self.confirmed += 1
            return False
        self.last[subject] = key
        wait = self.waiting.get(subject)
        if wait is not None and (wait[0] != key[0] or wait[1] <= key[1]):
            del self.waiting[subject]
        return True

    def caught_up(self) -> None:
        """The durable consumer has nothing more pending: open unless it still owes a message."""
        if not self.waiting and not self.blind:
            self.open = True

    def close(self) -> None:
        """Send everything through the durable path until it has caught up again."""
        if self.open:
            self.closes += 1
        self.open = False

    def lost(self) -> None:
        """Live messages may have been lost (a disconnect, a slow-consumer drop): ``close``,
        and stay closed until the durable path has handled a message the live path got after
        the loss."""
        self.close()
        self.blind = True

"""The market-bus seam: the few bus operations the services use, and the message they see.

``adapters.nats.bus.NatsBus`` implements it over a real nats-server (JetStream); unit tests
use ``testing.memory_bus.MemoryBus``. The headers every ``MARKET`` message carries are part
of the wire contract and are defined here once (docs/architecture.md, "The bus").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from algostack.core.market import MarketEvent
from algostack.errors import RetryableError

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's de-duplication id (``codec.msg_id`` of the event)."""
RECV_HEADER = "Algostack-Recv-Ns"
"""When the ingest received the frame that held the event (UTC ns)."""
SEQ_HEADER = "Algostack-Seq"
"""``<epoch>:<n>``: the message's number on its subject in one publisher run."""
PREV_HEADER = "Algostack-Prev-Seq"
"""The stream sequence of message ``n - 1`` on the subject, when its ack had arrived."""


def seq_of(headers: dict[str, str] | None) -> tuple[str, int] | None:
    """``(epoch, n)`` from a message's ``Algostack-Seq`` header (``None``: absent or malformed)."""
    value = headers.get(SEQ_HEADER) if headers else None
    if not value:
        return None
    epoch, sep, n = value.rpartition(":")
    if not sep or not epoch:
        return None
    try:
        return epoch, int(n)
    except ValueError:
        return None


def recv_ns_of(headers: dict[str, str] | None) -> int:
    """The ingest receive time in ``headers`` (0 when absent or malformed)."""
    if not headers:
        return 0
    value = headers.get(RECV_HEADER)
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


class StreamMissingError(RetryableError):
    """The stream does not exist (yet): the ingest creates ``MARKET``; try again later."""


@dataclass
class BusMessage:
    """A message handed to a subscription's callback."""

    subject: str
    data: bytes
    headers: dict[str, str] | None = None
    reply: str = ""
    stored_ns: int | None = None
    """For JetStream deliveries: when the server stored the message (UTC ns)."""
    stream_seq: int = 0
    """For ``read_history``: the message's sequence in the stream."""


@dataclass
class BusStats:
    """Publish counters: ``published`` and ``duplicates`` count server acks."""

    sent: int = 0
    """JetStream messages handed to the connection (re-sends not counted)."""
    published: int = 0
    """Acked and stored by the stream."""
    duplicates: int = 0
    """Acked as duplicates (dropped by the server's duplicate window)."""
    failed: int = 0
    """Refused by the server (e.g. no stream for the subject)."""
    resent: int = 0
    """Re-sent after an ack timeout or a reconnect."""
    reconnects: int = 0
    """Connections re-established."""
    disconnects: int = 0
    """Connections lost."""


Callback = Callable[[BusMessage], Awaitable[None]]


class Subscription(Protocol):
    """What ``subscribe`` returns."""

    async def unsubscribe(self) -> None:
        """Stop receiving messages."""
        ...


class MarketBus(Protocol):
    """The bus as the ingest, the dashboard and the traders' core-NATS paths use it."""

    url: str
    """Where it is connected, without credentials (for logs)."""
    stats: BusStats

    @property
    def inflight(self) -> int:
        """Stored-message publishes whose ack has not arrived yet."""
        ...

    async def publish_events(
        self, events: Sequence[MarketEvent], *, recv_ns: int | None = None
    ) -> None:
        """Store events in ``MARKET`` (de-duplicated by id, with the headers above)."""
        ...

    async def flush_acks(self, timeout_s: float | None = None) -> None:
        """Wait until every stored-message publish is acked."""
        ...

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish one message that is not stored (trader events, control)."""
        ...

    async def subscribe(self, subject: str, cb: Callback) -> Subscription:
        """Call ``cb`` with every message on ``subject`` (NATS wildcards) from now on."""
        ...

    async def ordered_subscribe(
        self,
        filter_subjects: Sequence[str],
        cb: Callback,
        *,
        start_time: datetime | None = None,
    ) -> Subscription:
        """Replay ``MARKET`` (from ``start_time``, else from its start), then follow it."""
        ...

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Return once everything published so far has reached the server."""
        ...

    def on_gap(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever messages may have been missed (a reconnect)."""
        ...

    async def close(self, timeout_s: float | None = None) -> None:
        """Wait for outstanding acks (bounded) and disconnect."""
        ...


def check_subject(subject: str) -> None:
    """``ValueError`` for a subject NATS would refuse to publish to (empty, or white space)."""
    if not subject or any(c in subject for c in " \t\r\n"):
        raise ValueError(f"invalid NATS subject {subject!r}")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, tok in enumerate(want):
        if tok == ">":
            return len(have) > i
        if i >= len(have) or (tok != "*" and tok != have[i]):
            return False
    return len(have) == len(want)

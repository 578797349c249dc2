"""What the gateway needs after a restart: snapshots appended to one JSON-lines file.

A snapshot is written before intents are acked and before venue orders are placed (so a
restarted gateway knows every batch and its venue client order id, and places nothing
twice), and soon after fills are booked (a lost one costs nothing: the venue's sync books
them again under the same report ids). Each save appends one line (tens of µs: creating
and renaming a file costs ~200 µs here, on the order path); the last complete line wins,
so a save cut short by a crash leaves the one before it; past ``COMPACT_BYTES`` the file
is rewritten to its last line (atomically). Writes reach the page cache at once (a killed
process loses nothing); ``sync()`` fsyncs, from a worker thread, every ``FSYNC_EVERY_S``.
A write that fails (a full disk) leaves whole lines only (``append_whole`` cuts a partial
one back on the spot; the rewrite removes its temporary file) and raises a
``FileWriteError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from algostack.core.atomic_file import replace_file, write_error
from algostack.core.desk_risk import DeskSnapshot
from algostack.core.execution import Execution
from algostack.core.orders import OrderIntent
from algostack.errors import DataError
from algostack.services.journal import append_whole

STATE_NAME = "gateway-state.jsonl"
COMPACT_BYTES = 4_000_000
SEEN_NAME = "gateway-seen.txt"
"""Client order ids of the day already taken or refused, one per line (a re-send is
dropped): appended as each intent arrives, so the state file stays small."""
STATE_VERSION = 1
FSYNC_EVERY_S = 0.5


class BatchRecord(msgspec.Struct, kw_only=True):
    """One batch not finished yet: its intents and everything the venue said of it."""

    batch_id: str
    intents: list[OrderIntent]
    placed: bool = False
    crossed: tuple[float, int] | None = None
    """Price and time of an explicit cross (a batch that nets to zero)."""
    executions: list[Execution] = msgspec.field(default_factory=list)
    close_reason: str | None = None
    venue_cum: int = 0
    venue_value: float = 0.0


class GatewayState(msgspec.Struct, kw_only=True):
    """The gateway's restart state (see the module docstring)."""

    version: int = STATE_VERSION
    day: str = ""
    batch_seq: int = 0
    books: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    """Model -> symbol -> signed shares: what the desk attributed."""
    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Model -> the symbol it trades (from its heartbeats)."""
    open: list[OrderIntent] = msgspec.field(default_factory=list)
    """Intents taken into a batch that had not closed yet."""
    batches: list[BatchRecord] = msgspec.field(default_factory=list)
    desk: DeskSnapshot = msgspec.field(default_factory=DeskSnapshot)
    """The desk's positions, day PnL and day trades (``DeskRisk.snapshot``)."""
    counters: dict[str, int] = msgspec.field(default_factory=dict)


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(GatewayState)


class StateFile:
    """``<dir>/gateway-state.jsonl``: ``load()`` once, ``save(state)`` as often as needed."""

    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        self.path = Path(directory) / STATE_NAME
        self.seen_path = Path(directory) / SEEN_NAME
        self.fsync = fsync
        self._fd: int | None = None
        self._size = 0
        self._seen_fd: int | None = None

    def load_seen(self) -> set[str]:
        """The day's client order ids (a line cut short by a crash is dropped)."""
        try:
            raw = self.seen_path.read_bytes()
        except FileNotFoundError:
            return set()
        lines = raw.split(b"\n")
        return {ln.decode() for ln in lines[:-1] if ln}  # the last piece has no newline

    def append_seen(self, cid: str) -> None:
        """Add one client order id (page cache at once; fsynced by ``sync``)."""
        if self._seen_fd is None:
            try:
                self.seen_path.parent.mkdir(parents=True, exist_ok=True)
                self._seen_fd = os.open(
                    self.seen_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
                )
            except OSError as exc:
                raise write_error(self.seen_path, exc) from exc
        append_whole(self._seen_fd, cid.encode() + b"\n", self.seen_path)

    def clear_seen(self) -> None:
        """A new day: forget the ids."""
        if self._seen_fd is not None:
            os.close(self._seen_fd)
            self._seen_fd = None
        self.seen_path.unlink(missing_ok=True)

    def close(self) -> None:
        """fsync and close both files."""
        self.sync()
        for fd in (self._fd, self._seen_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._seen_fd = None

    def load(self) -> GatewayState | None:
        """The last snapshot, None when there is none; ``DataError`` naming a file that holds
        no readable snapshot (the gateway does not start on a state it cannot read, and a
        restart cannot cure it: exit 2)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        lines = raw.split(b"\n")
        for line in reversed(lines[:-1]):  # the piece after the last newline is cut short
            try:
                state = _DEC.decode(line)
            except msgspec.DecodeError:
                continue
            if state.version != STATE_VERSION:
                raise DataError(
                    f"{self.path}: state version {state.version}, this gateway reads "
                    f"{STATE_VERSION}"
                )
            return state
        if raw.strip():
            raise DataError(
                f"{self.path}: no readable gateway state in it (restore the file, or move it "
                "away to start with empty books)"
            )
        return None

    def save(self, state: GatewayState) -> None:
        """Append ``state`` as the newest snapshot (compacting the file when it is big)."""
        data = _ENC.encode(state) + b"\n"
        if self._fd is None or self._size + len(data) > COMPACT_BYTES:
            self._rewrite(data)
            return
        append_whole(self._fd, data, self.path)
        self._size += len(data)

    def _rewrite(self, data: bytes) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        replace_file(self.path, data, tmp_name=f".{STATE_NAME}.tmp", fsync=self.fsync, mode=0o600)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self._size = len(data)

    def sync(self) -> None:
        """fsync the snapshots and the ids (call from a worker thread)."""
        if not self.fsync:
            return
        for fd in (self._fd, self._seen_fd):
            if fd is not None:
                os.fsync(fd)

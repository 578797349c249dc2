"""What the gateway needs after a restart, in one JSON file replaced atomically.

The file is written before an intent is acked and before a venue order is placed (so a
restarted gateway knows every batch and its venue client order id, and places nothing
twice), and after the reports of an update are stored (so a report is never lost: at
worst it is published again, and its id drops the copy). Writes go to the page cache at
once (a killed process loses nothing) and are fsynced every ``FSYNC_EVERY_S``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from algostack.core.execution import Execution
from algostack.core.orders import OrderIntent

STATE_NAME = "gateway-state.json"
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
    counters: dict[str, int] = msgspec.field(default_factory=dict)


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(GatewayState)


class StateFile:
    """``<dir>/gateway-state.json``: ``load()`` once, ``save(state)`` as often as needed."""

    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        self.path = Path(directory) / STATE_NAME
        self.seen_path = Path(directory) / SEEN_NAME
        self.fsync = fsync
        self._last_sync = 0.0
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
        """Add one client order id (page cache at once; fsynced with the next state save)."""
        if self._seen_fd is None:
            self.seen_path.parent.mkdir(parents=True, exist_ok=True)
            self._seen_fd = os.open(self.seen_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self._seen_fd, cid.encode() + b"\n")

    def clear_seen(self) -> None:
        """A new day: forget the ids."""
        if self._seen_fd is not None:
            os.close(self._seen_fd)
            self._seen_fd = None
        self.seen_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the ids file."""
        if self._seen_fd is not None:
            os.close(self._seen_fd)
            self._seen_fd = None

    def load(self) -> GatewayState | None:
        """The saved state, None when there is none; ``ValueError`` naming a corrupt file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            state = _DEC.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{self.path}: not a gateway state file ({exc})") from None
        if state.version != STATE_VERSION:
            raise ValueError(f"{self.path}: state version {state.version}, expected 1")
        return state

    def save(self, state: GatewayState) -> None:
        """Replace the file with ``state`` (fsynced when the last fsync is old enough)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE_NAME}.tmp")
        data = _ENC.encode(state)
        now = time.monotonic()
        sync = self.fsync and now - self._last_sync >= FSYNC_EVERY_S
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if sync:
            if self._seen_fd is not None:
                os.fsync(self._seen_fd)
            self._last_sync = now

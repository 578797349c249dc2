"""Restart safety for one model: a small fsynced state file, a decision log, the fill journal.

What survives a ``kill -9`` and how a restarted trader uses it (docs/trader.md, "Restart"):

- ``trades_<day>.csv`` (``services.journal.TradeJournal``, one line per fill, fsynced at each
  commit before the state file) is the truth for fills: the position is rebuilt from it, and a
  fill the broker reports again for a client order id already journaled is not booked twice.
- ``.trader-state.json`` is the commit point, replaced atomically (write, fsync, rename,
  fsync the directory): the last decided bar, the stream sequence acked with it, the signal
  direction, the orders still open, and the length of the decision log at that moment.
- ``decisions_<day>.csv``: one line per decided bar, written without fsync; fsynced before
  each commit and cut back to the committed length on start, so a bar decided after the
  last commit (and therefore redelivered by NATS) is logged exactly once.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import msgspec

from algostack.core.atomic_file import replace_file
from algostack.core.orders import Fill, OrderIntent, Side
from algostack.core.portfolio import Position
from algostack.errors import DataError
from algostack.services.journal import COLUMNS, append_whole, trades_file_name

log = logging.getLogger("algostack.trader.state")

STATE_FILE = ".trader-state.json"
STATE_TMP = ".trader-state.tmp"
STATE_VERSION = 1

DECISION_COLUMNS: tuple[str, ...] = (
    "bar_ts",  # bar start, UTC ns
    "close",
    "score",  # ensemble score ("" while warming up)
    "direction",  # signal direction after this bar: -1, 0, 1
    "target_qty",  # signed position risk allows
    "position",  # signed position before the order
    "order_qty",  # signed shares sent to the broker (0: none)
    "client_order_id",
    "status",  # none | warmup | submitted | rejected | duplicate | risk
    "latency_us",  # ingest receive -> decision (0 when the bar carries no receive time)
    "reason",
)
"""Columns of ``decisions_<day>.csv``."""


def decisions_file_name(day: str) -> str:
    """``decisions_<YYYY-MM-DD>.csv``."""
    return f"decisions_{day}.csv"


class PendingOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order sent to the broker and not fully filled at the last commit."""

    intent: OrderIntent
    broker_order_id: str
    latency_us: float = 0.0
    filled_qty: int = 0


class RunnerState(msgspec.Struct, kw_only=True):
    """What a model's runner needs to resume; written at every commit."""

    version: int = STATE_VERSION
    model: str
    day: str = ""
    """New York date (YYYY-MM-DD) of the last decided bar."""
    last_decided_ts: int = 0
    """Start (UTC ns) of the last decided bar; a redelivered bar at or before it only warms."""
    stream_seq: int = 0
    """MARKET stream sequence acked with this commit (the resume point if the durable is lost)."""
    direction: int = 0
    pending: list[PendingOrder] = msgspec.field(default_factory=list)
    decisions_offset: int = 0
    """Bytes of ``decisions_<day>.csv`` that belong to committed bars."""
    broker_seq: int = 0
    """The broker's ``checkpoint()`` at this commit (``Broker.restore`` resumes from it)."""
    killed: bool = False
    bars: int = 0
    decisions: int = 0
    orders: int = 0
    restarts: int = 0
    """``RunnerStats.restarts`` on ``day``."""


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder(RunnerState)


def save_state(dir: Path, state: RunnerState, *, fsync: bool = True) -> None:
    """Replace ``dir/.trader-state.json`` atomically (and durably unless ``fsync=False``)
    through ``.trader-state.tmp``; a failed write leaves the previous state and no temporary
    file, and raises ``FileWriteError``."""
    replace_file(Path(dir) / STATE_FILE, _ENC.encode(state), tmp_name=STATE_TMP, fsync=fsync)


def load_state(dir: Path, model: str) -> RunnerState | None:
    """Read the state file, or ``None`` when there is none; ``DataError`` when unusable."""
    path = Path(dir) / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = _DEC.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(
            f"{path}: unreadable trader state ({exc}); move it away to start from the "
            "journal and the durable consumer alone"
        ) from None
    if state.version != STATE_VERSION:
        raise DataError(f"{path}: state version {state.version}, expected {STATE_VERSION}")
    if state.model != model:
        raise DataError(f"{path}: state of model {state.model!r}, expected {model!r}")
    return state


def carried_position(dir: Path, day: str, symbol: str) -> tuple[int, float]:
    """The position held into ``day`` from the earlier sessions journaled in ``dir``: every
    fill of ``symbol`` in ``trades_<d>.csv`` for ``d`` before ``day``, in order (the first
    journal starts flat); (shares, average entry price), (0, 0.0) when flat."""
    pos = Position(symbol)
    days = sorted(p.name[len("trades_") : -len(".csv")] for p in Path(dir).glob("trades_*.csv"))
    for d in days:
        if d >= day:
            break
        for f in read_journal_fills(dir, d):
            if f.symbol == symbol:
                pos.apply(f.signed_qty, f.price)
    return pos.qty, pos.avg_price if pos.qty else 0.0


def read_journal_fills(dir: Path, day: str) -> list[Fill]:
    """The fills journaled in ``dir/trades_<day>.csv`` (empty when the file does not exist)."""
    path = Path(dir) / trades_file_name(day)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if not text.endswith("\n"):  # a torn last line: TradeJournal cuts it on open
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    if tuple(rows[0]) != COLUMNS:
        raise DataError(f"{path}: unexpected header {rows[0][:4]}...; cannot rebuild position")
    col = {name: i for i, name in enumerate(COLUMNS)}
    fills = []
    for n, row in enumerate(rows[1:], start=2):
        try:
            fills.append(
                Fill(
                    client_order_id=row[col["client_order_id"]],
                    broker_order_id=row[col["broker_order_id"]],
                    model=row[col["model"]],
                    symbol=row[col["symbol"]],
                    side=Side(row[col["side"]]),
                    qty=int(row[col["qty"]]),
                    price=float(row[col["price"]]),
                    ts=int(row[col["ts_ns"]]),
                    commission=float(row[col["commission"]]),
                )
            )
        except (IndexError, ValueError) as exc:
            raise DataError(f"{path}:{n}: malformed fill row ({exc})") from None
    return fills


class DecisionLog:
    """``decisions_<day>.csv``: lines kept in memory by ``append``, written in one
    ``os.write`` by ``write()`` (on the event loop, at each commit) and fsynced by ``sync()``
    (in the commit's worker thread). Lines not yet written are decisions no commit covers:
    after a crash they are decided again anyway."""

    def __init__(self, dir: Path, day: str, *, committed: int | None = None) -> None:
        self.path = Path(dir) / decisions_file_name(day)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.day = day
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if committed is not None and size > committed:
            # Lines past the commit belong to bars NATS will redeliver: drop them.
            os.ftruncate(self._fd, committed)
            log.info(
                "decision log cut back to the last commit",
                extra={"fields": {"file": str(self.path), "bytes_cut": size - committed}},
            )
            size = committed
        self.offset = size
        """Bytes in the file once every appended line is written (what a commit records)."""
        self._unwritten: list[bytes] = []
        # One writer over one buffer for the file's life: a line is written, read, cleared.
        self._buf = io.StringIO()
        self._row = csv.writer(self._buf, lineterminator="\n").writerow
        if size == 0:
            self._write(",".join(DECISION_COLUMNS) + "\n")

    def _write(self, line: str) -> None:
        data = line.encode()
        append_whole(self._fd, data, self.path)
        self.offset += len(data)

    def append(self, values: tuple[object, ...]) -> None:
        """Append one decision line (in memory: ``write`` then ``sync`` make it durable)."""
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._row(values)
        line = buf.getvalue().encode()
        self._unwritten.append(line)
        self.offset += len(line)

    def write(self) -> None:
        """Write every appended line to the file (one system call for all of them)."""
        if not self._unwritten:
            return
        data = b"".join(self._unwritten)
        self._unwritten.clear()
        append_whole(self._fd, data, self.path)

    def sync(self) -> None:
        """fsync what was written so far (call ``write`` first, on the thread that appends)."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Write, fsync and close."""
        if self._fd >= 0:
            self.write()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

"""The market-data archive: the session's bars, updated bars and trading statuses as Parquet.

Layout in the bucket (Hive-style partitions, one tree per kind; docs/data.md)::

    market/<kind>/date=<YYYY-MM-DD>/symbol=<SYMBOL>/part-<nnnnn>.parquet
    market/<kind>/date=<YYYY-MM-DD>/_manifest.json

``<kind>`` is ``bars``, ``updated_bars`` or ``status``; ``<date>`` the New York date of the
event (its trading day); ``<nnnnn>`` the number of the flush within that kind and day (the
symbols written by one flush share it). A part holds one symbol's events of one flush, sorted
by time, without the partition columns (``symbol``, ``date``), as Hive has it.

``ArchiveWriter`` is fed by the ingest as it publishes: ``add()`` only appends the events it
keeps to a list (on the event loop); every ``FLUSH_EVERY_NS`` of event time, or
``FLUSH_EVERY_EVENTS`` events, the list is handed to one writer thread, which writes one part
per symbol through the ``BucketStore`` (atomically) and then the manifest, marked
``complete: false``. ``close()`` writes what is left and marks every day it wrote complete:
a crash leaves readable parts and a manifest saying the day is not complete. Reading:
``algostack.services.archive_reader``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote, unquote

import orjson

from algostack.adapters.storage import BucketStore
from algostack.core.market import NS_PER_MIN, Bar, MarketEvent, TradingStatus, UpdatedBar
from algostack.core.sessions import new_york_date_of_ns, new_york_day_bounds_ns
from algostack.errors import AlgostackError, DataError, service_exit_code

log = logging.getLogger("algostack.archive")

ROOT = "market"
KIND_OF_TYPE: dict[type, str] = {Bar: "bars", UpdatedBar: "updated_bars", TradingStatus: "status"}
"""The events archived, by the kind that names their tree (as their NATS subjects do)."""
KINDS = tuple(KIND_OF_TYPE.values())
MANIFEST = "_manifest.json"
FLUSH_EVERY_NS = 5 * NS_PER_MIN
"""Event time between parts: what a crash of the ingest may lose at most."""
FLUSH_EVERY_EVENTS = 20_000
"""Archived events that make a part sooner (a busy backfill or a fast replay)."""
BAR_FIELDS = ("open", "high", "low", "close", "volume", "trade_count", "vwap")
STATUS_FIELDS = ("status_code", "status_message", "reason_code", "reason_message", "tape")

Item = tuple[MarketEvent, int]
"""An archived event and the wall time (UTC ns) the ingest received it."""


# --- keys ------------------------------------------------------------------------------------


def day_prefix(kind: str, day: date) -> str:
    """``market/<kind>/date=<day>/``: every object of one kind and day."""
    return f"{ROOT}/{kind}/date={day.isoformat()}/"


def manifest_key(kind: str, day: date) -> str:
    """The manifest of one kind and day."""
    return day_prefix(kind, day) + MANIFEST


def part_key(kind: str, day: date, symbol: str, seq: int) -> str:
    """One part: a symbol's events of flush ``seq`` (``/`` in a symbol is escaped)."""
    return f"{day_prefix(kind, day)}symbol={quote(symbol, safe='.')}/part-{seq:05d}.parquet"


@dataclass(frozen=True)
class ArchiveKey:
    """What an archive key names: a manifest (``symbol`` empty, ``seq`` -1) or a part."""

    kind: str
    day: date
    symbol: str = ""
    seq: int = -1

    @property
    def is_part(self) -> bool:
        """True for a part, False for a manifest."""
        return self.seq >= 0


def parse_key(key: str) -> ArchiveKey | None:
    """Parse an archive key; ``None`` for any other key (never an error: other writers may
    share the prefix)."""
    parts = key.split("/")
    if len(parts) not in (4, 5) or parts[0] != ROOT or parts[1] not in KINDS:
        return None
    if not parts[2].startswith("date="):
        return None
    try:
        day = date.fromisoformat(parts[2][5:])
    except ValueError:
        return None
    if len(parts) == 4:
        return ArchiveKey(parts[1], day) if parts[3] == MANIFEST else None
    name = parts[4]
    if not parts[3].startswith("symbol=") or not name.startswith("part-"):
        return None
    if not name.endswith(".parquet") or not name[5:-8].isdigit():
        return None
    return ArchiveKey(parts[1], day, unquote(parts[3][7:]), int(name[5:-8]))


# --- parts -----------------------------------------------------------------------------------


def part_schema(kind: str) -> Any:
    """The Parquet schema of a part of ``kind`` (timestamps in UTC nanoseconds)."""
    import pyarrow as pa

    ts = pa.timestamp("ns", tz="UTC")
    if kind == "status":
        cols = [(f, pa.string()) for f in STATUS_FIELDS]
    else:
        cols = [(f, pa.float64()) for f in BAR_FIELDS]
        cols[BAR_FIELDS.index("trade_count")] = ("trade_count", pa.int64())
    return pa.schema([("timestamp", ts), *cols, ("received", ts)])


def encode_part(kind: str, items: Sequence[Item]) -> bytes:
    """One part's Parquet bytes (zstd) for ``items`` of one symbol, in the given order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = STATUS_FIELDS if kind == "status" else BAR_FIELDS
    columns: dict[str, list[Any]] = {"timestamp": [ev.ts for ev, _ in items]}
    for name in names:
        columns[name] = [getattr(ev, name) for ev, _ in items]
    columns["received"] = [recv for _, recv in items]
    table = pa.Table.from_pydict(columns, schema=part_schema(kind))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def part_times(data: bytes, where: str) -> list[int]:
    """A part's ``timestamp`` column alone (UTC ns, file order): what a range check needs
    without decoding the bars; ``DataError`` naming ``where`` when it is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(pa.BufferReader(data), columns=["timestamp"]).column(0)
        return [int(t) for t in column.cast(pa.int64()).to_pylist()]
    except (pa.ArrowException, OSError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: cannot read Parquet timestamps: {exc}") from exc


def decode_part(kind: str, symbol: str, data: bytes, where: str) -> list[Item]:
    """Events of a part, in file order; ``DataError`` naming ``where`` when it is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
        cols = {
            n: (
                table.column(n).cast(pa.int64()).to_pylist()
                if n in ("timestamp", "received")
                else table.column(n).to_pylist()
            )
            for n in table.column_names
        }
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{where}: cannot read Parquet: {exc}") from exc
    names = STATUS_FIELDS if kind == "status" else BAR_FIELDS
    missing = [n for n in ("timestamp", *names) if n not in cols]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    cls: Any = (
        TradingStatus if kind == "status" else (UpdatedBar if kind == "updated_bars" else Bar)
    )
    received = cols.get("received") or [0] * table.num_rows
    out: list[Item] = []
    for i, ts in enumerate(cols["timestamp"]):
        values = {n: cols[n][i] for n in names}
        if any(v is None for v in values.values()) or ts is None:
            raise DataError(f"{where}: row {i}: empty value")
        out.append((cls(symbol=symbol, ts=ts, **values), received[i] or 0))
    return out


# --- manifests -------------------------------------------------------------------------------


@dataclass
class SymbolDay:
    """One symbol's archived events of one kind and day."""

    rows: int = 0
    first_ts: int = 0
    last_ts: int = 0
    parts: list[int] = field(default_factory=list)
    """The flush numbers of its parts, in order."""


@dataclass
class DayManifest:
    """What a kind's day holds, and whether the ingest that wrote it last finished it."""

    kind: str
    day: date
    complete: bool = False
    symbols: dict[str, SymbolDay] = field(default_factory=dict)

    def add(self, symbol: str, seq: int, items: Sequence[Item]) -> None:
        """Record a part of ``symbol`` holding ``items`` (sorted by time)."""
        sd = self.symbols.setdefault(symbol, SymbolDay(first_ts=items[0][0].ts))
        sd.rows += len(items)
        sd.first_ts = min(sd.first_ts, items[0][0].ts)
        sd.last_ts = max(sd.last_ts, items[-1][0].ts)
        sd.parts.append(seq)

    def to_json(self) -> bytes:
        """The manifest's bytes (symbols sorted)."""
        doc = {
            "kind": self.kind,
            "date": self.day.isoformat(),
            "complete": self.complete,
            "symbols": {
                s: {"rows": d.rows, "first_ts": d.first_ts, "last_ts": d.last_ts, "parts": d.parts}
                for s, d in sorted(self.symbols.items())
            },
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str) -> DayManifest:
        """Parse a manifest; ``DataError`` naming ``where`` and the field when it is bad."""
        try:
            doc = orjson.loads(data)
            out = cls(str(doc["kind"]), date.fromisoformat(doc["date"]), bool(doc["complete"]))
            for sym, d in doc["symbols"].items():
                out.symbols[sym] = SymbolDay(
                    int(d["rows"]),
                    int(d["first_ts"]),
                    int(d["last_ts"]),
                    [int(p) for p in d["parts"]],
                )
        except orjson.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: bad manifest field {exc}") from None
        return out


# --- the writer ------------------------------------------------------------------------------


@dataclass
class ArchiveStats:
    """Counters of the archive writer (logged with the ingest's)."""

    archived: int = 0
    """Events written in parts."""
    parts: int = 0
    duplicates: int = 0
    """Events dropped because their kind, symbol and time were archived already (a re-send)."""
    failed_writes: int = 0
    """Writes that failed (their events are tried again at the next flush)."""
    last_error: str = ""
    """The last failed write, one line naming the key or file and the error."""
    last_exit_code: int = 0
    """``errors.service_exit_code`` of the last failed write (3: a full disk, no restart)."""
    complete: bool = False
    """True once ``close()`` wrote every event and marked every day complete."""


@dataclass
class _DayState:
    manifest: DayManifest
    next_seq: int
    seen: dict[str, set[int]] = field(default_factory=dict)
    floor: dict[str, int] = field(default_factory=dict)
    """Per symbol, the last time archived before this writer started (a restarted ingest)."""
    dirty: bool = False


class ArchiveWriter:
    """Buffer archived events on the event loop and write them as parts in one thread."""

    def __init__(
        self,
        store: BucketStore,
        *,
        flush_every_ns: int = FLUSH_EVERY_NS,
        flush_every_events: int = FLUSH_EVERY_EVENTS,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.flush_every_ns = flush_every_ns
        self.flush_every_events = flush_every_events
        self.stats = ArchiveStats()
        self._wall_ns = wall_ns
        self._buf: list[Item] = []
        self._flush_at = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")
        self._closed = False
        # Touched by the writer thread only:
        self._days: dict[tuple[str, date], _DayState] = {}
        self._unwritten: list[Item] = []
        self._bounds = (0, 0, date(1970, 1, 1))

    def add(self, batch: Sequence[MarketEvent], recv_ns: int = 0) -> None:
        """Keep the batch's bars, updated bars and statuses (the hot path: appends only)."""
        buf = self._buf
        n = len(buf)
        kinds = KIND_OF_TYPE
        for ev in batch:
            if type(ev) in kinds:
                buf.append((ev, recv_ns))
        if len(buf) == n:
            return
        if n == 0:
            self._flush_at = buf[0][0].ts + self.flush_every_ns
        if buf[-1][0].ts >= self._flush_at or len(buf) >= self.flush_every_events:
            self.flush()

    def flush(self) -> None:
        """Hand the buffer to the writer thread (returns at once)."""
        if self._buf and not self._closed:
            items, self._buf = self._buf, []
            self._pool.submit(self._write, items, False)

    async def drain(self) -> None:
        """Wait until the writer thread has written everything handed to it so far."""
        if not self._closed:
            await asyncio.wrap_future(self._pool.submit(lambda: None))

    async def close(self, *, complete: bool = True) -> bool:
        """Write what is buffered and, with ``complete``, mark every day written complete.
        Returns True when everything was written (and marked). A second call does nothing."""
        if self._closed:
            return self.stats.complete
        self._closed = True
        items, self._buf = self._buf, []
        future = self._pool.submit(self._write, items, complete)
        try:
            return await asyncio.wrap_future(future)
        finally:
            self._pool.shutdown(wait=False)

    # -- the writer thread --

    def _day_of(self, ts: int) -> date:
        lo, hi, day = self._bounds
        if not lo <= ts < hi:
            day = new_york_date_of_ns(ts)
            lo, hi = new_york_day_bounds_ns(day)
            self._bounds = (lo, hi, day)
        return day

    def _state(self, kind: str, day: date) -> _DayState:
        """The state of a kind's day: on first use, what the bucket holds already (a restarted
        ingest continues the day: next flush number, no event archived twice)."""
        state = self._days.get((kind, day))
        if state is not None:
            return state
        store = self.store
        mkey = manifest_key(kind, day)
        keys = [k for k in store.list_keys(day_prefix(kind, day))]
        manifest = (
            DayManifest.from_json(store.get_bytes(mkey), f"{store.url}/{mkey}")
            if mkey in keys
            else DayManifest(kind, day)
        )
        listed = {(s, p) for s, d in manifest.symbols.items() for p in d.parts}
        seqs = [-1]
        for key in keys:
            ak = parse_key(key)
            if ak is None or not ak.is_part:
                continue
            seqs.append(ak.seq)
            if (ak.symbol, ak.seq) not in listed:  # written just before a crash: adopt it
                items = decode_part(kind, ak.symbol, store.get_bytes(key), f"{store.url}/{key}")
                if items:
                    items.sort(key=lambda it: it[0].ts)
                    manifest.add(ak.symbol, ak.seq, items)
        for sd in manifest.symbols.values():
            sd.parts.sort()
        manifest.complete = False
        state = _DayState(manifest, max(seqs) + 1)
        state.floor = {s: d.last_ts for s, d in manifest.symbols.items()}
        self._days[(kind, day)] = state
        return state

    def _write(self, items: list[Item], complete: bool) -> bool:
        items = self._unwritten + items
        self._unwritten = []
        groups: dict[tuple[str, date, str], list[Item]] = {}
        for it in items:
            ev = it[0]
            group_key = (KIND_OF_TYPE[type(ev)], self._day_of(ev.ts), ev.symbol)
            groups.setdefault(group_key, []).append(it)
        used: set[tuple[str, date]] = set()
        for (kind, day, symbol), group in groups.items():
            try:
                state = self._state(kind, day)
            except AlgostackError as exc:
                self._failed(f"{self.store.url}/{day_prefix(kind, day)}", exc)
                self._unwritten.extend(group)
                continue
            fresh = self._fresh(state, symbol, group)
            if not fresh:
                continue
            key = part_key(kind, day, symbol, state.next_seq)
            try:
                self.store.put_bytes(key, encode_part(kind, fresh))
            except AlgostackError as exc:
                self._failed(f"{self.store.url}/{key}", exc)
                self._unwritten.extend(fresh)
                continue
            state.seen.setdefault(symbol, set()).update(ev.ts for ev, _ in fresh)
            state.manifest.add(symbol, state.next_seq, fresh)
            state.dirty = True
            used.add((kind, day))
            self.stats.archived += len(fresh)
            self.stats.parts += 1
        for kind_day in used:
            self._days[kind_day].next_seq += 1
        ok = not self._unwritten
        for state in self._days.values():
            if complete and ok:
                state.manifest.complete, state.dirty = True, True
            if state.dirty:
                ok = self._put_manifest(state) and ok
        if complete:
            self.stats.complete = ok
            if not ok:
                log.error(
                    "archive not complete: %d event(s) not written (last error: %s)",
                    len(self._unwritten),
                    self.stats.last_error or "none",
                    extra={"fields": {"store": self.store.url}},
                )
        return ok

    def _fresh(self, state: _DayState, symbol: str, group: list[Item]) -> list[Item]:
        """The group's events not archived yet, sorted by time (first one of a time wins,
        as the bus's de-duplication keeps the first)."""
        seen = state.seen.get(symbol, set())
        floor = state.floor.get(symbol, -1)
        fresh: dict[int, Item] = {}
        for it in group:
            ts = it[0].ts
            if ts <= floor or ts in seen or ts in fresh:
                self.stats.duplicates += 1
                continue
            fresh[ts] = it
        return [fresh[ts] for ts in sorted(fresh)]

    def _put_manifest(self, state: _DayState) -> bool:
        m = state.manifest
        key = manifest_key(m.kind, m.day)
        try:
            self.store.put_bytes(key, m.to_json())
        except AlgostackError as exc:
            self._failed(f"{self.store.url}/{key}", exc)
            return False
        state.dirty = False
        return True

    def _failed(self, where: str, exc: Exception) -> None:
        self.stats.failed_writes += 1
        self.stats.last_exit_code = service_exit_code(exc)
        text = str(exc)
        # a write error names its file already (``cannot write <path>: <error>``)
        self.stats.last_error = text if text.startswith("cannot write") else f"{where}: {text}"
        log.error(
            "archive write failed (tried again at the next flush): %s",
            self.stats.last_error,
            extra={"fields": {"store": self.store.url}},
        )

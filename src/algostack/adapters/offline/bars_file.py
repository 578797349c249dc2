"""Replay minute bars from a CSV or Parquet file, as fast as possible or paced.

The file is read twice, never held: building the source reads it once to check it, so bad
input is reported before anything connects (with ``strict=True`` the first bad row raises a
``DataError``), keeping only per-symbol state (the last timestamp, the counts); ``stream()``
(or ``bars()``) reads it again, ``BATCH_ROWS`` rows at a time, and yields one batch per
timestamp, symbols merged by time. A file in time order is merged as it is read; a file
sorted by symbol then time is merged with one cursor per symbol (each reads the file and
parses only its symbol's rows). Memory does not grow with the file's length. Columns,
timestamps and what makes a row bad: docs/ingest.md, "Replay files".
"""

from __future__ import annotations

import asyncio
import csv
import heapq
import itertools
import logging
import math
import operator
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algostack.adapters.offline.pacing import Pacer
from algostack.adapters.offline.synthetic import check_speed, validate_symbols
from algostack.core.market import NS_PER_S, Bar, MarketEvent, datetime_to_ts, ts_to_datetime
from algostack.core.market import validate_symbol as _validate_symbol
from algostack.core.source import SourceStats
from algostack.errors import DataError

log = logging.getLogger("algostack.offline.replay")
ROWS_LOGGED = 3
"""Refused rows logged one by one; the others are counted and summed up in one line."""
PROBLEMS_KEPT = 100
"""Refused rows whose message ``problems`` keeps; past it they are only counted."""
BATCH_ROWS = 1024
"""Rows read from a Parquet file at a time (a CSV file is read line by line)."""

REQUIRED = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
OPTIONAL = ("trade_count", "vwap")
_FIELDS = (*REQUIRED, *OPTIONAL)
_PARQUET = (".parquet", ".pq")

Row = tuple[Any, ...]
"""The values of ``REQUIRED + OPTIONAL`` in one file row (``None`` for a missing column)."""


def parse_timestamp(value: Any) -> int:
    """Parse ISO 8601 text, a datetime or integer epoch nanoseconds into UTC nanoseconds."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return datetime_to_ts(dt)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor epoch nanoseconds") from None
    return datetime_to_ts(dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC))


def _number(raw: Any, col: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{col}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{col}={raw!r} is not finite")
    return value


class _RowParser:
    """Turns ``Row`` values into a ``Bar`` (``ValueError`` says what is wrong), remembering
    the symbols already validated and the previous row's timestamp text: in a file of N
    symbols N rows in a row share one timestamp."""

    def __init__(self) -> None:
        self._symbols: set[str] = set()
        self._ts_text = ""
        self._ts = 0

    def __call__(self, row: Row) -> Bar:
        raw_symbol, raw_ts, raw_o, raw_h, raw_lo, raw_c, raw_v, tc_raw, vw_raw = row
        symbol = str(raw_symbol or "").strip()
        if symbol not in self._symbols:
            _validate_symbol(symbol)
            if len(self._symbols) < 4096:
                self._symbols.add(symbol)
        if type(raw_ts) is str and raw_ts == self._ts_text and raw_ts:
            ts = self._ts
        else:
            ts = parse_timestamp(raw_ts)
            if type(raw_ts) is str:
                self._ts_text, self._ts = raw_ts, ts
        o = _number(raw_o, "open")
        h = _number(raw_h, "high")
        lo = _number(raw_lo, "low")
        c = _number(raw_c, "close")
        volume = _number(raw_v, "volume")
        if h < lo or not (lo <= o <= h and lo <= c <= h):
            raise ValueError(f"inconsistent prices open={o} high={h} low={lo} close={c}")
        if volume < 0 or min(o, h, lo, c) <= 0:
            raise ValueError("prices must be positive and volume not negative")
        trade_count = int(_number(tc_raw, "trade_count")) if tc_raw not in (None, "") else 0
        vwap = _number(vw_raw, "vwap") if vw_raw not in (None, "") else 0.0
        return Bar(
            symbol=symbol,
            ts=ts,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=volume,
            trade_count=trade_count,
            vwap=vwap,
        )


def parse_row(row: dict[str, Any]) -> Bar:
    """Turn one file row into a ``Bar``; ``ValueError`` says what is wrong with it."""
    return _RowParser()(tuple(row.get(f) for f in _FIELDS))


def _columns(path: Path) -> list[str]:
    """The file's column names (its CSV header or Parquet schema); nothing else is read."""
    if path.suffix.lower() in _PARQUET:
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: cannot read Parquet: {exc}") from exc
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: unknown format {path.suffix!r}: use .csv or .parquet")
    with path.open(newline="", encoding="utf-8") as handle:
        return [c.strip() for c in next(csv.reader(handle), [])]


def _rows(path: Path, columns: Sequence[str]) -> Iterator[Row]:
    """The file's rows as ``Row`` tuples, read as they are consumed (the file is opened on the
    first ``next`` and closed at the end or when the iterator is closed)."""
    at = {name: i for i, name in enumerate(columns)}  # a repeated name: the last wins
    if path.suffix.lower() in _PARQUET:
        yield from _parquet_rows(path, [f for f in _FIELDS if f in at])
        return
    idx = [at.get(f) for f in _FIELDS]
    width = len(columns)
    get = operator.itemgetter(*(i if i is not None else 0 for i in idx))
    complete = None not in idx

    def pick(rec: list[str]) -> Row:
        return tuple(rec[i] if i is not None and i < len(rec) else None for i in idx)

    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # the header
        for rec in reader:
            if not rec:
                continue  # a blank line is no row (as csv.DictReader has it)
            yield get(rec) if complete and len(rec) >= width else pick(rec)


def _parquet_rows(path: Path, present: list[str]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=present)
        for batch in batches:
            cols = {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
            none = [None] * batch.num_rows
            yield from zip(*(cols.get(f, none) for f in _FIELDS), strict=True)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: cannot read Parquet: {exc}") from exc


class ReplaySource:
    """Offline ``MarketSource`` over a bar file; see the module docstring for the rules."""

    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        speed: float | None = None,
        symbols: Sequence[str] | None = None,
        strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.speed = check_speed(speed)
        self.symbols = validate_symbols(symbols) if symbols is not None else None
        self.strict = strict
        self.stats = SourceStats()
        self.problems: list[str] = []
        """The first ``PROBLEMS_KEPT`` refused rows (``stats.malformed`` counts them all)."""
        self._clock = clock
        self._pacer = Pacer(sleep)
        self._wall_ns = wall_ns
        self.last_recv_ns = 0
        """Wall time (UTC ns) the batch just yielded was produced."""
        self._resume_after: int | None = None
        """Skip bars at or before this time (``resume_after``); ``None``: skip nothing (a
        negative timestamp is a bar before 1970, not a marker)."""
        self.bar_count = 0
        """Bars that passed the checks (what ``stream()`` will yield)."""
        self.file_symbols: list[str] = []
        """Symbols with at least one bar that passed, in the order the file first has them."""
        self.first_ts: int | None = None
        """The earliest timestamp of a bar that passed (``None``: no bar did)."""
        self.in_time_order = True
        """True when the bars that passed are in time order across symbols (one cursor)."""
        self._columns: list[str] = []
        self._check()

    def resume_after(self, ts_ns: int) -> None:
        """Skip the timestamps at or before ``ts_ns`` (already on the bus)."""
        self._resume_after = ts_ns

    def _problem(self, row_no: int, reason: str) -> None:
        msg = f"{self.path} row {row_no}: {reason}"
        if self.strict:
            raise DataError(msg)
        self.stats.malformed += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(msg)
        if self.stats.malformed <= ROWS_LOGGED:  # the rest are counted, then summed up once
            log.warning("replay row skipped: %s", msg, extra={"fields": {"file": str(self.path)}})

    def _accept(
        self, *, symbol: str | None = None, check: bool = False
    ) -> Iterator[tuple[int, Bar]]:
        """The bars of the file that pass the rules, with their row numbers, read as consumed.

        ``symbol`` keeps one symbol's rows (the others are not parsed); ``check`` records the
        refused rows (the first pass). Every pass applies the same rules to the same rows, so
        every pass refuses the same rows.
        """
        parse = _RowParser()
        wanted = set(self.symbols) if self.symbols is not None else None
        last: dict[str, int] = {}
        # Row numbers count the header as row 1 in CSV, like a spreadsheet.
        first_row = 2 if self.path.suffix.lower() == ".csv" else 1
        rows = _rows(self.path, self._columns)
        try:
            for row_no, row in enumerate(rows, start=first_row):
                if symbol is not None and str(row[0] or "").strip() != symbol:
                    continue
                if check:
                    self._rows_read += 1
                try:
                    bar = parse(row)
                except ValueError as exc:
                    if check:
                        self._problem(row_no, str(exc))
                    continue
                if wanted is not None and bar.symbol not in wanted:
                    continue
                prev = last.get(bar.symbol)
                if prev is not None and bar.ts <= prev:
                    if check:
                        self._backwards += 1
                        self._problem(
                            row_no,
                            f"{bar.symbol} timestamp {ts_to_datetime(bar.ts).isoformat()} does "
                            f"not increase (previous {ts_to_datetime(prev).isoformat()})",
                        )
                    continue
                last[bar.symbol] = bar.ts
                yield row_no, bar
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot parse: {exc}") from exc
        finally:
            rows.close()  # type: ignore[attr-defined]

    def _check(self) -> None:
        """The first pass: every rule on every row, keeping per-symbol state only."""
        if not self.path.is_file():
            raise DataError(f"{self.path}: replay file not found")
        try:
            columns = _columns(self.path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{self.path}: cannot read: {exc}") from exc
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise DataError(
                f"{self.path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(REQUIRED)}[, {', '.join(OPTIONAL)}]"
            )
        self._columns = columns
        self._rows_read = self._backwards = 0
        seen: dict[str, None] = {}
        count, prev_ts, first_ts, in_order = 0, -(2**63), None, True
        for _row_no, bar in self._accept(check=True):
            count += 1
            if bar.ts < prev_ts:
                in_order = False
            else:
                prev_ts = bar.ts
            if first_ts is None or bar.ts < first_ts:
                first_ts = bar.ts
            if bar.symbol not in seen:
                seen[bar.symbol] = None
        bad = self.stats.malformed
        if bad > ROWS_LOGGED:
            log.warning(
                "replay rows skipped: %d in all (the first %d are logged above)",
                bad,
                ROWS_LOGGED,
                extra={"fields": {"file": str(self.path)}},
            )
        if self._backwards * 2 > self._rows_read:  # not a few bad rows: not in time order
            raise DataError(
                f"{self.path}: {self._backwards} of {self._rows_read} rows go back in time "
                "within their symbol: sort the file by timestamp (per symbol) and try again"
            )
        self.bar_count, self.first_ts, self.in_time_order = count, first_ts, in_order
        self.file_symbols = list(seen)

    def iter_batches(self) -> Iterator[list[Bar]]:
        """Read the file again and yield one batch per timestamp, in time order (no pacing,
        no counters: what ``stream()`` paces). Holds one batch and one read buffer."""
        if self.in_time_order:
            bars: Iterator[tuple[int, Bar]] = self._accept()
        else:  # sorted per symbol only: one cursor per symbol, merged by (time, row)
            cursors = [self._accept(symbol=s) for s in self.file_symbols]
            bars = heapq.merge(*cursors, key=lambda rb: (rb[1].ts, rb[0]))
        after = self._resume_after
        batch: list[Bar] = []
        ts = None
        for _row_no, bar in bars:
            if after is not None and bar.ts <= after:
                continue
            if bar.ts != ts:
                if batch:
                    yield batch
                batch, ts = [bar], bar.ts
            else:
                batch.append(bar)
        if batch:
            yield batch

    def bars(self) -> Iterator[Bar]:
        """Every bar that passed, in time order (symbols merged), read as consumed."""
        for batch in self.iter_batches():
            yield from batch

    async def aclose(self) -> None:
        """Stop: ``stream()`` ends before its next batch (a paced wait is cut short)."""
        self._pacer.close()

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        """Yield one batch per timestamp, in time order, until the file ends or ``aclose()``."""
        first_ts = 0
        started = 0.0
        for i, batch in enumerate(self.iter_batches()):
            if self._pacer.closed.is_set():
                return
            if i == 0:
                first_ts, started = batch[0].ts, self._clock()
            if self.speed is not None:
                due = started + (batch[0].ts - first_ts) / NS_PER_S / self.speed
                await self._pacer.pause(due - self._clock())
                if self._pacer.closed.is_set():
                    return
            elif i % 64 == 63:
                await asyncio.sleep(0)
            self.stats.received += len(batch)
            for bar in batch:
                self.stats.last_bar_ts[bar.symbol] = bar.ts
            self.last_recv_ns = self._wall_ns()
            yield batch


def _iso_or_ns(ts: int) -> str:
    if ts % 1_000:
        return str(ts)  # sub-microsecond: ISO text would lose it
    return ts_to_datetime(ts).isoformat().replace("+00:00", "Z")


def _record(b: Bar) -> dict[str, Any]:
    return {
        "symbol": b.symbol,
        "timestamp": b.ts,
        "open": b.open,
        "high": b.high,
        "low": b.low,
        "close": b.close,
        "volume": b.volume,
        "trade_count": b.trade_count,
        "vwap": b.vwap,
    }


def write_bars(path: Path, bars: Iterable[Bar]) -> int:
    """Write bars to ``path`` (.csv or .parquet) in the replay format; return the row count.

    ``bars`` is consumed as it is written (``BATCH_ROWS`` at a time for Parquet), so a
    generator of any length writes in bounded memory.
    """
    path = Path(path)
    if path.suffix.lower() in _PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _parquet_schema(pa)
        n = 0
        with pq.ParquetWriter(path, schema) as writer:
            it = iter(bars)
            while chunk := [_record(b) for b in itertools.islice(it, BATCH_ROWS)]:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                n += len(chunk)
            if n == 0:
                writer.write_table(schema.empty_table())
        return n
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: unknown format {path.suffix!r}: use .csv or .parquet")
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(_FIELDS))
        writer.writeheader()
        for b in bars:
            row = _record(b)
            row["timestamp"] = _iso_or_ns(b.ts)
            writer.writerow(row)
            n += 1
    return n


def _parquet_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("symbol", pa.string()),
            ("timestamp", pa.int64()),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("trade_count", pa.int64()),
            ("vwap", pa.float64()),
        ]
    )

"""Replay minute bars from a CSV or Parquet file, as fast as possible or paced.

The whole file is read and checked when the source is built, so bad input is reported before
anything connects (with ``strict=True`` the first bad row raises a ``DataError``); ``stream()``
yields one batch per timestamp, symbols merged by time. Columns, timestamps and what makes a
row bad: docs/ingest.md, "Replay files".
"""

from __future__ import annotations

import asyncio
import csv
import logging
import math
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

REQUIRED = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
OPTIONAL = ("trade_count", "vwap")
_PARQUET = (".parquet", ".pq")


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


def _number(row: dict[str, Any], col: str) -> float:
    raw = row.get(col)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{col}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{col}={raw!r} is not finite")
    return value


def parse_row(row: dict[str, Any]) -> Bar:
    """Turn one file row into a ``Bar``; ``ValueError`` says what is wrong with it."""
    symbol = _validate_symbol(str(row.get("symbol") or "").strip())
    ts = parse_timestamp(row.get("timestamp"))
    o, h, lo, c = (_number(row, k) for k in ("open", "high", "low", "close"))
    volume = _number(row, "volume")
    if h < lo or not (lo <= o <= h and lo <= c <= h):
        raise ValueError(f"inconsistent prices open={o} high={h} low={lo} close={c}")
    if volume < 0 or min(o, h, lo, c) <= 0:
        raise ValueError("prices must be positive and volume not negative")
    tc_raw = row.get("trade_count")
    vw_raw = row.get("vwap")
    trade_count = int(_number(row, "trade_count")) if tc_raw not in (None, "") else 0
    vwap = _number(row, "vwap") if vw_raw not in (None, "") else 0.0
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


def _read_rows(path: Path) -> tuple[list[str], Iterator[dict[str, Any]]]:
    if path.suffix.lower() in _PARQUET:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise DataError(f"{path}: cannot read Parquet: {exc}") from exc
        return list(table.column_names), iter(table.to_pylist())
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: unknown format {path.suffix!r}: use .csv or .parquet")
    handle = path.open(newline="", encoding="utf-8")
    reader = csv.DictReader(handle)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns

    def rows() -> Iterator[dict[str, Any]]:
        with handle:
            yield from reader

    return columns, rows()


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
        self._clock = clock
        self._pacer = Pacer(sleep)
        self._wall_ns = wall_ns
        self.last_recv_ns = 0
        """Wall time (UTC ns) the batch just yielded was produced."""
        self.batches: list[list[MarketEvent]] = self._load()
        self._resume_after = -1

    def resume_after(self, ts_ns: int) -> None:
        """Skip the timestamps at or before ``ts_ns`` (already on the bus)."""
        self._resume_after = ts_ns

    def _problem(self, row_no: int, reason: str) -> None:
        msg = f"{self.path} row {row_no}: {reason}"
        if self.strict:
            raise DataError(msg)
        self.problems.append(msg)
        self.stats.malformed += 1
        if len(self.problems) <= ROWS_LOGGED:  # the rest are counted, then summed up once
            log.warning("replay row skipped: %s", msg, extra={"fields": {"file": str(self.path)}})

    def _load(self) -> list[list[MarketEvent]]:
        if not self.path.is_file():
            raise DataError(f"{self.path}: replay file not found")
        try:
            columns, rows = _read_rows(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot read: {exc}") from exc
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise DataError(
                f"{self.path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(REQUIRED)}[, {', '.join(OPTIONAL)}]"
            )
        wanted = set(self.symbols) if self.symbols is not None else None
        last: dict[str, int] = {}
        by_ts: dict[int, list[MarketEvent]] = {}
        total = backwards = 0
        try:
            # Row numbers count the header as row 1 in CSV, like a spreadsheet.
            first_row = 2 if self.path.suffix.lower() == ".csv" else 1
            for row_no, row in enumerate(rows, start=first_row):
                total += 1
                try:
                    bar = parse_row(row)
                except ValueError as exc:
                    self._problem(row_no, str(exc))
                    continue
                if wanted is not None and bar.symbol not in wanted:
                    continue
                prev = last.get(bar.symbol)
                if prev is not None and bar.ts <= prev:
                    backwards += 1
                    self._problem(
                        row_no,
                        f"{bar.symbol} timestamp {ts_to_datetime(bar.ts).isoformat()} does not "
                        f"increase (previous {ts_to_datetime(prev).isoformat()})",
                    )
                    continue
                last[bar.symbol] = bar.ts
                by_ts.setdefault(bar.ts, []).append(bar)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot parse: {exc}") from exc
        bad = len(self.problems)
        if bad > ROWS_LOGGED:
            log.warning(
                "replay rows skipped: %d in all (the first %d are logged above)",
                bad,
                ROWS_LOGGED,
                extra={"fields": {"file": str(self.path)}},
            )
        if backwards * 2 > total:  # not a few bad rows: the file is not in time order
            raise DataError(
                f"{self.path}: {backwards} of {total} rows go back in time within their "
                "symbol: sort the file by timestamp (per symbol) and try again"
            )
        return [by_ts[ts] for ts in sorted(by_ts)]

    @property
    def bar_count(self) -> int:
        """Bars that passed the checks (what ``stream()`` will yield)."""
        return sum(len(b) for b in self.batches)

    async def aclose(self) -> None:
        """Stop: ``stream()`` ends before its next batch (a paced wait is cut short)."""
        self._pacer.close()

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        """Yield one batch per timestamp, in time order, until the file ends or ``aclose()``."""
        after = self._resume_after
        batches = self.batches if after < 0 else [b for b in self.batches if b[0].ts > after]
        if not batches:
            return
        first_ts = batches[0][0].ts
        started = self._clock()
        for i, batch in enumerate(batches):
            if self._pacer.closed.is_set():
                return
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


def write_bars(path: Path, bars: Iterable[Bar]) -> int:
    """Write bars to ``path`` (.csv or .parquet) in the replay format; return the row count."""
    path = Path(path)
    rows = [
        {
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
        for b in bars
    ]
    columns = [*REQUIRED, *OPTIONAL]
    if path.suffix.lower() in _PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=_parquet_schema(pa)) if rows else None
        if table is None:
            table = pa.table({c: [] for c in columns}, schema=_parquet_schema(pa))
        pq.write_table(table, path)
        return len(rows)
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: unknown format {path.suffix!r}: use .csv or .parquet")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            row["timestamp"] = _iso_or_ns(int(str(row["timestamp"])))
            writer.writerow(row)
    return len(rows)


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

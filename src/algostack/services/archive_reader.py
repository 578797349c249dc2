"""Reading the market-data archive (layout: ``algostack.services.archive``, docs/data.md).

``scan`` says what days, kinds and symbols the bucket holds and whether each day is complete
(its manifest marked complete and listing every part present); ``read_bars`` reads one day's
bars of some symbols in time order, checking what a reader must be able to trust: no part
out of order, no bar twice (across parts), no bar outside its day's partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from algostack.adapters.storage import BucketStore
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts, ts_to_datetime
from algostack.core.sessions import (
    NEW_YORK,
    new_york_date_of_ns,
    new_york_day_bounds_ns,
    session,
)
from algostack.errors import AlgostackError, DataError
from algostack.services.archive import (
    KINDS,
    ROOT,
    DayManifest,
    day_prefix,
    decode_part,
    manifest_key,
    parse_key,
    part_times,
)


@dataclass
class SymbolListing:
    """One symbol of a listed day: events (rows) and the keys of its parts."""

    rows: int = 0
    parts: list[str] = field(default_factory=list)


@dataclass
class DayListing:
    """One kind's day as the bucket holds it."""

    kind: str
    day: date
    complete: bool
    problem: str
    """Why the day is not complete ('' when it is)."""
    symbols: dict[str, SymbolListing] = field(default_factory=dict)
    short: str = ""
    """For bars: why a finished day ends before its session's last minute ('' when it does
    not), e.g. a local run stopped mid-session. The day is what the desk saw, so it stays
    complete; readers say it (``data list``, a replay's notes)."""

    @property
    def rows(self) -> int:
        """Events of every symbol."""
        return sum(s.rows for s in self.symbols.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``algostack data list --json`` prints)."""
        return {
            "date": self.day.isoformat(),
            "kind": self.kind,
            "complete": self.complete,
            "problem": self.problem,
            "short": self.short,
            "rows": self.rows,
            "symbols": {
                s: {"rows": v.rows, "parts": len(v.parts)} for s, v in sorted(self.symbols.items())
            },
        }


def _part_rows(store: BucketStore, key: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(pa.BufferReader(store.get_bytes(key))).num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{store.url}/{key}: cannot read Parquet: {exc}") from exc


def scan(
    store: BucketStore, *, day: date | None = None, kind: str | None = None
) -> list[DayListing]:
    """Every archived (kind, day), sorted by day then kind; only ``day``/``kind`` when given.

    Rows come from the manifest; a part the manifest does not list (written after it, by an
    ingest that did not finish) is read for its row count and makes the day incomplete.
    """
    if kind is not None and day is not None:
        prefixes = [day_prefix(kind, day)]
    elif kind is not None:
        prefixes = [f"{ROOT}/{kind}/"]
    else:
        prefixes = [f"{ROOT}/{k}/" + (f"date={day.isoformat()}/" if day else "") for k in KINDS]
    found: dict[tuple[str, date], list[tuple[str, Any]]] = {}
    for prefix in prefixes:
        for key in store.list_keys(prefix):
            ak = parse_key(key)
            if ak is not None:
                found.setdefault((ak.kind, ak.day), []).append((key, ak))
    out = []
    for (k, d), entries in sorted(found.items(), key=lambda kv: (kv[0][1], KINDS.index(kv[0][0]))):
        out.append(_listing(store, k, d, entries))
    return out


def _listing(
    store: BucketStore, kind: str, day: date, entries: list[tuple[str, Any]]
) -> DayListing:
    mkey = manifest_key(kind, day)
    parts = sorted(((ak.symbol, ak.seq), key) for key, ak in entries if ak.is_part)
    has_manifest = any(not ak.is_part for _, ak in entries)
    manifest = (
        DayManifest.from_json(store.get_bytes(mkey), f"{store.url}/{mkey}")
        if has_manifest
        else None
    )
    listed = {(s, p): d for s, d in manifest.symbols.items() for p in d.parts} if manifest else {}
    listing = DayListing(kind, day, False, "")
    unlisted = 0
    for (symbol, seq), key in parts:
        sl = listing.symbols.setdefault(symbol, SymbolListing())
        sl.parts.append(key)
        if (symbol, seq) not in listed:
            unlisted += 1
            sl.rows += _part_rows(store, key)
    if manifest is not None:
        for symbol, sd in manifest.symbols.items():
            listing.symbols.setdefault(symbol, SymbolListing()).rows += sd.rows
    present = {sp for sp, _ in parts}
    missing = [f"{s}/part-{p:05d}" for s, p in sorted(listed) if (s, p) not in present]
    if manifest is None:
        listing.problem = "no completion marker (no manifest): the ingest did not finish it"
    elif missing:
        listing.problem = f"manifest lists {len(missing)} part(s) that are missing: {missing[0]}"
    elif not manifest.complete:
        listing.problem = "not marked complete: the ingest that wrote it did not finish"
    elif unlisted:
        listing.problem = f"{unlisted} part(s) written after the completion marker"
    listing.complete = not listing.problem
    if kind == "bars" and manifest is not None and manifest.symbols:
        listing.short = _short_day(day, max(sd.last_ts for sd in manifest.symbols.values()))
    return listing


def _short_day(day: date, last_ts: int) -> str:
    """'' when a bar of the session's last minute was archived, else what the day lacks."""
    s = session(day)
    if s is None:
        return ""
    last_minute = datetime_to_ts(s.close) - NS_PER_MIN
    if last_ts >= last_minute:
        return ""
    return (
        f"{day} ends at {_ny_minute(last_ts)} New York, before the session's last minute "
        f"{_ny_minute(last_minute)} (the ingest stopped early)"
    )


def _ny_minute(ts: int) -> str:
    return ts_to_datetime(ts).astimezone(NEW_YORK).strftime("%H:%M")


def _iso(ts: int) -> str:
    return ts_to_datetime(ts).isoformat().replace("+00:00", "Z")


def read_bars(
    store: BucketStore,
    day: date,
    *,
    symbols: Sequence[str] | None = None,
    partial: bool = False,
    listing: DayListing | None = None,
) -> list[Bar]:
    """One day's bars of ``symbols`` (default: all archived), sorted by time then symbol.

    ``DataError`` (one line naming the key) for a missing day or symbol, a day that is not
    complete (unless ``partial``), a part out of order, a bar twice or outside its day.
    """
    kind = "bars"
    listings = [listing] if listing is not None else scan(store, day=day, kind=kind)
    if not listings:
        days = sorted({lst.day.isoformat() for lst in scan(store, kind=kind)})
        known = f"archived days: {', '.join(days[-5:])}" if days else "the archive is empty"
        raise DataError(f"{store.url}/{day_prefix(kind, day)}: no archived {kind} ({known})")
    listing = listings[0]
    if not listing.complete and not partial:
        raise DataError(
            f"{store.url}/{day_prefix(kind, day)}: {day} is incomplete ({listing.problem}); "
            "--partial reads what is there"
        )
    wanted = list(symbols) if symbols else sorted(listing.symbols)
    absent = [s for s in wanted if s not in listing.symbols]
    if absent:
        raise DataError(
            f"{store.url}/{day_prefix(kind, day)}: no {kind} of {', '.join(absent)} "
            f"(archived: {', '.join(sorted(listing.symbols))})"
        )
    out: list[Bar] = []
    for symbol in wanted:
        times = _DayTimes(day, symbol)
        for key in listing.symbols[symbol].parts:
            where = f"{store.url}/{key}"
            items = decode_part(kind, symbol, store.get_bytes(key), where)
            times.check(key, where, [ev.ts for ev, _recv in items])
            out.extend(ev for ev, _recv in items)  # type: ignore[misc]  # bars parts hold Bars
    order = {s: i for i, s in enumerate(wanted)}
    out.sort(key=lambda b: (b.ts, order[b.symbol]))
    return out


class _DayTimes:
    """What a reader must be able to trust of one symbol's bar times on one day, part after
    part: each inside its day's partition, in order, none twice (across parts)."""

    def __init__(self, day: date, symbol: str) -> None:
        self.day, self.symbol = day, symbol
        self.lo, self.hi = new_york_day_bounds_ns(day)
        self.where_of: dict[int, str] = {}

    def check(self, key: str, where: str, times: Sequence[int]) -> None:
        """``DataError`` naming ``where`` (the part ``key``'s URL) and the row of the first
        time that breaks a rule."""
        symbol, where_of, prev = self.symbol, self.where_of, None
        for i, ts in enumerate(times):
            if not self.lo <= ts < self.hi:
                raise DataError(
                    f"{where}: row {i}: {symbol} bar at {_iso(ts)} belongs to "
                    f"date={new_york_date_of_ns(ts)}, not date={self.day} "
                    "(across a day boundary)"
                )
            if prev is not None and ts <= prev:
                raise DataError(
                    f"{where}: row {i}: {symbol} bar at {_iso(ts)} is out of order "
                    f"(after {_iso(prev)})"
                )
            if ts in where_of:
                raise DataError(
                    f"{where}: row {i}: {symbol} bar at {_iso(ts)} is duplicated "
                    f"(also in {where_of[ts]})"
                )
            where_of[ts] = key
            prev = ts


class Warmable(Protocol):
    """What the archive warms: a model's runner (``services.trader.runner.ModelRunner``)."""

    def sessions_to_warm(self) -> int: ...

    def warm_history(self, bars: Iterable[Bar]) -> int: ...


@dataclass(frozen=True)
class WarmUp:
    """What ``warm_from_archive`` fed: sessions wanted and found, bars used, what was missing."""

    wanted: int
    found: int
    bars: int
    missing: list[str]


def warm_from_archive(store: BucketStore, runner: Warmable, symbol: str, day: date) -> WarmUp:
    """Feed ``runner`` the ``sessions_to_warm`` sessions of ``symbol`` before ``day``, oldest
    first (a model whose features run across sessions). A session the archive does not hold
    (or cannot be read) is skipped and named in ``missing``: the model then warms up later,
    on the bars it trades. The trader does this at start; ``drift`` before it replays a day."""
    from algostack.core.sessions import previous_session

    wanted = runner.sessions_to_warm()
    days: list[date] = []
    d = day
    for _ in range(wanted):
        d = previous_session(d).day
        days.append(d)
    found = used = 0
    missing: list[str] = []
    for d in reversed(days):
        try:
            bars = read_bars(store, d, symbols=[symbol], partial=True)
        except AlgostackError as exc:
            missing.append(str(exc))
            continue
        found += 1
        used += runner.warm_history(bars)
    return WarmUp(wanted, found, used, missing)


@dataclass
class ArchiveRange:
    """The archived minute bars of the sessions ``first`` .. ``last`` (inclusive), read a day
    at a time as they are consumed (a replay of a year holds one day of bars, not the year).

    ``symbols`` are the ones wanted (the models' symbols); each day yields those of them that
    were archived that day. Every session day in the range must be archived (and complete,
    unless ``partial``), and over more than one day every part's times are read and checked
    too (the ``timestamp`` column alone): the first day that fails is a ``DataError`` naming
    its key, raised by ``check``, before anything is replayed, never after some days of a
    replay were journaled. One day is checked as it is read, before its first bar goes out.
    """

    store: BucketStore
    first: date
    last: date
    symbols: Sequence[str]
    partial: bool = False
    days: list[tuple[DayListing, list[str]]] = field(default_factory=list)
    """Each session day's listing with the wanted symbols archived that day (``check``; the
    reads reuse the listing rather than list the day again)."""
    file_symbols: list[str] = field(default_factory=list)
    """The wanted symbols archived on at least one day of the range."""
    note: str = ""
    """What a replay should say of the range: the days that end before their close."""

    @property
    def url(self) -> str:
        """Where the bars come from, for a summary: ``<store>/market/bars <first>..<last>``."""
        span = self.first.isoformat()
        if self.last != self.first:
            span += f"..{self.last.isoformat()}"
        return f"{self.store.url}/{ROOT}/bars {span}"

    def check(self) -> ArchiveRange:
        """Find the range's sessions and make sure each is archived (and complete)."""
        from datetime import timedelta

        from algostack.core.sessions import next_session

        if self.last < self.first:
            raise DataError(f"--to {self.last} is before --day {self.first}")
        day = next_session(self.first).day  # on or after
        days = []
        while day <= self.last:
            days.append(day)
            day = next_session(day + timedelta(days=1)).day
        if not days and self.first == self.last:
            raise DataError(f"{self.first} is not an NYSE session (weekend or holiday)")
        if not days:
            raise DataError(f"no NYSE session from {self.first} to {self.last}")
        found: set[str] = set()
        held = []
        for d in days:
            listing = scan(self.store, day=d, kind="bars")
            if not listing:
                raise DataError(f"{self.store.url}/{day_prefix('bars', d)}: no archived bars")
            if not listing[0].complete and not self.partial:
                raise DataError(
                    f"{self.store.url}/{day_prefix('bars', d)}: {d} is incomplete "
                    f"({listing[0].problem}); --partial reads what is there"
                )
            symbols = [s for s in self.symbols if s in listing[0].symbols]
            found.update(symbols)
            held.append((listing[0], symbols))
        if len(held) > 1:
            for listing_, symbols in held:
                self._check_times(listing_, symbols)
        self.days = held
        short = [lst.short for lst, _ in held if lst.short]
        if short:
            self.note = (
                short[0] if len(short) == 1 else f"{len(short)} days end early, first: {short[0]}"
            )
        self.file_symbols = sorted(found)
        return self

    def _check_times(self, listing: DayListing, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            times = _DayTimes(listing.day, symbol)
            for key in listing.symbols[symbol].parts:
                where = f"{self.store.url}/{key}"
                times.check(key, where, part_times(self.store.get_bytes(key), where))

    def first_ts(self) -> int:
        """The start of the range's first session day (UTC ns)."""
        return new_york_day_bounds_ns(self.days[0][0].day if self.days else self.first)[0]

    def bars(self) -> Iterator[Bar]:
        """The bars in time order, one day read at a time."""
        for listing, symbols in self.days:
            if symbols:
                yield from read_bars(
                    self.store, listing.day, symbols=symbols, partial=self.partial, listing=listing
                )

"""NYSE sessions: is a day a session, when does it open and close. Stdlib only.

One API, two backings, chosen once by what is installed rather than by each caller:

- ``calendar_history.History`` -- exchange_calendars' XNYS history (1970-2035), used
  wherever that module is shipped: the replay, training, features, the trader, every
  command;
- ``TableBacking``, the stdlib table in ``calendar_data`` (2015-2035), used where it is not:
  the Lambda zip, which holds only the standard library and boto3
  (``control.package.CORE_FILES`` leaves ``calendar_history`` out, and a test imports the
  unpacked zip with third-party packages blocked).

So no caller picks a backing and none can pick the wrong one. ``tests/unit/core/
test_sessions.py`` holds the two equal session by session over the table's years, which is
also why ``History`` reads those years from the table and loads exchange_calendars (pandas:
~0.5 s, ~85 MiB) only for a year outside them: a live trader asking about today stays small,
and every answer is exchange_calendars' either way.

The backing is chosen on the first question (importing this module costs nothing) and each
year is read from it once into a cache of ``Session`` objects, so ``session(day)`` on a hot
path is two dict lookups. A date outside the backing's years is an ``OutsideCalendarError``
(a ``DataError``: one line naming the date and the years known).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from algostack.core import calendar_data
from algostack.errors import DataError

NEW_YORK = ZoneInfo("America/New_York")
NS_PER_S = 1_000_000_000
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)


class OutsideCalendarError(DataError):
    """A date outside the years the session calendar knows."""


@dataclass(frozen=True)
class Session:
    """One NYSE session: its date and its open and close as aware UTC datetimes."""

    day: date
    open: datetime
    close: datetime

    @property
    def minutes(self) -> int:
        """Length of the session in minutes (390 on a regular day, 210 on an early close)."""
        return int((self.close - self.open).total_seconds() // 60)


class Backing(Protocol):
    """Where the sessions come from: whole years ``first_year..last_year``."""

    source: str
    first_year: int
    last_year: int

    def sessions_of(self, year: int) -> list[tuple[date, datetime, datetime]]:
        """The sessions of ``year`` in order: (day, open, close), times aware UTC."""
        ...


class TableBacking:
    """The stdlib table ``calendar_data``: weekdays minus holidays, 09:30 to 16:00 or the
    early close."""

    source = "the Lambda's stdlib table algostack.core.calendar_data"
    first_year = calendar_data.FIRST_YEAR
    last_year = calendar_data.LAST_YEAR

    def sessions_of(self, year: int) -> list[tuple[date, datetime, datetime]]:
        """The sessions of ``year`` in order: (day, open, close), times aware UTC."""
        out = []
        day = date(year, 1, 1)
        while day.year == year:
            key = day.isoformat()
            if day.weekday() < 5 and key not in calendar_data.HOLIDAYS:
                close_hm = calendar_data.EARLY_CLOSES.get(key)
                close_t = time.fromisoformat(close_hm) if close_hm else REGULAR_CLOSE
                out.append(
                    (
                        day,
                        datetime.combine(day, REGULAR_OPEN, NEW_YORK).astimezone(UTC),
                        datetime.combine(day, close_t, NEW_YORK).astimezone(UTC),
                    )
                )
            day += timedelta(days=1)
        return out


@dataclass(frozen=True)
class _Year:
    days: list[date]
    sessions: list[Session]
    by_day: dict[date, Session]


class Calendar:
    """The session questions answered from one backing, each year read once."""

    def __init__(self, backing: Backing) -> None:
        self.backing = backing
        self._years: dict[int, _Year] = {}

    @property
    def known(self) -> str:
        """The years known and where from, for messages."""
        b = self.backing
        return f"{b.first_year}-{b.last_year}, from {b.source}"

    def _year(self, day: date) -> _Year:
        got = self._years.get(day.year)
        if got is not None:
            return got
        b = self.backing
        if not b.first_year <= day.year <= b.last_year:
            raise OutsideCalendarError(
                f"{day.isoformat()} is outside the NYSE session calendar ({self.known})"
            )
        rows = b.sessions_of(day.year)
        sessions = [Session(d, o, c) for d, o, c in rows]
        got = _Year([s.day for s in sessions], sessions, {s.day: s for s in sessions})
        self._years[day.year] = got
        return got

    def session(self, day: date) -> Session | None:
        """The session on ``day``, or ``None`` on a weekend or holiday."""
        got = self._years.get(day.year) or self._year(day)
        return got.by_day.get(day)

    def is_session(self, day: date) -> bool:
        """True when NYSE trades on ``day``."""
        return self.session(day) is not None

    def next_session(self, day: date) -> Session:
        """The first session on or after ``day``."""
        year = self._year(day)
        i = bisect_left(year.days, day)
        while i == len(year.days):
            if day.year >= self.backing.last_year:
                raise OutsideCalendarError(
                    f"no NYSE session on or after {day.isoformat()} in the session "
                    f"calendar ({self.known})"
                )
            day = date(day.year + 1, 1, 1)
            year, i = self._year(day), 0
        return year.sessions[i]

    def previous_session(self, day: date) -> Session:
        """The last session strictly before ``day``."""
        year = self._year(day)
        i = bisect_left(year.days, day)
        while i == 0:
            if day.year <= self.backing.first_year:
                raise OutsideCalendarError(
                    f"no NYSE session before {day.isoformat()} in the session "
                    f"calendar ({self.known})"
                )
            day = date(day.year - 1, 12, 31)
            year = self._year(day)
            i = len(year.days)
        return year.sessions[i - 1]

    def is_open(self, at: datetime) -> bool:
        """True when the regular session is open at ``at`` (aware)."""
        s = self.session(new_york_date(at))
        return s is not None and s.open <= at < s.close


_lock = threading.Lock()
_calendar: Calendar | None = None


def default_backing() -> Backing:
    """exchange_calendars' XNYS history, or the stdlib table alone where ``calendar_history``
    is not shipped (the Lambda zip)."""
    try:
        import algostack.core.calendar_history as calendar_history
    except ModuleNotFoundError as exc:
        if exc.name != "algostack.core.calendar_history":
            raise
        return TableBacking()
    return calendar_history.History(TableBacking())


def calendar() -> Calendar:
    """The calendar every module-level function answers from, loaded on first use."""
    global _calendar
    if _calendar is None:
        with _lock:
            if _calendar is None:
                _calendar = Calendar(default_backing())
    return _calendar


def session(day: date) -> Session | None:
    """The session on ``day``, or ``None`` on a weekend or holiday."""
    return (_calendar or calendar()).session(day)


def is_session(day: date) -> bool:
    """True when NYSE trades on ``day`` (a weekday that is not a holiday)."""
    return (_calendar or calendar()).session(day) is not None


def next_session(day: date) -> Session:
    """The first session on or after ``day``."""
    return (_calendar or calendar()).next_session(day)


def previous_session(day: date) -> Session:
    """The last session strictly before ``day``."""
    return (_calendar or calendar()).previous_session(day)


def is_open(at: datetime) -> bool:
    """True when the regular session is open at ``at`` (aware)."""
    return (_calendar or calendar()).is_open(at)


def new_york_date(at: datetime) -> date:
    """The New York calendar date of an aware datetime (the trading day it belongs to)."""
    return at.astimezone(NEW_YORK).date()


def new_york_date_of_ns(ts: int) -> date:
    """New York calendar date of a UTC timestamp in ns."""
    return datetime.fromtimestamp(ts // NS_PER_S, UTC).astimezone(NEW_YORK).date()


def new_york_day_bounds_ns(day: date) -> tuple[int, int]:
    """``[start, end)`` of the New York calendar ``day`` as UTC ns (DST-aware)."""
    lo = datetime.combine(day, time(0), NEW_YORK)
    hi = datetime.combine(day + timedelta(days=1), time(0), NEW_YORK)
    return int(lo.timestamp()) * NS_PER_S, int(hi.timestamp()) * NS_PER_S

"""NYSE sessions: is a day a session, when does it open and close. Stdlib only.

Uses the generated table in ``calendar_data`` so the Lambda zip (stdlib + boto3) can skip
holidays; ``tests/unit/core/test_sessions.py`` holds it equal to exchange_calendars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from algostack.core.calendar_data import EARLY_CLOSES, FIRST_YEAR, HOLIDAYS, LAST_YEAR

NEW_YORK = ZoneInfo("America/New_York")
NS_PER_S = 1_000_000_000
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)


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


def _check_range(day: date) -> None:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(
            f"{day.isoformat()} is outside the calendar table ({FIRST_YEAR}-{LAST_YEAR}); "
            "regenerate algostack.core.calendar_data"
        )


def is_session(day: date) -> bool:
    """True when NYSE trades on ``day`` (a weekday that is not a holiday)."""
    _check_range(day)
    return day.weekday() < 5 and day.isoformat() not in HOLIDAYS


def session(day: date) -> Session | None:
    """The session on ``day``, or ``None`` on a weekend or holiday."""
    if not is_session(day):
        return None
    close_hm = EARLY_CLOSES.get(day.isoformat())
    close_t = time.fromisoformat(close_hm) if close_hm else REGULAR_CLOSE
    open_dt = datetime.combine(day, REGULAR_OPEN, NEW_YORK).astimezone(UTC)
    close_dt = datetime.combine(day, close_t, NEW_YORK).astimezone(UTC)
    return Session(day, open_dt, close_dt)


def next_session(day: date) -> Session:
    """The first session on or after ``day``."""
    for i in range(15):
        s = session(day + timedelta(days=i))
        if s is not None:
            return s
    raise ValueError(f"no session within 15 days of {day.isoformat()}")  # pragma: no cover


def previous_session(day: date) -> Session:
    """The last session strictly before ``day``."""
    for i in range(1, 16):
        s = session(day - timedelta(days=i))
        if s is not None:
            return s
    raise ValueError(f"no session within 15 days before {day.isoformat()}")  # pragma: no cover


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


def is_open(at: datetime) -> bool:
    """True when the regular session is open at ``at`` (aware)."""
    s = session(new_york_date(at))
    return s is not None and s.open <= at < s.close

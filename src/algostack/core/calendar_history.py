"""NYSE sessions over exchange_calendars' history (XNYS): the backing of ``core.sessions``
everywhere but the Lambda.

Loaded once, on the first question ``core.sessions`` cannot answer from its cache, and kept
as plain lists (the pandas objects are dropped). Not part of the Lambda zip
(``control.package.CORE_FILES``): that is how ``core.sessions`` knows to use its stdlib
table there.

The range is what XNYS gets right in exchange_calendars 4.13.2: from 1970 (before, it counts
New Year's Day, Independence Day and Christmas as sessions -- checked year by year) to the
last year of the Lambda's table, so both backings end on the same day; the future years are
the rules' projection in both. One limit is the library's: it opens every session at 09:30,
while the NYSE opened at 10:00 until 1985-09-30; days, holidays and early closes are right.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left
from datetime import UTC, date, datetime

import exchange_calendars as xc

FIRST_YEAR = 1970
LAST_YEAR = 2035


class XnysHistory:
    """Every XNYS session from ``FIRST_YEAR`` to ``LAST_YEAR``: day, open and close (UTC)."""

    source = "exchange_calendars XNYS"
    first_year = FIRST_YEAR
    last_year = LAST_YEAR

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # The library's own pandas deprecations: not the user's to act on.
            warnings.simplefilter("ignore")
            cal = xc.get_calendar("XNYS", start=f"{FIRST_YEAR}-01-01", end=f"{LAST_YEAR}-12-31")
            opens = cal.opens.dt.tz_convert(None).to_numpy().astype("datetime64[s]")
            closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[s]")
            self._days: list[date] = list(cal.sessions.date)
        self._opens: list[int] = opens.astype("int64").tolist()
        self._closes: list[int] = closes.astype("int64").tolist()

    def sessions_of(self, year: int) -> list[tuple[date, datetime, datetime]]:
        """The sessions of ``year`` in order: (day, open, close), times aware UTC."""
        lo = bisect_left(self._days, date(year, 1, 1))
        hi = bisect_left(self._days, date(year + 1, 1, 1))
        return [
            (
                self._days[i],
                datetime.fromtimestamp(self._opens[i], UTC),
                datetime.fromtimestamp(self._closes[i], UTC),
            )
            for i in range(lo, hi)
        ]

"""NYSE sessions over exchange_calendars' history (XNYS): the backing of ``core.sessions``
everywhere but the Lambda.

Not part of the Lambda zip (``control.package.CORE_FILES``): that is how ``core.sessions``
knows to use its stdlib table there.

The range is what XNYS gets right in exchange_calendars 4.13.2: from 1970 (before, it counts
New Year's Day, Independence Day and Christmas as sessions -- checked year by year) to the
last year of the Lambda's table, so both backings end on the same day; the future years are
the rules' projection in both. One limit is the library's: it opens every session at 09:30,
while the NYSE opened at 10:00 until 1985-09-30; days, holidays and early closes are right.

Loading the library costs a process pandas: ~0.5 s and ~85 MiB, which would put a one-model
trader (67 MiB, target 120) at 153 MiB for the one session it asks about. So ``History``
loads it only for a year outside the stdlib table: over the table's years the two are equal
session by session (``tests/unit/core/test_sessions.py`` compares every session), so the
answers are exchange_calendars' for every year either way.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from algostack.core.sessions import Backing

FIRST_YEAR = 1970
LAST_YEAR = 2035


class XnysHistory:
    """Every XNYS session from ``FIRST_YEAR`` to ``LAST_YEAR`` read from exchange_calendars
    once, kept as plain lists (the pandas objects are dropped)."""

    source = "exchange_calendars XNYS"
    first_year = FIRST_YEAR
    last_year = LAST_YEAR

    def __init__(self) -> None:
        import exchange_calendars as xc  # here: importing this module must not load pandas

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


class History:
    """exchange_calendars' XNYS years, with ``table``'s years read from ``table`` (equal to
    them, tested) so that the library is loaded only when a year outside it is asked."""

    source = XnysHistory.source
    first_year = FIRST_YEAR
    last_year = LAST_YEAR

    def __init__(self, table: Backing) -> None:
        self.table = table
        self.xnys: XnysHistory | None = None
        """Loaded on the first year outside the table."""

    def sessions_of(self, year: int) -> list[tuple[date, datetime, datetime]]:
        """The sessions of ``year`` in order: (day, open, close), times aware UTC."""
        if self.table.first_year <= year <= self.table.last_year:
            return self.table.sessions_of(year)
        if self.xnys is None:
            self.xnys = XnysHistory()
        return self.xnys.sessions_of(year)

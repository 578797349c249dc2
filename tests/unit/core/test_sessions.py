from __future__ import annotations

from datetime import UTC, date, datetime

import exchange_calendars as xc
import pandas as pd
import pytest

from algostack.core import sessions


def test_sessions_table_matches_exchange_calendars() -> None:
    cal = xc.get_calendar("XNYS", start="2015-01-01", end="2035-12-31")
    ours = [d for d in pd.bdate_range("2015-01-01", "2035-12-31").date if sessions.is_session(d)]
    assert ours == list(cal.sessions.date)
    for s in cal.sessions[::37]:
        mine = sessions.session(s.date())
        assert mine is not None
        assert mine.open == cal.session_open(s).to_pydatetime()
        assert mine.close == cal.session_close(s).to_pydatetime()


def test_thanksgiving_2026_is_skipped_and_black_friday_closes_early() -> None:
    assert not sessions.is_session(date(2026, 11, 26))
    friday = sessions.session(date(2026, 11, 27))
    assert friday is not None and friday.minutes == 210
    assert friday.close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_regular_session_is_390_minutes_and_dst_aware() -> None:
    summer = sessions.session(date(2026, 7, 1))
    winter = sessions.session(date(2026, 12, 1))
    assert summer is not None and winter is not None
    assert summer.minutes == winter.minutes == 390
    assert summer.open.hour == 13 and winter.open.hour == 14


def test_is_open_and_next_session() -> None:
    assert sessions.is_open(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    assert not sessions.is_open(datetime(2026, 11, 24, 22, 0, tzinfo=UTC))
    assert sessions.next_session(date(2026, 11, 26)).day == date(2026, 11, 27)
    assert sessions.previous_session(date(2026, 11, 27)).day == date(2026, 11, 25)


def test_out_of_range_year_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="outside the calendar table"):
        sessions.is_session(date(2040, 1, 2))

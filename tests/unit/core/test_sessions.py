from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import exchange_calendars as xc
import pandas as pd
import pytest

from algostack.control import package
from algostack.core import calendar_data, sessions
from algostack.core.calendar_history import History, XnysHistory
from algostack.errors import DataError
from algostack.testing.lambda_imports import BLOCK_THIRD_PARTY

TABLE = sessions.Calendar(sessions.TableBacking())


def test_default_backing_outside_the_lambda_is_exchange_calendars_history() -> None:
    backing = sessions.calendar().backing
    assert isinstance(backing, History) and isinstance(backing.table, sessions.TableBacking)
    assert (backing.first_year, backing.last_year) == (1970, 2035)


HOT_PATH_PROBE = r"""
import sys
from datetime import date
from algostack.core import sessions
assert sessions.session(date(2026, 11, 27)).minutes == 210
assert sessions.previous_session(date(2015, 1, 5)).day == date(2015, 1, 2)
assert "pandas" not in sys.modules and "exchange_calendars" not in sys.modules
assert not sessions.is_session(date(2004, 7, 5))
assert "exchange_calendars" in sys.modules
print("ok")
"""


def test_exchange_calendars_is_loaded_only_for_a_year_outside_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HOT_PATH_PROBE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_table_and_history_are_equal_session_by_session_over_the_table_years() -> None:
    table, history = sessions.TableBacking(), XnysHistory()
    assert (table.first_year, table.last_year) == (2015, 2035)
    assert history.first_year < table.first_year and history.last_year == table.last_year
    for year in range(table.first_year, table.last_year + 1):
        assert table.sessions_of(year) == history.sessions_of(year), year


def test_history_is_exchange_calendars_from_1970() -> None:
    cal = xc.get_calendar("XNYS", start="1970-01-01", end="2035-12-31")
    history = XnysHistory()
    ours = [d for y in range(1970, 2036) for d, _, _ in history.sessions_of(y)]
    assert ours == list(cal.sessions.date)
    for s in cal.sessions[::53]:
        mine = sessions.session(s.date())
        assert mine is not None
        assert mine.open == cal.session_open(s).to_pydatetime()
        assert mine.close == cal.session_close(s).to_pydatetime()


def test_2004_session_holiday_and_early_close_are_answered() -> None:
    day = sessions.session(date(2004, 8, 18))
    assert day is not None and day.minutes == 390
    assert day.open == datetime(2004, 8, 18, 13, 30, tzinfo=UTC)
    assert not sessions.is_session(date(2004, 7, 5))  # Independence Day, observed
    assert not sessions.is_session(date(2004, 6, 11))  # Reagan's national day of mourning
    black_friday = sessions.session(date(2004, 11, 26))
    assert black_friday is not None and black_friday.minutes == 210
    assert black_friday.close == datetime(2004, 11, 26, 18, 0, tzinfo=UTC)
    assert sessions.next_session(date(2004, 7, 3)).day == date(2004, 7, 6)
    assert sessions.previous_session(date(2004, 7, 6)).day == date(2004, 7, 2)


def test_early_history_holidays_are_right() -> None:
    assert not sessions.is_session(date(1970, 1, 1))
    assert not sessions.is_session(date(1972, 12, 28))  # Truman
    assert not sessions.is_session(date(1977, 7, 14))  # New York blackout
    assert not sessions.is_session(date(1980, 11, 4))  # Election Day, last year closed
    assert sessions.is_session(date(1984, 11, 6))
    assert not sessions.is_session(date(2001, 9, 11))
    assert sessions.next_session(date(2001, 9, 11)).day == date(2001, 9, 17)


def test_sessions_cross_year_boundaries() -> None:
    assert sessions.previous_session(date(2015, 1, 2)).day == date(2014, 12, 31)
    assert sessions.next_session(date(2004, 12, 31)).day == date(2004, 12, 31)
    assert sessions.next_session(date(2005, 1, 1)).day == date(2005, 1, 3)
    assert TABLE.next_session(date(2025, 12, 27)).day == date(2025, 12, 29)
    assert TABLE.previous_session(date(2026, 1, 2)).day == date(2025, 12, 31)


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


@pytest.mark.parametrize(
    ("ask", "day", "message"),
    [
        (sessions.session, date(1969, 12, 31), "1969-12-31 is outside the NYSE session calendar"),
        (sessions.is_session, date(2036, 1, 2), "2036-01-02 is outside the NYSE session calendar"),
        (
            sessions.next_session,
            date(2036, 1, 1),
            "2036-01-01 is outside the NYSE session calendar",
        ),
        (sessions.previous_session, date(1970, 1, 2), "no NYSE session before 1970-01-02"),
    ],
)
def test_a_date_outside_the_history_is_a_one_line_data_error(
    ask: Callable[[date], object], day: date, message: str
) -> None:
    with pytest.raises(DataError) as info:
        ask(day)
    text = str(info.value)
    assert isinstance(info.value, sessions.OutsideCalendarError)
    assert text.startswith(message) and "\n" not in text
    assert text.endswith("(1970-2035, from exchange_calendars XNYS)")


class OneSession:
    """A backing that knows one year holding one session."""

    source = "a one-session test backing"
    first_year = last_year = 2030

    def sessions_of(self, year: int) -> list[tuple[date, datetime, datetime]]:
        return [
            (
                date(2030, 6, 3),
                datetime(2030, 6, 3, 13, 30, tzinfo=UTC),
                datetime(2030, 6, 3, 20, tzinfo=UTC),
            )
        ]


def test_past_the_first_or_last_session_known_is_a_one_line_error() -> None:
    cal = sessions.Calendar(OneSession())
    assert cal.next_session(date(2030, 1, 1)).day == cal.previous_session(date(2030, 12, 31)).day
    with pytest.raises(sessions.OutsideCalendarError) as info:
        cal.next_session(date(2030, 6, 4))
    assert str(info.value) == (
        "no NYSE session on or after 2030-06-04 in the session calendar "
        "(2030-2030, from a one-session test backing)"
    )
    with pytest.raises(sessions.OutsideCalendarError, match="no NYSE session before 2030-06-03"):
        cal.previous_session(date(2030, 6, 3))


def test_the_table_names_its_own_range_outside_it() -> None:
    with pytest.raises(sessions.OutsideCalendarError) as info:
        TABLE.session(date(2004, 8, 18))
    assert str(info.value) == (
        "2004-08-18 is outside the NYSE session calendar "
        "(2015-2035, from the Lambda's stdlib table algostack.core.calendar_data)"
    )


LAMBDA_PROBE = (
    BLOCK_THIRD_PARTY
    + r"""
sys.path.insert(0, sys.argv[1])
from datetime import date
import algostack.control.handlers
from algostack.core import sessions
assert not sessions.is_session(date(2026, 11, 26))
assert sessions.session(date(2026, 11, 27)).minutes == 210
assert type(sessions.calendar().backing).__name__ == "TableBacking"
try:
    sessions.session(date(2004, 8, 18))
except sessions.OutsideCalendarError as exc:
    print(exc)
assert "exchange_calendars" not in sys.modules and "pandas" not in sys.modules
"""
)


def test_the_lambda_zip_answers_from_the_stdlib_table(tmp_path: Path) -> None:
    built = package.build("trading_server_shutdown", tmp_path / "out", package.find_root())
    assert "algostack/core/calendar_history.py" not in built.files
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(tmp_path / "task")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", LAMBDA_PROBE, str(tmp_path / "task")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"2004-08-18 is outside the NYSE session calendar ({calendar_data.FIRST_YEAR}-"
        f"{calendar_data.LAST_YEAR}, from the Lambda's stdlib table algostack.core.calendar_data)"
    )


def test_table_matches_exchange_calendars_directly() -> None:
    cal = xc.get_calendar("XNYS", start="2015-01-01", end="2035-12-31")
    ours = [d for d in pd.bdate_range("2015-01-01", "2035-12-31").date if TABLE.is_session(d)]
    assert ours == list(cal.sessions.date)

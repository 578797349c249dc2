"""``algostack run``'s day against the session calendar: any source, checked before any
process starts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from algostack.core.sessions import OutsideCalendarError
from algostack.local.session import RunConfig, RunPaths, SourceKind


def test_a_replay_day_outside_the_calendar_is_refused_on_construction(tmp_path: Path) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("symbol,timestamp,open,high,low,close,volume\n")
    with pytest.raises(OutsideCalendarError, match=r"^2036-01-08 is outside the NYSE session"):
        RunConfig(
            paths=RunPaths(tmp_path, "run1"),
            day=date(2036, 1, 8),
            source=SourceKind.REPLAY,
            replay_file=bars,
        )


def test_a_2004_replay_day_is_a_session(tmp_path: Path) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("symbol,timestamp,open,high,low,close,volume\n")
    cfg = RunConfig(
        paths=RunPaths(tmp_path, "run1"),
        day=date(2004, 11, 26),
        source=SourceKind.REPLAY,
        replay_file=bars,
    )
    assert cfg.session is not None and cfg.session.minutes == 210

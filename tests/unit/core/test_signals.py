from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algostack.core.signals import Thresholds, target_direction

SMA = Thresholds(long_entry=0.0, long_exit=0.0)
BAND = Thresholds(long_entry=0.6, long_exit=0.4)
LS = Thresholds(long_entry=0.6, long_exit=0.5, short_entry=0.4, short_exit=0.45)


@pytest.mark.parametrize("current", [-1, 0, 1])
@pytest.mark.parametrize(
    ("score", "want"), [(1e-12, 1), (0.0, 0), (-0.0, 0), (-1e-12, 0), (0.5, 1)]
)
def test_sma_cross_thresholds_are_exact_cross_rule_whatever_the_state(
    current: int, score: float, want: int
) -> None:
    assert target_direction(score, current, SMA) == want


@given(score=st.floats(allow_nan=False), current=st.sampled_from([-1, 0, 1]))
def test_equal_entry_and_exit_make_direction_stateless(score: float, current: int) -> None:
    assert target_direction(score, current, SMA) == (1 if score > 0 else 0)


def test_hysteresis_band_holds_position_between_exit_and_entry() -> None:
    assert target_direction(0.5, 0, BAND) == 0  # not above entry: stay flat
    assert target_direction(0.61, 0, BAND) == 1
    assert target_direction(0.5, 1, BAND) == 1  # inside the band: hold
    assert target_direction(0.4, 1, BAND) == 0  # at exit: leave
    assert target_direction(0.6, 0, BAND) == 0  # at entry: not yet (strict)


def test_shorts_only_when_short_thresholds_are_set() -> None:
    assert target_direction(-5.0, 0, BAND) == 0
    assert target_direction(0.39, 0, LS) == -1
    assert target_direction(0.42, -1, LS) == -1  # below short_exit: hold the short
    assert target_direction(0.45, -1, LS) == 0  # at short_exit: cover
    assert target_direction(0.7, -1, LS) == 1  # flip short -> long
    assert target_direction(0.3, 1, LS) == -1  # flip long -> short
    assert target_direction(0.3, -1, BAND) == 0  # a stray short is covered without thresholds


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"long_entry": 0.4, "long_exit": 0.6}, "long_exit .* must be <= long_entry"),
        ({"long_entry": 0.6, "long_exit": 0.5, "short_entry": 0.4}, "both short_entry"),
        (
            {"long_entry": 0.6, "long_exit": 0.5, "short_entry": 0.4, "short_exit": 0.3},
            "short_exit .* must be >= short_entry",
        ),
        (
            {"long_entry": 0.6, "long_exit": 0.5, "short_entry": 0.7, "short_exit": 0.8},
            "short_entry .* must be <= long_entry",
        ),
        ({"long_entry": math.nan, "long_exit": 0.5}, "finite"),
        ({"long_entry": "x", "long_exit": 0.5}, "must be a number"),
    ],
)
def test_thresholds_invalid_combinations_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Thresholds(**kwargs)  # type: ignore[arg-type]


def test_thresholds_from_mapping_names_the_source_and_round_trips() -> None:
    with pytest.raises(ValueError, match=r"m.json: thresholds: unknown threshold field"):
        Thresholds.from_mapping(
            {"long_entry": 1, "long_exit": 0, "stop": 1}, where="m.json: thresholds"
        )
    with pytest.raises(ValueError, match="missing"):
        Thresholds.from_mapping({"long_entry": 1})
    assert Thresholds.from_mapping(LS.to_dict()) == LS
    assert SMA.to_dict() == {"long_entry": 0.0, "long_exit": 0.0}


def test_target_direction_refuses_nan_score_and_bad_state() -> None:
    with pytest.raises(ValueError, match="NaN"):
        target_direction(math.nan, 0, SMA)
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        target_direction(0.1, 2, SMA)

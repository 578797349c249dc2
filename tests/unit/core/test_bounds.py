"""Bounds: the ranges limits declare on their fields, their texts, and NaN."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from algostack.core.bounds import NON_NEGATIVE, POSITIVE, POSITIVE_FINITE, Bound, bounds_of
from algostack.core.desk_risk import DeskLimits
from algostack.core.risk import RiskLimits


@pytest.mark.parametrize(
    ("bound", "text", "inside", "outside"),
    [
        (POSITIVE, "> 0", [1e-9, math.inf], [0.0, -1.0, math.nan]),
        (NON_NEGATIVE, ">= 0", [0.0, math.inf], [-1e-9, math.nan, -math.inf]),
        (POSITIVE_FINITE, "> 0, finite", [1.0, 1e300], [0.0, math.inf, math.nan]),
        (Bound(0, 389), "0..389", [0, 389], [-1, 390, math.nan]),
        (Bound(0, 1, low_open=True), "in (0, 1]", [1e-9, 1.0], [0.0, 1.5, math.nan]),
        (Bound(high=10, high_open=True), "< 10", [-5.0, 9.99], [10.0, math.nan]),
    ],
)
def test_bound_holds_inside_only_and_says_its_range(
    bound: Bound, text: str, inside: list[float], outside: list[float]
) -> None:
    assert bound.text() == text
    assert all(bound.holds(v) for v in inside)
    assert not any(bound.holds(v) for v in outside)


@pytest.mark.parametrize("cls", [RiskLimits, DeskLimits])
def test_every_limit_field_declares_its_bound(cls: type) -> None:
    # A limit added without a range would take any value, NaN included.
    assert set(bounds_of(cls)) == {f.name for f in fields(cls)}

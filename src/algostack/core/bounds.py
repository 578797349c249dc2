"""Ranges a setting must lie in, and the one-line problem when it does not.

Limits (``RiskLimits``, ``DeskLimits``) declare their ranges once, as data; NaN lies in no
range, so a ``nan`` from a flag or a file is refused like any other bad number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bound:
    """``low <= v <= high``; ``low_open``/``high_open`` exclude the end."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # both False for NaN

    def text(self) -> str:
        """``> 0``, ``> 0, finite``, ``>= 1``, ``0..389``, ``in (0, 1]``."""
        lo, hi = f"{self.low:g}", f"{self.high:g}"
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {lo}" + (", finite" if self.high_open else "")
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {hi}"
        if not (self.low_open or self.high_open):
            return f"{lo}..{hi}"
        return f"in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"


POSITIVE = Bound(0.0, low_open=True)
NON_NEGATIVE = Bound(0.0)
POSITIVE_FINITE = Bound(0.0, low_open=True, high_open=True)


def out_of_bounds(obj: object, bounds: Mapping[str, Bound]) -> list[str]:
    """``name=value (must be ...)`` for every attribute of ``obj`` outside its bound."""
    return [
        f"{name}={value} (must be {bound.text()})"
        for name, bound in bounds.items()
        if not bound.holds(value := getattr(obj, name))
    ]

"""Ranges a setting must lie in, and the one-line problem when it does not.

Limits (``RiskLimits``, ``DeskLimits``) declare each field's range on the field itself,
``max_notional: Annotated[float, NON_NEGATIVE] = 25_000.0``, and derive from ``Bounded``,
which checks them all at construction. NaN lies in no range, so a ``nan`` from a flag or a
file is refused like any other bad number.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar

from algostack.errors import ConfigError


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


class Bounded:
    """Base of a frozen dataclass whose fields carry a ``Bound`` in ``Annotated``: building
    one with any field out of its range raises one ``ConfigError`` naming every such field."""

    WHAT: ClassVar[str] = "settings"
    """How the error names the whole (``invalid risk limits: ...``)."""

    def __post_init__(self) -> None:
        if problems := out_of_bounds(self, bounds_of(type(self))):
            raise ConfigError(f"invalid {self.WHAT}: " + "; ".join(problems))


_BOUNDS: dict[type, dict[str, Bound]] = {}


def bounds_of(cls: type) -> dict[str, Bound]:
    """The ``Bound`` of every field of ``cls`` that declares one (read once per class)."""
    out = _BOUNDS.get(cls)
    if out is None:
        out = _BOUNDS[cls] = {}
        for name, hint in typing.get_type_hints(cls, include_extras=True).items():
            if typing.get_origin(hint) is Annotated:
                out.update((name, m) for m in hint.__metadata__ if isinstance(m, Bound))
    return out

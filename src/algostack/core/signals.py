"""From a model score to a target direction: thresholds with hysteresis. Pure.

Strictness (documented in docs/models.md, relied on by the SMA-cross rule):

- flat -> long when ``score > long_entry`` (strict);
- long stays long while ``score > long_exit``; leaves when ``score <= long_exit``;
- flat -> short when ``score < short_entry`` (strict), only when short thresholds are set;
- short stays short while ``score < short_exit``; leaves when ``score >= short_exit``.

With ``long_entry == long_exit == 0`` the rule is stateless: long exactly when the score is
positive, flat when it is zero or negative — an exact cross rule on ``sma_ratio_f_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_FIELDS = ("long_entry", "long_exit", "short_entry", "short_exit")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Entry and exit thresholds on a model's score (validated on construction)."""

    long_entry: float
    long_exit: float
    short_entry: float | None = None
    short_exit: float | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"threshold {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"threshold {name} must be finite, got {value!r}")
        if self.long_exit > self.long_entry:
            raise ValueError(
                f"long_exit ({self.long_exit}) must be <= long_entry ({self.long_entry}): "
                "a long is entered above long_entry and left at or below long_exit"
            )
        if (self.short_entry is None) != (self.short_exit is None):
            raise ValueError("set both short_entry and short_exit, or neither")
        if self.short_entry is not None and self.short_exit is not None:
            if self.short_exit < self.short_entry:
                raise ValueError(
                    f"short_exit ({self.short_exit}) must be >= short_entry "
                    f"({self.short_entry}): a short is entered below short_entry and left at "
                    "or above short_exit"
                )
            if self.short_entry > self.long_entry:
                raise ValueError(
                    f"short_entry ({self.short_entry}) must be <= long_entry "
                    f"({self.long_entry}), or one score could enter both sides"
                )

    @property
    def allows_short(self) -> bool:
        """True when short thresholds are set."""
        return self.short_entry is not None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "thresholds") -> Thresholds:
        """Build from a JSON object; ``ValueError`` naming ``where`` on unknown or bad fields."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object with long_entry/long_exit, got {data!r}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"{where}: unknown threshold field(s) {unknown}; known: {_FIELDS}")
        missing = [f for f in ("long_entry", "long_exit") if f not in data]
        if missing:
            raise ValueError(f"{where}: missing {missing}")
        try:
            return cls(**{k: data[k] for k in _FIELDS if k in data and data[k] is not None})
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, float]:
        """The JSON form (short fields only when set)."""
        out = {"long_entry": float(self.long_entry), "long_exit": float(self.long_exit)}
        if self.short_entry is not None and self.short_exit is not None:
            out["short_entry"] = float(self.short_entry)
            out["short_exit"] = float(self.short_exit)
        return out


def target_direction(score: float, current: int, th: Thresholds) -> int:
    """Return the target direction (-1 short, 0 flat, 1 long) for ``score`` given ``current``.

    Raises ``ValueError`` for a NaN score or a ``current`` outside {-1, 0, 1}.
    """
    if score != score:  # NaN
        raise ValueError("score is NaN: the model produced no usable output")
    if current == -1:
        short_exit = th.short_exit
        if short_exit is not None and score < short_exit:
            return -1
        return 1 if score > th.long_entry else 0
    if current != 0 and current != 1:
        raise ValueError(f"current direction must be -1, 0 or 1, got {current!r}")
    # Long or flat: stay or go long above the long threshold (exit when long, entry when
    # flat), go short below the short entry, else flat.
    if score > (th.long_exit if current == 1 else th.long_entry):
        return 1
    short_entry = th.short_entry
    return -1 if short_entry is not None and score < short_entry else 0

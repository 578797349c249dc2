"""What ``ModelRunner`` needs of a model, what it counts, and the bar lengths it trades."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from algostack.core.market import NS_PER_MIN
from algostack.core.signals import Thresholds
from algostack.errors import ConfigError

_TIMEFRAME_RE = re.compile(r"^([1-9][0-9]*)Min$")


class ScoringModel(Protocol):
    """What the runner needs of a model (``adapters.artifacts.EnsembleModel`` is one)."""

    features: tuple[str, ...]
    thresholds: Thresholds
    timeframe: str

    def score(self, x: np.ndarray) -> float:
        """Score one feature vector."""
        ...


def timeframe_ns(timeframe: str) -> int:
    """Bar length of a minute timeframe (``1Min`` -> 60 s); ``ConfigError`` otherwise."""
    m = _TIMEFRAME_RE.match(timeframe)
    if m is None:
        raise ConfigError(
            f"timeframe {timeframe!r}: the trader reads minute bars from market.bars.*, so only "
            "'<n>Min' models can trade; retrain the model on 1Min bars"
        )
    n = int(m.group(1))
    if n != 1:
        raise ConfigError(
            f"timeframe {timeframe!r}: only 1Min models are supported (no bar aggregation yet)"
        )
    return n * NS_PER_MIN


@dataclass
class RunnerStats:
    """Counters of one runner; every refused bar is counted under its reason."""

    bars: int = 0
    """Bars accepted by the features (live and warm-up)."""
    warmup_bars: int = 0
    decisions: int = 0
    orders: int = 0
    rejected: int = 0
    """Orders the broker refused (or that failed to submit)."""
    duplicates_acked: int = 0
    """Submits the broker answered as an existing order (a retry or a restart)."""
    fills: int = 0
    fills_already_journaled: int = 0
    """Shares filled again after a restart for orders the journal already holds."""
    bad_bars: int = 0
    skipped_bars: int = 0
    """Duplicate or out-of-order bars."""
    wrong_bars: int = 0
    """Bars of another symbol, or not aligned with the timeframe."""
    redelivered: int = 0
    """Bars at or before the last decided one (NATS redelivery after a restart)."""

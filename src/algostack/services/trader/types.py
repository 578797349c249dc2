"""What ``ModelRunner`` needs of a model and what it counts.

The bar lengths a model trades are ``core.timeframes.parse_timeframe``'s (the runner builds
them from minute bars with ``BarBuilder``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from algostack.core.signals import Thresholds


class ScoringModel(Protocol):
    """What the runner needs of a model (``adapters.artifacts.EnsembleModel`` is one)."""

    features: tuple[str, ...]
    thresholds: Thresholds
    timeframe: str
    """``<n>Min``, ``<n>Hour`` or ``1Day`` (``core.timeframes.parse_timeframe``)."""

    def score(self, x: np.ndarray) -> float:
        """Score one feature vector."""
        ...


@dataclass
class RunnerStats:
    """Counters of one runner; every refused bar is counted under its reason."""

    bars: int = 0
    """Bars accepted by the features (live and warm-up)."""
    warmup_bars: int = 0
    decisions: int = 0
    orders: int = 0
    restarts: int = 0
    """How often this model's trader started again on the day it trades after its first start
    there (a crash, a kill, a unit restart); heartbeats carry it to the dashboard."""
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
    """Bars of another symbol or kind, or not on a whole minute."""
    outside_bars: int = 0
    """Minute bars outside the regular session, ignored by a model whose bars are built
    (every timeframe but ``1Min``, which decides on each minute bar as it comes)."""
    redelivered: int = 0
    """Bars at or before the last decided one (NATS redelivery after a restart)."""

"""Exact rolling windows for the streaming features: sums that never drift, variances that
recompute themselves. Pure (stdlib)."""

from __future__ import annotations

import math

__all__ = ["FSUM_WINDOW_MAX", "RollingVar", "WindowSum", "sma_ratio"]


# Up to this window length ``math.fsum`` over the ring buffer is cheaper than keeping an
# exact running sum in Python (fsum of 30 floats ~0.45 us; two exact updates ~0.7 us).
FSUM_WINDOW_MAX = 128


def _add_exact(partials: list[float], x: float) -> None:
    """Add ``x`` to ``partials`` (non-overlapping floats whose exact sum is the total),
    without any rounding: Shewchuk's grow-expansion, the algorithm behind ``math.fsum``."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


class WindowSum:
    """The sum of the last ``n`` values pushed, correctly rounded (``math.fsum`` of the window).

    Exact by construction: the result depends only on the values in the window, never on
    their order or on the history before them, so it cannot drift and any other exact
    computation of the same window (``features_batch``) gives the same float. Small windows
    call ``math.fsum`` on the ring buffer; large ones keep an exact running sum (Shewchuk
    partials: add the new value, subtract the one leaving) and round it once per push.
    """

    __slots__ = ("buf", "count", "n", "partials", "pos")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"window must be >= 1, got {n}")
        self.n = n
        self.buf = [0.0] * n
        self.pos = 0
        self.count = 0
        """Values pushed so far (the window is full once ``count >= n``)."""
        self.partials: list[float] | None = [] if n > FSUM_WINDOW_MAX else None

    def push(self, x: float) -> float:
        """Push ``x``; return the correctly rounded sum of the last ``min(count, n)`` values."""
        buf, pos = self.buf, self.pos
        old = buf[pos]
        buf[pos] = x
        pos += 1
        self.pos = 0 if pos == self.n else pos
        self.count += 1
        partials = self.partials
        if partials is None:
            return _fsum(buf)  # the slots not yet filled hold 0.0, which adds nothing
        _add_exact(partials, x)
        if old:
            _add_exact(partials, -old)
        return _fsum(partials)


_fsum = math.fsum


def sma_ratio(total_fast: float, fast: int, total_slow: float, slow: int) -> float:
    """``SMA_fast / SMA_slow - 1`` from the windows' sums: the one expression both the
    streaming engine and the batch twin evaluate."""
    return (total_fast / fast) / (total_slow / slow) - 1.0


# Sliding Welford loses about eps * (largest M2 since the last exact pass) when a big value
# leaves the window; recompute exactly once M2 falls this far below that peak.
_CANCEL_RATIO = 1e-5


class RollingVar:
    """Mean and sample variance over the last n values: sliding Welford, recomputed exactly
    once per cycle and whenever cancellation could cost more than ~1e-10 relative."""

    __slots__ = ("buf", "count", "last", "m2", "mean", "n", "peak", "pos", "run")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = [0.0] * n
        self.pos = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.peak = 0.0
        self.last = math.nan
        self.run = 0

    def push(self, x: float) -> None:
        n = self.n
        pos = self.pos
        if self.count < n:
            self.count += 1
            d = x - self.mean
            self.mean += d / self.count
            self.m2 += d * (x - self.mean)
        else:
            old = self.buf[pos]
            mean = self.mean
            new_mean = mean + (x - old) / n
            self.m2 += (x - old) * (x - new_mean + old - mean)
            self.mean = new_mean
        self.buf[pos] = x
        self.run = self.run + 1 if x == self.last else 1
        self.last = x
        pos += 1
        if pos == n:
            pos = 0
        self.pos = pos
        m2 = self.m2
        if self.count == n and (pos == 0 or m2 < self.peak * _CANCEL_RATIO):
            self._exact()
        elif m2 > self.peak:
            self.peak = m2

    def _exact(self) -> None:
        buf = self.buf
        mean = sum(buf) / self.n
        self.mean = mean
        self.m2 = self.peak = sum([(v - mean) * (v - mean) for v in buf])

    def var(self) -> float:
        if self.run >= self.n:  # a flat window has exactly zero variance
            return 0.0
        m2 = self.m2
        return m2 / (self.n - 1) if m2 > 0.0 else 0.0

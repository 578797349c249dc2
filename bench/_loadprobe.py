"""CPU accounting shared by the benchmarks: how busy our processes and everything else were.

The machine is shared, so a benchmark reads /proc around each measurement and repeats the
ones another process disturbed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


def jiffies_total() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def jiffies_of(pids: Sequence[int]) -> int:
    """CPU jiffies (user + system) used so far by ``pids``; gone processes count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


@dataclass
class LoadProbe:
    """CPU (in cores) used during a measurement by ours (``pids``) and by everything else."""

    pids: Sequence[int]
    own_cores: float = 0.0
    other_cores: float = 0.0

    def __enter__(self) -> LoadProbe:
        self.busy0, self.total0 = jiffies_total()
        self.own0 = jiffies_of(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        busy1, total1 = jiffies_total()
        own = jiffies_of(self.pids) - self.own0
        ncpu = os.cpu_count() or 1
        span = max(total1 - self.total0, 1)
        self.own_cores = own / span * ncpu
        self.other_cores = max(0.0, ((busy1 - self.busy0) - own) / span * ncpu)

"""Every benchmark script starts: its imports resolve and its options parse (``--help``).

The benchmarks are run by hand (``make bench``), not by the tests; this catches a script that
a refactoring broke (an import of a helper another script no longer has) before anyone
reaches for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("[a-z]*.py"))


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 7


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports_and_parses_its_options(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_gateway_latency_quick_run_ends_with_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "gateway_latency.py"), "--quick"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("burst", "tick_to_broker"):
        assert figures[f"{key}_n"] > 0
        assert 0 < figures[f"{key}_p50_us"] <= figures[f"{key}_p99_us"]
    assert figures["raw_rtt_p50_us"] > 0
    assert isinstance(figures["ok"], bool)
    assert set(figures["targets"]) == {"burst_p99_us", "tick_to_broker_p99_us"}

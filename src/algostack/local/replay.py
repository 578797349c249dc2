"""Replay as a backtest: bars from a file through the live trader's per-bar pipeline.

Each model gets its own ``ModelRunner`` (``services.trader.runner``, the class the live
trader runs) and its own ``SimBroker``, exactly as one trader process would; the bars are
fed in time order as fast as possible, in this process, without NATS. The summary is built
by the same function as a live run's, so backtest and live cannot drift apart.

A decision's latency here is the pipeline's own time per bar (the bar is handed over ->
decision made): the live figure adds the NATS hop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algostack.adapters.broker import SimBroker
from algostack.core.market import Bar
from algostack.core.naming import ModelSpec
from algostack.core.risk import RiskLimits
from algostack.errors import ConfigError, DataError
from algostack.local.summary import (
    ModelCurve,
    ModelSummary,
    PricePoint,
    price_points,
    summarize_model,
)
from algostack.services.trader.runner import ModelRunner
from algostack.services.trader.types import ScoringModel


@dataclass(repr=False)
class ReplayOutcome:
    """What a replay produced: per-model figures and curves, the runners, the timings."""

    models: list[ModelSummary]
    curves: list[ModelCurve]
    prices: dict[str, list[PricePoint]]
    runners: dict[str, ModelRunner]
    brokers: dict[str, SimBroker]
    bars: int
    bar_events: int
    """Bars handed to runners (a bar counts once per model of its symbol)."""
    loop_s: float
    """Wall time of the per-bar loop alone (no loading, no summary)."""
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # asyncio reprs task results: keep it cheap
        return (
            f"ReplayOutcome(bars={self.bars}, models={len(self.models)}, loop_s={self.loop_s:.3f})"
        )

    @property
    def bars_per_s(self) -> float:
        """Bars of the file processed per second of loop time."""
        return self.bars / self.loop_s if self.loop_s > 0 else 0.0


def load_bars(path: Path) -> tuple[list[Bar], list[str]]:
    """Read a bar file (``adapters.offline.bars_file`` rules); return bars and row problems."""
    from algostack.adapters.offline.bars_file import ReplaySource

    src = ReplaySource(Path(path))
    bars = [ev for batch in src.batches for ev in batch if type(ev) is Bar]
    if not bars:
        raise DataError(
            f"{path}: no usable bars" + (f" ({src.problems[0]})" if src.problems else "")
        )
    return bars, list(src.problems)


def resolve_store_root(directory: Path) -> Path:
    """The store root for ``--models DIR``: DIR when it holds ``models/``, its parent when
    DIR is itself the ``models`` folder; ``ConfigError`` otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"model directory {directory} does not exist")
    if (directory / "models").is_dir():
        return directory
    if directory.name == "models":
        return directory.parent
    raise ConfigError(
        f"{directory} holds no models/ folder: "
        "expected models/<type>/<symbol>/<id>-outer_<X>_inner_<Y>.<ext>"
    )


def load_store_models(
    root: Path, *, only: Sequence[str] = ()
) -> tuple[list[tuple[ModelSpec, ScoringModel]], dict[str, str]]:
    """Load every model of the store at ``root``; return (spec, model) pairs and problems.

    ``only`` keeps the models whose prefix or key is listed. A store without a usable model
    is a ``ConfigError``.
    """
    from algostack.adapters.artifacts.loader import load_models
    from algostack.adapters.storage import LocalDirStore
    from algostack.services.catalog import list_catalog

    store = LocalDirStore(Path(root))
    catalog = list_catalog(store, environment="dev")
    specs = [e.spec for e in catalog.entries if e.ok]
    problems = {e.spec.prefix: "; ".join(e.problems) for e in catalog.entries if not e.ok}
    problems.update({key: f"ignored: {why}" for key, why in catalog.ignored.items()})
    if only:
        wanted = set(only)
        specs = [s for s in specs if s.prefix in wanted or s.key in wanted]
        missing = wanted - {s.prefix for s in specs} - {s.key for s in specs}
        if missing:
            raise ConfigError(f"no such model(s) in {root}: {', '.join(sorted(missing))}")
    loaded, failed = load_models(store, specs)
    problems.update({p: str(e) for p, e in failed.items()})
    if not loaded:
        detail = "; ".join(f"{p}: {m}" for p, m in problems.items()) or "no models/ keys"
        raise ConfigError(f"no usable model in {root} ({detail})")
    return [(m.spec, m) for m in loaded], problems


async def replay_bars(
    bars: Sequence[Bar],
    models: Sequence[tuple[ModelSpec, ScoringModel]],
    *,
    limits: RiskLimits | None = None,
    slippage_bps: float = 1.0,
    commission_per_share: float = 0.0,
    journal_root: Path | None = None,
    fsync: bool = False,
    clock: Callable[[], int] = time.time_ns,
    timer: Callable[[], float] = time.perf_counter,
) -> ReplayOutcome:
    """Run ``bars`` (time order) through one ``ModelRunner`` + ``SimBroker`` per model.

    ``journal_root`` writes each model's journals under ``journal_root/<model key>`` (as a
    live trader would); ``None`` keeps them in memory, which is what a backtest wants.
    """
    runners: dict[str, ModelRunner] = {}
    brokers: dict[str, SimBroker] = {}
    by_symbol: dict[str, list[ModelRunner]] = {}
    for spec, model in models:
        broker = SimBroker(slippage_bps, commission_per_share, model=spec.key)
        runner = ModelRunner(
            spec,
            model,
            broker,
            limits=limits,
            journal_dir=journal_root / spec.key if journal_root is not None else None,
            fsync=fsync,
            clock=clock,
        )
        runners[spec.key], brokers[spec.key] = runner, broker
        by_symbol.setdefault(spec.symbol, []).append(runner)
    events = 0
    empty: list[ModelRunner] = []
    t0 = timer()
    try:
        if len(runners) == 1:  # a backtest of one model: no per-bar lookup
            (runner,) = runners.values()
            on_bar, symbol = runner.on_bar, runner.symbol
            for bar in bars:
                if bar.symbol == symbol:
                    await on_bar(bar, clock())
                    events += 1
        else:
            for bar in bars:
                for runner in by_symbol.get(bar.symbol, empty):
                    await runner.on_bar(bar, clock())
                    events += 1
    finally:
        for runner in runners.values():
            runner.close()
    loop_s = timer() - t0
    prices = price_points(bars)
    summaries: list[ModelSummary] = []
    curves: list[ModelCurve] = []
    for key, runner in sorted(runners.items(), key=lambda kv: kv[1].spec.prefix):
        s, c = summarize_model(
            key,
            runner.spec.prefix,
            runner.symbol,
            brokers[key].fills,
            prices.get(runner.symbol, []),
            runner.latencies_us,
            decisions=runner.stats.decisions,
        )
        summaries.append(s)
        curves.append(c)
    notes = [
        f"{k}: no bars of {r.symbol} in the file" for k, r in runners.items() if r.stats.bars == 0
    ]
    return ReplayOutcome(
        summaries, curves, prices, runners, brokers, len(bars), events, loop_s, notes
    )

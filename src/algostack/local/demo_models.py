"""Demo models for the local session, trained honestly on synthetic bars of past days.

``ensure_demo_models(root)`` writes, into a directory laid out like the bucket (so
``root/models/...``), four models over two symbols in both formats:

- ``models/logreg/AAPL/model_1``: scaler + logistic regression, exported to ONNX;
- ``models/gbt/MSFT/model_2``: gradient-boosted trees, exported to ONNX;
- ``models/linear/MSFT/model_3``: ridge regression of the forward return, native JSON;
- ``models/sma/AAPL/model_4``: the SMA(10)/SMA(30) cross rule, native JSON.

Bars come from the offline ``SyntheticSource`` (a random walk: the models find little, as
they should). Training uses the batch features per day (features restart each day, as a
trader warming up from the day's stream sees them) and a walk-forward nested
cross-validation: outer fold X tests on later days than it trains on; inner fold Y picks
the hyper-parameter on a validation day after its training days. Every (X, Y) fit is one
artifact, the folds a trader averages. Bars of the trading day itself are never used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from algostack.adapters.artifacts.export import export_linear_json, export_sklearn, write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore
from algostack.core.features_batch import compute_features
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.naming import ModelSpec, group_models
from algostack.core.sessions import NEW_YORK, previous_session

DAYS = 10
OUTER = 2
INNER = 2
HORIZON = 5
FEATURES_A = ("ret_1", "ret_5", "sma_ratio_5_20", "rsi_14", "vol_20", "volume_z_20", "tod")
FEATURES_B = ("ret_1", "ret_3", "ema_ratio_5_15", "range_10", "vol_10", "tod")
SMA_FEATURES = ("sma_ratio_10_30",)


@dataclass(frozen=True)
class DemoModel:
    """One demo model: where it goes, what it reads and how it is fitted."""

    model_type: str
    symbol: str
    model_id: str
    ext: str
    features: tuple[str, ...]
    thresholds: dict[str, float]

    @property
    def prefix(self) -> str:
        """The model prefix in the bucket."""
        return f"models/{self.model_type}/{self.symbol}/{self.model_id}"

    def fold_keys(self) -> list[str]:
        """Every fold key of this model."""
        if self.model_type == "sma":
            return [f"{self.prefix}-outer_0_inner_0{self.ext}"]
        return [
            f"{self.prefix}-outer_{x}_inner_{y}{self.ext}"
            for x in range(OUTER)
            for y in range(INNER)
        ]


DEMO_MODELS = (
    DemoModel(
        "logreg", "AAPL", "model_1", ".onnx", FEATURES_A, {"long_entry": 0.53, "long_exit": 0.5}
    ),
    DemoModel(
        "gbt", "MSFT", "model_2", ".onnx", FEATURES_B, {"long_entry": 0.53, "long_exit": 0.5}
    ),
    DemoModel(
        "linear", "MSFT", "model_3", ".json", FEATURES_A, {"long_entry": 2e-4, "long_exit": 0.0}
    ),
    DemoModel(
        "sma", "AAPL", "model_4", ".json", SMA_FEATURES, {"long_entry": 0.0, "long_exit": 0.0}
    ),
)


def synthetic_day_bars(symbol: str, day: date, seed: int) -> pd.DataFrame:
    """One session of minute bars for (symbol, day, seed), deterministic.

    Uses the offline ``SyntheticSource`` (the same generator the local session trades on),
    with a per-day seed, so the models are trained on data shaped like what they will trade.
    """
    from algostack.adapters.offline.synthetic import SyntheticSource

    src = SyntheticSource(
        [symbol], day=day, seed=seed * 100_003 + day.toordinal(), include_trades=False
    )
    open_ts = datetime_to_ts(src.session.open)
    n = src.minutes
    rows = []
    for minute in range(n):
        for ev in src.minute_batch(open_ts + minute * NS_PER_MIN, minute / max(n - 1, 1)):
            if isinstance(ev, Bar):
                rows.append((ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume))
    return pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])


def past_sessions(before: date, count: int) -> list[date]:
    """The ``count`` NYSE sessions strictly before ``before``, oldest first."""
    days: list[date] = []
    day = before
    while len(days) < count:
        day = previous_session(day).day
        days.append(day)
    return days[::-1]


def _dataset(
    symbol: str, days: Sequence[date], features: Sequence[str], seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per day: the feature rows and the forward ``HORIZON``-bar log return (same day only)."""
    out = []
    for day in days:
        bars = synthetic_day_bars(symbol, day, seed)
        x = compute_features(bars, list(features)).to_numpy()
        close = bars["close"].to_numpy()
        fwd = np.full(len(close), np.nan)
        fwd[:-HORIZON] = np.log(close[HORIZON:] / close[:-HORIZON])
        keep = ~np.isnan(x).any(axis=1) & ~np.isnan(fwd)
        out.append((x[keep], fwd[keep]))
    return out


def _stack(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _make_estimator(model_type: str, param: float) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if model_type == "logreg":
        return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=param))])
    if model_type == "gbt":
        return GradientBoostingClassifier(
            n_estimators=int(param), max_depth=2, learning_rate=0.1, random_state=0
        )
    return Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=param))])


GRIDS = {"logreg": (0.01, 1.0), "gbt": (20.0, 40.0), "linear": (1.0, 100.0)}


def _fit(model_type: str, param: float, train: tuple[np.ndarray, np.ndarray]) -> Any:
    x, fwd = train
    est = _make_estimator(model_type, param)
    est.fit(x, fwd if model_type == "linear" else (fwd > 0).astype(int))
    return est


def _hit_rate(est: Any, data: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of rows where the predicted direction of the forward return is right."""
    x, fwd = data
    pred = est.predict(x)
    if pred.dtype.kind in "iub":  # a classifier: 1 = up
        return float(np.mean(pred == (fwd > 0)))
    return float(np.mean(np.sign(pred) == np.sign(fwd)))


def _train_folds(
    m: DemoModel, days: Sequence[date], seed: int
) -> dict[tuple[int, int], tuple[Any, dict[str, Any]]]:
    """Walk-forward nested CV: {(outer, inner): (fitted estimator, metrics)}."""
    data = _dataset(m.symbol, days, m.features, seed)
    folds = {}
    n = len(days)
    for x in range(OUTER):
        test_start = n - OUTER + x  # outer X tests on day test_start, trains on days before
        for y in range(INNER):
            val_day = test_start - INNER + y  # inner Y validates on one earlier day
            train = _stack(data[:val_day])
            val = data[val_day]
            fits = [(p, _fit(m.model_type, p, train)) for p in GRIDS[m.model_type]]
            scored = [(_hit_rate(est, val), p, est) for p, est in fits]
            val_acc, best, est = max(scored, key=lambda t: t[0])
            test_acc = _hit_rate(est, data[test_start])
            folds[(x, y)] = (
                est,
                {
                    "param": best,
                    "train_days": [d.isoformat() for d in days[:val_day]],
                    "val_day": days[val_day].isoformat(),
                    "test_day": days[test_start].isoformat(),
                    "val_hit_rate": round(val_acc, 4),
                    "test_hit_rate": round(test_acc, 4),
                    "seed": seed,
                },
            )
    return folds


def _artifacts(m: DemoModel, days: Sequence[date], seed: int) -> dict[str, bytes]:
    if m.model_type == "sma":
        data = dump_native(
            kind="linear",
            features=m.features,
            coef=[1.0],
            intercept=0.0,
            thresholds=m.thresholds,
            meta={"rule": "long when SMA(10) > SMA(30), flat otherwise"},
        )
        return {m.fold_keys()[0]: data}
    export: Callable[..., bytes] = export_linear_json if m.ext == ".json" else export_sklearn
    out = {}
    for (x, y), (est, meta) in _train_folds(m, days, seed).items():
        key = f"{m.prefix}-outer_{x}_inner_{y}{m.ext}"
        out[key] = export(est, list(m.features), m.thresholds, meta=meta)
    return out


def ensure_demo_models(root: Path, *, seed: int = 7, before: date | None = None) -> list[ModelSpec]:
    """Write the demo models under ``root/models/`` unless they are all there; return specs.

    ``before`` is the trading day (default: today in New York); training uses the ``DAYS``
    sessions before it. Idempotent: existing complete models are left as they are.
    """
    store = LocalDirStore(Path(root))
    expected = [k for m in DEMO_MODELS for k in m.fold_keys()]
    if not all(store.stat(k) is not None for k in expected):
        day = before or datetime.now(NEW_YORK).date()
        days = past_sessions(day, DAYS)
        for m in DEMO_MODELS:
            for key, data in _artifacts(m, days, seed).items():
                write_fold(store, key, data)
    specs, _ignored = group_models(expected)
    return specs

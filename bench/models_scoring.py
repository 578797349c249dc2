"""Per-bar cost of a trader's model path: streaming features, the fold ensemble's score, risk.

Figures (µs per bar/call, medians over repeats, same run):
- ``features_stream_us``: 7 streaming features (``FeatureEngine.update``, the bar rule
  included); baseline ``features_batch_us``: recomputing the batch twin over the trailing
  warm-up window per bar;
- ``features_sma_ratio_us``: the replay bench's one feature, ``sma_ratio_10_30``, the same way;
- ``onnx5_fused_us``: 5 ONNX logistic folds fused into one session; baseline
  ``onnx5_per_fold_us``: one single-thread session call per fold (the straightforward way);
  ``gbt5_fused_us`` / ``gbt5_per_fold_us`` the same with 50-tree boosted folds;
- ``json5_linear_us`` (5 linear folds collapsed into one dot product) and
  ``json5_logistic_us`` (5 logistic folds as one matrix product);
- ``json2_logistic_us``: 2 logistic folds of 7 features, scored in plain Python (small
  ensembles, ``PLAIN_PYTHON_MAX``); baseline ``json2_logistic_numpy_us``: the numpy path;
- ``risk_sizing_us``: ``RiskEngine.sizing`` (the target position and must-flatten) per bar of
  a session, signals -1/0/+1 in runs.
The CPU load of other processes is read from /proc/stat per repeat and reported.

    .venv/bin/python bench/models_scoring.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from algostack.adapters.artifacts.export import export_linear_json, export_sklearn
from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import EnsembleModel
from algostack.core.features import FeatureEngine
from algostack.core.features_batch import compute_features
from algostack.core.market import NS_PER_MIN, Bar
from algostack.core.naming import group_models
from algostack.core.risk import RiskEngine, RiskLimits

FEATS = ["ret_1", "ret_5", "sma_ratio_5_20", "rsi_14", "vol_20", "volume_z_20", "tod"]
TH = {"long_entry": 0.55, "long_exit": 0.5}


def _busy() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


def _timed(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median µs per item over ``repeats`` runs, and the mean machine load during them."""
    per, loads = [], []
    for _ in range(repeats):
        b0, t0 = _busy()
        start = time.perf_counter()
        n = fn()
        per.append((time.perf_counter() - start) / n * 1e6)
        b1, t1 = _busy()
        loads.append((b1 - b0) / max(1, t1 - t0))
    return statistics.median(per), statistics.mean(loads)


def _bars(n: int) -> list[Bar]:
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    t0 = 1_764_081_000 * 10**9
    return [
        Bar(
            symbol="AAPL",
            ts=t0 + i * NS_PER_MIN,
            open=float(x),
            high=float(x) * 1.001,
            low=float(x) * 0.999,
            close=float(x),
            volume=float(rng.integers(100, 5000)),
        )
        for i, x in enumerate(c)
    ]


def _ensemble(
    make: Callable[[], object],
    ext: str,
    exporter: Callable[..., bytes],
    n_folds: int = 5,
    **kw: int,
) -> EnsembleModel:
    folds = []
    for i in range(n_folds):
        rng = np.random.default_rng(i)
        x = rng.normal(size=(600, len(FEATS)))
        y = (x[:, 0] + rng.normal(size=600) > 0).astype(int)
        est = make()
        target = y if not isinstance(est, Pipeline) or ext != ".lin" else x[:, 0]
        est.fit(x, target)  # type: ignore[attr-defined]
        key = f"models/b/AAPL/m_1-outer_{i}_inner_0{'.json' if ext == '.lin' else ext}"
        folds.append(parse_fold(key, exporter(est, FEATS, TH)))
    spec = group_models([f.key for f in folds])[0][0]
    return EnsembleModel(spec, folds, **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_bars = 20_000 if args.quick else 100_000
    n_calls = 3_000 if args.quick else 20_000
    repeats = 5 if args.quick else 9
    bars = _bars(n_bars)
    fig: dict[str, float] = {}

    def stream() -> int:
        eng = FeatureEngine(FEATS)
        for b in bars:
            eng.update(b)
        return len(bars)

    fig["features_stream_us"], load = _timed(stream, repeats)

    def sma_ratio() -> int:
        eng = FeatureEngine(["sma_ratio_10_30"])
        for b in bars:
            eng.update(b)
        return len(bars)

    fig["features_sma_ratio_us"], _ = _timed(sma_ratio, repeats)
    window = FeatureEngine(FEATS).warmup_bars
    frame = pd.DataFrame(
        {
            "ts": [b.ts for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )

    def batch() -> int:
        n = 200 if args.quick else 1000
        for i in range(window, window + n):
            compute_features(frame.iloc[i - window : i], FEATS).iloc[-1].to_numpy()
        return n

    fig["features_batch_us"], _ = _timed(batch, 3)
    x = np.array([0.001, 0.002, 0.01, 55.0, 0.001, 0.5, 0.3])

    def calls(fn: Callable[[np.ndarray], float]) -> Callable[[], int]:
        def run() -> int:
            for _ in range(n_calls):
                fn(x)
            return n_calls

        return run

    logreg = _ensemble(
        lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]),
        ".onnx",
        export_sklearn,
    )
    gbt = _ensemble(
        lambda: GradientBoostingClassifier(n_estimators=50, max_depth=3), ".onnx", export_sklearn
    )
    for name, model in (("onnx5", logreg), ("gbt5", gbt)):
        assert model.fused
        folds = model._folds  # the baseline runs the folds one by one
        fig[f"{name}_fused_us"], _ = _timed(calls(model.score), repeats)
        fig[f"{name}_per_fold_us"], _ = _timed(
            calls(lambda v, fs=folds: sum(f.scorer(v) for f in fs) / len(fs)), repeats
        )
    lin = _ensemble(
        lambda: Pipeline([("s", StandardScaler()), ("m", LinearRegression())]),
        ".lin",
        export_linear_json,
    )
    logit = _ensemble(
        lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]),
        ".json",
        export_linear_json,
    )
    fig["json5_linear_us"], _ = _timed(calls(lin.score), repeats)
    fig["json5_logistic_us"], _ = _timed(calls(logit.score), repeats)
    # Two logistic folds (the latency bench's models): plain Python vs the numpy path.
    make_logit = lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())])  # noqa: E731
    small = _ensemble(make_logit, ".json", export_linear_json, n_folds=2)
    numpy2 = _ensemble(make_logit, ".json", export_linear_json, n_folds=2, plain_python_max=0)
    fig["json2_logistic_us"], _ = _timed(calls(small.score), repeats)
    fig["json2_logistic_numpy_us"], _ = _timed(calls(numpy2.score), repeats)
    # The session of the first bar (09:30-16:00 New York), minute by minute, again and again.
    asks = [
        ((i // 50) % 3 - 1, b.close, bars[0].ts + (i % 390 + 1) * NS_PER_MIN)
        for i, b in enumerate(bars[:n_calls])
    ]

    def sizing() -> int:
        size = RiskEngine(RiskLimits(), "bench").sizing
        for direction, price, now in asks:
            size(direction, price, now, position=0)
        return len(asks)

    fig["risk_sizing_us"], _ = _timed(sizing, repeats)
    fig["json2_ratio_numpy_over_python"] = fig["json2_logistic_numpy_us"] / fig["json2_logistic_us"]
    fig["features_ratio_batch_over_stream"] = fig["features_batch_us"] / fig["features_stream_us"]
    fig["onnx5_ratio_per_fold_over_fused"] = fig["onnx5_per_fold_us"] / fig["onnx5_fused_us"]
    fig["gbt5_ratio_per_fold_over_fused"] = fig["gbt5_per_fold_us"] / fig["gbt5_fused_us"]
    fig["trader_path_onnx5_us"] = fig["features_stream_us"] + fig["onnx5_fused_us"]
    fig["machine_load"] = load
    print(f"{'figure':36} {'value':>10}")
    for k, v in fig.items():
        print(f"{k:36} {v:10.2f}")
    print(f"(cpus: {os.cpu_count()}, quick: {args.quick})")
    print(json.dumps({k: round(v, 3) for k, v in fig.items()}))


if __name__ == "__main__":
    main()

"""Native JSON models: ``algostack.linear/v1`` (linear or logistic, optional scaler).

Format (one fold per file; see docs/models.md)::

    {"format": "algostack.linear/v1", "kind": "linear" | "logistic",
     "features": [...], "coef": [...], "intercept": 0.0,
     "thresholds": {"long_entry": .., "long_exit": .., ["short_entry": .., "short_exit": ..]},
     "timeframe": "1Min", "scaler": {"mean": [...], "scale": [...]}  (optional),
     "meta": {...}  (optional, free-form: training metrics, provenance)}

Score: ``z = intercept + coef . ((x - mean) / scale)``; ``linear`` scores ``z``, ``logistic``
scores ``sigmoid(z)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from algostack.adapters.artifacts.model import (
    ArtifactError,
    Fold,
    LinearParams,
    check_metadata,
    parse_thresholds,
    sigmoid,
)
from algostack.core.signals import Thresholds

FORMAT = "algostack.linear/v1"
KINDS = ("linear", "logistic")
_KEYS = {"format", "kind", "features", "coef", "intercept", "thresholds", "timeframe", "scaler"}
_OPTIONAL = {"scaler", "meta"}


def _numbers(key: str, what: str, value: object, n: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n:
        raise ArtifactError(f"{key}: '{what}' must be a list of {n} numbers (one per feature)")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ArtifactError(f"{key}: '{what}' must hold numbers only")
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ArtifactError(f"{key}: '{what}' holds NaN or infinity")
    return arr


def parse_native(key: str, data: bytes) -> Fold:
    """Parse one JSON fold; ``ArtifactError`` naming ``key`` on any problem."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"{key}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{key}: expected a JSON object in format {FORMAT!r}")
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"{key}: 'format' must be {FORMAT!r}, got {doc.get('format')!r}")
    unknown = sorted(set(doc) - _KEYS - _OPTIONAL)
    missing = sorted(_KEYS - _OPTIONAL - set(doc))
    if unknown or missing:
        raise ArtifactError(f"{key}: unknown field(s) {unknown}, missing field(s) {missing}")
    kind = doc["kind"]
    if kind not in KINDS:
        raise ArtifactError(f"{key}: 'kind' must be one of {KINDS}, got {kind!r}")
    features, timeframe = check_metadata(key, doc["features"], doc["timeframe"])
    n = len(features)
    coef = _numbers(key, "coef", doc["coef"], n)
    intercept = doc["intercept"]
    if isinstance(intercept, bool) or not isinstance(intercept, int | float):
        raise ArtifactError(f"{key}: 'intercept' must be a number")
    if not math.isfinite(intercept):
        raise ArtifactError(f"{key}: 'intercept' is not finite")
    b = float(intercept)
    scaler = doc.get("scaler")
    if scaler is not None:
        if not isinstance(scaler, dict) or set(scaler) != {"mean", "scale"}:
            raise ArtifactError(f"{key}: 'scaler' must be {{'mean': [...], 'scale': [...]}}")
        mean = _numbers(key, "scaler.mean", scaler["mean"], n)
        scale = _numbers(key, "scaler.scale", scaler["scale"], n)
        if np.any(scale == 0.0):
            raise ArtifactError(f"{key}: 'scaler.scale' holds a zero")
        # fold the scaler in: coef . ((x - m) / s) + b == (coef / s) . x + (b - coef . (m / s))
        b = b - float(np.dot(coef, mean / scale))
        coef = coef / scale
    thresholds = parse_thresholds(key, doc["thresholds"])
    params = LinearParams(kind, coef, b)
    if kind == "linear":

        def score(x: np.ndarray) -> float:
            return float(coef @ x) + b

    else:

        def score(x: np.ndarray) -> float:
            return sigmoid(float(coef @ x) + b)

    return Fold(key, "json", features, thresholds, timeframe, score, params)


def dump_native(
    *,
    kind: str,
    features: Sequence[str],
    coef: Sequence[float],
    intercept: float,
    thresholds: Thresholds | Mapping[str, float],
    timeframe: str = "1Min",
    scaler: Mapping[str, Sequence[float]] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise one native fold (validated by parsing it back)."""
    th = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "features": list(features),
        "coef": [float(c) for c in coef],
        "intercept": float(intercept),
        "thresholds": th.to_dict(),
        "timeframe": timeframe,
    }
    if scaler is not None:
        doc["scaler"] = {k: [float(v) for v in scaler[k]] for k in ("mean", "scale")}
    if meta is not None:
        doc["meta"] = dict(meta)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    parse_native("<new native model>", data)
    return data

"""Pickle/joblib folds: loading one runs arbitrary code, so only behind an explicit flag.

The pickled object must be a dict ``{"model": <estimator>, "features": [...],
"thresholds": {...}, "timeframe": "1Min"}``; the estimator's ``predict_proba`` column of
class 1 (or its ``predict``) is the score.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from algostack.adapters.artifacts.model import (
    ArtifactError,
    Fold,
    check_metadata,
    parse_thresholds,
)

TRUST_HINT = (
    "pickle/joblib artifacts execute code when loaded; refusing. Load them only if you "
    "produced them: pass --trust-pickle (CLI) or trust_pickle=True (load_model), or export the "
    "model to ONNX with algostack.adapters.artifacts.export.export_sklearn"
)


def parse_pickle(key: str, data: bytes, *, trust: bool) -> Fold:
    """Unpickle one fold when ``trust`` is set; ``ArtifactError`` naming ``key`` otherwise."""
    if not trust:
        raise ArtifactError(f"{key}: {TRUST_HINT}")
    import joblib

    try:
        obj = joblib.load(io.BytesIO(data))  # joblib also reads plain pickles
    except Exception as exc:  # any unpickling failure is a corrupt artifact
        raise ArtifactError(f"{key}: cannot unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise ArtifactError(
            f"{key}: expected a pickled dict with 'model', 'features', 'thresholds', 'timeframe'"
        )
    features, timeframe = check_metadata(key, obj.get("features"), obj.get("timeframe", "1Min"))
    thresholds = parse_thresholds(key, obj.get("thresholds"))
    est: Any = obj["model"]
    n = len(features)
    if hasattr(est, "predict_proba"):
        classes = list(getattr(est, "classes_", [0, 1]))
        col = classes.index(1) if 1 in classes else len(classes) - 1

        def score(x: np.ndarray) -> float:
            return float(est.predict_proba(np.asarray(x, dtype=float).reshape(1, n))[0, col])

    elif hasattr(est, "predict"):

        def score(x: np.ndarray) -> float:
            return float(np.ravel(est.predict(np.asarray(x, dtype=float).reshape(1, n)))[0])

    else:
        raise ArtifactError(f"{key}: the pickled model has neither predict_proba nor predict")
    try:
        score(np.zeros(n))
    except Exception as exc:
        raise ArtifactError(f"{key}: scoring a zero row failed ({exc})") from None
    return Fold(key, "pickle", features, thresholds, timeframe, score)

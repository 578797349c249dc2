"""Produce artifacts: export a scikit-learn estimator to our ONNX layout, or a linear one to
the native JSON format, and write a fold into a store under a validated key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from algostack.adapters.artifacts.loader import parse_fold
from algostack.adapters.artifacts.model import ArtifactError, check_metadata
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.artifacts.onnx_model import (
    META_COLUMN,
    META_FEATURES,
    META_OUTPUT,
    META_THRESHOLDS,
    META_TIMEFRAME,
)
from algostack.adapters.storage import BucketStore
from algostack.core.naming import ModelKeyError, model_number, parse_artifact_key
from algostack.core.signals import Thresholds

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def _thresholds(th: Thresholds | Mapping[str, float]) -> Thresholds:
    return th if isinstance(th, Thresholds) else Thresholds.from_mapping(th)


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def export_sklearn(
    estimator: Any,
    features: Sequence[str],
    thresholds: Thresholds | Mapping[str, float],
    *,
    timeframe: str = "1Min",
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Convert a fitted estimator (or Pipeline) to ONNX bytes with our metadata.

    Classifiers score the probability of class 1 (the positive class; the last class when
    there is no class 1), regressors their prediction. ``meta`` adds ``algostack.meta``.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    feats, tf = check_metadata("<export>", list(features), timeframe)
    th = _thresholds(thresholds)
    final = _final_step(estimator)
    options: dict[Any, Any] = {}
    props = {
        META_FEATURES: orjson.dumps(list(feats)).decode(),
        META_THRESHOLDS: orjson.dumps(th.to_dict()).decode(),
        META_TIMEFRAME: tf,
    }
    if is_classifier(estimator):
        options[id(final)] = {"zipmap": False}
        classes = list(getattr(final, "classes_", []))
        if len(classes) < 2:
            raise ValueError("export_sklearn: fit the classifier on at least two classes first")
        col = classes.index(1) if 1 in classes else len(classes) - 1
        props[META_OUTPUT] = "probabilities"
        props[META_COLUMN] = str(col)
    else:
        props[META_OUTPUT] = "variable"
        props[META_COLUMN] = "0"
    if meta is not None:
        props["algostack.meta"] = orjson.dumps(
            dict(meta), option=orjson.OPT_SERIALIZE_NUMPY
        ).decode()
    onx = convert_sklearn(
        estimator,
        initial_types=[("input", FloatTensorType([None, len(feats)]))],
        options=options or None,
        target_opset=TARGET_OPSET,
    )
    del onx.metadata_props[:]
    for k, v in props.items():
        entry = onx.metadata_props.add()
        entry.key, entry.value = k, v
    data: bytes = onx.SerializeToString()
    parse_fold("<export>.onnx", data)  # fail here, not in a trader, if the result is unusable
    return data


def export_linear_json(
    estimator: Any,
    features: Sequence[str],
    thresholds: Thresholds | Mapping[str, float],
    *,
    timeframe: str = "1Min",
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Export a fitted linear model (LinearRegression/Ridge/LogisticRegression, optionally in
    a Pipeline after a StandardScaler) to the native JSON format."""
    from sklearn.base import is_classifier

    steps = getattr(estimator, "steps", None) or [("model", estimator)]
    final = steps[-1][1]
    scaler = None
    if len(steps) == 2:
        sc = steps[0][1]
        if not hasattr(sc, "mean_") or not hasattr(sc, "scale_"):
            raise ValueError("export_linear_json: only a fitted StandardScaler may precede it")
        scaler = {"mean": list(sc.mean_), "scale": list(sc.scale_)}
    elif len(steps) > 2:
        raise ValueError("export_linear_json: at most [StandardScaler, linear model]")
    coef = final.coef_.reshape(-1) if final.coef_.ndim == 1 or final.coef_.shape[0] == 1 else None
    if coef is None:
        raise ValueError("export_linear_json: only single-output / binary linear models")
    intercept = float(np.ravel(getattr(final, "intercept_", 0.0))[0])
    kind = "logistic" if is_classifier(final) else "linear"
    if kind == "logistic" and list(final.classes_) != [0, 1]:
        raise ValueError("export_linear_json: a logistic model must have classes [0, 1]")
    return dump_native(
        kind=kind,
        features=features,
        coef=[float(c) for c in coef],
        intercept=intercept,
        thresholds=_thresholds(thresholds),
        timeframe=timeframe,
        scaler=scaler,
        meta=meta,
    )


def write_fold(store: BucketStore, key: str, data: bytes) -> None:
    """Validate ``key`` and ``data`` (pickles are not unpickled) and store the fold."""
    art = parse_artifact_key(key)
    if art is None:
        raise ArtifactError(
            f"{key}: not an artifact key; expected "
            "models/<model_type>/<symbol>/<model_id>-outer_<X>_inner_<Y>.<onnx|json|joblib>"
        )
    try:
        model_number(art.model_id)
    except ModelKeyError as exc:
        raise ArtifactError(f"{key}: {exc}") from None
    if not key.endswith((".joblib", ".pkl", ".pickle")):
        parse_fold(key, data)
    elif not data:
        raise ArtifactError(f"{key}: empty artifact (0 bytes)")
    store.put_bytes(key, data)

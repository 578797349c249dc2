"""The fold ensemble a trader scores: one model = every fold under one prefix, averaged.

Each artifact format parses into a ``Fold`` (its metadata and a one-row scorer); the
``EnsembleModel`` checks that the folds agree and picks the fastest exact way to average
them: linear folds collapse into one dot product, logistic folds into one matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from algostack.core.features import UnknownFeatureError, parse_feature
from algostack.core.naming import ModelSpec
from algostack.core.signals import Thresholds
from algostack.core.timeframes import ACCEPTED, parse_timeframe
from algostack.errors import ConfigError, DataError


class ArtifactError(DataError):
    """An artifact cannot be used (corrupt, empty, inconsistent); the message names the key."""


Scorer = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class LinearParams:
    """A linear or logistic fold with its scaler folded in: ``z = coef @ x + intercept``."""

    kind: str  # "linear" | "logistic"
    coef: np.ndarray
    intercept: float


@dataclass(frozen=True)
class OnnxGraph:
    """What the ensemble needs to fuse ONNX folds into one session."""

    data: bytes
    input_name: str
    output_name: str
    column: int


@dataclass(frozen=True)
class Fold:
    """One parsed artifact: metadata plus a scorer for one row of features."""

    key: str
    fmt: str
    features: tuple[str, ...]
    thresholds: Thresholds
    timeframe: str
    scorer: Scorer
    linear: LinearParams | None = None
    """Set for native linear/logistic folds so the ensemble can combine them exactly."""
    onnx: OnnxGraph | None = None
    """Set for ONNX folds so the ensemble can run them all in one session call."""


def check_metadata(key: str, features: object, timeframe: object) -> tuple[tuple[str, ...], str]:
    """Validate a fold's feature list and timeframe; ``ArtifactError`` naming ``key``."""
    if (
        not isinstance(features, list | tuple)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise ArtifactError(f"{key}: 'features' must be a non-empty list of feature names")
    for name in features:
        try:
            parse_feature(name)
        except UnknownFeatureError as exc:
            raise ArtifactError(f"{key}: {exc}") from None
    if len(set(features)) != len(features):
        raise ArtifactError(f"{key}: duplicate feature names {list(features)}")
    if not isinstance(timeframe, str):
        raise ArtifactError(f"{key}: timeframe {timeframe!r} is not text; accepted: {ACCEPTED}")
    try:
        parse_timeframe(timeframe)  # what the trader builds, refused at load (models validate)
    except ConfigError as exc:
        raise ArtifactError(f"{key}: {exc}") from None
    return tuple(features), timeframe


def parse_thresholds(key: str, data: object) -> Thresholds:
    """Build ``Thresholds`` from a JSON object; ``ArtifactError`` naming ``key``."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{key}: 'thresholds' must be an object with long_entry/long_exit")
    try:
        return Thresholds.from_mapping(data, where=f"{key}: thresholds")
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None


PLAIN_PYTHON_MAX = 32
"""Logistic ensembles with at most this many coefficients (folds x features) are scored in
plain Python: numpy's five calls per bar cost ~4.5 µs whatever the size, plain Python
~0.1 µs per coefficient (2 folds x 7 features: 1.4 µs). A linear ensemble is one numpy dot
product (~1 µs) and stays in numpy. ``bench/models_scoring.py``: ``json2_logistic_us``."""


class EnsembleModel:
    """A model's folds, scored together: ``score(x)`` is the mean of the folds' scores."""

    def __init__(
        self, spec: ModelSpec, folds: Sequence[Fold], *, plain_python_max: int = PLAIN_PYTHON_MAX
    ) -> None:
        """``plain_python_max``: the logistic size limit of the plain-Python scorer."""
        if not folds:
            raise ArtifactError(f"{spec.prefix}: no artifacts (folds) to load")
        first = folds[0]
        for f in folds[1:]:
            for what in ("features", "thresholds", "timeframe"):
                if getattr(f, what) != getattr(first, what):
                    raise ArtifactError(
                        f"{f.key}: {what} {_show(getattr(f, what))} disagree with "
                        f"{first.key}: {_show(getattr(first, what))}; every fold of "
                        f"{spec.prefix} must agree"
                    )
        self.spec = spec
        self.features: tuple[str, ...] = first.features
        self.thresholds: Thresholds = first.thresholds
        self.timeframe: str = first.timeframe
        self.fold_keys: tuple[str, ...] = tuple(f.key for f in folds)
        self.formats: tuple[str, ...] = tuple(sorted({f.fmt for f in folds}))
        self._folds = tuple(folds)
        self._n = len(first.features)
        self.fused = False
        """True when ONNX folds run as one fused session (one call per bar)."""
        self._plain_python_max = plain_python_max
        self._score = self._build()

    def __repr__(self) -> str:
        return (
            f"EnsembleModel({self.spec.prefix!r}, folds={len(self.fold_keys)}, "
            f"formats={self.formats}, features={list(self.features)})"
        )

    def _build(self) -> Scorer:
        folds = self._folds
        n = self._n
        lin = [f.linear for f in folds]
        if all(p is not None and p.kind == "linear" for p in lin):
            # the mean of linear folds is one linear model: one dot product per bar
            coef = np.mean([p.coef for p in lin if p is not None], axis=0)
            b = float(np.mean([p.intercept for p in lin if p is not None]))
            if n == 1 and self._plain_python_max > 0:
                # one feature (an SMA cross): numpy's dot was most of the score's cost; one
                # multiply and one add give the very same float as the dot product did
                c0 = float(coef[0])

                def linear_one(x: np.ndarray) -> float:
                    if x.shape != (1,):
                        raise _shape_error(self, x)
                    return c0 * float(x[0]) + b

                return linear_one

            def linear(x: np.ndarray) -> float:
                if x.shape != (n,):
                    raise _shape_error(self, x)
                return float(coef @ x) + b

            return linear
        if all(p is not None and p.kind == "logistic" for p in lin):
            w = np.vstack([p.coef for p in lin if p is not None])
            b_vec = np.array([p.intercept for p in lin if p is not None])
            k = float(len(lin))
            if w.size <= self._plain_python_max:
                rows = list(zip(w.tolist(), b_vec.tolist(), strict=True))
                tanh = math.tanh

                def logistic_small(x: np.ndarray) -> float:
                    if x.shape != (n,):
                        raise _shape_error(self, x)
                    xs = x.tolist()
                    total = 0.0
                    for coefs, intercept in rows:
                        z = 0.0
                        for c, v in zip(coefs, xs, strict=True):
                            z += c * v
                        total += tanh((z + intercept) * 0.5)  # sigmoid via tanh: no overflow
                    return 0.5 + 0.5 * total / k

                return logistic_small

            def logistic(x: np.ndarray) -> float:
                if x.shape != (n,):
                    raise _shape_error(self, x)
                # sigmoid(z) = (1 + tanh(z / 2)) / 2: no overflow for any z
                t = np.tanh((w @ x + b_vec) * 0.5)
                return 0.5 + 0.5 * float(np.sum(t)) / k

            return logistic
        graphs = [f.onnx for f in folds]
        if len(folds) > 1 and all(g is not None for g in graphs):
            from algostack.adapters.artifacts.onnx_model import fuse

            fused = fuse([g for g in graphs if g is not None], n, [f.scorer for f in folds])
            if fused is not None:

                def onnx_fused(x: np.ndarray) -> float:
                    if x.shape != (n,):
                        raise _shape_error(self, x)
                    return fused(x)

                self.fused = True
                return onnx_fused
        scorers = tuple(f.scorer for f in folds)
        count = float(len(scorers))

        def mean(x: np.ndarray) -> float:
            if x.shape != (n,):
                raise _shape_error(self, x)
            total = 0.0
            for s in scorers:
                total += s(x)
            return total / count

        return mean

    def score(self, x: np.ndarray) -> float:
        """Score one feature vector (shape ``(len(features),)``): the mean over the folds."""
        return self._score(x)

    def fold_scores(self, x: np.ndarray) -> list[float]:
        """Each fold's own score for ``x`` (diagnostics; the trader uses ``score``)."""
        return [f.scorer(np.asarray(x, dtype=float)) for f in self._folds]


def _shape_error(model: EnsembleModel, x: np.ndarray) -> ValueError:
    return ValueError(
        f"{model.spec.prefix}: expected a feature vector of shape ({model._n},) for "
        f"{list(model.features)}, got {getattr(x, 'shape', type(x))}"
    )


def _show(value: object) -> str:
    if isinstance(value, Thresholds):
        return str(value.to_dict())
    if isinstance(value, tuple):
        return str(list(value))
    return repr(value)


def sigmoid(z: float) -> float:
    """The logistic function, as ``(1 + tanh(z / 2)) / 2`` (no overflow for any ``z``)."""
    return 0.5 + 0.5 * math.tanh(z * 0.5)

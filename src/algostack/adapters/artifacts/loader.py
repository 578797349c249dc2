"""Load a model's folds from a store into an ``EnsembleModel``.

Formats by the key's ``<rest>`` extension: ``.onnx``, ``.json``, ``.joblib``/``.pkl``/
``.pickle`` (only with ``trust_pickle``). Empty, corrupt or disagreeing folds raise
``ArtifactError`` naming the key.
"""

from __future__ import annotations

from collections.abc import Iterable

from algostack.adapters.artifacts.model import ArtifactError, EnsembleModel, Fold
from algostack.adapters.artifacts.native_json import parse_native
from algostack.adapters.artifacts.onnx_model import parse_onnx
from algostack.adapters.artifacts.pickle_model import parse_pickle
from algostack.adapters.storage import BucketStore
from algostack.core.naming import ModelSpec
from algostack.errors import DataError

__all__ = ["ArtifactError", "artifact_format", "load_model", "load_models", "parse_fold"]

_FORMATS = {".onnx": "onnx", ".json": "json", ".joblib": "pickle", ".pkl": "pickle"}
_FORMATS[".pickle"] = "pickle"


def artifact_format(key: str) -> str | None:
    """The format a key's extension names (``onnx``, ``json``, ``pickle``) or ``None``."""
    for ext, fmt in _FORMATS.items():
        if key.endswith(ext):
            return fmt
    return None


def parse_fold(key: str, data: bytes, *, trust_pickle: bool = False) -> Fold:
    """Parse one artifact's bytes by its key's extension."""
    fmt = artifact_format(key)
    if fmt is None:
        raise ArtifactError(
            f"{key}: unknown artifact extension; use .onnx, .json, or .joblib/.pkl (trusted)"
        )
    if not data:
        raise ArtifactError(f"{key}: empty artifact (0 bytes)")
    if fmt == "onnx":
        return parse_onnx(key, data)
    if fmt == "json":
        return parse_native(key, data)
    return parse_pickle(key, data, trust=trust_pickle)


def load_model(store: BucketStore, spec: ModelSpec, *, trust_pickle: bool = False) -> EnsembleModel:
    """Load every fold of ``spec`` from ``store`` and check that they agree."""
    folds = []
    for art in spec.folds:
        try:
            data = store.get_bytes(art.key)
        except ArtifactError:
            raise
        except DataError as exc:
            raise ArtifactError(f"{art.key}: cannot read ({exc})") from None
        folds.append(parse_fold(art.key, data, trust_pickle=trust_pickle))
    return EnsembleModel(spec, folds)


def load_models(
    store: BucketStore, specs: Iterable[ModelSpec], *, trust_pickle: bool = False
) -> tuple[list[EnsembleModel], dict[str, ArtifactError]]:
    """Load many models; return the loaded ones and, by model prefix, each failure."""
    loaded: list[EnsembleModel] = []
    failed: dict[str, ArtifactError] = {}
    for spec in specs:
        try:
            loaded.append(load_model(store, spec, trust_pickle=trust_pickle))
        except ArtifactError as exc:
            failed[spec.prefix] = exc
    return loaded, failed

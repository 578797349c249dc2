"""Model artifacts: load fold ensembles (ONNX, native JSON, trusted pickle) and export them."""

from algostack.adapters.artifacts.loader import load_model, load_models
from algostack.adapters.artifacts.model import ArtifactError, EnsembleModel

__all__ = ["ArtifactError", "EnsembleModel", "load_model", "load_models"]

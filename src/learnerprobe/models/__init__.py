"""Model registry, offline providers and loading.

Light to import: torch/transformers load only when a model is loaded or prepared.
"""

from learnerprobe.models.entry import ModelEntry
from learnerprobe.models.loading import load_model
from learnerprobe.models.registry import DEFAULT_MODEL, MODELS, get_model

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelEntry", "get_model", "load_model"]

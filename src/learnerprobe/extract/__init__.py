"""Pooled per-layer activations: the extraction engine and its resumable on-disk cache."""

from learnerprobe.extract.engine import Activations, extract, get_activations

__all__ = ["Activations", "extract", "get_activations"]

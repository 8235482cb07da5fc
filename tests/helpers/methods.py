"""The toy methods the registry tests and the "add a method" recipe register: one probe and one
NLI text method, each a single `MethodEntry` (docs/ARCHITECTURE.md, "Add a method")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry, register


def nearest_mean(ctx, options):
    """Toy probe: standardise, then the nearest class mean (sklearn's NearestCentroid)."""
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), NearestCentroid(**options))


def majority(ctx, options):
    """Toy NLI text method: the training prior for every text."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")


@contextmanager
def toy_methods_registered() -> Iterator[None]:
    """Register ``toy-ncm`` (a CEFR probe) and ``toy-majority`` (an L1 text method); unregister
    them on exit."""
    register(MethodEntry("toy-ncm", "probe", nearest_mean, ("cefr",), ("activations", "model"),
                         proba=True, target="nominal", bundle=True,
                         description="nearest class mean"))
    register(MethodEntry("toy-majority", "text", majority, ("l1",), ("text",), proba=True,
                         target="nominal", bundle=True, description="majority class"))
    try:
        yield
    finally:
        registry.unregister("toy-ncm")
        registry.unregister("toy-majority")

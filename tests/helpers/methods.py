"""The toy methods the registry tests and the "add a method" recipe register: one probe, one
transfer method and one NLI text method, each a single `MethodEntry` (docs/ARCHITECTURE.md,
"Add a method"); the evaluation engine runs each through its cell provider."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry, register

TOY_TRANSFER = "toy-recentred"


class RecentredCentroids(ClassifierMixin, BaseEstimator):
    """Toy transfer method: every corpus centred on its own mean (training corpora on theirs;
    a text of an unknown corpus on the training mean), then the nearest level mean, shrunk
    towards the overall mean by ``shrink`` (the grid the nested provider chooses from)."""

    def __init__(self, n_classes: int = 5, random_state: int = 0, shrink: float = 0.0):
        self.n_classes = n_classes
        self.random_state = random_state
        self.shrink = shrink

    def _centre(self, X, domains, fit: bool):
        X = np.asarray(X, dtype=np.float64)
        if fit:
            self.mean_ = X.mean(axis=0)
        if domains is None:
            return X - self.mean_
        out = np.empty_like(X)
        d = np.asarray(domains).astype(str)
        for v in np.unique(d):
            out[d == v] = X[d == v] - X[d == v].mean(axis=0)
        return out

    def fit(self, X, y, domains=None):
        Z = self._centre(X, domains, fit=True)
        y = np.asarray(y)
        self.classes_ = np.arange(self.n_classes)
        means = np.stack([Z[y == k].mean(axis=0) if (y == k).any() else np.zeros(Z.shape[1])
                          for k in self.classes_])
        self.means_ = (1 - self.shrink) * means
        self.n_features_in_ = Z.shape[1]
        return self

    def predict_proba(self, X, domains=None):
        Z = self._centre(X, domains, fit=False)
        z = Z @ self.means_.T - 0.5 * (self.means_ ** 2).sum(axis=1)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X, domains=None):
        return self.classes_[np.argmax(self.predict_proba(X, domains), axis=1)]

    # bundleable (one declaration): a bundle predicts one text at a time, without domains
    _bundleable = {"types": (), "arrays": None}


def recentred(ctx, options):
    return RecentredCentroids(n_classes=ctx.n_classes or 5, random_state=ctx.seed, **options)


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
    """Register ``toy-ncm`` (a CEFR probe), ``toy-recentred`` (a transfer method) and
    ``toy-majority`` (an L1 text method); unregister them on exit."""
    register(MethodEntry("toy-ncm", "probe", nearest_mean, ("cefr",), ("activations", "model"),
                         proba=True, target="nominal", bundle=True,
                         description="nearest class mean"))
    register(MethodEntry(TOY_TRANSFER, "probe", recentred, ("transfer",),
                         ("activations", "model"), proba=True, target="ordinal",
                         grid={"shrink": [0.0, 0.5]}, bundle=True,
                         description="corpus-recentred nearest level mean"))
    register(MethodEntry("toy-majority", "text", majority, ("l1",), ("text",), proba=True,
                         target="nominal", bundle=True, description="majority class"))
    try:
        yield
    finally:
        registry.unregister("toy-ncm")
        registry.unregister(TOY_TRANSFER)
        registry.unregister("toy-majority")

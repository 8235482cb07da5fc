"""Probes that stream: one pass over (layers x batch x hidden) batches, never all rows at once.

:class:`LayerStats` accumulates per-layer sufficient statistics of a labelled stream -- n,
sum x, X'X, sum y, sum y^2, X'y and per-class counts and sums -- in float64. They are additive
(``merge``: shards, workers and nodes combine exactly), and they determine

- ridge regression exactly, for every alpha at once (:meth:`LayerStats.ridge_path`: one
  eigendecomposition of the standardised, centred Gram matrix per layer), with the same
  standardisation as ``StandardScaler`` and ``all_layers`` (population std, constant features
  centred not scaled);
- the validation error of every (layer, alpha) from the validation stream's own statistics
  (:meth:`LayerStats.mse`), so the alpha and the layer are chosen on validation data without a
  second pass over the training rows;
- linear discriminant analysis (:meth:`LayerStats.lda`: shared within-class covariance, as
  sklearn's ``LinearDiscriminantAnalysis(solver="lsqr")``), an LDA-style linear classifier.

Memory is O(layers x hidden^2): 37 x 4096^2 float64 = 5 GB for Qwen3-Embedding-8B, against
~300 KB per text for storing every layer (1.18 M texts: 357 GB in bf16).

:class:`MinibatchLayerProbes` trains a logistic (softmax) or one-hidden-layer MLP probe on every
layer at once from streamed minibatches (layers are a batch dimension of the weights, Adam),
standardised with the streamed statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# heavy optional import stays local: torch (only MinibatchLayerProbes needs it).


@dataclass
class RidgePath:
    """Ridge solutions of every layer and alpha, in the original feature space:
    ``score = X @ coef[l, a] + intercept[l, a]``."""

    alphas: np.ndarray  # A
    coef: np.ndarray  # L x A x d
    intercept: np.ndarray  # L x A

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores (L x A x m) of ``X`` (L x m x d)."""
        return np.einsum("lmd,lad->lam", np.asarray(X, dtype=np.float64), self.coef) + \
            self.intercept[:, :, None]


class LayerStats:
    """Per-layer sufficient statistics of a labelled stream (labels 0..n_classes-1)."""

    def __init__(self, n_layers: int, dim: int, n_classes: int) -> None:
        self.n_layers, self.dim, self.n_classes = int(n_layers), int(dim), int(n_classes)
        self.n = 0
        self.sx = np.zeros((n_layers, dim))
        self.sxx = np.zeros((n_layers, dim, dim))
        self.sy = 0.0
        self.syy = 0.0
        self.sxy = np.zeros((n_layers, dim))
        self.nk = np.zeros(n_classes)
        self.sxk = np.zeros((n_layers, n_classes, dim))

    def update(self, X: np.ndarray, y: np.ndarray) -> LayerStats:
        """Add a batch: ``X`` (layers x b x hidden), ``y`` (b,) integer labels."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.shape[0] != self.n_layers or X.shape[2] != self.dim or X.shape[1] != y.shape[0]:
            raise ValueError(f"batch {X.shape} with {y.shape[0]} labels does not fit "
                             f"({self.n_layers} layers x {self.dim})")
        yf = y.astype(np.float64)
        self.n += int(y.shape[0])
        self.sx += X.sum(1)
        self.sxx += np.einsum("lbi,lbj->lij", X, X)
        self.sy += float(yf.sum())
        self.syy += float((yf * yf).sum())
        self.sxy += np.einsum("lbd,b->ld", X, yf)
        onehot = np.zeros((y.shape[0], self.n_classes))
        onehot[np.arange(y.shape[0]), y.astype(int)] = 1.0
        self.nk += onehot.sum(0)
        self.sxk += np.einsum("lbd,bk->lkd", X, onehot)
        return self

    def merge(self, other: LayerStats) -> LayerStats:
        """Add another stream's statistics (exact: everything is a sum)."""
        for k in ("sx", "sxx", "sxy", "nk", "sxk"):  # new arrays: either may be read-only
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.n += other.n
        self.sy += other.sy
        self.syy += other.syy
        return self

    # ------------------------------------------------------------------------- moments
    @property
    def mean(self) -> np.ndarray:
        return self.sx / self.n

    def centred_gram(self) -> np.ndarray:
        """sum (x - mean)(x - mean)' per layer (L x d x d)."""
        mu = self.mean
        return self.sxx - self.n * np.einsum("li,lj->lij", mu, mu)

    def scale(self) -> np.ndarray:
        """Per-feature population std (L x d), 1 for constant features (as StandardScaler)."""
        var = np.clip(np.einsum("lii->li", self.centred_gram()) / self.n, 0, None)
        std = np.sqrt(var)
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(self.mean), 1.0)
        return np.where(std < tiny, 1.0, std)

    # ------------------------------------------------------------------------- probes
    def ridge_path(self, alphas, standardize: bool = True) -> RidgePath:
        """Exact ridge (with intercept) of y on x for every layer and alpha."""
        a = np.asarray(alphas, dtype=np.float64)
        mu, ybar = self.mean, self.sy / self.n
        C = self.centred_gram()
        cxy = self.sxy - self.n * mu * ybar
        s = self.scale() if standardize else np.ones_like(mu)
        Cs = C / (s[:, :, None] * s[:, None, :])
        cs = cxy / s
        ev, V = np.linalg.eigh(Cs)  # L x d, L x d x d
        ev = np.clip(ev, 0, None)
        z = np.einsum("ldk,ld->lk", V, cs)  # V' c
        ws = np.einsum("ldk,lka->lad", V, z[:, :, None] / (ev[:, :, None] + a[None, None, :]))
        coef = ws / s[:, None, :]
        intercept = ybar - np.einsum("lad,ld->la", coef, mu)
        return RidgePath(a, coef, intercept)

    def mse(self, path: RidgePath) -> np.ndarray:
        """Mean squared error (L x A) of every solution on *this* stream (e.g. validation rows),
        from its statistics alone: sum (y - w'x - b)^2 / n."""
        w, b = path.coef, path.intercept
        quad = np.einsum("lad,lde,lae->la", w, self.sxx, w)
        sse = (self.syy - 2 * np.einsum("lad,ld->la", w, self.sxy) - 2 * b * self.sy + quad
               + 2 * b * np.einsum("lad,ld->la", w, self.sx) + self.n * b * b)
        return sse / self.n

    def lda(self, shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(coef L x K x d, intercept L x K) of LDA with the pooled within-class covariance
        (``(1 - shrinkage) S + shrinkage * tr(S)/d * I``); empty classes get -inf intercepts."""
        nk = self.nk
        present = nk > 0
        means = np.where(present[None, :, None], self.sxk / np.maximum(nk, 1)[None, :, None], 0)
        between = np.einsum("k,lki,lkj->lij", nk, means, means)
        S = (self.sxx - between) / self.n
        if shrinkage:
            mu_tr = np.einsum("lii->l", S) / self.dim
            S = (1 - shrinkage) * S + shrinkage * mu_tr[:, None, None] * np.eye(self.dim)
        coef = np.stack([np.linalg.lstsq(S[li], means[li].T, rcond=None)[0].T
                         for li in range(self.n_layers)])
        prior = nk / nk.sum()
        with np.errstate(divide="ignore"):
            intercept = -0.5 * np.einsum("lkd,lkd->lk", means, coef) + np.log(prior)[None]
        intercept[:, ~present] = -np.inf
        return coef, intercept


def lda_predict_proba(coef: np.ndarray, intercept: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Class probabilities (L x m x K) of ``X`` (L x m x d) under :meth:`LayerStats.lda`."""
    logits = np.einsum("lmd,lkd->lmk", np.asarray(X, dtype=np.float64), coef) + intercept[:, None]
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


class MinibatchLayerProbes:
    """Logistic (``kind="logistic"``) or one-hidden-layer MLP (``kind="mlp"``) classifiers for
    every layer at once, trained by Adam on streamed minibatches (``partial_fit``).

    ``mean``/``scale`` (L x d; e.g. from :class:`LayerStats`) standardise the inputs, so one
    pass of statistics followed by training passes never needs the rows in memory.
    """

    def __init__(self, kind: str = "logistic", *, n_classes: int, mean: np.ndarray,
                 scale: np.ndarray, hidden: int = 64, lr: float | None = None,
                 weight_decay: float = 1e-4, seed: int = 0) -> None:
        if kind not in ("logistic", "mlp"):
            raise ValueError(f"kind must be 'logistic' or 'mlp', not {kind!r}")
        self.kind, self.n_classes, self.hidden = kind, int(n_classes), int(hidden)
        # default step sizes measured on synthetic ordinal data (tests/unit/test_streaming.py)
        self.lr = lr if lr is not None else (3e-2 if kind == "logistic" else 1e-2)
        self.weight_decay, self.seed = weight_decay, seed
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self._build()

    def _build(self) -> None:
        import torch

        g = torch.Generator().manual_seed(self.seed)
        n_layers, d = self.mean.shape
        k, h = self.n_classes, self.hidden

        def init(*shape: int, fan_in: int) -> torch.Tensor:
            return ((torch.rand(*shape, generator=g) * 2 - 1) / fan_in ** 0.5).requires_grad_()

        if self.kind == "logistic":
            self.params_ = [init(n_layers, d, k, fan_in=d), torch.zeros(n_layers, 1, k,
                                                                        requires_grad=True)]
        else:
            self.params_ = [init(n_layers, d, h, fan_in=d),
                            torch.zeros(n_layers, 1, h, requires_grad=True),
                            init(n_layers, h, k, fan_in=h),
                            torch.zeros(n_layers, 1, k, requires_grad=True)]
        self.opt_ = torch.optim.Adam(self.params_, lr=self.lr, weight_decay=self.weight_decay)
        self.steps_ = 0

    def _logits(self, X: np.ndarray):  # noqa: ANN202 -- a torch tensor (torch imported lazily)
        import torch

        x = torch.from_numpy((np.asarray(X, dtype=np.float32) - self.mean[:, None])
                             / self.scale[:, None])
        p = self.params_
        if self.kind == "logistic":
            return torch.bmm(x, p[0]) + p[1]
        return torch.bmm(torch.relu(torch.bmm(x, p[0]) + p[1]), p[2]) + p[3]

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> MinibatchLayerProbes:
        """One Adam step on a minibatch ``X`` (layers x b x hidden), ``y`` (b,)."""
        import torch

        logits = self._logits(X)  # L x b x K
        target = torch.as_tensor(np.asarray(y, dtype=np.int64))
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.n_classes), target.repeat(logits.shape[0]),
            reduction="mean") * logits.shape[0]  # each layer's mean loss, summed over layers
        self.opt_.zero_grad()
        loss.backward()
        self.opt_.step()
        self.steps_ += 1
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(layers x m x K) class probabilities."""
        import torch

        with torch.no_grad():
            return torch.softmax(self._logits(X), -1).numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(-1)

"""Two torch probes for transfer: a domain-adversarial MLP and a scalar mix of layers.

- :class:`DomainAdversarialMLP` (Ganin et al. 2016, "Domain-adversarial training of neural
  networks"): one hidden layer feeds the level head and, through a gradient-reversal layer, a
  corpus head; the hidden features are trained to predict the level while making the training
  corpora indistinguishable. Needs ``fit(X, y, domains=...)`` with at least two domains
  (otherwise it is a plain MLP). :func:`fit_dann_layers` trains one such probe per layer in a
  single batched loop (layers as a batch dimension, as the MLP layer sweep does); ``fit`` is
  that loop with one layer, so the study's per-layer fits and a bundle's fit are one model.
- :class:`ScalarMixProbe` (the ELMo scalar mix, Peters et al. 2018): ``X`` holds all layers side
  by side (``n x (L * d)``, ``n_layers = L``); a softmax-weighted sum of the per-layer
  standardised states feeds a linear level head, weights and head learnt together. One probe
  over every layer instead of choosing one.

Both train full-batch with Adam for a fixed number of epochs (no early stopping: a random
validation split of the training corpora says little about a new corpus), seeded, with torch
limited to one thread during the fit (reproducible, and polite on a shared machine). torch is
imported inside the fits only (heavy); a fitted probe holds numpy arrays and predicts in numpy, so
it saves with skops into a bundle (no torch object, no pickle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from learnerprobe.probes.estimators import encode_labels
from learnerprobe.transfer.adapt import expected_value


class _TorchProbe(ClassifierMixin, BaseEstimator):
    """Label contract of the probes, class weights, decoding and the seeded torch context."""

    def _encode_y(self, y: np.ndarray) -> np.ndarray:
        self.classes_, yi = encode_labels(y, getattr(self, "n_classes", None))
        return yi

    def _weights(self, yi: np.ndarray) -> np.ndarray:
        k = len(self.classes_)
        cnt = np.bincount(yi, minlength=k).astype(float)
        if self.class_weight != "balanced":
            return np.ones(k)
        present = cnt > 0
        return np.where(present, len(yi) / (present.sum() * np.maximum(cnt, 1)), 0.0)

    def _decode(self, proba: np.ndarray) -> np.ndarray:
        if self.decode == "ev":
            k = len(self.classes_)
            return np.clip(np.rint(expected_value(proba)), 0, k - 1).astype(int)
        return proba.argmax(1)

    def predict(self, X, domains=None) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[self._decode(self.predict_proba(X, domains))]

    @property
    def label_is_argmax(self) -> bool:
        """``predict`` is the argmax of ``predict_proba`` (bundles label with ``predict``
        otherwise, :mod:`learnerprobe.predict`)."""
        return self.decode != "ev"

    def predict_score(self, X) -> np.ndarray:
        """The expected level (0 = first level), a continuous score."""
        return expected_value(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        return tags


class _OneThread:
    """torch limited to one thread and seeded for the duration of a fit or prediction."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __enter__(self):
        import torch

        self.torch = torch
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)
        if self.seed is not None:
            torch.manual_seed(int(self.seed))
        return torch

    def __exit__(self, *exc: Any) -> None:
        self.torch.set_num_threads(self.before)


class DomainAdversarialMLP(_TorchProbe):
    """MLP probe with a gradient-reversed corpus head (``reversal``: the reversed gradient's
    scale, lambda in Ganin et al.).

    ``fit`` is :func:`fit_dann_layers` with one layer: the study trains the same probe on every
    candidate layer at once (:meth:`fit_predict_layers`) and gets, layer for layer, this fit."""

    _bundleable = {"types": ()}  # numpy arrays only; no array form (learnerprobe.bundles.trust)

    def __init__(self, hidden: int = 128, reversal: float = 0.3, epochs: int = 150,
                 lr: float = 1e-3, weight_decay: float = 1e-2, dropout: float = 0.2,
                 class_weight: str | None = None, decode: str = "argmax",
                 n_classes: int | None = None, random_state: int = 0):
        self.hidden = hidden
        self.reversal = reversal
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.class_weight = class_weight
        self.decode = decode
        self.n_classes = n_classes
        self.random_state = random_state

    def fit(self, X, y, domains=None):
        _fit_together([self], [X], y, domains)
        return self

    @classmethod
    def fit_predict_layers(cls, X_layers_train: Sequence[np.ndarray], y: np.ndarray,
                           domains: np.ndarray | None, X_layers_predict: Sequence[np.ndarray],
                           domains_predict: np.ndarray | None = None, **params: Any
                           ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One probe per layer trained together (:func:`fit_predict_dann_layers`)."""
        return fit_predict_dann_layers(X_layers_train, y, domains, X_layers_predict,
                                       domains_predict, **params)

    def predict_proba(self, X, domains=None) -> np.ndarray:
        """The level head over the hidden layer (dropout off), in float32 numpy."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        Z = (X - self.mean_) / self.scale_
        h = np.maximum(Z @ self.hidden_weight_.T + self.hidden_bias_, np.float32(0))
        return _softmax(h @ self.coef_.T + self.intercept_)


def fit_dann_layers(X_layers: Sequence[np.ndarray], y: np.ndarray,
                    domains: np.ndarray | None = None, **params: Any
                    ) -> list[DomainAdversarialMLP]:
    """A :class:`DomainAdversarialMLP` (``params``) per layer (``X_layers``: ``L`` arrays
    ``n x d``, the same rows), trained in one batched torch loop; layer ``l``'s probe is
    ``DomainAdversarialMLP(**params).fit(X_layers[l], y, domains)`` whatever the other layers."""
    ests = [DomainAdversarialMLP(**params) for _ in X_layers]
    _fit_together(ests, list(X_layers), y, domains)
    return ests


def fit_predict_dann_layers(X_layers_train: Sequence[np.ndarray], y: np.ndarray,
                            domains: np.ndarray | None, X_layers_predict: Sequence[np.ndarray],
                            domains_predict: np.ndarray | None = None, **params: Any
                            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(predict, predict_proba)`` on ``X_layers_predict[l]`` of the probe fitted on layer
    ``l`` (:func:`fit_dann_layers`), for every layer."""
    ests = fit_dann_layers(X_layers_train, y, domains, **params)
    return [(est.predict(X, domains_predict), est.predict_proba(X, domains_predict))
            for est, X in zip(ests, X_layers_predict, strict=True)]


def _fit_together(ests: list[DomainAdversarialMLP], Xs: list[Any], y: Any, domains: Any) -> None:
    """Standardise each layer, train all layers in one loop, store numpy weights per layer."""
    if not ests:
        return
    Zs, yi = [], None
    for est, X in zip(ests, Xs, strict=True):
        X, yv = validate_data(est, X, y, dtype=np.float32)
        yi = est._encode_y(yv)
        est.mean_ = X.mean(0)
        sd = X.std(0)
        est.scale_ = np.where(sd > 1e-6, sd, 1.0).astype(np.float32)
        Zs.append((X - est.mean_) / est.scale_)
    if len({z.shape for z in Zs}) > 1:
        raise ValueError(f"layers differ in shape: {sorted({z.shape for z in Zs})}")
    first = ests[0]
    dom = np.zeros(len(yi), dtype=object) if domains is None else np.asarray(domains,
                                                                             dtype=object)
    _, di = np.unique(dom, return_inverse=True)
    with _OneThread(first.random_state) as torch:
        w = _train_dann(torch, np.stack(Zs), yi, di.ravel(), first._weights(yi),
                        len(first.classes_), first)
    # plain arrays, not torch modules: a fitted probe holds no torch object, so it saves with
    # skops (bundles) and predicts without importing torch
    for i, est in enumerate(ests):
        est.hidden_weight_ = np.ascontiguousarray(w["W1"][i].T)
        est.hidden_bias_ = w["b1"][i, 0].copy()
        est.coef_ = np.ascontiguousarray(w["W2"][i].T)
        est.intercept_ = w["b2"][i, 0].copy()


def _train_dann(torch: Any, Z: np.ndarray, yi: np.ndarray, di: np.ndarray,
                class_weights: np.ndarray, k: int, p: DomainAdversarialMLP
                ) -> dict[str, np.ndarray]:
    """Full-batch Adam on ``L`` independent MLPs (``Z``: ``L x n x d``, standardised).

    Every layer starts from the same initial weights and sees the same dropout masks, both
    drawn from one generator seeded by ``random_state`` (the layer count never shifts a draw),
    and the summed loss gives each layer its own gradient (Adam is elementwise): so a layer's
    probe does not depend on which other layers are trained with it."""
    L, n, d = Z.shape
    h_dim, n_dom = int(p.hidden), int(di.max()) + 1
    gen = torch.Generator().manual_seed(int(p.random_state))

    def init(fan_in: int, shape: tuple[int, ...]) -> Any:
        # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
        bound = 1.0 / math.sqrt(fan_in)
        one = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        return one.unsqueeze(0).repeat(L, *([1] * len(shape))).requires_grad_()

    w1, b1 = init(d, (d, h_dim)), init(d, (1, h_dim))
    w2, b2 = init(h_dim, (h_dim, k)), init(h_dim, (1, k))
    wd, bd = init(h_dim, (h_dim, n_dom)), init(h_dim, (1, n_dom))
    opt = torch.optim.Adam([w1, b1, w2, b2, wd, bd], lr=p.lr, weight_decay=p.weight_decay)
    x = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
    t = torch.from_numpy(yi.astype(np.int64))
    td = torch.from_numpy(di.astype(np.int64))
    wt = torch.from_numpy(class_weights.astype(np.float32))[t]  # weight of each row's class
    adversarial = n_dom > 1 and p.reversal > 0
    reverse = _reversal(torch)
    keep = 1.0 - float(p.dropout)

    def nll(logits: Any, target: Any) -> Any:  # L x n per-row losses
        return torch.nn.functional.cross_entropy(
            logits.reshape(L * n, -1), target.repeat(L), reduction="none").view(L, n)

    for _ in range(int(p.epochs)):
        opt.zero_grad()
        h = torch.relu(torch.baddbmm(b1, x, w1))
        if p.dropout > 0:  # nn.Dropout's rule, one n x hidden mask shared by every layer
            mask = (torch.rand((n, h_dim), generator=gen) < keep).float()
            h = h * (mask / keep) if keep > 0 else h * 0.0
        loss = (nll(torch.baddbmm(b2, h, w2), t) * wt).sum(1) / wt.sum()
        if adversarial:
            hr = reverse.apply(h, float(p.reversal))
            loss = loss + nll(torch.baddbmm(bd, hr, wd), td).mean(1)
        loss.sum().backward()
        opt.step()
    return {k_: v.detach().numpy() for k_, v in
            (("W1", w1), ("b1", b1), ("W2", w2), ("b2", b2))}


def _reversal(torch: Any) -> Any:
    """The gradient-reversal layer: identity forward, ``-lam`` times the gradient backward."""

    class Reverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -ctx.lam * g, None

    return Reverse


class ScalarMixProbe(_TorchProbe):
    """A learnt softmax mix of ``n_layers`` layers (``X``: ``n x (n_layers * d)``) + linear head.

    ``layer_weights_`` are the learnt mixing weights (they sum to 1)."""

    _bundleable = {"types": ()}  # numpy arrays only; no array form (learnerprobe.bundles.trust)

    def __init__(self, n_layers: int = 1, epochs: int = 300, lr: float = 1e-2,
                 weight_decay: float = 1e-3, class_weight: str | None = None,
                 decode: str = "argmax", n_classes: int | None = None, random_state: int = 0):
        self.n_layers = n_layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.decode = decode
        self.n_classes = n_classes
        self.random_state = random_state

    def _stack(self, X: np.ndarray) -> np.ndarray:
        L = int(self.n_layers)
        if L < 1 or X.shape[1] % L:
            raise ValueError(f"X has {X.shape[1]} columns, not a multiple of n_layers={L}")
        return X.reshape(len(X), L, -1)

    def fit(self, X, y, domains=None):
        X, y = validate_data(self, X, y, dtype=np.float32)
        yi = self._encode_y(y)
        S = self._stack(X)
        self.mean_ = S.mean(0)
        sd = S.std(0)
        self.scale_ = np.where(sd > 1e-6, sd, 1.0).astype(np.float32)
        Z = (S - self.mean_) / self.scale_
        with _OneThread(self.random_state) as torch:
            nn = torch.nn
            a = nn.Parameter(torch.zeros(S.shape[1]))
            head = nn.Linear(S.shape[2], len(self.classes_))
            opt = torch.optim.Adam([a, *head.parameters()], lr=self.lr)
            x = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
            t = torch.from_numpy(yi.astype(np.int64))
            w = torch.from_numpy(self._weights(yi).astype(np.float32))
            for _ in range(int(self.epochs)):
                opt.zero_grad()
                mixed = torch.einsum("l,nld->nd", torch.softmax(a, 0), x)
                loss = nn.functional.cross_entropy(head(mixed), t, weight=w)
                loss = loss + self.weight_decay * (head.weight ** 2).sum()
                loss.backward()
                opt.step()
            self.layer_weights_ = torch.softmax(a.detach(), 0).numpy().astype(float)
            self.coef_ = head.weight.detach().numpy().astype(float)
            self.intercept_ = head.bias.detach().numpy().astype(float)
        return self

    def predict_proba(self, X, domains=None) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        Z = (self._stack(X) - self.mean_) / self.scale_
        mixed = np.einsum("l,nld->nd", self.layer_weights_, Z)
        return _softmax(mixed @ self.coef_.T + self.intercept_)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=float)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)

"""Fit one probe on every layer at once, sharing the work that layers have in common.

``fit_predict_layers`` gives the predictions ``make_probe(probe, mode=...)`` would give fitted
layer by layer, faster:

- standardisation is computed once per layer (train statistics only) and shared;
- ridge: one eigendecomposition of ``X'X`` per layer (batched in torch) gives the leave-one-out
  error of *every* alpha in closed form, exactly as ``RidgeCV`` selects it;
- MLPs: all layers train together in torch with layers as a batch dimension, each with its own
  early stopping (:mod:`learnerprobe.estimators.probes._torch_mlp`);
- logistic / ordinal: every (layer x inner fold x C/alpha) fit and the refits are independent
  convex problems, solved together as one batch in torch
  (:mod:`learnerprobe.estimators.probes._batched_linear`).

In reference mode the MLPs (sklearn's defaults, re-implemented in torch:
:mod:`learnerprobe.estimators.probes._sklearn_mlp`) also train all layers at once, on one torch
thread; the other reference probes are :func:`sweep_reference`, the plain per-layer loop.
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.estimators.probes import PROBES, RIDGE_ALPHAS, TUNED_MLP_HIDDEN, make_probe
from learnerprobe.estimators.probes._batched_linear import logistic_layers, ordinal_layers
from learnerprobe.estimators.probes._sklearn_mlp import (
    sklearn_mlp_output,
    torch_threads,
    train_sklearn_mlp,
)
from learnerprobe.estimators.probes._torch_mlp import mlp_forward, train_mlp
from learnerprobe.estimators.probes.precision import cell_precision

_PROBA = {"ridge": False, "logistic": True, "ordinal": True, "mlp_reg": False, "mlp_clf": True}
#: Fitting engines whose predictions changed since a cell cache was first keyed; their name goes
#: into the cell key so stale cells are refitted, while every other cell keeps its key (and cache).
_ENGINES = {("mlp_reg", "reference"): "sklearn_torch-1", ("mlp_clf", "reference"): "sklearn_torch-1",
            ("logistic", "tuned"): "batched-1", ("ordinal", "tuned"): "batched-1"}


def engine_key(probe: str, mode: str) -> dict[str, str]:
    """Cell-key material naming the engine of ``probe`` in ``mode`` (empty when unchanged),
    and the precision when it is not fp32 (bf16 MLP cells never reuse fp32 ones)."""
    engine = _ENGINES.get((probe, mode))
    out = {"engine": engine} if engine else {}
    if cell_precision(probe) != "fp32":
        out["precision"] = cell_precision(probe)
    return out



def _check(X_train: np.ndarray, y_train, X_test: np.ndarray, probe: str, n_classes: int):
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; known: {', '.join(PROBES)}")
    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    if X_train.ndim != 3 or X_test.ndim != 3:
        raise ValueError("X_train and X_test must be layers x texts x hidden arrays")
    if X_train.shape[0] != X_test.shape[0] or X_train.shape[2] != X_test.shape[2]:
        raise ValueError(f"train {X_train.shape} and test {X_test.shape} disagree on layers/width")
    y = np.asarray(y_train)
    if y.shape != (X_train.shape[1],):
        raise ValueError(f"y_train has {y.size} labels for {X_train.shape[1]} training texts")
    yi = y.astype(int)
    if not np.array_equal(yi, y) or yi.min() < 0 or yi.max() >= n_classes:
        raise ValueError(f"y_train must hold integers 0..{n_classes - 1}")
    return X_train, yi, X_test


def standardize_layers(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer, per-feature standardisation with training statistics (like StandardScaler:
    constant features are centred, not scaled)."""
    mean = X_train.mean(axis=1, keepdims=True, dtype=np.float64)
    std = X_train.std(axis=1, keepdims=True, dtype=np.float64)
    std[std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std


def _ridge_all(Xtr: np.ndarray, y: np.ndarray, Xte: np.ndarray, alphas) -> tuple[np.ndarray, list]:
    """Closed-form RidgeCV (leave-one-out over ``alphas``) for every layer; continuous scores."""
    import torch

    a = torch.as_tensor(np.asarray(alphas, dtype=np.float64))
    xt = torch.as_tensor(Xtr, dtype=torch.float64)
    xmean = xt.mean(1, keepdim=True)
    xc = xt - xmean
    yt = torch.as_tensor(y, dtype=torch.float64)
    ymean = yt.mean()
    yc = yt - ymean
    n = xt.shape[1]
    s2, V = torch.linalg.eigh(xc.transpose(1, 2) @ xc)  # L x d, L x d x d
    s2 = s2.clamp(min=0)
    XV = xc @ V  # L x n x d
    z = (XV * yc[None, :, None]).sum(1)  # L x d  (= V' X' y)
    inv = 1.0 / (s2[:, :, None] + a[None, None, :])  # L x d x A
    fitted = XV @ (z[:, :, None] * inv)  # L x n x A
    hat = (XV * XV) @ inv + 1.0 / n  # diagonal of the hat matrix incl. intercept
    loo = (((yc[None, :, None] - fitted) / (1.0 - hat)) ** 2).mean(1)  # L x A
    best = loo.argmin(1)
    coef = V @ (z * inv[torch.arange(len(best)), :, best]).unsqueeze(2)  # L x d x 1
    xte = torch.as_tensor(Xte, dtype=torch.float64) - xmean
    score = (xte @ coef)[..., 0] + ymean
    return score.numpy(), [{"alpha": float(a[i])} for i in best.tolist()]


def _fit_one(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, probe: str, mode: str, n_classes: int,
             seed: int, width, scale):
    est = make_probe(probe, mode=mode, n_classes=n_classes, width=width, seed=seed, scale=scale)
    est.fit(X, y)
    pred = est.predict(Xt)
    proba = est.predict_proba(Xt) if _PROBA[probe] else None
    info = {k: float(getattr(est, k)) for k in ("alpha_", "C_", "n_epochs_") if hasattr(est, k)}
    return pred, proba, info


def _stack(results, probe: str) -> dict:
    return {
        "pred": np.stack([r[0] for r in results]).astype(int),
        "proba": np.stack([r[1] for r in results]) if _PROBA[probe] else None,
        "info": [r[2] for r in results],
    }


def fit_predict_layers(
    X_train: np.ndarray,
    y_train,
    X_test: np.ndarray,
    probe: str,
    *,
    mode: str = "tuned",
    n_classes: int,
    seed: int = 0,
    width: int | None = None,
    n_jobs: int | None = -1,
) -> dict:
    """Fit ``probe`` on each layer of ``X_train`` (``layers x n x d``) and predict ``X_test``.

    Returns ``pred`` (``layers x m`` level indices), ``proba`` (``layers x m x n_classes`` or
    None for ridge / mlp_reg), ``info`` (per-layer chosen hyperparameters) and ``seconds``.
    ``mode="reference"`` runs :func:`sweep_reference` (the reference protocol has nothing to
    share across layers beyond parallelism).
    """
    t0 = time.perf_counter()
    if mode == "reference" and probe in ("mlp_reg", "mlp_clf"):
        X_train, y, X_test = _check(X_train, y_train, X_test, probe, n_classes)
        out = _mlp_reference_all(X_train, y, X_test, probe, n_classes, seed, width)
        out["seconds"] = time.perf_counter() - t0
        return out
    if mode == "reference":
        return sweep_reference(X_train, y_train, X_test, probe, n_classes=n_classes, seed=seed,
                               width=width, n_jobs=n_jobs)
    if mode != "tuned":
        raise ValueError(f"unknown probe mode {mode!r}")
    X_train, y, X_test = _check(X_train, y_train, X_test, probe, n_classes)
    Xtr, Xte = standardize_layers(X_train, X_test)
    if probe == "ridge":
        score, info = _ridge_all(Xtr, y, Xte, RIDGE_ALPHAS)
        out = {"pred": np.clip(np.rint(score), 0, n_classes - 1).astype(int), "proba": None,
               "info": info}
    elif probe in ("mlp_reg", "mlp_clf"):
        out = _mlp_all(Xtr, y, Xte, probe, n_classes, seed, width)
    else:
        out = _linear_all(Xtr, y, Xte, probe, n_classes, seed)
    out["seconds"] = time.perf_counter() - t0
    return out


def _linear_all(Xtr, y, Xte, probe: str, n_classes: int, seed: int) -> dict:
    """Tuned logistic / ordinal (grid, folds and seed from ``make_probe``) on every layer as one
    batched solve instead of a per-layer loop (minutes per cell)."""
    est = make_probe(probe, mode="tuned", n_classes=n_classes, seed=seed, scale=False)
    if probe == "logistic":
        return logistic_layers(Xtr, y, Xte, n_classes=n_classes, Cs=est.Cs, cv=est.cv,
                               seed=est.random_state)
    return ordinal_layers(Xtr, y, Xte, n_classes=n_classes, alphas=est.alphas, cv=est.cv,
                          seed=est.random_state)


def _one_class(Xte: np.ndarray, label: int, n_classes: int) -> dict:
    """A classifier trained on one class predicts it everywhere, with probability 1."""
    proba = np.zeros((Xte.shape[0], Xte.shape[1], n_classes))
    proba[..., label] = 1.0
    return {"pred": np.full(Xte.shape[:2], label), "proba": proba, "info": []}


def _mlp_all(Xtr, y, Xte, probe, n_classes, seed, width) -> dict:
    from scipy.special import softmax

    ref = make_probe(probe, mode="tuned", n_classes=n_classes, width=width, seed=seed)
    clf = probe == "mlp_clf"
    present = np.unique(y)
    if clf and present.size == 1:
        return _one_class(Xte, present[0], n_classes)
    w = train_mlp(
        Xtr.astype(np.float32), np.searchsorted(present, y) if clf else y.astype(float),
        task="clf" if clf else "reg", n_out=present.size if clf else 1,
        hidden=int(width or TUNED_MLP_HIDDEN), lr=ref.learning_rate_init,
        weight_decay=ref.alpha, batch_size=ref.batch_size, max_epochs=ref.max_epochs,
        patience=ref.patience, val_fraction=ref.validation_fraction, seed=seed,
    )
    out = mlp_forward(w, Xte.astype(np.float32))
    info = [{"n_epochs_": int(e)} for e in w["epochs"]]
    if not clf:
        return {"pred": np.clip(np.rint(out[..., 0]), 0, n_classes - 1).astype(int),
                "proba": None, "info": info}
    proba = np.zeros(out.shape[:2] + (n_classes,))
    proba[..., present] = softmax(out, axis=-1)
    return {"pred": proba.argmax(-1), "proba": proba, "info": info}


def _mlp_reference_all(Xtr, y, Xte, probe, n_classes, seed, width) -> dict:
    """The reference MLP (``make_probe(probe, mode="reference")``) on every layer at once."""
    est = make_probe(probe, mode="reference", n_classes=n_classes, width=width, seed=seed)
    clf = probe == "mlp_clf"
    present = np.unique(y)
    if clf and present.size == 1:
        return _one_class(Xte, present[0], n_classes)
    # one torch and one BLAS thread: the unconverged reference MLP carries last-bit differences
    # of multi-threaded reductions through every epoch (results must not depend on `threads`)
    with torch_threads(1), threadpool_limits(1, user_api="blas"):
        w = train_sklearn_mlp(
            Xtr, np.searchsorted(present, y) if clf else y.astype(float),
            task="clf" if clf else "reg", n_out=present.size if clf else 1,
            hidden=int(est.hidden_layer_size), alpha=est.alpha, seed=int(est.random_state or 0))
        out = sklearn_mlp_output(w, Xte)
    info = [{"n_iter_": int(i), "converged_": bool(c)}
            for i, c in zip(w["n_iter"], w["converged"], strict=True)]
    if not clf:
        return {"pred": np.clip(np.rint(out[..., 0]), 0, n_classes - 1).astype(int),
                "proba": None, "info": info}
    proba = np.zeros(out.shape[:2] + (n_classes,))
    proba[..., present] = out
    return {"pred": proba.argmax(-1), "proba": proba, "info": info}


def sweep_reference(
    X_train: np.ndarray,
    y_train,
    X_test: np.ndarray,
    probe: str,
    *,
    n_classes: int,
    seed: int = 0,
    width: int | None = None,
    n_jobs: int | None = 1,
) -> dict:
    """The plain loop: ``make_probe(probe, mode="reference")`` fitted on each layer in turn
    (``n_jobs`` > 1 runs layers in parallel). Same return value as :func:`fit_predict_layers`."""
    t0 = time.perf_counter()
    X_train, y, X_test = _check(X_train, y_train, X_test, probe, n_classes)
    args = [(X_train[i], y, X_test[i], probe, "reference", n_classes, seed, width, None)
            for i in range(X_train.shape[0])]
    if n_jobs in (None, 1):
        results = [_fit_one(*a) for a in args]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs)(delayed(_fit_one)(*a) for a in args)
    out = _stack(results, probe)
    out["seconds"] = time.perf_counter() - t0
    return out

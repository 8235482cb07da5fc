"""One-hidden-layer MLPs trained in torch with layers as a batch dimension.

The same code trains one probe (``L = 1``) or a probe on every layer at once (``L = 13``), so the
layer sweep and :func:`learnerprobe.estimators.probes.make_probe` give the same model.  Each layer
has its own early stopping on a shared internal validation split: once a layer has not improved for
``patience`` epochs its best weights are frozen, and training ends when every layer has stopped.
Initialisation and minibatch order depend only on ``seed``, so layer ``l`` of a batched fit is the
fit of that layer alone.
"""

from __future__ import annotations

import math

import numpy as np

from learnerprobe.estimators.probes.precision import autocast


def _val_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = y.size
    n_val = int(round(n * fraction))
    idx = np.arange(n)
    if fraction <= 0 or n_val < 2 or n - n_val < 2:
        return idx, idx[:0]
    counts = np.bincount(y)
    strat = y if counts[counts > 0].min() >= 2 and n_val >= (counts > 0).sum() else None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(va)


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    n_out: int,
    hidden: int,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    max_epochs: int = 150,
    patience: int = 6,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Fit ``L`` independent MLPs on ``X`` (``L x n x d``, already standardised).

    ``task="reg"``: ``y`` float targets, MSE loss, ``n_out = 1``. ``task="clf"``: ``y`` class
    indices ``0..n_out-1``, cross-entropy.  Returns numpy weights ``W1 (L,d,h)``, ``b1``, ``W2``,
    ``b2`` and ``epochs`` (best epoch per layer).
    """
    import torch

    X = np.asarray(X, dtype=np.float32)
    n_layers, n, d = X.shape
    gen = torch.Generator().manual_seed(int(seed))
    y_int = np.asarray(y).astype(int) if task == "clf" else np.zeros(n, dtype=int)
    tr, va = _val_split(y_int, val_fraction, seed)

    xt = torch.from_numpy(X)
    if task == "clf":
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    else:
        yt = torch.from_numpy(np.asarray(y, dtype=np.float32))

    def init(fan_in: int, shape: tuple[int, ...]) -> torch.Tensor:
        bound = 1.0 / math.sqrt(fan_in)
        one = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        return one.unsqueeze(0).repeat(n_layers, *([1] * len(shape))).requires_grad_()

    w1, b1 = init(d, (d, hidden)), init(d, (1, hidden))
    w2, b2 = init(hidden, (hidden, n_out)), init(hidden, (1, n_out))
    params = [w1, b1, w2, b2]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def forward(xb: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(b2, torch.relu(torch.baddbmm(b1, xb, w1)), w2)

    def loss_per_layer(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if task == "clf":
            lab = target.unsqueeze(0).expand(n_layers, -1)
            return torch.nn.functional.cross_entropy(
                out.transpose(1, 2), lab, reduction="none"
            ).mean(1)
        return ((out[..., 0] - target.unsqueeze(0)) ** 2).mean(1)

    best = [p.detach().clone() for p in params]
    best_loss = torch.full((n_layers,), float("inf"))
    best_epoch = np.zeros(n_layers, dtype=int)
    since = torch.zeros(n_layers, dtype=torch.long)
    active = torch.ones(n_layers, dtype=torch.bool)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
    for epoch in range(max_epochs):
        perm = tr_t[torch.randperm(tr_t.numel(), generator=gen)]
        for start in range(0, perm.numel(), batch_size):
            b = perm[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            with autocast():  # bf16 matrix products under bf16 precision; weights stay fp32
                out = forward(xt[:, b])
            loss_per_layer(out.float(), yt[b]).sum().backward()
            opt.step()
        if va.size == 0:
            continue
        with torch.no_grad():
            with autocast():
                out_va = forward(xt[:, va_t])
            vl = loss_per_layer(out_va.float(), yt[va_t])
            improved = active & (vl < best_loss - 1e-3 * best_loss.abs().clamp(max=1e30))
            improved |= active & torch.isinf(best_loss)
            if improved.any():
                for p, bp in zip(params, best, strict=True):
                    bp[improved] = p.detach()[improved]
                best_loss[improved] = vl[improved]
                best_epoch[improved.numpy()] = epoch + 1
            since[improved] = 0
            since[active & ~improved] += 1
            active &= since < patience
        if not active.any():
            break
    if va.size == 0:
        best = [p.detach().clone() for p in params]
        best_epoch[:] = max_epochs
    out = {k: v.numpy() for k, v in zip(("W1", "b1", "W2", "b2"), best, strict=True)}
    out["epochs"] = best_epoch
    return out


def mlp_forward(weights: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Outputs ``L x m x n_out`` of fitted weights on ``X`` (``L x m x d``)."""
    h = np.maximum(np.matmul(np.asarray(X, dtype=np.float32), weights["W1"]) + weights["b1"], 0)
    return np.matmul(h, weights["W2"]) + weights["b2"]

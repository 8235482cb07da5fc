"""scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` (adam solver, defaults) re-implemented in
torch, with layers as a batch dimension.

Why: the reference protocol's MLP probes are sklearn's defaults, fitted once per layer; sklearn
spends most of an epoch outside the matrix products (per-batch Python, temporaries in its Adam,
and a float64 backward pass for the regressor on float32 inputs), and 13 layers meant 13 such
loops. Here every layer trains in one loop on stacked tensors, with sklearn's semantics:

- one ReLU hidden layer, identity (regression), softmax (multiclass) or logistic (binary) output;
- Glorot-uniform initialisation (bound ``sqrt(6 / (fan_in + fan_out))``, weights and biases),
  drawn from ``np.random.RandomState(seed)`` in sklearn's order, so every layer starts from the
  weights sklearn would give it;
- each epoch the sample order is reshuffled with the same RandomState exactly as sklearn does
  (``sample_idx = sample_idx[permutation]``), minibatches of ``min(200, n)`` rows in order;
- loss = mean squared error / 2 or the clipped log-loss, plus ``alpha / 2 * ||W||^2 / batch``
  (weights only, not biases); its gradient is back-propagated by hand as sklearn does;
- sklearn's Adam (``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, ``eps`` added to ``sqrt(v)``);
- sklearn's stopping rule per layer: an epoch whose mean training loss is not ``tol`` below the
  best so far counts as no improvement; more than ``n_iter_no_change`` in a row stops that layer
  (its last weights are kept); ``max_iter`` epochs at most.

The arithmetic is float32 for float32 inputs (sklearn's regressor runs its backward pass in
float64 because its targets are float64; the model and the optimiser are the same), so results
agree with sklearn to rounding early on and, as sklearn's unconverged 200-epoch runs are chaotic,
within the seed-to-seed spread at the end (tests/unit/test_probes_sklearn_mlp.py). A stopped layer
leaves the batch, so layers cost only the epochs they train. One torch thread: a fit depends only
on its inputs and seed (parallelism comes from fitting cells side by side).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np

from learnerprobe.estimators.probes.precision import current


@contextmanager
def torch_threads(n: int = 1):
    """Run torch ops with ``n`` intra-op threads (restored afterwards)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _glorot(rs: np.random.RandomState, fan_in: int, fan_out: int, dtype) -> tuple[np.ndarray, ...]:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    w = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False)
    b = rs.uniform(-bound, bound, fan_out).astype(dtype, copy=False)
    return w, b


def _targets(y: np.ndarray, task: str, n_out: int, dtype) -> np.ndarray:
    """sklearn's training targets: one-hot (multiclass), one 0/1 column (binary), the value."""
    if task == "reg":
        return np.asarray(y, dtype=dtype)[:, None]
    yi = np.asarray(y, dtype=int)
    if n_out == 1:  # binary: sklearn's LabelBinarizer gives one 0/1 column (logistic output)
        return (yi == 1).astype(dtype)[:, None]
    return np.eye(n_out, dtype=dtype)[yi]


class _State:
    """Parameters and Adam moments of the layers still training (first axis = layer)."""

    def __init__(self, params: list[Any], layers: np.ndarray) -> None:
        import torch

        self.params = params  # W1 (L,d,h), b1 (L,1,h), W2 (L,h,o), b2 (L,1,o)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.layers = layers  # original layer indices of the rows

    def keep(self, rows: np.ndarray) -> None:
        import torch

        idx = torch.from_numpy(rows)
        self.params = [p[idx].contiguous() for p in self.params]
        self.m = [p[idx].contiguous() for p in self.m]
        self.v = [p[idx].contiguous() for p in self.v]
        self.layers = self.layers[rows]


def _products(dtype: Any) -> tuple[Any, Any]:
    """(bmm, baddbmm): torch's own in fp32 (the fp32 path is unchanged), or, under bf16
    precision, bf16 inputs with results in ``dtype`` (the weights, Adam moments and loss stay
    in fp32: master weights)."""
    import torch

    if current() != "bf16":
        return torch.bmm, torch.baddbmm

    def bmm(a: Any, b: Any) -> Any:
        return torch.bmm(a.bfloat16(), b.bfloat16()).to(dtype)

    def baddbmm(c: Any, a: Any, b: Any, beta: float = 1.0) -> Any:
        return c * beta + bmm(a, b)

    return bmm, baddbmm


def _step(st: _State, xb, yb, *, task: str, binary: bool, alpha: float, lr: float,
          beta1: float, beta2: float, eps: float):
    """One minibatch for every active layer: loss (per layer) and an in-place update with
    sklearn's Adam (``lr`` is this step's bias-corrected rate)."""
    import torch

    W1, b1, W2, b2 = st.params
    B = xb.shape[1]
    bmm, baddbmm = _products(xb.dtype)
    hid = baddbmm(b1, xb, W1).clamp_min_(0)
    out = baddbmm(b2, hid, W2)
    if task == "reg":
        delta = out - yb
        loss = 0.5 * (delta * delta).mean(dim=(1, 2))
    else:
        prob = torch.sigmoid(out) if binary else torch.softmax(out, dim=2)
        tiny = torch.finfo(prob.dtype).eps
        pc = prob.clamp(tiny, 1 - tiny)
        if binary:
            loss = -(yb * pc.log() + (1 - yb) * (1 - pc).log()).mean(dim=(1, 2))
        else:
            loss = -(yb * pc.log()).sum(2).mean(1)
        delta = prob - yb
    sq = torch.linalg.vector_norm(W1, dim=(1, 2)) ** 2 + torch.linalg.vector_norm(W2, dim=(1, 2)) ** 2
    loss = loss + (0.5 * alpha) * sq / B
    d_hid = torch.ops.aten.threshold_backward(bmm(delta, W2.transpose(1, 2)), hid, 0)
    grads = [
        baddbmm(W1, xb.transpose(1, 2), d_hid, beta=alpha).div_(B),
        d_hid.sum(1, keepdim=True).div_(B),
        baddbmm(W2, hid.transpose(1, 2), delta, beta=alpha).div_(B),
        delta.sum(1, keepdim=True).div_(B),
    ]
    for p, g, m, v in zip(st.params, grads, st.m, st.v, strict=True):
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)
    return loss


def train_sklearn_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    n_out: int,
    hidden: int = 100,
    alpha: float = 1e-4,
    learning_rate_init: float = 1e-3,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    batch_size: int | None = None,
    max_iter: int = 200,
    tol: float = 1e-4,
    n_iter_no_change: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit sklearn's adam MLP on each layer of ``X`` (``L x n x d``).

    ``task="reg"``: ``y`` float targets, ``n_out=1``. ``task="clf"``: ``y`` class indices
    ``0..C-1`` and ``n_out = C`` (``C = 2`` trains sklearn's single logistic output). Returns
    numpy ``W1 (L,d,h)``, ``b1 (L,1,h)``, ``W2 (L,h,o)``, ``b2 (L,1,o)``, ``n_iter`` (epochs run
    per layer), ``loss`` (last epoch's mean training loss), ``converged`` (stopped by the tol
    rule before ``max_iter``) and ``out`` (``"identity"``, ``"softmax"`` or ``"logistic"``).
    """
    import torch

    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    X = X.astype(dtype, copy=False)
    L, n, d = X.shape
    binary = task == "clf" and n_out == 2
    o = 1 if binary else int(n_out)
    rs = np.random.RandomState(seed)
    w1, c1 = _glorot(rs, d, hidden, dtype)
    w2, c2 = _glorot(rs, hidden, o, dtype)
    params = [torch.from_numpy(np.ascontiguousarray(np.broadcast_to(a, (L,) + a.shape))).clone()
              for a in (w1, c1[None], w2, c2[None])]
    st = _State(params, np.arange(L))
    xt = torch.from_numpy(np.ascontiguousarray(X))
    yt = torch.from_numpy(_targets(y, task, o, dtype))[None]
    bs = min(200, n) if batch_size is None else int(np.clip(batch_size, 1, n))
    result = {k: np.zeros((L,) + tuple(p.shape[1:]), dtype=dtype)
              for k, p in zip(("W1", "b1", "W2", "b2"), params, strict=True)}
    n_iter, last_loss = np.zeros(L, dtype=int), np.zeros(L)
    converged = np.zeros(L, dtype=bool)
    best, bad = np.full(L, np.inf), np.zeros(L, dtype=int)
    sample_idx, t = np.arange(n), 0  # t: Adam's step count
    kw = dict(task=task, binary=binary, alpha=float(alpha), beta1=beta_1, beta2=beta_2,
              eps=epsilon)

    def finish(rows: np.ndarray, conv: bool) -> None:
        for k, p in zip(("W1", "b1", "W2", "b2"), st.params, strict=True):
            result[k][st.layers[rows]] = p[torch.from_numpy(rows)].numpy()
        converged[st.layers[rows]] = conv

    with torch.no_grad():
        for epoch in range(max_iter):
            perm = np.arange(n)
            rs.shuffle(perm)
            sample_idx = sample_idx[perm]
            acc = torch.zeros(len(st.layers), dtype=torch.float64)
            order = torch.from_numpy(sample_idx)
            xa = xt if len(st.layers) == L else xt.index_select(0, torch.from_numpy(st.layers))
            xs, ys = xa.index_select(1, order), yt.index_select(1, order)
            for start in range(0, n, bs):
                t += 1
                lr_t = learning_rate_init * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
                stop = min(start + bs, n)
                loss = _step(st, xs[:, start:stop], ys[:, start:stop], lr=lr_t, **kw)
                acc += loss.double() * (stop - start)
            ep_loss = acc.numpy() / n
            lay = st.layers
            n_iter[lay], last_loss[lay] = epoch + 1, ep_loss
            bad[lay] = np.where(ep_loss > best[lay] - tol, bad[lay] + 1, 0)
            best[lay] = np.minimum(best[lay], ep_loss)
            done = bad[lay] > n_iter_no_change
            if done.any():
                finish(np.flatnonzero(done), True)
                if done.all():
                    break
                st.keep(np.flatnonzero(~done))
        else:
            finish(np.arange(len(st.layers)), False)
    result.update(n_iter=n_iter, loss=last_loss, converged=converged,
                  out="identity" if task == "reg" else "logistic" if binary else "softmax")
    return result


def sklearn_mlp_output(weights: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """``L x m x k`` outputs of fitted weights on ``X`` (``L x m x d``): the regression value
    (``k = 1``) or class probabilities (``k = C``, binary expanded to two columns)."""
    from scipy.special import expit, softmax

    W1 = weights["W1"]
    h = np.maximum(np.matmul(np.asarray(X, dtype=W1.dtype), W1) + weights["b1"], 0)
    z = np.matmul(h, weights["W2"]) + weights["b2"]
    kind = str(weights["out"])
    if kind == "softmax":
        return softmax(z, axis=-1)
    if kind == "logistic":
        p = expit(z)
        return np.concatenate([1 - p, p], axis=-1)
    return z

"""The tuned logistic and ordinal probes of every layer as one batched convex solve in torch.

``make_probe("logistic", mode="tuned")`` is sklearn's ``LogisticRegressionCV`` (multinomial,
neg log-loss over ``LOGISTIC_CS`` on stratified inner folds, then a refit) and
``make_probe("ordinal", mode="tuned")`` is mord's all-threshold objective over
``ORDINAL_ALPHAS`` (summed inner log-loss, then a refit). Fitted layer by layer they cost minutes
per cell (hundreds of small L-BFGS runs in scipy). Every (layer x inner fold or all rows x
C/alpha) fit is an independent, strictly convex problem, so this module stacks all of them as a
batch dimension and minimises the sum of their objectives with an L-BFGS whose every quantity
(curvature pairs, scaling, line-search step, stopping test) is per problem: the joint optimum is
each problem's optimum, and each problem stops on its own gradient norm. Features are rotated
into the principal axes of each (layer, fit set) -- the L2 penalty is rotation invariant, so the
problem is the same -- where a Kronecker-factored preconditioner (feature variance x the
problem's mean softmax Hessian + penalty) tames the anisotropy of hidden states.

Two passes: every inner-fold problem is first solved to sklearn's own tolerance (gtol 1e-4,
float32 matrix products); a C (alpha) more than ``MARGIN`` below the best inner score cannot
win; the refits of the rest -- and, on a near tie, their inner fits -- are then solved to
``GTOL`` in float64 (refits warm-started from the mean of the inner-fold solutions, as sklearn's
refit is). Measured cost on MERLIN e5-small (13 layers, ~1460 rows, one thread): the large-C
inner fits are ill-conditioned and dominate the logistic time.

Semantics are the estimators' (:mod:`learnerprobe.estimators.probes.level_probes`): the same inner
folds (``_inner_cv``), sklearn's objective ``sum log-loss + ||W||^2 / (2C)`` with an unpenalised
intercept (two classes: sklearn's binomial model, i.e. the multinomial one at ``C/2``), C chosen
by the summed fold scores (``LogisticRegressionCV``: first best); mord's ``obj_margin`` with the
threshold increments ``>= 0`` (problems whose unconstrained optimum breaks the order are
re-solved with the estimator's own L-BFGS-B), alpha chosen by the summed inner log-loss (largest
alpha first, first best, as ``OrdinalLogisticAT.fit``). A class absent from an inner training fold
gets probability 0 on that fold's validation rows (logistic: the limit of sklearn's diverging
intercept, scored with sklearn's ``eps`` clip; ordinal: the estimator's 1e-12 floor).

The solve runs on one torch thread (:func:`torch_threads`), so that the result does not
depend on the machine's or the study's thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from learnerprobe.estimators.probes._sklearn_mlp import torch_threads
from learnerprobe.estimators.probes.level_probes import _at_fit, _at_proba, _inner_cv

#: L-BFGS settings: history, iteration cap, stopping test (max |gradient| of the mean-form
#: objective, i.e. sklearn's ``gtol`` scale; sklearn's tuned probe stops at 1e-4).
HISTORY = 10
MAX_ITER = 2000
GTOL = 1e-7
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------- problem layout
@dataclass
class _Block:
    """Fit sets of (about) one size, all layers: rotated, centred features padded to one length.

    ``Z`` ``G x n x d`` (rows beyond a fit set's size are zero with weight 0), ``w`` ``G x n``
    row weights (1/n_g), ``y`` ``G x n`` labels in the fit set's own compact coding, ``var``
    ``G x d`` variance along each principal axis, ``mean`` ``G x d`` and ``V`` ``G x d x d`` to
    map back, ``n`` ``G`` row counts, ``ncls`` ``G`` classes present, ``present`` their labels.
    """

    Z: object
    w: object
    y: object
    var: object
    mean: object
    V: object
    n: np.ndarray
    ncls: np.ndarray
    present: list[np.ndarray]
    layer: np.ndarray
    fitset: np.ndarray


def _shape_only(Z):
    """A stand-in for a block's features that holds no memory: code that runs after it only
    reads the shape (and a :class:`_Subset` keeps its own copy of the groups it still needs)."""
    import torch

    return torch.zeros((), dtype=Z.dtype).expand(Z.shape)


def _blocks(fit_rows: list[np.ndarray]) -> list[list[int]]:
    """The fit sets of each block: one for the inner folds, one for all training rows (sizes
    differ by a third)."""
    n_sets = len(fit_rows)
    return [list(range(n_sets - 1)), [n_sets - 1]] if n_sets > 1 else [[0]]


def _block(Xtr: np.ndarray, yc: np.ndarray, fit_rows: list[np.ndarray], sets: list[int]) -> _Block:
    import torch

    L, _, d = Xtr.shape
    nmax = max(fit_rows[s].size for s in sets)
    G = L * len(sets)
    Z = torch.zeros((G, nmax, d), dtype=torch.float64)
    w = torch.zeros((G, nmax), dtype=torch.float64)
    y = torch.zeros((G, nmax), dtype=torch.long)
    var = torch.empty((G, d), dtype=torch.float64)
    mean = torch.empty((G, d), dtype=torch.float64)
    V = torch.empty((G, d, d), dtype=torch.float64)
    n, ncls, present, layer, fitset = [], [], [], [], []
    for j, s in enumerate(sets):
        rows = fit_rows[s]
        pres = np.unique(yc[rows])
        ys = torch.as_tensor(np.searchsorted(pres, yc[rows]))
        X = torch.as_tensor(Xtr[:, rows], dtype=torch.float64)  # L x n_s x d, a fresh copy
        m = X.mean(1)
        X -= m[:, None]  # centred in place (no second copy of the fit set)
        ev, vec = torch.linalg.eigh(X.transpose(1, 2) @ X / rows.size)
        sl = slice(j * L, (j + 1) * L)
        Z[sl, : rows.size] = X @ vec
        del X
        w[sl, : rows.size] = 1.0 / rows.size
        y[sl, : rows.size] = ys
        var[sl], mean[sl], V[sl] = ev.clamp(min=0), m, vec
        n += [rows.size] * L
        ncls += [pres.size] * L
        present += [pres] * L
        layer += list(range(L))
        fitset += [s] * L
    return _Block(Z, w, y, var, mean, V, np.array(n), np.array(ncls), present, np.array(layer),
                  np.array(fitset))


# --------------------------------------------------------------------------- batched L-BFGS
#: ``fun(x, mask) -> (f, g, aux)``: objectives ``B``, gradients ``B x D`` and a tuple of tensors
#: (leading dimension ``B``) from which ``precond(aux, q, idx)`` applies an approximate inverse
#: Hessian to ``q`` (rows: the problems ``idx``; ``aux`` restricted to them); only the problems in
#: ``mask`` need be evaluated (the others' entries are ignored).
Objective = Callable[[object], tuple[object, object, tuple]]
Precond = Callable[[tuple, object], object]


def _pick(mask, a: tuple, b: tuple) -> tuple:
    """Per problem: ``a`` where ``mask``, else ``b`` (tuples of tensors, leading dimension B)."""
    import torch

    return tuple(torch.where(mask.view((-1,) + (1,) * (u.dim() - 1)), u, v)
                 for u, v in zip(a, b, strict=True))


def lbfgs(fun: Objective, precond: Precond, x0, *, history: int = HISTORY,
          max_iter: int = MAX_ITER, gtol=GTOL, solve=None,
          log: Callable[[str], None] | None = None, scale: bool = True):
    """Minimise ``B`` independent smooth convex functions at once (``x0``: ``B x D``).

    Every quantity is per problem (its curvature pairs, its preconditioned initial Hessian, its
    step length, its stopping test), so problem ``b``'s iterates are those of an L-BFGS run on
    problem ``b`` alone; a problem stops when its max |gradient| is at most ``gtol`` (a float or
    one per problem) or when float64 shows no further decrease. Only the problems in the mask
    ``solve`` (default: all) move. Returns ``x``, iterations and final max |gradient| per
    problem.
    """
    import torch

    x = x0.clone()
    B = x.shape[0]
    solve = torch.ones(B, dtype=torch.bool) if solve is None else solve
    gtol = torch.as_tensor(gtol, dtype=x.dtype).expand(B)
    f, g, aux = fun(x, solve)
    S = torch.zeros((history,) + tuple(x.shape), dtype=x.dtype)
    Y = torch.zeros_like(S)
    rho = torch.zeros((history, B), dtype=x.dtype)
    n_iter = torch.zeros(B, dtype=torch.long)
    active = solve & (g.abs().amax(1) > gtol)
    stall = torch.zeros(B, dtype=torch.long)
    k = 0
    tau = torch.ones(B, dtype=x.dtype)
    while bool(active.any()) and k < max_iter:
        idx = active.nonzero()[:, 0]  # work on the active problems only
        ax = tuple(a[idx] for a in aux)
        d = torch.zeros_like(x)
        d[idx] = -_two_loop(g[idx], lambda q, a=ax, t=tau[idx], i=idx: t[:, None] * precond(a, q, i),
                            S[:, idx], Y[:, idx], rho[:, idx], k, history)
        x_new, f_new, g_new, aux_new, ok = _line_search(fun, x, f, g, aux, d, active)
        s, yv = x_new - x, g_new - g
        sy = (s * yv).sum(1)
        good = ok & (sy > 1e-300)
        slot = k % history
        S[slot] = torch.where(good[:, None], s, 0.0)
        Y[slot] = torch.where(good[:, None], yv, 0.0)
        rho[slot] = torch.where(good, 1.0 / sy.clamp(min=1e-300), 0.0)
        if scale:  # Shanno-Phua scaling of the preconditioner by the newest curvature pair
            yhy = torch.zeros_like(sy)
            yhy[idx] = (yv[idx] * precond(tuple(a[idx] for a in aux_new), yv[idx], idx)).sum(1)
            tau = torch.where(good & (yhy > 0), sy / yhy.clamp(min=1e-300), tau)
        # stalled: no decrease left in float64 (the gradient test can sit at rounding level)
        stall = torch.where(ok & (f_new < f), 0, stall + 1)
        x, f, g = _pick(ok, (x_new, f_new, g_new), (x, f, g))
        aux = _pick(ok, aux_new, aux)
        n_iter += active.long()
        active = active & (g.abs().amax(1) > gtol) & (stall < 3)
        k += 1
        if log is not None and k % 25 == 0:
            log(f"lbfgs {k}: {int(active.sum())} active, max |g| {float(g.abs().amax()):.2e}")
    return x, n_iter.numpy(), torch.where(solve, g.abs().amax(1), 0.0).numpy()


def _two_loop(g, h0: Callable, S, Y, rho, k: int, history: int):
    """The L-BFGS product ``H g`` per problem (``h0``: the initial inverse Hessian)."""
    q = g.clone()
    m = min(k, history)
    order = [(k - 1 - i) % history for i in range(m)]
    alpha = []
    for j in order:
        a = rho[j] * (S[j] * q).sum(1)
        q -= a[:, None] * Y[j]
        alpha.append(a)
    r = h0(q)
    for j, a in zip(reversed(order), reversed(alpha), strict=True):
        b = rho[j] * (Y[j] * r).sum(1)
        r += S[j] * (a - b)[:, None]
    return r


def _line_search(fun: Objective, x, f, g, aux, d, active, *, c1: float = 1e-4,
                 rounds: int = 30):
    """Per-problem backtracking from step 1: Armijo, or (when rounding hides the decrease) the
    approximate Wolfe conditions of Hager & Zhang. Returns the accepted point per problem and a
    mask of problems that found one (the others keep ``x``)."""
    import torch

    t = torch.ones_like(f)
    dg = (g * d).sum(1)
    todo = active.clone()
    best = (x, f, g) + tuple(aux)
    ok = torch.zeros_like(active)
    for _ in range(rounds):
        xt = x + t[:, None] * d
        ft, gt, at = fun(xt, todo)
        dgt = (gt * d).sum(1)
        armijo = ft <= f + c1 * t * dg
        approx = (ft <= f + 1e-10 * f.abs()) & (dgt <= (1 - 2 * c1) * -dg) & (dgt >= 0.9 * dg)
        acc = todo & torch.isfinite(ft) & (armijo | approx)
        best = _pick(acc, (xt, ft, gt) + tuple(at), best)
        ok |= acc
        todo &= ~acc
        if not bool(todo.any()):
            break
        # quadratic interpolation of phi(t), kept within [0.1 t, 0.5 t]
        den = 2 * (ft - f - dg * t)
        tq = torch.where(torch.isfinite(ft) & (den > 0), -dg * t * t / den.clamp(min=1e-300),
                         0.5 * t)
        t = torch.where(todo, torch.minimum(torch.maximum(tq, 0.1 * t), 0.5 * t), t)
    return best[0], best[1], best[2], best[3:], ok


@dataclass
class _Family:
    """Problems of one block: objective, preconditioner, their number, and ``retain(groups)``:
    from now on only these groups are evaluated (the block's features may be freed)."""

    fun: Objective
    precond: Precond
    size: int
    retain: Callable[[np.ndarray], None] | None = None


def _joint(families: list[_Family]) -> tuple[Objective, Precond]:
    """One objective and preconditioner over the concatenated problems of several blocks."""
    import torch

    sizes = [fam.size for fam in families]

    def fun(x, mask):
        parts = [fam.fun(xb, mb) for fam, xb, mb in
                 zip(families, torch.split(x, sizes), torch.split(mask, sizes), strict=True)]
        f = torch.cat([p[0] for p in parts])
        g = torch.cat([p[1] for p in parts])
        aux = tuple(torch.cat([p[2][i] for p in parts]) for i in range(len(parts[0][2])))
        return f, g, aux

    offsets = np.cumsum([0] + sizes)

    def precond(aux: tuple, q, idx):
        out = []
        for fam, lo, hi in zip(families, offsets[:-1], offsets[1:], strict=True):
            sel = (idx >= lo) & (idx < hi)
            if bool(sel.any()):
                out.append(fam.precond(tuple(a[sel] for a in aux), q[sel], idx[sel] - lo))
        return torch.cat(out) if out else q[:0]

    return fun, precond


# --------------------------------------------------------------------------- logistic
class _Subset:
    """The rows of a block's groups that still have problems to evaluate (a gathered copy of the
    features, refreshed only when the set of groups changes).

    After :meth:`retain` only a copy of the retained groups is kept (the block's own features
    can be freed) and every later set of groups is read from it: the arrays handed out are the
    same as before, so are the results."""

    def __init__(self, blk: _Block):
        self.blk = blk
        self.key: tuple | None = None
        self.data: tuple = ()
        self.kept = None
        self.kept_data: tuple = ()

    def retain(self, groups: np.ndarray) -> None:
        import torch

        blk = self.blk
        self.kept = torch.as_tensor(np.asarray(groups, dtype=np.int64))
        self.key, self.data = None, ()
        self.kept_data = (blk.Z[self.kept], blk.w[self.kept], blk.y[self.kept])

    def groups(self, gi) -> tuple:
        import torch

        blk = self.blk
        key = tuple(gi.tolist())
        if key != self.key:
            self.key = key
            self.data = ()  # the previous copy goes before the next is gathered (peak memory)
            if self.kept is None:
                full = len(key) == blk.Z.shape[0]
                self.data = (blk.Z, blk.w, blk.y) if full else (blk.Z[gi], blk.w[gi], blk.y[gi])
                return self.data
            n = len(self.kept)
            pos = torch.searchsorted(self.kept, gi)
            if len(key) and not torch.equal(self.kept[pos.clamp(max=max(n - 1, 0))], gi):
                raise RuntimeError("a group outside the retained ones was evaluated")
            kz, kw, ky = self.kept_data
            self.data = self.kept_data if len(key) == n else (kz[pos], kw[pos], ky[pos])
        return self.data


def _active(mask, G: int, nP: int):
    """Groups and columns (C or alpha) holding at least one problem of ``mask``."""
    m = mask.view(G, nP)
    return m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]


def _logistic_family(blk: _Block, lam, neg, ncls: int) -> _Family:
    """Mean-form multinomial objective of every (group, C) problem of ``blk``.

    ``x``: ``(G*nP) x (d*K + K)`` (``W`` in principal-axis coordinates, then the intercepts);
    ``lam`` ``G x nP`` (1/(C n_g)); ``neg`` ``G x K`` (-inf for classes absent from the fit set).
    Only groups and Cs with a problem in ``mask`` are computed. The preconditioner is
    Kronecker-factored: per principal axis ``j`` the ``K x K`` block ``var_j * H + lam`` with
    ``H`` the mean softmax Hessian of the problem (classes are strongly coupled: a diagonal in
    the classes leaves their common direction ill-conditioned).
    """
    import torch

    G, _, d = blk.Z.shape
    nP, K = lam.shape[1], ncls
    D = d * K + K
    var = blk.var[:, None, :].expand(G, nP, d).reshape(G * nP, d, 1)
    lam_b = lam.reshape(G * nP, 1, 1)
    sub = _Subset(blk)

    def fun(x, mask):
        gi, ci = _active(mask, G, nP)
        Z, w, y = sub.groups(gi)
        g_, n, c_ = len(gi), Z.shape[1], len(ci)
        xv = x.view(G, nP, D)[gi][:, ci]
        la = lam[gi][:, ci]
        W = xv[..., : d * K].reshape(g_, c_, d, K)
        b = xv[..., d * K:]
        Wm = W.permute(0, 2, 1, 3).reshape(g_, d, c_ * K)
        logits = (Z @ Wm.to(Z.dtype)).to(x.dtype).view(g_, n, c_, K)
        logits = logits + b[:, None] + neg[gi][:, None, None, :]
        lse = torch.logsumexp(logits, -1)
        yi = y[:, :, None, None].expand(g_, n, c_, 1)
        wr = w[:, :, None, None]
        f = (w[:, :, None] * (lse - logits.gather(-1, yi)[..., 0])).sum(1)
        f = f + 0.5 * la * (W * W).sum((2, 3))
        P = torch.exp(logits - lse[..., None])
        wP = wr * P
        R = wP.scatter_add(-1, yi, -wr.expand(g_, n, c_, 1))
        gW = (Z.transpose(1, 2) @ R.reshape(g_, n, c_ * K).to(Z.dtype)).to(x.dtype)
        gW = gW.view(g_, d, c_, K).permute(0, 2, 1, 3)
        gW = gW + la[..., None, None] * W
        gb = R.sum(1)
        H = torch.diag_embed(wP.sum(1)) - torch.einsum("gnpk,gnpl->gpkl", wP, P)
        mu, U = torch.linalg.eigh(H)
        F = torch.zeros((G, nP), dtype=x.dtype)
        Gr = torch.zeros((G, nP, D), dtype=x.dtype)
        Us = torch.zeros((G, nP, K, K), dtype=x.dtype)
        Ms = torch.zeros((G, nP, K), dtype=x.dtype)
        ix = (gi[:, None], ci[None, :])
        F[ix] = f
        Gr[ix] = torch.cat([gW.reshape(g_, c_, d * K), gb], 2)
        Us[ix] = U
        Ms[ix] = mu.clamp(min=0)
        return F.reshape(-1), Gr.reshape(G * nP, D), (Us.reshape(G * nP, K, K),
                                                      Ms.reshape(G * nP, K))

    def precond(aux: tuple, q, idx):
        U, mu = aux
        B = q.shape[0]
        qW = q[:, : d * K].reshape(B, d, K) @ U
        rW = (qW / (var[idx] * mu[:, None, :] + lam_b[idx])) @ U.transpose(1, 2)
        inv = torch.where(mu > 1e-12 * mu.amax(1, keepdim=True), 1.0 / mu.clamp(min=1e-300), 0.0)
        rb = ((q[:, d * K:, None].transpose(1, 2) @ U) * inv[:, None, :]) @ U.transpose(1, 2)
        return torch.cat([rW.reshape(B, d * K), rb[:, 0]], 1)

    return _Family(fun, precond, G * nP, sub.retain)


def _logistic_start(blk: _Block, yc: np.ndarray, fit_rows, nP: int, ncls: int):
    """W = 0, intercepts = log class frequencies of the fit set; -inf for absent classes."""
    import torch

    G, _, d = blk.Z.shape
    b = np.zeros((G, ncls))
    neg = np.zeros((G, ncls))
    for gi in range(G):
        cnt = np.bincount(yc[fit_rows[blk.fitset[gi]]], minlength=ncls).astype(float)
        b[gi] = np.where(cnt > 0, np.log(np.maximum(cnt, 1) / cnt.sum()), 0.0)
        neg[gi] = np.where(cnt > 0, 0.0, -np.inf)
    x0 = torch.zeros((G, nP, d * ncls + ncls), dtype=torch.float64)
    x0[..., d * ncls:] = torch.as_tensor(b)[:, None, :]
    return x0.reshape(G * nP, -1), torch.as_tensor(neg)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=a.dtype)
    out[: a.size] = a
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _logistic_coefs(blocks: list[_Block], x, nP: int, K: int) -> list[np.ndarray]:
    """Solutions mapped back to the standardised axes: ``G x nP x (d+1) x K`` per block (the
    last row is the intercept, -inf for classes absent from the fit set)."""
    import torch

    out, start = [], 0
    for blk in blocks:
        G, _, d = blk.Z.shape
        xb = x[start: start + G * nP].view(G, nP, d * K + K)
        start += G * nP
        W = _per_value(blk.V, xb[..., : d * K].reshape(G, nP, d, K))  # standardised axes
        b = xb[..., d * K:] - (blk.mean[:, None, None, :] @ W)[..., 0, :]
        absent = torch.stack([torch.as_tensor(np.isin(np.arange(K), p, invert=True))
                              for p in blk.present])
        b = torch.where(absent[:, None, :], -torch.inf, b)
        out.append(torch.cat([W, b[:, :, None, :]], 2).numpy())
    return out


def _per_value(V, X):
    """``V[:, None] @ X`` (``V``: ``G x d x d``, ``X``: ``G x nP x d x k``) one grid value at a
    time: the same products without the broadcast copy of ``V`` for every value (``G x nP x d
    x d``, 280 MB at 13 layers x 3 folds x 6 values x 384 dimensions)."""
    import torch

    return torch.stack([V @ X[:, p] for p in range(X.shape[1])], 1)


def _one_class(L: int, m: int, label: int, n_classes: int, info: dict) -> dict:
    """A probe trained on one class predicts it everywhere, with probability 1."""
    proba = np.zeros((L, m, n_classes))
    proba[..., label] = 1.0
    return {"pred": np.full((L, m), label), "proba": proba, "info": [dict(info)] * L}


# --------------------------------------------------------------------------- ordinal
def _ordinal_family(blk: _Block, lam, T: int) -> _Family:
    """Mean-form all-threshold objective (mord's ``obj_margin`` / n) of every (group, alpha)
    problem of ``blk``: ``x`` is ``(G*nP) x (d + T)`` (``w`` in principal-axis coordinates, then
    the thresholds, shifted by the fit set's mean score); thresholds beyond a fit set's own
    classes are inactive. Preconditioner: ``var_j * curvature + lam`` for ``w``, the
    curvature of each threshold for the thresholds."""
    import torch

    G, n, d = blk.Z.shape
    nP = lam.shape[1]
    D = d + T
    j = torch.arange(T)
    sign = torch.where(j[None, None, :] >= blk.y[:, :, None], 1.0, -1.0).to(torch.float64)
    tmask = (j[None, :] < torch.as_tensor(blk.ncls - 1)[:, None]).to(torch.float64)  # G x T
    var = blk.var[:, None, :].expand(G, nP, d).reshape(G * nP, d)
    lam_b = lam.reshape(G * nP, 1)
    sub = _Subset(blk)
    signs = _Subset(blk)
    signs.blk = _Block(sign, blk.w, blk.y, blk.var, blk.mean, blk.V, blk.n, blk.ncls,
                       blk.present, blk.layer, blk.fitset)

    def fun(x, mask):
        gi, ci = _active(mask, G, nP)
        Z, w, _ = sub.groups(gi)
        Sg = signs.groups(gi)[0][:, :, None, :]
        tm = tmask[gi][:, None, None, :]
        xv = x.view(G, nP, D)[gi][:, ci]
        la = lam[gi][:, ci]
        wv, th = xv[..., :d], xv[..., d:]
        score = (Z @ wv.transpose(1, 2).to(Z.dtype)).to(x.dtype)  # g x n x c
        u = Sg * (th[:, None] - score[..., None])  # g x n x c x T
        wr = w[:, :, None, None] * tm
        f = (wr * torch.nn.functional.softplus(-u)).sum((1, 3)) + 0.5 * la * (wv * wv).sum(2)
        sig = torch.sigmoid(-u)
        R = -Sg * sig * wr  # d f / d(theta_j - score)
        gth = R.sum(1)
        gw = -(Z.transpose(1, 2) @ R.sum(3).to(Z.dtype)).to(x.dtype).transpose(1, 2)
        gw = gw + la[..., None] * wv
        curv = wr * sig * (1 - sig)
        hth = curv.sum(1)
        hw = curv.sum((1, 3))
        F = torch.zeros((G, nP), dtype=x.dtype)
        Gr = torch.zeros((G, nP, D), dtype=x.dtype)
        Hw = torch.zeros((G, nP), dtype=x.dtype)
        Hth = torch.zeros((G, nP, T), dtype=x.dtype)
        ix = (gi[:, None], ci[None, :])
        F[ix], Gr[ix], Hw[ix], Hth[ix] = f, torch.cat([gw, gth], 2), hw, hth
        return F.reshape(-1), Gr.reshape(G * nP, D), (Hw.reshape(-1), Hth.reshape(G * nP, T))

    def precond(aux: tuple, q, idx):
        hw, hth = aux
        rw = q[:, :d] / (var[idx] * hw[:, None] + lam_b[idx])
        rth = torch.where(hth > 1e-12, q[:, d:] / hth.clamp(min=1e-300), 0.0)
        return torch.cat([rw, rth], 1)

    return _Family(fun, precond, G * nP, sub.retain)


def _ordinal_start(blk: _Block, nP: int, T: int):
    """w = 0, thresholds at the logits of the fit set's cumulative class frequencies (the
    optimum for w = 0)."""
    import torch

    G, _, d = blk.Z.shape
    x0 = torch.zeros((G, nP, d + T), dtype=torch.float64)
    for gi in range(G):
        k = int(blk.ncls[gi])
        cnt = np.bincount(blk.y[gi, : blk.n[gi]].numpy(), minlength=k)
        cum = np.cumsum(cnt)[:-1] / cnt.sum()
        x0[gi, :, d: d + k - 1] = torch.as_tensor(np.log(cum / (1 - cum)))
    return x0.reshape(G * nP, -1)


def _ordinal_coefs(blk: _Block, x, nP: int, T: int) -> np.ndarray:
    """``G x nP x (d + T)``: ``w`` on the standardised axes, then the thresholds."""
    G, _, d = blk.Z.shape
    xv = x.view(G, nP, d + T)
    w = _per_value(blk.V, xv[..., :d, None])[..., 0]
    th = xv[..., d:] + (w @ blk.mean[:, :, None])  # theta = theta' + mean . w
    return np.concatenate([w.numpy(), th.numpy()], 2)


def _ordinal_proba(Xs: np.ndarray, coef: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and class probabilities of the fit set's ``k`` classes (the estimator's rule)."""
    d = Xs.shape[1]
    score = Xs @ coef[:d]
    return score, _at_proba(score, coef[d: d + k - 1])


def _ordinal_fix(X: np.ndarray, yk: np.ndarray, alpha: float, k: int, coef: np.ndarray) -> bool:
    """Thresholds out of order: re-solve with the estimator's L-BFGS-B (increments >= 0) from
    the batched solution, in place. Returns whether it had to."""
    d = X.shape[1]
    th = coef[d: d + k - 1]
    if k < 3 or np.all(np.diff(th) >= 0):
        return False
    x0 = np.concatenate([coef[:d], [th[0]], np.maximum(np.diff(th), 0)])
    w, theta, _, _ = _at_fit(X, yk, alpha, k, x0, 10000, 1e-12)
    coef[:d], coef[d: d + k - 1] = w, theta
    return True


# --------------------------------------------------------------------------- driver
#: Screening: every inner-fold problem is first solved to sklearn's own tolerance; a C (alpha)
#: whose summed inner score is then more than MARGIN below the best cannot win (score errors at
#: that tolerance measured on MERLIN e5: <= 2e-3 for C <= 1, gaps between Cs >= 0.1), so only
#: the others -- their inner fits and their refits -- are solved to GTOL.
LOOSE_GTOL = 1e-4
MARGIN = 0.05


@dataclass
class _Spec:
    """What differs between the two probes for :func:`_tuned_layers`."""

    family: Callable  # (blk, grid_eff) -> _Family
    start: Callable  # (blk) -> x0
    coefs: Callable  # (blk, x) -> G x nP x ... on the standardised axes
    score: Callable  # (Xva, yva, coef, present_of_fit_set) -> higher is better
    predict: Callable  # (Xte, coef) -> proba over the present classes (and pred)
    lam: Callable  # (grid, n_rows) -> mean-form L2 strength
    warm: Callable  # (blk, gi, coef nP x ... on the standardised axes) -> start nP x D
    fix: Callable | None = None  # (X, y_fitset, grid value, k, coef) -> bool


def _tuned_layers(Xtr, y, Xte, grid, *, n_classes: int, cv: int, seed, spec_of, name: str,
                  log) -> dict:
    import torch

    present = np.unique(y)
    L, m = Xtr.shape[0], Xte.shape[1]
    if present.size == 1:
        return _one_class(L, m, int(present[0]), n_classes, {name: 1.0})
    yc = np.searchsorted(present, y)
    c = present.size
    folds = list(_inner_cv(yc, cv, seed).split(np.zeros((yc.size, 1)), yc))
    fit_rows = [tr for tr, _ in folds] + [np.arange(yc.size)]
    grid = np.asarray(grid, dtype=float)
    nP = grid.size
    spec = spec_of(c, yc, fit_rows)
    with torch_threads(1):
        # the inner-fold block first; the refit block is built after the screening, which
        # does not need it (the two never take memory together with the float32 copy)
        sets = _blocks(fit_rows)
        blocks = [_block(Xtr, yc, fit_rows, sets[0])]
        lams = [torch.as_tensor(spec.lam(grid[None, :], blocks[0].n[:, None]))]
        fams = [spec.family(blocks[0], lams[0])]
        x0 = spec.start(blocks[0])
        nf = fams[0].size
        # screening in float32 matrix products (3x faster; gradients good to ~1e-5 << gtol);
        # the float64 features wait outside memory (rebuilt below for the layers that need them)
        fold32 = replace(blocks[0], Z=blocks[0].Z.float())
        blocks[0].Z = _shape_only(blocks[0].Z)
        f32 = spec.family(fold32, lams[0])
        x1, it1, _ = lbfgs(f32.fun, f32.precond, x0, gtol=LOOSE_GTOL, log=log)
        del fold32, f32
        scores = _scores(spec, blocks[0], x1, Xtr, yc, folds, L, nP)
        cand = scores >= scores.max(1, keepdims=True) - MARGIN
        # a layer with one candidate has its C (alpha): only its refit is needed; with several
        # (a near tie) their inner fits are solved to GTOL too and compared again
        tie = cand & (cand.sum(1, keepdims=True) > 1)
        # from here the inner folds are read only for the layers with a near tie: their
        # float64 features (the same computation again) are kept, before the refit block is built
        keep = np.flatnonzero(tie[blocks[0].layer].any(1))
        if keep.size:
            blocks[0].Z = _block(Xtr, yc, fit_rows, sets[0]).Z
        fams[0].retain(keep)
        blocks[0].Z = _shape_only(blocks[0].Z)
        for g in sets[1:]:
            blocks.append(_block(Xtr, yc, fit_rows, g))
            lams.append(torch.as_tensor(spec.lam(grid[None, :], blocks[-1].n[:, None])))
            fams.append(spec.family(blocks[-1], lams[-1]))
        x0 = torch.cat([x0] + [spec.start(blk) for blk in blocks[1:]])
        fun, pre = _joint(fams)
        x = torch.cat([x1, x0[nf:]])
        it1 = np.concatenate([it1, np.zeros(x0.shape[0] - nf, dtype=it1.dtype)])
        lay = np.concatenate([blk.layer for blk in blocks])
        refit = np.repeat(np.arange(lay.size) >= nf // nP, nP)
        col, row = np.tile(np.arange(nP), lay.size), np.repeat(lay, nP)
        solve = torch.as_tensor(np.where(refit, cand[row, col], tie[row, col]))
        x[nf:] = _warm(spec, blocks, spec.coefs(blocks[0], x[:nf]), x[nf:], nP)
        x, it2, _ = lbfgs(fun, pre, x, gtol=GTOL, solve=solve, log=log)
        fold_coefs = spec.coefs(blocks[0], x[:nf])
        all_coefs = spec.coefs(blocks[1], x[nf:])
    n_fixed = 0
    if spec.fix is not None:
        n_fixed = _fix_all(spec, blocks, [fold_coefs, all_coefs], cand, Xtr, yc, fit_rows, grid)
    scores = _scores(spec, blocks[0], None, Xtr, yc, folds, L, nP, coefs=fold_coefs)
    scores[~cand] = -np.inf
    best = scores.argmax(1)
    pred = np.zeros((L, m), dtype=int)
    proba = np.zeros((L, m, n_classes))
    info = []
    iters = (it1 + it2).reshape(-1, nP)[nf // nP:]
    for gi, li in enumerate(blocks[1].layer):
        pp, pr = spec.predict(Xte[li], all_coefs[gi, best[li]])
        proba[li][:, present] = pp
        pred[li] = present[pr]
        info.append({name: float(grid[best[li]]), "n_iter_": int(iters[gi, best[li]])})
    if n_fixed:
        info[0]["n_refitted_"] = n_fixed
    return {"pred": pred, "proba": proba, "info": info}


def _warm(spec: _Spec, blocks: list[_Block], fold_coefs: np.ndarray, x_all, nP: int):
    """Refits start from the mean of their layer's inner-fold solutions (as sklearn's refit
    does), mapped onto the refit's own principal axes."""
    fb, ab = blocks
    x_all = x_all.clone().view(len(ab.layer), nP, -1)
    for gi, li in enumerate(ab.layer):
        rows = np.flatnonzero(fb.layer == li)
        if np.all(fb.ncls[rows] == ab.ncls[gi]):  # every fold saw every class
            x_all[gi] = spec.warm(ab, gi, fold_coefs[rows].mean(0))
    return x_all.reshape(len(ab.layer) * nP, -1)


def _scores(spec: _Spec, blk: _Block, x, Xtr, yc, folds, L: int, nP: int, coefs=None):
    """Inner score of every (layer, grid value): the per-fold scores summed over the folds."""
    coefs = spec.coefs(blk, x) if coefs is None else coefs
    out = np.zeros((L, nP))
    for gi, (li, s) in enumerate(zip(blk.layer, blk.fitset, strict=True)):
        va = folds[s][1]
        for p in range(nP):
            out[li, p] += spec.score(Xtr[li, va], yc[va], coefs[gi, p], blk.present[gi])
    return out


def _fix_all(spec: _Spec, blocks, coefs, cand, Xtr, yc, fit_rows, grid) -> int:
    """Apply ``spec.fix`` (ordered thresholds) to every candidate's solutions."""
    n = 0
    for blk, cf in zip(blocks, coefs, strict=True):
        for gi, (li, s) in enumerate(zip(blk.layer, blk.fitset, strict=True)):
            rows = fit_rows[s]
            yk = np.searchsorted(blk.present[gi], yc[rows])
            for p in np.flatnonzero(cand[li]):
                n += spec.fix(Xtr[li, rows], yk, grid[p], int(blk.ncls[gi]), cf[gi, p])
    return n


def logistic_layers(Xtr: np.ndarray, y: np.ndarray, Xte: np.ndarray, *, n_classes: int,
                    Cs, cv: int = 3, seed=0, log: Callable[[str], None] | None = None) -> dict:
    """``make_probe("logistic", mode="tuned", scale=False)`` fitted on every layer of the
    standardised ``Xtr`` (``layers x n x d``) and applied to ``Xte``: ``pred`` (``layers x m``),
    ``proba`` (``layers x m x n_classes``) and ``info`` (``C_`` and L-BFGS iterations)."""

    def spec_of(c: int, yc: np.ndarray, fit_rows) -> _Spec:
        import torch

        def family(blk: _Block, lam) -> _Family:
            # the logistic model keeps every class in every fold; absent ones are masked
            blk.y = torch.as_tensor(np.stack([_pad(yc[fit_rows[s]], blk.Z.shape[1])
                                              for s in blk.fitset]))
            _, neg = _logistic_start(blk, yc, fit_rows, 1, c)
            return _logistic_family(blk, lam, neg, c)

        def score(Xva, yva, coef, _present) -> float:
            P = _softmax(Xva @ coef[:-1] + coef[-1])
            return float(np.mean(np.log(np.clip(P[np.arange(yva.size), yva], _EPS, 1 - _EPS))))

        def predict(Xte_l, coef):
            P = _softmax(Xte_l @ coef[:-1] + coef[-1])
            return P, P.argmax(1)

        def warm(blk: _Block, gi: int, coef: np.ndarray):
            W = torch.as_tensor(coef[:, :-1])  # nP x d x K
            b = torch.as_tensor(coef[:, -1]) + (blk.mean[gi] @ W)
            return torch.cat([(blk.V[gi].T @ W).reshape(W.shape[0], -1), b], 1)

        # sklearn fits two classes with its binomial model: the multinomial one at C/2
        return _Spec(family, lambda blk: _logistic_start(blk, yc, fit_rows, len(Cs), c)[0],
                     lambda blk, x: _logistic_coefs([blk], x, len(Cs), c)[0], score, predict,
                     lambda C, n: 1.0 / ((C / 2 if c == 2 else C) * n), warm)

    return _tuned_layers(Xtr, y, Xte, Cs, n_classes=n_classes, cv=cv, seed=seed,
                         spec_of=spec_of, name="C_", log=log)


def ordinal_layers(Xtr: np.ndarray, y: np.ndarray, Xte: np.ndarray, *, n_classes: int,
                   alphas, cv: int = 3, seed=0, log: Callable[[str], None] | None = None) -> dict:
    """``make_probe("ordinal", mode="tuned", scale=False)`` on every layer (see
    :func:`logistic_layers`); ``info`` carries ``alpha_``."""
    alphas = sorted((float(a) for a in alphas), reverse=True)  # the estimator's path order

    def spec_of(c: int, yc: np.ndarray, fit_rows) -> _Spec:
        T = c - 1

        def score(Xva, yva, coef, present_fit) -> float:
            _, pk = _ordinal_proba(Xva, coef, present_fit.size)
            p = np.full((yva.size, c), 1e-12)
            p[:, present_fit] = np.maximum(pk, 1e-12)
            return float(np.mean(np.log(p[np.arange(yva.size), yva])))  # minus the log-loss

        def predict(Xte_l, coef):
            score_, pk = _ordinal_proba(Xte_l, coef, c)
            return pk, (coef[-T:][None, :] < score_[:, None]).sum(1)

        def warm(blk: _Block, gi: int, coef: np.ndarray):
            import torch

            d = blk.Z.shape[2]
            w = torch.as_tensor(coef[:, :d])  # nP x d
            th = torch.as_tensor(coef[:, d:]) - (w @ blk.mean[gi])[:, None]
            return torch.cat([w @ blk.V[gi], th], 1)

        return _Spec(lambda blk, lam: _ordinal_family(blk, lam, T),
                     lambda blk: _ordinal_start(blk, len(alphas), T),
                     lambda blk, x: _ordinal_coefs(blk, x, len(alphas), T), score, predict,
                     lambda a, n: a / n, warm, _ordinal_fix)

    return _tuned_layers(Xtr, y, Xte, alphas, n_classes=n_classes, cv=cv, seed=seed,
                         spec_of=spec_of, name="alpha_", log=log)

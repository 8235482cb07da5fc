"""Report figures (matplotlib, Agg) returned as PNG bytes so the report stays self-contained."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from learnerprobe.evaluation.results import NO_LAYER, SELECTED, Pooled

# heavy optional imports stay local: matplotlib (only when a report is drawn).


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def layer_curves(df: pd.DataFrame, metric: str = "qwk") -> list[tuple[str, bytes]]:
    """QWK per layer per probe with 95% CI bands; surface baseline as a horizontal band."""
    plt = _plt()
    out = []
    d = df[(df.metric == metric) & (df.test_corpus == "all") & (df.levels == "all")]
    per_layer = d[(d.probe != "surface") & d.layer.astype(str).str.isdigit()]
    for (model, mode), g in per_layer.groupby(["model", "mode"], sort=False):
        protos = list(dict.fromkeys(g.protocol))
        fig, axes = plt.subplots(1, len(protos), figsize=(5.2 * len(protos), 3.8), sharey=True,
                                 squeeze=False)
        for ax, proto in zip(axes[0], protos, strict=True):
            # per-layer rows only (not `selected`, nor the transfer stage's `nested`)
            gp = g[(g.protocol == proto) & g.layer.astype(str).str.isdigit()]
            for probe, gg in gp.groupby("probe", sort=False):
                gg = gg.assign(L=gg.layer.astype(int)).sort_values("L")
                line, = ax.plot(gg.L, gg.value, marker=".", label=probe)
                ax.fill_between(gg.L, gg.ci_low, gg.ci_high, alpha=0.15, color=line.get_color())
            s = d[(d.probe == "surface") & (d["mode"] == mode) & (d.protocol == proto)]
            if len(s):
                r = s.iloc[0]
                ax.axhline(r.value, color="k", ls="--", lw=1, label="surface")
                ax.axhspan(r.ci_low, r.ci_high, color="k", alpha=0.08)
            ax.set_title(f"{proto} — {model} ({mode})")
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(metric.upper())
        axes[0][-1].legend(fontsize=8, loc="lower right")
        out.append((f"Layer curves, {model}, {mode} mode: pooled test {metric.upper()} per "
                    f"layer (bands: 95% bootstrap CI); dashed: surface baseline", _png(fig)))
    return out


def transfer_matrix(df: pd.DataFrame, metric: str = "qwk") -> list[tuple[str, bytes]]:
    """Training condition x test corpus, selected layer: in-distribution vs held-out corpus."""
    plt = _plt()
    out = []
    d = df[(df.metric == metric) & (df.levels == "all") & (df.test_corpus != "all")
           & (df.layer.isin([SELECTED, NO_LAYER]))]
    if d.empty:
        return out
    for (model, mode), g in d.groupby(["model", "mode"], sort=False):
        if model == "surface":
            continue
        g = pd.concat([g, d[(d.model == "surface") & (d["mode"] == mode)]])
        g = g.assign(cond=g.protocol.map({"iid": "IID (all corpora)",
                                          "loco": "trained on the others",
                                          "lolo": "other languages"}).fillna(g.protocol))
        probes = list(dict.fromkeys(g.probe))
        corpora = list(dict.fromkeys(g.test_corpus))
        conds = list(dict.fromkeys(g.cond))
        fig, axes = plt.subplots(1, len(probes), figsize=(2.3 * len(probes) + 1, 0.6 *
                                 len(conds) + 1.6), squeeze=False)
        for ax, probe in zip(axes[0], probes, strict=True):
            m = np.full((len(conds), len(corpora)), np.nan)
            for _, r in g[g.probe == probe].iterrows():
                m[conds.index(r.cond), corpora.index(r.test_corpus)] = r.value
            ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for i in range(len(conds)):
                for j in range(len(corpora)):
                    if not np.isnan(m[i, j]):
                        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                                color="w" if m[i, j] < 0.6 else "k")
            ax.set_xticks(range(len(corpora)), corpora, rotation=45, fontsize=8)
            ax.set_yticks(range(len(conds)), conds if ax is axes[0][0] else [""] * len(conds),
                          fontsize=8)
            ax.set_title(probe, fontsize=9)
        out.append((f"Transfer matrix, {model}, {mode}: {metric.upper()} on each test corpus "
                    "when the corpus is in training (IID) vs held out (validation-chosen layer)",
                    _png(fig)))
    return out


def _select(pooled: Sequence[Pooled], model: str, mode: str) -> list[Pooled]:
    return [p for p in pooled
            if p.key["mode"] == mode and p.key["layer"] in (SELECTED, NO_LAYER)
            and p.key["model"] in (model, "surface")]


def confusion_matrices(pooled: Sequence[Pooled], y: np.ndarray, labels: list[str]
                       ) -> list[tuple[str, bytes]]:
    """Row-normalised confusion matrices of the selected layer: protocol x probe."""
    plt = _plt()
    out = []
    K = len(labels)
    for model, mode in _model_modes(pooled):
        ps = _select(pooled, model, mode)
        protos = list(dict.fromkeys(p.key["protocol"] for p in ps))
        probes = list(dict.fromkeys(p.key["probe"] for p in ps))
        fig, axes = plt.subplots(len(protos), len(probes), figsize=(2.1 * len(probes),
                                 2.1 * len(protos)), squeeze=False)
        for p in ps:
            ax = axes[protos.index(p.key["protocol"])][probes.index(p.key["probe"])]
            cm = confusion_matrix(y[p.idx], p.pred, labels=range(K)).astype(float)
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
            ax.set_xticks(range(K), labels, fontsize=6, rotation=90)
            ax.set_yticks(range(K), labels, fontsize=6)
            ax.set_title(f"{p.key['probe']} / {p.key['protocol']}", fontsize=8)
        for ax in axes.flat:
            if not ax.images:
                ax.axis("off")
        out.append((f"Confusion matrices, {model}, {mode} (rows: true level, row-normalised; "
                    "columns: predicted)", _png(fig)))
    return out


def _model_modes(pooled: Sequence[Pooled]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((p.key["model"], p.key["mode"]) for p in pooled
                              if p.key["model"] != "surface"))


def collapse(pooled: Sequence[Pooled], y: np.ndarray, corpora: np.ndarray, labels: list[str]
             ) -> list[tuple[str, bytes]]:
    """The collapse figure: predicted vs true vs training prior vs uniform, per test corpus.

    Out of distribution the predicted distribution shrinks toward the training prior (or one
    level); this makes it visible at a glance.
    """
    plt = _plt()
    out = []
    K = len(labels)
    x = np.arange(K)
    for model, mode in _model_modes(pooled):
        ps = _select(pooled, model, mode)
        panels = []
        for p in ps:
            if p.key["protocol"] == "iid":  # per corpus; prior = pooled training folds
                tc = corpora[p.idx]
                parts = [(c, tc == c, p.train_labels) for c in dict.fromkeys(tc.tolist())]
            else:  # per held-out fold; prior = that fold's training labels
                parts = [(f, p.fold == f, p.fold_priors[f]) for f in dict.fromkeys(p.fold)]
            for c, m, train in parts:
                panels.append((p.key["probe"], f"{p.key['protocol']}:{c}", y[p.idx[m]],
                               p.pred[m], train))
        rows = list(dict.fromkeys(t[1] for t in panels))
        cols = list(dict.fromkeys(t[0] for t in panels))
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.2 * len(cols),
                                 1.7 * len(rows)), sharex=True, sharey=True, squeeze=False)
        for probe, row, yt, yp, tr in panels:
            ax = axes[rows.index(row)][cols.index(probe)]
            dist = [np.bincount(a, minlength=K)[:K] / max(len(a), 1) for a in (yt, yp, tr)]
            ax.bar(x - 0.27, dist[0], 0.27, label="true", color="#888")
            ax.bar(x, dist[1], 0.27, label="predicted", color="C3")
            ax.bar(x + 0.27, dist[2], 0.27, label="train prior", color="C0")
            ax.axhline(1 / K, ls=":", color="k", lw=1, label="uniform")
            ax.set_xticks(x, labels, fontsize=6, rotation=90)
            if cols.index(probe) == 0:
                ax.set_ylabel(row, fontsize=7)
            if rows.index(row) == 0:
                ax.set_title(probe, fontsize=8)
        axes[0][-1].legend(fontsize=6)
        out.append((f"Label distributions ('collapse'), {model}, {mode}: true vs predicted vs "
                    "training prior vs uniform, per protocol and test corpus", _png(fig)))
    return out


def signed_error(pooled: Sequence[Pooled], y: np.ndarray, labels: list[str]
                 ) -> list[tuple[str, bytes]]:
    """Mean signed error per true level: a slope toward zero is regression to the mean."""
    plt = _plt()
    out = []
    K = len(labels)
    for model, mode in _model_modes(pooled):
        ps = _select(pooled, model, mode)
        protos = list(dict.fromkeys(p.key["protocol"] for p in ps))
        fig, axes = plt.subplots(1, len(protos), figsize=(4.5 * len(protos), 3.2), sharey=True,
                                 squeeze=False)
        for p in ps:
            ax = axes[0][protos.index(p.key["protocol"])]
            yt = y[p.idx]
            mse = [np.mean(p.pred[yt == k] - k) if np.any(yt == k) else np.nan for k in range(K)]
            ax.plot(range(K), mse, marker="o", label=p.key["probe"],
                    ls="--" if p.key["probe"] == "surface" else "-")
            ax.set_title(p.key["protocol"])
        for ax in axes[0]:
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(range(K), labels, fontsize=7)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("mean signed error (levels)")
        axes[0][-1].legend(fontsize=7)
        out.append((f"Mean signed error per true level, {model}, {mode}", _png(fig)))
    return out


def transfer_distributions(pooled: Sequence[Pooled], y: np.ndarray, labels: list[str]
                           ) -> list[tuple[str, bytes]]:
    """Per held-out corpus: true / predicted / training-prior / uniform level distributions of
    the plain probe and every transfer method (rows: methods; columns: held-out corpora).

    The transfer methods' first question is whether they undo the pull towards the training
    label mix; bars side by side answer it before any score does."""
    plt = _plt()
    ps = [p for p in pooled if p.key["layer"] == "nested"]
    if not ps:
        return []
    K = len(labels)
    x = np.arange(K)
    out = []
    for model in dict.fromkeys(p.key["model"] for p in ps):
        mp = [p for p in ps if p.key["model"] == model]
        folds = list(dict.fromkeys(f for p in mp for f in dict.fromkeys(p.fold)))
        fig, axes = plt.subplots(len(mp), len(folds), figsize=(2.6 * len(folds) + 0.6,
                                 1.35 * len(mp) + 0.6), sharex=True, sharey=True,
                                 squeeze=False)
        for i, p in enumerate(mp):
            for j, f in enumerate(folds):
                ax = axes[i][j]
                m = p.fold == f
                dist = [np.bincount(a, minlength=K)[:K] / max(len(a), 1)
                        for a in (y[p.idx[m]], p.pred[m], p.fold_priors.get(f, []))]
                w = 0.27
                ax.bar(x - w, dist[0], w, label="true", color="#888")
                ax.bar(x, dist[1], w, label="predicted", color="C3")
                ax.bar(x + w, dist[2], w, label="training prior", color="C0")
                ax.axhline(1 / K, ls=":", color="k", lw=1, label="uniform")
                ax.set_xticks(x, labels, fontsize=6)
                ax.tick_params(axis="y", labelsize=6)
                if j == 0:
                    ax.set_ylabel(p.key["probe"], fontsize=7)
                if i == 0:
                    ax.set_title(f"held out: {f}", fontsize=8)
        axes[0][-1].legend(fontsize=6, loc="upper right")
        out.append((f"Level distributions per held-out corpus, {model}: true (grey), predicted "
                    "(red), training prior (blue), uniform (dotted), for the plain probe and "
                    "each transfer method (nested-LOCO-chosen variant)", _png(fig)))
    return out

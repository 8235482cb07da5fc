"""The NLI protocol: the entry point the study runner calls for ``task = "l1"``.

``run_nli(nli, records, out_dir, *, models, probes, layers, extraction, folds, seeds, n_boot,
masked, log=print) -> HookResult``: prepares the L1 task (minimum
texts per L1, masking, grouping), evaluates every configured method on the same author-grouped
stratified folds, scores them with bootstrap CIs (majority rate and chance beside every
figure), compares the ensemble with the n-gram system by a paired bootstrap, and writes the
analyses (confusion heatmaps, within-family errors, accuracy by CEFR level) under
``out_dir/nli/``. Method options live in the config's ``[nli]`` table (:class:`NliConfig`); the
other arguments are the study config's own keys of those names.
"""

from __future__ import annotations

import hashlib
import html
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from learnerprobe import __version__
from learnerprobe.cefr import LEVELS, base_level
from learnerprobe.config.nli import MethodConfig, NliConfig
from learnerprobe.config.study import ExtractionConfig, Layers
from learnerprobe.estimators.nli._base import align_proba
from learnerprobe.estimators.nli.probe_method import ActivationLookup
from learnerprobe.evaluation.cell_cache import CellCache, read_npz, write_npz
from learnerprobe.evaluation.metrics import bootstrap_all, paired_bootstrap_diff, score_all
from learnerprobe.evaluation.results import HookResult, ReportSection
from learnerprobe.evaluation.splits import (
    balance_indices,
    check_class_sizes,
    grouped_stratified_kfold,
)
from learnerprobe.extract import get_activations
from learnerprobe.methods.registry import BuildContext, get_method, l1_probe_names
from learnerprobe.nli import analysis as A
from learnerprobe.nli.stacking import BaseRun, stack_on_outer_folds
from learnerprobe.records import LearnerText
from learnerprobe.tasks import get_task
from learnerprobe.tasks.l1 import L1Data

NO_LAYER = "none"
__all__ = ["run_nli"]


# --------------------------------------------------------------------------- method factory
def _accepts(cls: Any, name: str) -> bool:
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


class MethodFactory:
    """Builds a fresh estimator per method name from the ``[nli]`` table (one place for
    defaults). ``models``/``probes``: the study's models and probes (surface excluded)."""

    def __init__(self, s: NliConfig, task: L1Data, *, models: Sequence[str],
                 probes: Sequence[str], featurizers: dict[str, Callable] | None = None,
                 embedder: Callable | None = None) -> None:
        self.s, self.task = s, task
        self.probes = list(probes)
        self.featurizers = featurizers or {}
        self.embedder = embedder
        self.seed = 0
        cw = "balanced" if s.balance == "weights" else None
        self.class_weight = cw
        self.models = list(models)
        lang = {r.language for r in task.records}
        self.language = lang.pop() if len(lang) == 1 else None

    def probe_keys(self) -> list[tuple[str, str]]:
        """(model, probe) pairs the 'probe' method expands to."""
        return [(m, p) for m in self.models for p in (self.probes or ["logistic"])]

    def context(self) -> BuildContext:
        """What this run gives every method's registry factory."""
        return BuildContext(seed=self.seed, class_weight=self.class_weight, models=self.models,
                            language=self.language, probes=self.probes,
                            featurizers=self.featurizers, embedder=self.embedder,
                            settings=self.s, build=self.make)

    def make(self, method: str, *, model: str | None = None, probe: str | None = None) -> Any:
        """A fresh estimator for a method or variant name, from its registry entry
        (:mod:`learnerprobe.methods.registry`). Options, later ones winning: the method's
        ``[nli.<method>]`` table, the variant's own, the (model, probe) pair of this run."""
        s = self.s
        over: dict[str, Any] = {}
        if method in s.variants:  # a named variant: its method's table, then its own options
            over = {k: v for k, v in s.variants[method].items() if k != "method"}
            method = s.variants[method]["method"]
        pick = {k: v for k, v in (("model", model), ("probe", probe)) if v is not None}
        entry = get_method(method, task="l1")
        return entry.build(self.context(), {**s.table(method), **over, **pick})


# --------------------------------------------------------------------------- evaluation
def _sample(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Stratified bounded sample of indices (all when n is None or >= len)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(idx)


def cross_validate_method(
    make: Callable[[], Any], task: L1Data, folds: list[tuple[np.ndarray, np.ndarray]], *,
    balance: str, seed: int, eval_idx: np.ndarray | None = None,
) -> dict[str, Any]:
    """Out-of-fold probabilities (columns = task.labels) of one method over the given folds.

    ``eval_idx`` restricts which test texts are scored (bounded samples for slow methods);
    training always uses the whole training fold.
    """
    recs = task.records
    labels = np.asarray(task.labels, dtype=object)
    n = len(recs)
    proba = np.full((n, len(labels)), np.nan)
    fold_of = np.full(n, -1)
    layers: list[int] = []
    notes: list[dict[str, Any]] = []
    wanted = np.ones(n, bool) if eval_idx is None else np.isin(np.arange(n), eval_idx)
    for f, (tr, te) in enumerate(folds):
        te = te[wanted[te]]
        if len(te) == 0:
            continue
        tr = tr[balance_indices(task.y[tr], balance, seed)]
        est = make()
        fit_kw = {"groups": task.groups[tr]} if _accepts(est.fit, "groups") else {}
        est.fit([recs[i] for i in tr], task.y[tr], **fit_kw)
        p = est.predict_proba([recs[i] for i in te])
        proba[te] = align_proba(np.asarray(p), np.asarray(est.classes_, dtype=object), labels)
        fold_of[te] = f
        if hasattr(est, "layer_index_"):
            layers.append(int(est.layer_index_))
        if hasattr(est, "meta_choice_"):
            notes.append({"fold": f, "meta_choice": est.meta_choice_,
                          "meta_scores": dict(est.meta_scores_)})
    done = fold_of >= 0
    return {"proba": proba[done], "idx": np.flatnonzero(done), "fold": fold_of[done],
            "layers": layers, "notes": notes}


# --------------------------------------------------------------------------- result cache
#: Bump when a method's code changes what it predicts, so stale cached results are not reused.
NLI_CACHE_VERSION = 2
# ensemble 4: outer folds as inner ones (nli.stacking); sentence-sgd 2: converged L-BFGS fit
METHOD_CACHE_VERSION = {"ensemble": 4, "sentence-sgd": 2}

_METHOD_TABLES = {"ngram": ("ngram",), "sentence-sgd": ("sentence_sgd",), "probe": ("probe",),
                  "metadata": ("metadata",), "zeroshot": ("zeroshot", "zeroshot_sample"),
                  "finetune": ("finetune", "finetune_sample")}


def _plain(v: Any) -> Any:
    """An option table as the plain dict of the options the user set (stable cache keys)."""
    return v.as_kwargs() if isinstance(v, MethodConfig) else v


def method_cache_key(s: NliConfig, method: str, kw: dict[str, Any], seed: int,
                     folds: Sequence[tuple[np.ndarray, np.ndarray]], task: L1Data, *,
                     models: Sequence[str], probes: Sequence[str], layers: Layers,
                     extraction: ExtractionConfig) -> str:
    """Hash of everything that changes one method's out-of-fold predictions: its options
    (and its bases' for the ensemble), the study's models, probes, layers and extraction, class
    balance, the task's texts and labels, the folds and the seed."""
    methods = [method] + (list(s.ensemble_of) if method == "ensemble" else [])
    tables = {m: {t: _plain(getattr(s, t)) for t in _METHOD_TABLES.get(s.base_method(m), ())}
              for m in methods}
    for m in methods:
        if m in s.variants:
            tables[m]["variant"] = s.variants[m]
    payload = {
        "v": NLI_CACHE_VERSION, "pkg": __version__, "method": method, "kw": kw, "seed": seed,
        "tables": tables, "balance": s.balance,
        "ensemble": ([s.ensemble_of, s.ensemble_cv, s.ensemble_folds] if method == "ensemble"
                     else None),
        "models": list(models), "probes": list(probes), "layers": layers,
        "extraction": extraction.model_dump(),
    }
    if s.base_method(method) in METHOD_CACHE_VERSION:  # only then: other keys stay put
        payload["mv"] = METHOD_CACHE_VERSION[s.base_method(method)]
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    for r, lab in zip(task.records, task.y, strict=True):
        h.update(f"{r.id}\x1f{lab}\x1f{r.text}\x1e".encode())
    for tr, te in folds:
        h.update(np.asarray(tr, np.int64).tobytes() + b"|" + np.asarray(te, np.int64).tobytes())
    return h.hexdigest()


def load_cached(path: Path) -> dict[str, Any] | None:
    """A method's cached out-of-fold result, or None when absent or unreadable (a miss)."""
    z = read_npz(path, required=("proba", "idx", "fold", "layers", "notes"))
    if z is None:
        return None
    try:
        notes = json.loads(str(z["notes"]))
    except ValueError:
        return None
    return {"proba": z["proba"], "idx": z["idx"], "fold": z["fold"],
            "layers": [int(v) for v in z["layers"]], "notes": notes}


def save_cached(path: Path, res: dict[str, Any]) -> None:
    """Write atomically (``evaluation.cell_cache``): a crash or a concurrent run writing the same
    entry leaves either a whole result or the previous one."""
    write_npz(path, {"proba": res["proba"], "idx": res["idx"], "fold": res["fold"],
                     "layers": np.asarray(res["layers"], dtype=np.int64),
                     "notes": np.asarray(json.dumps(res.get("notes", []), default=str))})


def score_method(
    res: dict[str, Any], task: L1Data, *, n_boot: int, seed: int
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Metric rows (accuracy, macro-F1, top-k with CIs; per-L1 P/R/F1) for one method."""
    K = len(task.labels)
    y_codes = np.array([task.labels.index(v) for v in task.y[res["idx"]]])
    pred = np.argmax(res["proba"], axis=1)
    rows = []
    ci = bootstrap_all(y_codes, pred, proba=res["proba"], task="nominal", labels=K,
                       n_boot=n_boot, seed=seed)
    for metric, (v, lo, hi) in ci.items():
        rows.append({"metric": metric, "value": v, "ci_low": lo, "ci_high": hi})
    per = score_all(y_codes, pred, task="nominal", labels=K, per_class=True)
    for key, v in per.items():
        if "/" in key:
            m, lab = key.split("/", 1)
            rows.append({"metric": f"{m}/{task.labels[int(lab)]}", "value": v,
                         "ci_low": None, "ci_high": None})
    return rows, pred


def _fig_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _levels(recs: Sequence[LearnerText]) -> tuple[list[str | None], np.ndarray]:
    lev = [base_level(r.cefr) if r.cefr else None for r in recs]
    return lev, np.array([LEVELS.index(x) if x else np.nan for x in lev], dtype=float)


def analyse(
    method: str, res: dict[str, Any], pred: np.ndarray, task: L1Data, out: Path,
) -> tuple[list[dict[str, Any]], list[tuple[str, bytes]], dict[str, Any]]:
    """Confusion heatmaps, within-family error share, accuracy by CEFR level for one method."""
    labels = task.labels
    y_true = task.y[res["idx"]]
    y_pred = np.asarray(labels, dtype=object)[pred]
    slug = method.replace("/", "_")
    cm = A.confusion(y_true, y_pred, labels)
    cm.to_csv(out / f"confusion_{slug}.csv")
    figs = []
    for norm in (False, True):
        p = A.plot_confusion(cm, out / f"confusion_{slug}{'_norm' if norm else ''}.png",
                             title=method, normalise=norm)
        figs.append((f"{method}: confusion matrix ({'row-normalised' if norm else 'counts'})",
                     _fig_bytes(p)))
    fam = A.family_error_share(y_true, y_pred, labels=labels)
    rows = [
        {"metric": "within_family_error_share", "value": fam["share"], "n": fam["n_errors"]},
        {"metric": "within_family_chance_share", "value": fam["chance_share"],
         "n": fam["n_errors"]},
    ]
    info: dict[str, Any] = {"family": fam}
    recs = [task.records[i] for i in res["idx"]]
    lev, lev_int = _levels(recs)
    correct = y_true == y_pred
    if sum(x is not None for x in lev) >= 10 and len({x for x in lev if x}) >= 2:
        abl = A.accuracy_by_level(correct, lev, order=LEVELS)
        abl["per_level"].to_csv(out / f"accuracy_by_level_{slug}.csv", index=False)
        for _, r in abl["per_level"].iterrows():
            rows.append({"metric": f"accuracy/{r['level']}", "value": float(r["accuracy"]),
                         "n": int(r["n"])})
        rows += [{"metric": "level_chi2", "value": abl["chi2"]},
                 {"metric": "level_chi2_p", "value": abl["p_value"]},
                 {"metric": "level_cramers_v", "value": abl["cramers_v"]}]
        length = np.array([len(r.text.split()) for r in recs], dtype=float)
        try:
            logit = A.correctness_logit(correct, lev_int, length)
        except Exception as e:  # perfect separation etc.: report, do not fail the run
            logit = pd.DataFrame()
            info["logit_error"] = str(e)
        if len(logit):
            logit.to_csv(out / f"correctness_logit_{slug}.csv", index=False)
            for _, r in logit[logit.term == "level"].iterrows():
                tag = "logit_level" if r["model"] == "level" else "logit_level_ctrl_length"
                rows += [{"metric": f"{tag}_coef", "value": r["coef"], "ci_low": r["ci_low"],
                          "ci_high": r["ci_high"], "n": int(r["n"])},
                         {"metric": f"{tag}_p", "value": r["p_value"], "n": int(r["n"])}]
        info.update(chi2=abl["chi2"], p=abl["p_value"], cramers_v=abl["cramers_v"],
                    per_level=abl["per_level"].to_dict("records"),
                    logit=logit.to_dict("records") if len(logit) else [])
    return rows, figs, info


# --------------------------------------------------------------------------- entry point
def _extract(extraction: ExtractionConfig, layers: Layers, task: L1Data, models: Sequence[str],
             log: Callable[[str], None]) -> dict[str, ActivationLookup]:
    out = {}
    for m in models:
        t0 = time.perf_counter()
        a = get_activations(task.records, m, layers=None if layers == "all" else layers,
                            **extraction.kwargs())
        out[m] = ActivationLookup.from_activations(a)
        log(f"  nli activations {m}: {a.array.shape} ({time.perf_counter() - t0:.1f} s)")
    return out


@dataclass
class _NliRun:
    """What one run_nli call accumulates: rows, predictions, report sections, analyses."""

    s: NliConfig
    task: L1Data
    fac: MethodFactory
    out: Path
    cache: CellCache
    log: Callable[[str], None]
    n_boot: int
    base: dict[str, Any]  # columns every row of this run shares
    first_seed: int
    cache_key: dict[str, Any]  # the study settings in every method's cache key
    rows: list[dict[str, Any]] = field(default_factory=list)
    preds: list[pd.DataFrame] = field(default_factory=list)
    sections: list[ReportSection] = field(default_factory=list)
    analyses: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _prepare_task(s: NliConfig, masked: bool, prepared: L1Data | None,
                  records: Sequence[LearnerText], out: Path, log: Callable[[str], None]
                  ) -> tuple[L1Data, dict[str, Any]]:
    """The L1 task (``tasks.l1.L1Task.select``, unless the runner already prepared it), logged
    and saved to ``nli/task.json``."""
    task = prepared if prepared is not None else get_task("l1").select(records, s, masked=masked)
    summary = task.summary()
    log(f"  L1 task: {summary['n_texts']} texts, {len(task.labels)} L1s, majority "
        f"{task.majority_rate:.3f}; dropped: {task.dropped_l1}")
    (out / "task.json").write_text(json.dumps(summary, indent=2, default=str))
    return task, summary


def _base_row(task: L1Data) -> dict[str, Any]:
    """Columns shared by every NLI row (one protocol: tuned, iid, pooled over corpora)."""
    K = len(task.labels)
    corpus = ",".join(sorted({r.corpus for r in task.records}))
    return {"task": "l1", "mode": "tuned", "protocol": "iid", "test_corpus": "all",
            "levels": "all", "majority_rate": task.majority_rate, "chance": 1.0 / K,
            "n_classes": K, "corpus": corpus}


def _baseline_rows(run: _NliRun, seed: int) -> list[dict[str, Any]]:
    """Majority rate and chance: the yardsticks beside every method's figures."""
    task, n = run.task, len(run.task.y)
    return [{**run.base, "seed": seed, "model": NO_LAYER, "probe": "majority",
             "layer": NO_LAYER, "metric": "majority_rate", "value": task.majority_rate, "n": n},
            {**run.base, "seed": seed, "model": NO_LAYER, "probe": "chance",
             "layer": NO_LAYER, "metric": "chance", "value": 1.0 / len(task.labels), "n": n}]


def _method_runs(method: str, s: NliConfig, fac: MethodFactory
                 ) -> list[tuple[str, str, dict[str, Any]]]:
    """(row name, model column, build options) of each evaluation of one configured method:
    the ``probe`` method expands to every (model, probe) pair."""
    if method == "probe":
        return [(p, m, {"model": m, "probe": p}) for m, p in fac.probe_keys()]
    uses_model = s.base_method(method) in ("sentence-sgd", "finetune", "probe") or (
        method == "ensemble"
        and any(s.base_method(b) in ("sentence-sgd", "probe") for b in s.ensemble_of))
    return [(method, fac.models[0] if uses_model else NO_LAYER, {})]


def _eval_idx(s: NliConfig, method: str, y: np.ndarray, seed: int) -> np.ndarray | None:
    """Test texts scored by a slow method (a bounded stratified sample), None: all."""
    base_m = s.base_method(method)
    if base_m == "zeroshot":
        return _sample(y, s.zeroshot_sample, seed)
    if base_m == "finetune":
        return _sample(y, s.finetune_sample, seed)
    return None


def _cached_cv(run: _NliRun, method: str, name: str, kw: dict[str, Any], seed: int,
               folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, Any], float]:
    """One method's out-of-fold result, from ``nli/cache`` or computed and cached; seconds."""
    t0 = time.perf_counter()
    ckey = method_cache_key(run.s, method, kw, seed, folds, run.task, **run.cache_key)
    cpath = run.cache.path(ckey[:20], prefix=f"{name.replace('/', '_')}-seed{seed}-")
    res = load_cached(cpath)
    if res is not None:
        run.log(f"  nli {name} (seed {seed}): cached result {cpath.name}")
    else:
        run.log(f"  nli {name} (seed {seed}) ...")
        if method == "ensemble" and run.s.ensemble_folds == "outer":
            res = _outer_stacking(run, seed, folds)
        else:
            res = cross_validate_method(
                lambda: run.fac.make(method, **kw), run.task, folds, balance=run.s.balance,
                seed=seed, eval_idx=_eval_idx(run.s, method, run.task.y, seed))
        save_cached(cpath, res)
    dt = time.perf_counter() - t0
    if res["notes"]:
        choices = [n["meta_choice"] for n in res["notes"]]
        run.log(f"  nli {name}: combiner chosen per fold on inner out-of-fold data: {choices}")
    return res, dt


def _outer_stacking(run: _NliRun, seed: int, folds: list[tuple[np.ndarray, np.ndarray]]
                    ) -> dict[str, Any]:
    """The ensemble from its bases' cached out-of-fold results (:mod:`learnerprobe.nli.stacking`)."""
    bases = []
    for b in run.s.ensemble_of:
        name, _, kw = _method_runs(b, run.s, run.fac)[0]
        outer, _ = _cached_cv(run, b, name, kw, seed, folds)
        key = method_cache_key(run.s, b, kw, seed, folds, run.task, **run.cache_key)
        path = run.cache.path(key[:20], prefix=f"{name.replace('/', '_')}-seed{seed}-pairs-")
        bases.append(BaseRun(b, lambda b=b, kw=kw: run.fac.make(b, **kw), outer, path))
    return stack_on_outer_folds(run.fac.make("ensemble"), run.task, folds, bases,
                                balance=run.s.balance, seed=seed, log=run.log)


def _method_rows(run: _NliRun, res: dict[str, Any], name: str, model: str, seed: int,
                 dt: float) -> tuple[dict[str, Any], np.ndarray]:
    """Score one method (rows appended, result logged): the columns its rows share, and the
    predicted class indices."""
    task, K = run.task, len(run.task.labels)
    layer = str(int(np.bincount(res["layers"]).argmax())) if res["layers"] else NO_LAYER
    mrows, pred = score_method(res, task, n_boot=run.n_boot, seed=seed)
    sel = ",".join(map(str, res["layers"])) or None
    common = {**run.base, "seed": seed, "model": model, "probe": name, "layer": layer,
              "selected_layer": int(layer) if layer != NO_LAYER else None,
              "selected_layers": sel, "n": len(res["idx"])}
    run.rows += [{**common, **r} for r in mrows]
    acc = next(r["value"] for r in mrows if r["metric"] == "accuracy")
    f1 = next(r["value"] for r in mrows if r["metric"] == "macro_f1")
    run.log(f"  nli {name}: accuracy {acc:.3f}, macro-F1 {f1:.3f} (n={len(res['idx'])}, "
            f"majority {task.majority_rate:.3f}, chance {1 / K:.3f}; {dt:.0f} s)")
    return common, pred


def _prediction_frame(task: L1Data, res: dict[str, Any], pred: np.ndarray, name: str,
                      model: str, layer: str, seed: int) -> pd.DataFrame:
    """predictions.parquet rows of one method (plus the L1 names, true and predicted)."""
    ids = np.array([r.id for r in task.records], dtype=object)
    return pd.DataFrame({
        "task": "l1", "model": model, "mode": "tuned", "seed": seed,
        "protocol": "iid", "fold": res["fold"].astype(str), "probe": name,
        "layer": layer, "id": ids[res["idx"]],
        "corpus": [task.records[i].corpus for i in res["idx"]],
        "true": [task.labels.index(v) for v in task.y[res["idx"]]],
        "pred": pred.astype(np.int64),
        "proba": list(res["proba"].astype(np.float32)),
        "true_l1": task.y[res["idx"]], "pred_l1": np.asarray(task.labels, dtype=object)[pred],
    })


def _analyse_method(run: _NliRun, res: dict[str, Any], pred: np.ndarray, title: str, key: str,
                    common: dict[str, Any]) -> None:
    """Confusion, family and level analyses of one method: rows, analyses.json, a section."""
    arows, figs, info = analyse(title, res, pred, run.task, run.out)
    run.rows += [{**common, "ci_low": None, "ci_high": None, **r} for r in arows]
    if res["notes"]:
        info["combiner"] = res["notes"]
    run.analyses[key] = info
    run.sections.append(ReportSection(f"NLI {key}: confusion", "", figs))


def _evaluate_seed(run: _NliRun, seed: int, n_folds: int) -> None:
    """Every configured method on the same author-grouped folds of one seed."""
    run.fac.seed = seed
    folds = grouped_stratified_kfold(run.task.y, run.task.groups, n_folds, seed)
    run.rows += _baseline_rows(run, seed)
    results: dict[str, dict[str, Any]] = {}
    for method in run.s.methods:
        for name, model, kw in _method_runs(method, run.s, run.fac):
            res, dt = _cached_cv(run, method, name, kw, seed, folds)
            run.timings[f"{name}.seed{seed}"] = dt
            key = f"{name}@{model}" if method == "probe" else name
            results[key] = res
            common, pred = _method_rows(run, res, name, model, seed, dt)
            res["pred"] = pred
            run.preds.append(_prediction_frame(run.task, res, pred, name, model,
                                               common["layer"], seed))
            if run.s.analyses and seed == run.first_seed:
                _analyse_method(run, res, pred, name if method != "probe" else key, key, common)
    run.rows += paired_comparisons(results, run.s.compare, run.task, run.base, seed, run.n_boot)


def _finish(run: _NliRun, summary: dict[str, Any]) -> HookResult:
    """analyses.json, the summary section first, and the HookResult for the runner."""
    (run.out / "analyses.json").write_text(json.dumps(run.analyses, indent=2, default=str))
    combiners = {k: v["combiner"] for k, v in run.analyses.items() if v.get("combiner")}
    run.sections.insert(0, ReportSection("NLI: task and summary",
                                         _summary_html(summary, run.rows, combiners)))
    return HookResult(rows=run.rows, predictions=pd.concat(run.preds, ignore_index=True)
                      if run.preds else None, sections=run.sections, timings=run.timings,
                      manifest={"nli": {"task": summary, "settings": run.s.model_dump()}})


def run_nli(
    nli: NliConfig,
    records: Sequence[LearnerText],
    out_dir: str | Path,
    *,
    models: Sequence[str],
    probes: Sequence[str],
    layers: Layers,
    extraction: ExtractionConfig,
    folds: int,
    seeds: Sequence[int],
    n_boot: int,
    masked: bool,
    log: Callable[[str], None] = print,
    featurizers: dict[str, Callable] | None = None,
    embedder: Callable | None = None,
    cache_dir: str | Path | None = None,
    prepared: L1Data | None = None,
) -> HookResult:
    """Evaluate every configured NLI method; return an ``evaluation.results.HookResult``.

    ``nli`` is the config's ``[nli]`` table; ``models``, ``probes`` (the surface baseline left
    out), ``layers``, ``extraction``, ``folds``, ``seeds`` and ``n_boot`` are the study's own
    keys; ``masked``: ``[prep]`` already masked the records (never masked twice).
    Analyses go to ``out_dir/nli/``; each method's out-of-fold result is cached (atomically)
    in ``cache_dir`` (default ``out_dir/nli/cache``): the study runner stages the analyses
    and keeps the cache in the real output folder, so a crashed run resumes.
    ``featurizers`` (model -> items -> layers x n x hidden) and ``embedder`` (sentences -> n x d)
    bypass extraction and the static embeddings; tests use them to stay fast. ``prepared`` is
    the task the study runner already selected (``tasks.l1.L1Task.prepare``); without it the
    records are selected here, by the same function.
    """
    out = Path(out_dir) / "nli"
    cache = CellCache(Path(cache_dir) if cache_dir is not None else out / "cache")
    out.mkdir(parents=True, exist_ok=True)
    task, summary = _prepare_task(nli, masked, prepared, records, out, log)
    check_class_sizes(task.y, folds)  # before any extraction or fitting
    fac = MethodFactory(nli, task, models=models, probes=probes, featurizers=featurizers,
                        embedder=embedder)
    run = _NliRun(nli, task, fac, out, cache, log, n_boot=n_boot, base=_base_row(task),
                  first_seed=seeds[0],
                  cache_key={"models": models, "probes": probes, "layers": layers,
                             "extraction": extraction})
    if nli.uses("probe") and featurizers is None:
        t0 = time.perf_counter()
        fac.featurizers = _extract(extraction, layers, task, fac.models, log)
        run.timings["extract"] = time.perf_counter() - t0
    for seed in seeds:
        _evaluate_seed(run, seed, folds)
    return _finish(run, summary)


def paired_comparisons(results: dict[str, dict[str, Any]], compare: Sequence[str], task: L1Data,
                 base: dict[str, Any], seed: int, n_boot: int) -> list[dict[str, Any]]:
    """Paired bootstrap of ``compare[0]`` minus each other listed method (same texts)."""
    if not compare or compare[0] not in results:
        return []
    a = results[compare[0]]
    rows = []
    for other in compare[1:]:
        b = results.get(other)
        if b is None and other == "probe":  # the first hidden-state probe, e.g. logistic@model
            other, b = next(((k, v) for k, v in results.items()
                             if k.split("@")[0] in l1_probe_names()), (other, None))
        if b is None:
            continue
        common = np.intersect1d(a["idx"], b["idx"])
        ia = np.searchsorted(a["idx"], common)
        ib = np.searchsorted(b["idx"], common)
        y = np.array([task.labels.index(v) for v in task.y[common]])
        for metric in ("accuracy", "macro_f1"):
            d, lo, hi = paired_bootstrap_diff(y, a["pred"][ia], b["pred"][ib], metric,
                                              labels=np.arange(len(task.labels)), n_boot=n_boot,
                                              seed=seed)
            rows.append({**base, "seed": seed, "model": NO_LAYER, "probe": compare[0],
                         "layer": NO_LAYER, "metric": f"diff_{metric}_vs_{other}", "value": d,
                         "ci_low": lo, "ci_high": hi, "n": len(common)})
    return rows


def _summary_html(summary: dict[str, Any], rows: list[dict[str, Any]],
                  combiners: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """A compact HTML table: accuracy and macro-F1 (95% CI) per method, majority and chance,
    and which combiner each stacking fold chose on its inner out-of-fold data."""
    df = pd.DataFrame(rows)
    df = df[df.metric.isin(["accuracy", "macro_f1"])]
    if not len(df):
        return ""
    df = df.assign(cell=df.apply(lambda r: f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
                                 axis=1))
    tab = df.pivot_table(index=["probe", "model", "seed"], columns="metric", values="cell",
                         aggfunc="first").reset_index()
    head = (f"<p>{summary['n_texts']} texts, {len(summary['labels'])} L1s "
            f"({html.escape(', '.join(summary['labels']))}); majority rate "
            f"{summary['majority_rate']:.3f}, chance {summary['chance']:.3f}; dropped L1s "
            f"(too few texts): {html.escape(str(summary['dropped_l1']))}; masked: "
            f"{summary['masked']}.</p>")
    tail = "".join(
        f"<p>{html.escape(name)}: combiner chosen per outer fold on inner out-of-fold data: "
        f"{html.escape(', '.join(n['meta_choice'] for n in notes))}.</p>"
        for name, notes in (combiners or {}).items())
    return head + tab.to_html(index=False, escape=True) + tail

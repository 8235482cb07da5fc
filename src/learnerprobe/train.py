"""`learnerprobe train CONFIG --bundle DIR`: fit the config's best model on all data and bundle it.

The choice is made honestly: candidates (probe x layer for CEFR; n-gram model or hidden-state
probe x layer for L1) are compared on a grouped validation split of the configured data, the
winner is refitted on all of it, and the validation scores (with bootstrap CIs) go into the
bundle's card. Test-fold scores from a finished `learnerprobe run` can be attached with
``results_dir`` (the study's out-of-fold figures for the same probe).

A CEFR winner that is a regressor (ridge, MLP regressor) gives no class probabilities by itself:
it is wrapped in :class:`learnerprobe.estimators.calibration.OrdinalCalibrated`, an ordered-logit
link fitted on the validation texts' scores (from the model trained without them), so the bundle
answers with probabilities summing to 1, their argmax as the label, and the continuous score. The
bundle also pins the model's weights (:mod:`learnerprobe.models.pinning`); the destination is
checked for writability before training starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from learnerprobe.bundles import applicability as ap
from learnerprobe.bundles import onnx_encoder as ox
from learnerprobe.bundles.io import check_writable, save_bundle
from learnerprobe.bundles.manifest import MANIFEST
from learnerprobe.config.study import ExtractionConfig, Layers, StudyConfig
from learnerprobe.config.transfer import TransferConfig
from learnerprobe.errors import ConfigError
from learnerprobe.estimators.calibration import OrdinalCalibrated
from learnerprobe.estimators.probes.surface import surface_columns, surface_features
from learnerprobe.evaluation.cell_cache import content_key
from learnerprobe.evaluation.metrics import bootstrap_all, macro_f1
from learnerprobe.evaluation.protocols import Split
from learnerprobe.evaluation.splits import grouped_holdout
from learnerprobe.execution.cells import map_cells
from learnerprobe.extract import get_activations
from learnerprobe.methods.registry import BuildContext, get_method, l1_probe_names, method_names
from learnerprobe.models.pinning import weights_pin
from learnerprobe.models.registry import get_model
from learnerprobe.models.sources import check_source
from learnerprobe.selection import nested
from learnerprobe.selection.validation import best_index, select_layer
from learnerprobe.study import transfer as st
from learnerprobe.study.check import load_study
from learnerprobe.study.rundir import read_run_results
from learnerprobe.study.runner import encode, load_records
from learnerprobe.tasks import get_task

if TYPE_CHECKING:
    from learnerprobe.study.transfer import Fitting


def _ci_dict(b: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
    return {k: {"value": float(v), "ci_low": float(lo), "ci_high": float(hi)}
            for k, (v, lo, hi) in b.items()}


def study_metrics(results_dir: Path | None, task: str, probe: str, *,
                  layer: str = "selected") -> dict[str, Any]:
    """Pooled test scores of `probe` at `layer` (CEFR: the validation-``selected`` layer; a
    transfer method's rows: ``nested``) from a study's results.csv, if given."""
    if results_dir is None:
        return {}
    df = read_run_results(results_dir)  # refuses a run folder without its completion marker
    sel = df[(df["task"] == task) & (df["probe"] == probe) & (df["test_corpus"] == "all")]
    if "layer" in sel and task == "cefr":
        sel = sel[sel["layer"].astype(str) == layer]
    if "mode" in sel:
        sel = sel[sel["mode"].isin(["tuned", "none"]) | sel["mode"].isna()]
    if "levels" in sel:
        sel = sel[sel["levels"].astype(str).isin(["all", "nan"])]
    out: dict[str, Any] = {}
    for r in sel.itertuples():
        out.setdefault(str(r.protocol), {})[str(r.metric)] = {
            "value": float(r.value), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
            "n": int(r.n)}
    return out


def _layer_activations(model: str, layers_wanted: Layers, ex: ExtractionConfig, records: Any,
                       log: Callable[[str], None]
                       ) -> tuple[np.ndarray, list[int], Any, dict[str, Any]]:
    """Activations of ``model`` (the config's first) for `records` (layers x n x d, the
    config's ``layers``), cache-backed."""
    entry = get_model(model)
    check_source(entry, f"model {entry.name!r}")  # one a bundle may name: refused before extracting
    acts = get_activations(records, entry, **ex.kwargs())
    layers = list(getattr(acts, "layers", None) or range(acts.array.shape[0]))
    if layers_wanted != "all":
        rows = [layers.index(x) for x in layers_wanted]
        arr, layers = np.asarray(acts.array[rows]), list(layers_wanted)
    else:
        arr = np.asarray(acts.array)
    extraction = {"dtype": getattr(acts, "dtype", ex.dtype), "max_length": ex.max_length or
                  entry.max_length, "chunking": ex.chunking}
    log(f"activations: {arr.shape}")
    return arr.astype(np.float32), layers, entry, extraction


def select_probe(X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray,
                 probe: str, n_classes: int, seed: int, threads: int) -> tuple[str, Any]:
    """One probe's tuned fit on every layer and its validation choice (a worker: picklable,
    bounded BLAS/OpenMP threads)."""
    with threadpool_limits(threads):
        return probe, select_layer(X_tr, y_tr, X_va, y_va, probe, metric="qwk",
                                   n_classes=n_classes, mode="tuned", seed=seed,
                                   width=X_tr.shape[-1], n_jobs=1)


def train_cefr(cfg: StudyConfig, bundle: Path, *, results_dir: Path | None,
               log: Callable[[str], None], n_boot: int) -> Path:
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    data = encode(cfg, records, task="cefr")
    X, layers, entry, extraction = _layer_activations(cfg.models[0], cfg.layers, cfg.extraction,
                                                      data.records, log)
    seed = cfg.seeds[0]
    tr, va = grouped_holdout(data.y, data.groups, test_size=cfg.selection.val_size, seed=seed)
    K = data.n_classes
    jobs = [(X[:, tr], data.y[tr], X[:, va], data.y[va], p, K, seed, cfg.threads)
            for p in cfg.probe_names]
    # the probes side by side with bounded thread pools, as the runner's cells: unbounded BLAS
    # and torch pools oversubscribed the cores (minutes became most of an hour on a busy machine)
    done = dict(map_cells(select_probe, jobs, n_jobs=cfg.n_jobs, execution=cfg.execution))
    sels = {p: done[p] for p in cfg.probe_names}  # config order: the tie rule picks the first
    for probe, sel in sels.items():
        log(f"  {probe}: best validation QWK {sel.score:.3f} at layer {layers[sel.layer_index]}")
    if not sels:
        raise ConfigError("the config lists no probe to train (surface alone cannot be bundled)")
    probe = list(sels)[best_index([s.score for s in sels.values()])]  # ties: the first listed
    li = sels[probe].layer_index
    pred_va = sels[probe].val_pred[li]
    val = bootstrap_all(data.y[va], pred_va, task="ordinal", labels=K, n_boot=n_boot, seed=seed)
    est = get_method(probe, kind="probe").build(mode="tuned", n_classes=K, width=X.shape[-1],
                                                seed=seed)
    calibration = None
    if not hasattr(est, "predict_proba"):  # a regressor: ordered-logit probabilities (see below)
        cal_mask = np.zeros(len(data.y), dtype=bool)
        cal_mask[va] = True
        est = OrdinalCalibrated(est, n_classes=K, random_state=seed)
        est.fit(X[li], data.y, cal_mask=cal_mask)
        calibration = (f"ordered logit on the {probe} score, fitted on the {int(cal_mask.sum())} "
                       "validation texts scored by the model trained without them")
    else:
        est.fit(X[li], data.y)
    langs = sorted(set(data.languages.tolist()))
    card_extra = {"probabilities": calibration} if calibration else {}
    limits = ap.fit("ordinal", _validation_proba(probe, sels[probe], X[li], data, tr, va, seed),
                    data.y[va], [r.text for r in data.records], langs, X[li][tr], X[li][va])
    card_extra["calibration"] = ap.card_line(limits)
    return save_bundle(
        bundle, task="cefr", method=probe, labels=data.labels, estimator=est, applicability=limits,
        model=entry.to_dict(), weights=weights_pin(entry), layer=int(layers[li]),
        preprocessing={"features": "hidden", "mask": bool(cfg.prep.mask),
                       "language": langs[0] if len(langs) == 1 else None,
                       "label_scheme": cfg.labels.model_dump(), "extraction": extraction},
        training_data={"corpora": cfg.corpus_names, "n_texts": len(data.records),
                       "languages": langs,
                       "by_label": {lab: int((data.y == i).sum()) for i, lab in enumerate(data.labels)},
                       "prep": info},
        metrics={"validation": _ci_dict(val), "study": study_metrics(results_dir, "cefr", probe)},
        check_inputs=X[li][va],  # the array form must match on real validation features
        check_texts=[data.records[i].text for i in va],  # bf16 bundles: may fp32 serve them
        card={"limits": _cefr_limits(cfg.corpus_names, langs, data.labels),
              "selection": f"{probe} at layer {layers[li]} chosen on a grouped validation split",
              **card_extra},
    )


def _validation_proba(probe: str, sel: Any, X: np.ndarray, data: Any, tr: np.ndarray,
                      va: np.ndarray, seed: int) -> np.ndarray:
    """The winner's probabilities on the validation texts from a model trained without them
    (the conformal calibration set): the layer search's own for a classifier; a regressor is
    fitted on the training part with its ordered-logit link (as the bundle's) first."""
    if sel.val_proba is not None:
        return np.asarray(sel.val_proba[sel.layer_index], dtype=float)
    K = data.n_classes
    est = get_method(probe, kind="probe").build(mode="tuned", n_classes=K, width=X.shape[-1],
                                                seed=seed)
    cal = OrdinalCalibrated(est, n_classes=K, random_state=seed)
    cal.fit(X[tr], data.y[tr], groups=np.asarray(data.groups)[tr])
    return cal.predict_proba(X[va])


def _limits(corpora: Sequence[str], langs: list[str], what: str) -> str:
    """The card's "limits" line: what the bundle was trained on (``corpora``: the study's
    corpus names; ``what``: its label set)."""
    return (f"trained on {', '.join(corpora)} ({', '.join(langs)} learner texts only); "
            + what)


def _cefr_limits(corpora: Sequence[str], langs: list[str], labels: list[str]) -> str:
    return _limits(corpora, langs, f"levels {', '.join(labels)}; other languages, genres or "
                   "populations are out of distribution (the study's OOD scores apply)")


def bundle_transfer_method(name: str) -> Any:
    """The registry entry of a transfer method ``train`` can bundle, else a one-line ConfigError:
    an unknown name lists the transfer methods; a transductive one is refused because it
    adapts to a batch of unlabeled target texts, which a bundle applied to one text at a time
    does not have."""
    entry = get_method(name, task="transfer")
    ok = [n for n in method_names(task="transfer") if get_method(n).bundle]
    if entry.transductive:
        raise ConfigError(f"transfer method {name!r} is transductive: it adapts to a batch of "
                          "unlabeled texts from the target corpus, which a bundle applied to one "
                          f"text at a time does not have; bundle one of: {', '.join(ok)}")
    if not entry.bundle:
        raise ConfigError(f"transfer method {name!r} cannot be bundled; bundle one of: "
                          f"{', '.join(ok)}")
    return entry


def _transfer_inputs(tc: TransferConfig, data: Any, X: np.ndarray, layers: list[int],
                     seed: int) -> Any:
    """The transfer stage's inputs over the candidate layers (``[transfer] layers``), the
    surface columns and the corpora, built as :func:`learnerprobe.study.transfer.run_transfer`
    builds them (the activations are keyed by their content hash)."""
    want, pos = st.candidate_layers(tc, layers)
    A = X[pos]
    key = content_key({"acts": hashlib.sha256(np.ascontiguousarray(A).tobytes()).hexdigest(),
                       "layers": want})
    S = surface_columns(surface_features([r.text for r in data.records]))
    return st.TransferInputs(A, want, S, np.asarray(data.corpora), key, data.n_classes, seed)


def choose_transfer(tc: TransferConfig, method: str, data: Any, inp: Any,
                    log: Callable[[str], None], *, seed: int, val_size: float,
                    fitting: Fitting) -> tuple[Any, Any]:
    """``(choice, estimator)``: the method's variant and layer chosen on held-out corpora
    (:func:`learnerprobe.selection.nested.choose` over the study's candidates and fits), then
    refitted on every text. ``seed``, ``val_size``: the study's first seed and
    ``[selection] val_size``; ``fitting``: a ``study.transfer.Fitting``."""
    K = data.n_classes
    tr, va = grouped_holdout(data.y, data.groups, test_size=val_size, seed=seed)
    # one "outer fold" holding every text (no test part): its inner folds hold each corpus
    # out in turn (one corpus: the grouped validation split above)
    whole = Split("loco", "bundle", np.sort(tr), np.sort(va), np.array([], dtype=int), "none")
    plan = nested.plan([whole], inp.domains, data.groups)[0]
    cands = st.candidates(tc, method, inp)
    stats: dict[str, float] = {}
    ch = nested.choose(plan, cands, data.y, st.fitter(method, inp, stats, fitting),
                       metric=tc.metric, n_classes=K)
    log(f"  {method}: {len(cands)} candidates x {len(plan.inner)} validation folds "
        f"({int(stats.get('fits', 0))} fits, {int(stats.get('cached', 0))} cached); chosen "
        f"{st.choice_label(ch, inp.layers)}, validation {tc.metric} "
        f"{ch.scores[ch.chosen]:.3f}")
    mix, surf = st.method_inputs(method)
    opts = dict(ch.choice.options)  # the study's worker adds the same two input options
    if surf:
        opts["n_surface"] = st.N_SURFACE
    if mix:
        opts["n_layers"] = len(inp.layers)
    est = get_method(method).build(BuildContext(n_classes=K, seed=seed), opts)
    with threadpool_limits(fitting.threads):
        est.fit(st.design_matrix(inp, ch.choice.layer, plan.train, mix, surf), data.y[plan.train],
                domains=inp.domains[plan.train])
    return ch, est


def _validation(data: Any, ch: Any, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Bootstrap CIs of the chosen candidate's held-out predictions: pooled, and per held-out
    corpus (inner LOCO only)."""
    y, doms = data.y[ch.val], np.asarray(data.corpora)[ch.val]

    def ci(m: np.ndarray) -> dict[str, Any]:
        return _ci_dict(bootstrap_all(y[m], ch.pred[m], task="ordinal", labels=data.n_classes,
                                      n_boot=n_boot, seed=seed))

    by = {c: ci(doms == c) for c in dict.fromkeys(doms.tolist())} if ch.inner_kind == "loco" \
        else {}
    return ci(np.ones(len(y), dtype=bool)), by


def train_transfer(cfg: StudyConfig, bundle: Path, method: str, *, results_dir: Path | None,
                   log: Callable[[str], None], n_boot: int) -> Path:
    """A CEFR bundle of one inductive transfer method (docs/STUDY.md, transfer methods).

    The variant (the method's grid) and layer are chosen exactly as the study's ``[transfer]``
    stage chooses them inside an outer fold (:func:`choose_transfer`): every configured corpus
    is held out in turn as validation (one corpus: the grouped validation split), the best
    candidate on the pooled held-out predictions is refitted on all texts. The card keeps the
    choice, every candidate's validation score and the chosen one's validation metrics with
    bootstrap CIs (pooled and per held-out corpus).
    """
    entry_m = bundle_transfer_method(method)
    s = cfg.transfer or TransferConfig(methods=[method])  # its layers, grid and metric
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    data = encode(cfg, records, task="cefr")
    X, layers, entry, extraction = _layer_activations(cfg.models[0], cfg.layers, cfg.extraction,
                                                      data.records, log)
    inp = _transfer_inputs(s, data, X, layers, cfg.seeds[0])
    ch, est = choose_transfer(s, method, data, inp, log, seed=cfg.seeds[0],
                              val_size=cfg.selection.val_size,
                              fitting=st.Fitting(cfg.n_jobs, cfg.threads, cfg.cache_cells))
    val, by_corpus = _validation(data, ch, n_boot, cfg.seeds[0])
    want, mix = inp.layers, ch.choice.layer == "mix"
    use = want if mix else [want[int(ch.choice.layer)]]
    _, surf = st.method_inputs(method)
    langs = sorted(set(data.languages.tolist()))
    inner = ("each of " + ", ".join(cfg.corpus_names) + " held out in turn"
             if ch.inner_kind == "loco" else "a grouped validation split (one corpus)")
    decoding = ({"decoding": "the level is the method's decoding (expected value or tuned "
                             "thresholds), which may differ from the most probable level"}
                if not getattr(est, "label_is_argmax", True) else {})
    limits = _transfer_limits(cfg, data, ch, X[layers.index(use[0])], langs)
    if limits is not None:
        decoding["calibration"] = ap.card_line(limits)
    return save_bundle(
        bundle, task="cefr", method=method, labels=data.labels, estimator=est,
        applicability=limits,
        model=entry.to_dict(), weights=weights_pin(entry), layer=int(max(use)),
        layers=[int(x) for x in use] if mix else None,
        preprocessing={"features": "hidden", "mask": bool(cfg.prep.mask),
                       "surface": st.N_SURFACE if surf else 0,
                       "language": langs[0] if len(langs) == 1 else None,
                       "label_scheme": cfg.labels.model_dump(), "extraction": extraction},
        training_data={"corpora": cfg.corpus_names, "n_texts": len(data.records),
                       "languages": langs,
                       "by_label": {lab: int((data.y == i).sum())
                                    for i, lab in enumerate(data.labels)},
                       "prep": info},
        metrics={"validation": val, "validation_by_corpus": by_corpus,
                 "candidates": {st.choice_label(SimpleNamespace(choice=c), want): float(v)
                                for c, v in zip(ch.candidates, ch.scores, strict=True)},
                 "selection_metric": s.metric,
                 "study": study_metrics(results_dir, "cefr", method, layer="nested")},
        check_inputs=st.design_matrix(inp, ch.choice.layer, ch.val, *st.method_inputs(method)),
        card={"limits": _cefr_limits(cfg.corpus_names, langs, data.labels),
              "selection": f"transfer method {method} ({entry_m.description}): "
                           f"{st.choice_label(ch, want)} chosen by {s.metric} on held-out predictions "
                           f"({inner}; the chosen candidate's pooled held-out predictions give "
                           "the validation metrics), then refitted on all texts",
              **decoding},
    )


def _transfer_limits(cfg: StudyConfig, data: Any, ch: Any, X: np.ndarray, langs: list[str]
                     ) -> ap.Applicability | None:
    """Sets and flags of a transfer bundle: conformal scores from the chosen candidate's pooled
    held-out predictions (each training corpus predicted by a fit without it, so the sets are
    calibrated out of corpus), the ``unfamiliar`` statistics on the first layer the method
    reads (a grouped split: statistics on one part, threshold on the other)."""
    if ch.proba is None:
        return None
    tr, va = grouped_holdout(data.y, data.groups, test_size=cfg.selection.val_size,
                             seed=cfg.seeds[0])
    return ap.fit("ordinal", ch.proba, data.y[ch.val], [r.text for r in data.records], langs,
                  X[tr], X[va])


def train_l1(cfg: StudyConfig, bundle: Path, *, results_dir: Path | None,
             log: Callable[[str], None], n_boot: int) -> Path:
    """Best of the n-gram model and hidden-state probes (validation macro-F1), refit on all."""
    s = cfg.nli_config
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    task = get_task("l1").select(records, s, masked=cfg.prep.mask)  # never masks twice
    labels = task.labels
    y = np.array([labels.index(v) for v in task.y])
    seed = cfg.seeds[0]
    tr, va = grouped_holdout(y, task.groups, test_size=cfg.selection.val_size, seed=seed)
    texts = np.asarray(task.texts, dtype=object)
    cw = "balanced" if s.balance == "weights" else None
    ctx = BuildContext(seed=seed, class_weight=cw)
    text_methods = [m for m in s.methods if m not in s.variants and get_method(m).bundle
                    and get_method(m).kind != "probe"]

    def build_text(m: str) -> Any:  # list options as tuples: how bundles have always stored them
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in s.table(m).items()}
        return get_method(m).build(ctx, opts)

    cands: list[tuple[float, str, int | None, np.ndarray, np.ndarray | None]] = []
    for m in text_methods:
        est = build_text(m).fit(texts[tr], y[tr])
        proba = est.predict_proba(texts[va])
        pred = est.classes_[np.argmax(proba, axis=1)]
        cands.append((macro_f1(y[va], pred), m, None, pred, proba))
        log(f"  {m}: validation macro-F1 {cands[-1][0]:.3f}")
    X = layers = entry = extraction = None
    if "probe" in s.methods:
        X, layers, entry, extraction = _layer_activations(cfg.models[0], cfg.layers,
                                                          cfg.extraction, task.records, log)
        for probe in [p for p in cfg.probe_names if p in l1_probe_names()]:
            sel = select_layer(X[:, tr], y[tr], X[:, va], y[va], probe, metric="macro_f1",
                               target="nominal", n_classes=len(labels), mode="tuned", seed=seed,
                               width=X.shape[-1], n_jobs=1)
            i = sel.layer_index
            cands.append((sel.score, probe, i, sel.val_pred[i], sel.val_proba[i]))
            log(f"  {probe}: validation macro-F1 {sel.score:.3f} at layer {layers[i]}")
    if not cands:
        raise ConfigError("nli.methods lists nothing that can be bundled (ngram or probe)")
    f1, method, li, pred, proba = cands[best_index([c[0] for c in cands])]
    val = bootstrap_all(y[va], pred, proba=proba, task="nominal", labels=len(labels),
                        n_boot=n_boot, seed=seed)
    langs = sorted({r.language for r in task.records})
    hidden = method not in text_methods
    limits = None if proba is None else ap.fit(
        "nominal", proba, y[va], [r.text for r in task.records], langs,
        X[li][tr] if hidden else None, X[li][va] if hidden else None)
    common = dict(
        task="l1", labels=labels, applicability=limits,
        training_data={"corpora": cfg.corpus_names, "n_texts": len(task.records), "languages": langs,
                       **task.summary(), "prep": info},
        metrics={"validation": _ci_dict(val), "majority_rate": task.majority_rate,
                 "chance": task.chance, "study": study_metrics(results_dir, "l1", method)},
        card={"limits": _limits(cfg.corpus_names, langs, f"L1s {', '.join(labels)}; any other L1 is forced "
                                "into one of these"),
              "selection": f"{method} chosen on a grouped validation split by macro-F1",
              **({"calibration": ap.card_line(limits)} if limits else {})},
    )
    pre = {"mask": bool(task.masked), "language": langs[0] if len(langs) == 1 else None}
    if method in text_methods:
        est = build_text(method).fit(texts, y)
        return save_bundle(bundle, method=method, estimator=est, check_inputs=texts[va],
                           preprocessing={**pre, "features": "text"}, **common)
    est = get_method(method, kind="probe").build(mode="tuned", n_classes=len(labels),
                                                 width=X.shape[-1], seed=seed)
    est.fit(X[li], y)
    return save_bundle(bundle, method=method, estimator=est, model=entry.to_dict(),
                       weights=weights_pin(entry), layer=int(layers[li]),
                       preprocessing={**pre, "features": "hidden", "extraction": extraction},
                       check_inputs=X[li][va], check_texts=[task.records[i].text for i in va],
                       **common)


def train_bundle(config: StudyConfig | str | Path, bundle: str | Path, *,
                 results_dir: str | Path | None = None, log: Callable[[str], None] = print,
                 method: str | None = None) -> Path:
    """``config``: a loaded config (``study.check.load_study``) or its TOML file.
    ``method``: an inductive transfer method to bundle (:func:`train_transfer`) instead of
    the config's best probe (task cefr only)."""
    if method is not None:
        bundle_transfer_method(method)  # refused before anything is read or trained
    check_writable(bundle)  # before training: a bad destination should not cost a training run
    cfg = config if isinstance(config, StudyConfig) else load_study(config)
    rd = Path(results_dir) if results_dir else None
    if method is not None:
        if cfg.task != "cefr":
            raise ConfigError(f"--method {method}: transfer methods are CEFR probes; the config's "
                              f"task is {cfg.task!r}")
        out = train_transfer(cfg, Path(bundle), method, results_dir=rd, log=log,
                             n_boot=cfg.n_boot)
        export_onnx_encoder(out, log)
        return out
    trainers = {"cefr": train_cefr, "l1": train_l1}
    if cfg.task not in trainers:
        raise ConfigError(f"task {cfg.task!r} cannot be trained into a bundle; "
                          f"trainable tasks: {', '.join(trainers)}")
    fn = trainers[cfg.task]
    out = fn(cfg, Path(bundle), results_dir=rd, log=log, n_boot=cfg.n_boot)
    export_onnx_encoder(out, log)
    return out


def export_onnx_encoder(bundle: Path, log: Callable[[str], None] = print) -> Path | None:
    """Export now the ONNX encoder a hidden-state bundle's first ``predict`` would otherwise
    export (a minute or more: the model runs in torch to check the graph), with the same
    :mod:`learnerprobe.bundles.onnx_encoder` functions ``predict`` uses, into the local cache
    (never into the bundle). None when ONNX does not apply or the export fails: the bundle is
    written either way, and ``predict`` then uses torch or retries the export on first use."""
    manifest = json.loads((Path(bundle) / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("preprocessing", {}).get("features") != "hidden":
        return None
    try:
        return ox.export_encoder(*ox.bundle_encoder_args(manifest), log=log)
    except (ox.OnnxUnavailable, ImportError) as e:
        log(f"ONNX encoder not exported ({e}); predict runs the model in torch")
    except Exception as e:  # noqa: BLE001 - optional speed-up; predict retries on first use
        log(f"ONNX encoder not exported ({type(e).__name__}: {e}); predict retries on first use")
    return None

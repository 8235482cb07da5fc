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
from typing import Any

import numpy as np

from learnerprobe.bundles import applicability as ap
from learnerprobe.bundles import onnx_encoder as ox
from learnerprobe.bundles.io import check_writable, save_bundle
from learnerprobe.bundles.manifest import MANIFEST
from learnerprobe.config.study import ExtractionConfig, Layers, StudyConfig
from learnerprobe.config.transfer import TransferConfig
from learnerprobe.engine import nested as en
from learnerprobe.engine.cells import Cell, CellOutput
from learnerprobe.engine.data import Acts, encode, load_records
from learnerprobe.engine.folds import whole_fold
from learnerprobe.engine.loop import run_cells
from learnerprobe.engine.providers import LayerSweep
from learnerprobe.errors import ConfigError
from learnerprobe.estimators.calibration import OrdinalCalibrated
from learnerprobe.evaluation.cell_cache import content_key
from learnerprobe.evaluation.metrics import bootstrap_all, macro_f1
from learnerprobe.evaluation.protocols import Split
from learnerprobe.extract import get_activations
from learnerprobe.methods.registry import BuildContext, get_method, l1_probe_names, method_names
from learnerprobe.models.pinning import weights_pin
from learnerprobe.models.registry import get_model
from learnerprobe.models.sources import check_source
from learnerprobe.selection.validation import best_index
from learnerprobe.study.check import load_study
from learnerprobe.study.rundir import read_run_results
from learnerprobe.tasks import TaskData, get_task


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


def _acts(X: np.ndarray, layers: list[int], key: str) -> Acts:
    return Acts(X, layers, key, int(X.shape[-1]), {})


def choose_probe(cfg: StudyConfig, data: TaskData, X: np.ndarray, layers: list[int], *,
                 probes: list[str], metric: str, target: str, log: Callable[[str], None],
                 fold: Split | None = None) -> tuple[str, Any, Split]:
    """The engine on one fold holding all the data (:func:`learnerprobe.engine.folds.
    whole_fold`): every probe's ``"layers"`` cell (all layers fitted on the fold's training
    part, the layer chosen on its validation part), side by side with bounded thread pools;
    ``(probe, cell output, fold)`` of the best (ties: the first listed)."""
    seed = cfg.seeds[0]
    if fold is None:
        fold = whole_fold(data, seed=seed, val_size=cfg.selection.val_size)
    sweep = LayerSweep({"m": _acts(X, layers, "train")}, data, metric, refit=False,
                       target=target)
    cells = [Cell("m", "tuned", seed, "iid", p, fold) for p in probes]
    done = run_cells(cells, {p: sweep for p in probes}, store=None, n_jobs=cfg.n_jobs,
                     threads=cfg.threads, execution=cfg.execution)
    outs = {c.method: done[c.key] for c in cells}  # config order: the tie rule picks the first
    for p, o in outs.items():
        log(f"  {p}: best validation {metric} {o.val_scores[o.selected]:.3f} at layer "
            f"{layers[o.selected]}")
    probe = list(outs)[best_index([o.val_scores[o.selected] for o in outs.values()])]
    return probe, outs[probe], fold


def train_cefr(cfg: StudyConfig, bundle: Path, *, results_dir: Path | None,
               log: Callable[[str], None], n_boot: int) -> Path:
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    data = encode(cfg, records, task="cefr")
    X, layers, entry, extraction = _layer_activations(cfg.models[0], cfg.layers, cfg.extraction,
                                                      data.records, log)
    seed = cfg.seeds[0]
    K = data.n_classes
    if not cfg.probe_names:
        raise ConfigError("the config lists no probe to train (surface alone cannot be bundled)")
    probe, out, fold = choose_probe(cfg, data, X, layers, probes=cfg.probe_names, metric="qwk",
                                    target="ordinal", log=log)
    li, va = int(out.selected), fold.val
    val = bootstrap_all(data.y[va], out.val_pred, task="ordinal", labels=K, n_boot=n_boot,
                        seed=seed)
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
    tr = fold.train
    limits = ap.fit("ordinal", _validation_proba(probe, out, X[li], data, tr, va, seed),
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


def _validation_proba(probe: str, out: CellOutput, X: np.ndarray, data: TaskData,
                      tr: np.ndarray, va: np.ndarray, seed: int) -> np.ndarray:
    """The winner's probabilities on the validation texts from a model trained without them
    (the conformal calibration set): the layer search's own for a classifier; a regressor is
    fitted on the training part with its ordered-logit link (as the bundle's) first."""
    if out.val_proba is not None:
        return np.asarray(out.val_proba[out.selected], dtype=float)
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


def _transfer_inputs(tc: TransferConfig, data: TaskData, X: np.ndarray, layers: list[int],
                     seed: int) -> en.TransferInputs:
    """The nested provider's inputs over the candidate layers (``[transfer] layers``), the
    surface columns and the corpora (the activations are keyed by their content hash)."""
    want, pos = en.candidate_layers(tc, layers)
    key = content_key({"acts": hashlib.sha256(np.ascontiguousarray(X[pos]).tobytes()).hexdigest(),
                       "layers": want})
    return en.transfer_inputs(tc, data, _acts(X, layers, key), seed)


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
    stage chooses them inside an outer fold (:func:`learnerprobe.engine.nested.choose_and_refit`): every configured corpus
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
    # the engine on one fold holding every text: its inner folds hold each corpus out in turn
    # (one corpus: the fold's grouped validation split)
    fold = whole_fold(data, seed=cfg.seeds[0], val_size=cfg.selection.val_size,
                      protocol="loco")
    ch, est = en.choose_and_refit(s, method, data, inp, fold,
                                  en.Fitting(cfg.n_jobs, cfg.threads, cfg.cache_cells), log)
    val, by_corpus = _validation(data, ch, n_boot, cfg.seeds[0])
    want, mix = inp.layers, ch.choice.layer == "mix"
    use = want if mix else [want[int(ch.choice.layer)]]
    _, surf = en.method_inputs(method)
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
                       "surface": en.N_SURFACE if surf else 0,
                       "language": langs[0] if len(langs) == 1 else None,
                       "label_scheme": cfg.labels.model_dump(), "extraction": extraction},
        training_data={"corpora": cfg.corpus_names, "n_texts": len(data.records),
                       "languages": langs,
                       "by_label": {lab: int((data.y == i).sum())
                                    for i, lab in enumerate(data.labels)},
                       "prep": info},
        metrics={"validation": val, "validation_by_corpus": by_corpus,
                 "candidates": {en.choice_label(SimpleNamespace(choice=c), want): float(v)
                                for c, v in zip(ch.candidates, ch.scores, strict=True)},
                 "selection_metric": s.metric,
                 "study": study_metrics(results_dir, "cefr", method, layer="nested")},
        check_inputs=en.design_matrix(inp, ch.choice.layer, ch.val, *en.method_inputs(method)),
        card={"limits": _cefr_limits(cfg.corpus_names, langs, data.labels),
              "selection": f"transfer method {method} ({entry_m.description}): "
                           f"{en.choice_label(ch, want)} chosen by {s.metric} on held-out predictions "
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
    fold = whole_fold(data, seed=cfg.seeds[0], val_size=cfg.selection.val_size)
    tr, va = fold.train, fold.val
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
    data = task.encoded()
    fold = whole_fold(data, seed=seed, val_size=cfg.selection.val_size)  # the engine's one fold
    tr, va = fold.train, fold.val
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
        probes = [p for p in cfg.probe_names if p in l1_probe_names()]
        if probes:
            probe, out, _ = choose_probe(cfg, data, X, layers, probes=probes,
                                         metric="macro_f1", target="nominal", log=log, fold=fold)
            i = int(out.selected)
            cands.append((float(out.val_scores[i]), probe, i, out.val_pred,
                          None if out.val_proba is None else out.val_proba[i]))
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

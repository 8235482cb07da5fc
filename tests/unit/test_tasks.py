"""Adding a task = one Task subclass + one registry entry: a toy nominal task ("long" vs
"short" texts) is registered, validated by the study config and run end to end by the study
runner's probe pipeline (synthetic records, fake activations: no data, no model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.records import LearnerText
from learnerprobe.tasks import TASKS, Task, get_task, register_task, unregister_task


class LengthTask(Task):
    """Toy task: is the text long (>= 30 words)? Nominal, evaluated by the probe pipeline."""

    name = "length"
    label_kind = "nominal"
    default_metric = "macro_f1"

    def label_of(self, labels, record):
        return "long" if len(record.text.split()) >= 30 else "short"


@pytest.fixture
def length_task():
    task = register_task(LengthTask())
    yield task
    unregister_task("length")


def _records(n_per_corpus=30, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for corpus in ("ca", "cb"):
        for i in range(n_per_corpus):
            n_words = 10 + 40 * (i % 2) + int(rng.integers(0, 5))
            recs.append(LearnerText(id=f"{corpus}-{i}", corpus=corpus, language="de",
                                    text=" ".join(["wort"] * n_words), cefr="B1",
                                    author_id=f"a{i // 2}"))
    return recs


def _cfg(**over):
    from learnerprobe.config.load import parse_config

    d = {"name": "toy", "task": "length", "corpora": ["ca", "cb"], "models": ["fake"],
         "probes": ["logistic", "surface"], "protocols": ["iid"], "folds": 3, "n_boot": 20,
         "cache_cells": False}
    d.update(over)
    return parse_config(d)  # corpora and model are no registry names: not checked


def test_builtin_tasks_and_unknown_name():
    assert {"cefr", "l1"} <= set(TASKS)
    assert get_task("cefr").label_kind == "ordinal" and get_task("l1").label_kind == "nominal"
    with pytest.raises(ConfigError, match=r"unknown task 'nope'; known: cefr, l1"):
        get_task("nope")
    from learnerprobe.study.check import check_config

    with pytest.raises(ConfigError, match=r"task: .*unknown task 'length'; known: cefr, l1"):
        check_config(_cfg())  # not registered: refused, listing the registered tasks


def test_toy_task_prepares_data(length_task):
    from learnerprobe.engine.data import encode

    cfg = _cfg()
    data = encode(cfg, _records())
    assert data.labels == ["long", "short"]
    assert data.n_classes == 2 and len(data.y) == 60
    assert set(data.y.tolist()) == {0, 1}
    assert data.groups[0] == "ca:a0"
    assert length_task.selection_metric(cfg.selection) == "macro_f1"  # the task's default ...
    assert length_task.selection_metric(
        _cfg(selection={"metric": "accuracy"}).selection) == "accuracy"


def test_toy_task_runs_through_the_study_runner(length_task, tmp_path, monkeypatch):
    from learnerprobe.engine.data import encode
    from learnerprobe.study.runner import run

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    recs = _records()
    data = encode(_cfg(), recs)
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(3, len(recs), 4)).astype(np.float32)
    arr[1, :, 1] += 8.0 * data.y  # layer 1 carries the label

    class Acts:
        array, ids, layers, hidden_size, cache_hit = arr, [r.id for r in recs], [0, 1, 2], 4, True

    res = run(_cfg(), tmp_path / "out", records=recs, activations={"fake": Acts()},
              log=lambda m: None, progress=False)
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(df.task) == {"length"} and set(df.probe) == {"logistic", "surface"}
    assert {"accuracy", "macro_f1"} <= set(df.metric) and "qwk" not in set(df.metric)
    sel = df[(df.probe == "logistic") & (df.layer == "selected") & (df.metric == "accuracy")
             & (df.test_corpus == "all")]
    assert len(sel) == 1 and sel.value.iloc[0] > 0.9 and sel.selected_layer.iloc[0] == 1
    assert res.manifest["task"] == "length" and res.manifest["labels"] == ["long", "short"]
    assert (tmp_path / "out" / "report.html").is_file()

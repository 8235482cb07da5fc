"""`learnerprobe run` on a task registered by a test (one Task subclass + one registry entry):
MERLIN (Czech) texts labelled long/short, embedded by the tiny test model, probed per layer."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from learnerprobe.tasks import Task, register_task, unregister_task


class LengthTask(Task):
    name = "length"
    label_kind = "nominal"
    default_metric = "macro_f1"

    def label_of(self, labels, record):
        return "long" if len(record.text.split()) >= 120 else "short"


def test_registered_task_runs_through_learnerprobe_run(tmp_path, tiny_folder, data_root,
                                                        monkeypatch):
    from learnerprobe.cli import app

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    register_task(LengthTask())
    try:
        cfg = tmp_path / "length.toml"
        cfg.write_text(f"""
name = "length"
task = "length"
corpora = ["merlin-cs"]
models = ["{tiny_folder}"]
probes = ["logistic", "surface"]
folds = 3
n_boot = 20
[extraction]
dtype = "float32"
max_length = 64
""")
        out = tmp_path / "out"
        r = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out), "--no-report"])
        assert r.exit_code == 0, r.output
    finally:
        unregister_task("length")
    df = pd.read_csv(out / "results.csv")
    assert set(df.task) == {"length"} and {"logistic", "surface"} == set(df.probe)
    assert {"accuracy", "macro_f1"} <= set(df.metric) and "qwk" not in set(df.metric)
    sur = df[(df.probe == "surface") & (df.metric == "accuracy") & (df.test_corpus == "all")]
    assert sur.value.iloc[0] > 0.9  # length features predict a length label
    assert (df[df.probe == "logistic"].layer == "selected").any()

"""Adding a method is one registry entry: a toy probe, a toy transfer method and a toy NLI text
method, registered here, run through `learnerprobe run` (CEFR with a [transfer] table, and NLI)
and `learnerprobe train` on real MERLIN with no other change to the package: each goes through
the evaluation engine's one loop as a cell of its provider ("layers", "nested", "classifier").
(Registry and layer-selection units: tests/unit/test_methods_registry.py.)
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.helpers.methods import TOY_TRANSFER, toy_methods_registered


@pytest.fixture()
def toy_methods():
    with toy_methods_registered():
        yield


def _cli(*args):
    from learnerprobe.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def _cefr_toml(tmp_path, model, probes, corpora=("merlin-cs",), extra=""):
    p = tmp_path / "cefr.toml"
    p.write_text(f"""
name = "toy-cefr"
corpora = {json.dumps(list(corpora))}
models = ["{model}"]
probes = {json.dumps(probes)}
folds = 2
n_boot = 20
cache_cells = false
[extraction]
dtype = "float32"
max_length = 64
{extra}""")
    return p


def _l1_toml(tmp_path, model, methods, probes):
    p = tmp_path / "l1.toml"
    p.write_text(f"""
name = "toy-l1"
task = "l1"
corpora = ["merlin-de"]
models = ["{model}"]
probes = {json.dumps(probes)}
folds = 2
n_boot = 20
[extraction]
dtype = "float32"
max_length = 64
[nli]
methods = {json.dumps(methods)}
ensemble_of = ["ngram"]
compare = []
min_texts_per_l1 = 80
mask = false
analyses = false
""")
    return p


# --------------------------------------------------------------------------- registry


# --------------------------------------------------------------------------- tie rule


# --------------------------------------------------------------------------- end to end
def test_toy_probe_runs_through_learnerprobe_run_and_train(toy_methods, cached_tiny_folder,
                                                          tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = _cefr_toml(tmp_path, cached_tiny_folder, ["toy-ncm", "surface"])
    _cli("run", cfg, "--out", tmp_path / "run", "--no-report")
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    sel = df[(df.probe == "toy-ncm") & (df.layer == "selected") & (df.metric == "qwk")]
    assert len(sel) and sel.value.notna().all()
    assert set(df[df.probe == "toy-ncm"].layer.astype(str)) == {"0", "1", "2", "selected"}

    _cli("train", cfg, "--bundle", tmp_path / "bundle")
    from learnerprobe.bundles.io import load_bundle
    from learnerprobe.predict import Predictor

    m = load_bundle(tmp_path / "bundle").manifest
    assert m["method"] == "toy-ncm" and m["preprocessing"]["features"] == "hidden"
    out = Predictor.load(tmp_path / "bundle").predict(["Dobrý den, jmenuji se Petr."])
    assert out[0]["cefr"]["label"] in m["labels"]


def test_toy_nli_method_and_toy_probe_run_through_learnerprobe_run_and_train(
        toy_methods, tiny_folder, tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    # The toy probe is nominal with probabilities, so the NLI 'probe' method can use it too.
    cfg = _l1_toml(tmp_path, tiny_folder, ["toy-majority", "probe"], ["toy-ncm"])
    _cli("run", cfg, "--out", tmp_path / "run", "--no-report")
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    acc = df[df.metric == "accuracy"].set_index("probe").value
    maj = df[df.metric == "majority_rate"].value.iloc[0]
    assert acc["toy-majority"] == pytest.approx(maj)  # the prior's argmax: the majority L1
    assert "toy-ncm" in acc.index

    cfg = _l1_toml(tmp_path, tiny_folder, ["toy-majority"], ["logistic"])
    _cli("train", cfg, "--bundle", tmp_path / "bundle")
    from learnerprobe.bundles.io import load_bundle

    m = load_bundle(tmp_path / "bundle").manifest
    assert m["method"] == "toy-majority" and m["preprocessing"]["features"] == "text"


def test_toy_transfer_method_runs_through_learnerprobe_run_and_train(
        toy_methods, cached_tiny_folder, tmp_path, data_root, monkeypatch):
    """The toy transfer method is a nested cell: its variant (``shrink``) and layer chosen by
    inner leave-one-corpus-out inside each outer fold, scored and compared with the plain
    probe and the surface baseline like the built-in ones; ``train --method`` bundles it."""
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = _cefr_toml(tmp_path, cached_tiny_folder, ["toy-ncm", "surface"],
                     corpora=["merlin-cs", "merlin-de", "merlin-it"], extra=f"""
[transfer]
methods = ["plain", "{TOY_TRANSFER}"]
layers = [1, 2]
""")
    _cli("run", cfg, "--out", tmp_path / "run", "--no-report")
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    toy = df[(df.probe == TOY_TRANSFER) & (df.test_corpus == "all")]
    assert set(toy.layer.astype(str)) == {"nested"}
    qwk = toy[toy.metric == "qwk"].value
    assert len(qwk) == 1 and qwk.notna().all()
    assert {"diff_qwk_vs_plain", "diff_qwk_vs_surface"} <= set(toy.metric)
    assert toy.chosen.str.contains("shrink=").all()  # the nested choice, per outer fold

    _cli("train", cfg, "--bundle", tmp_path / "bundle", "--method", TOY_TRANSFER)
    from learnerprobe.bundles.io import load_bundle
    from learnerprobe.predict import Predictor

    m = load_bundle(tmp_path / "bundle").manifest
    assert m["method"] == TOY_TRANSFER and m["metrics"]["candidates"]
    out = Predictor.load(tmp_path / "bundle").predict(["Dobrý den, jmenuji se Petr."])
    assert out[0]["cefr"]["label"] in m["labels"]

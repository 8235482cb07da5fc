"""`learnerprobe adapt` and `Predictor.adapt`: an ordinary adapted bundle (predict, serve, the
array form), its manifest record, and one-line refusals (exit 2)."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from learnerprobe.bundles.io import load_bundle
from learnerprobe.predict import Predictor
from learnerprobe.serve.app import create_app
from tests.helpers.bundles import CEFR5, make_hidden_bundle
from tests.helpers.cli import call_main, one_error_line

WORDS = ["Haus", "gut", "schnell", "Kind", "Wasser", "Stadt", "sprechen", "freundlich",
         "obwohl", "deshalb", "Verantwortung", "Gesellschaft"]


def _labelled(n, seed=0):
    rng = np.random.default_rng(seed)
    texts, levels = [], []
    for i in range(n):
        lvl = i % 4
        texts.append(" ".join(rng.choice(WORDS[: 4 + 2 * lvl], 5 + 6 * lvl)) + ".")
        levels.append(CEFR5[lvl])
    return texts, levels


def _csv(path, texts, levels):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "level"])
        for i, (t, v) in enumerate(zip(texts, levels, strict=True)):
            w.writerow([i, t, v])
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_hidden_bundle(tmp_path_factory.mktemp("src"), name="src")


@pytest.mark.parametrize("method", ["prior_pull", "cutpoints", "pull_cuts", "shift", "probe_k"])
def test_adapt_round_trips_through_predict_and_serve(method, source, tmp_path, capsys):
    texts, levels = _labelled(16)
    f = _csv(tmp_path / "mine.csv", texts, levels)
    out = tmp_path / "adapted"
    code, text = call_main(["adapt", source, "--labelled", f, "--out", out, "--method", method],
                           capsys)
    assert code == 0, text
    m = load_bundle(out).manifest
    rec = m["training_data"]["adaptation"]
    assert m["method"] == method and rec["method"] == method and rec["k"] == 16
    assert rec["labelled_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert rec["source"]["digest"] == load_bundle(source).digest
    val = m["metrics"]["adaptation_validation"]
    assert val["scheme"] == "leave-one-out" and val["n"] == 16
    assert set(val["adapted"]) >= {"qwk", "accuracy"} and "qwk" in val["source"]
    assert m["layer"] == load_bundle(source).manifest["layer"]
    skops = Predictor.load(out, arrays=False, encoder="torch").predict(texts[:5])
    assert all(r["cefr"]["label"] in CEFR5 for r in skops)
    if method != "probe_k":  # a ridge source + adapter is the ordinal_at array form
        arr = Predictor.load(out, encoder="torch")
        assert arr.engines["cefr"]["estimator"] == "arrays:ordinal_at"
        got = arr.predict(texts[:5])
        assert [r["cefr"]["label"] for r in got] == [r["cefr"]["label"] for r in skops]
    client = TestClient(create_app(Predictor.load(out, encoder="torch"), max_chars=1000,
                                   timeout_s=30))
    r = client.post("/api/predict", json={"text": texts[0]})
    assert r.status_code == 200 and r.json()["cefr"]["label"] in CEFR5
    assert client.get("/api/bundles").json()["cefr"]["method"] == method


def test_predictor_adapt_in_python(source):
    texts, levels = _labelled(12, seed=1)
    p = Predictor.load(source, encoder="torch")
    adapted = p.adapt(texts, levels, method="shift")
    assert adapted.manifests["cefr"]["training_data"]["adaptation"]["k"] == 12
    assert len(adapted.predict(texts)) == 12
    # the adaptation is fitted on these texts: a different label set gives a different record
    other = p.adapt(texts, list(reversed(levels)), method="shift")
    rec = other.manifests["cefr"]["training_data"]["adaptation"]
    assert rec["labelled_sha256"] != adapted.manifests["cefr"]["training_data"][
        "adaptation"]["labelled_sha256"]


@pytest.mark.parametrize("case,needle", [
    ("few", "needs at least 3 labelled texts, got 2"),
    ("level", "level 'Z9' (text 2) is not in the bundle's scheme"),
    ("suffix", "use a .csv, .tsv or .jsonl file"),
    ("jsonl", "line 2: not JSON"),
    ("column", "row 1: needs a non-empty level / cefr / label field"),
    ("method", "unknown adapt method 'nope'"),
    ("missing", "cannot read the labelled file"),
])
def test_refusals_are_one_line_exit_2(case, needle, source, tmp_path, capsys):
    texts, levels = _labelled(8)
    f = tmp_path / "l.csv"
    args_method = "prior_pull"
    if case == "few":
        _csv(f, texts[:2], levels[:2])
    elif case == "level":
        _csv(f, texts[:4], [levels[0], "Z9", *levels[2:4]])
    elif case == "suffix":
        f = tmp_path / "l.txt"
        f.write_text("text,level\nhallo,A1\n")
    elif case == "jsonl":
        f = tmp_path / "l.jsonl"
        f.write_text(json.dumps({"text": "hallo", "level": "A1"}) + "\n{not json\n")
    elif case == "column":
        f.write_text("text,grade\nhallo,A1\n")
    elif case == "method":
        _csv(f, texts, levels)
        args_method = "nope"
    elif case == "missing":
        f = tmp_path / "absent.csv"
    code, text = call_main(["adapt", source, "--labelled", f, "--out", tmp_path / "o",
                            "--method", args_method], capsys)
    assert code == 2
    assert needle in one_error_line(text)
    assert not (tmp_path / "o").exists()

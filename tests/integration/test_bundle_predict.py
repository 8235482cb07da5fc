"""Bundles round-trip exactly in a fresh process and through the `predict` CLI in a subprocess
(the in-process bundle and Predictor tests are tests/unit/test_bundle_predict.py).
"""

import json
import subprocess
import sys

import numpy as np

from learnerprobe.predict import Predictor
from tests.helpers.bundles import make_bundle


def test_round_trip_in_fresh_process(tmp_path):
    path, est = make_bundle(tmp_path)
    probe = ["Ich wohne in einer kleinen Wohnung", "Sono contento di vederti"]
    here = Predictor.load(path).predict(probe)
    code = ("import json,sys; from learnerprobe.predict import Predictor; "
            f"print(json.dumps(Predictor.load({str(path)!r}).predict({probe!r})))")
    there = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert here == there
    direct = est.predict_proba(probe)
    got = np.array([[r["l1"]["probabilities"][c] for c in est.classes_] for r in here])
    np.testing.assert_allclose(got, direct, atol=1e-6)
    assert here[0]["l1"]["label"] == "de" and here[1]["l1"]["label"] == "it"


def test_cli_predict_json(tmp_path):
    path, _ = make_bundle(tmp_path)
    f = tmp_path / "texts.jsonl"
    f.write_text('{"text": "Ich wohne hier"}\n{"text": "Io abito qui"}\n', encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "predict", "--bundle", str(path),
                          "--file", str(f), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["l1"]["label"] for x in lines] == ["de", "it"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 1}\n')
    res = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "predict", "--bundle", str(path),
                          "--file", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "line 1" in res.stderr

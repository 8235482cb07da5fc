"""Protocols: no author on both sides; layer selection never sees the test fold."""

import numpy as np
import pytest

from learnerprobe.engine.data import encode
from learnerprobe.engine.providers import run_cell
from learnerprobe.evaluation.protocols import LeakageError, check_disjoint, make_splits
from tests.helpers.study import synthetic_records, tiny_config


@pytest.fixture(scope="module")
def data():
    return encode(tiny_config(), synthetic_records())


@pytest.mark.parametrize("protocol,holdout", [("iid", False), ("iid", True), ("loco", False),
                                              ("lolo", False)])
def test_no_author_in_train_and_test(data, protocol, holdout):
    splits = make_splits(protocol, data.y, data.groups, data.corpora, data.languages, folds=3,
                         seed=0, val_size=0.25, holdout=holdout)
    assert splits
    seen_test = []
    for sp in splits:
        for a, b in ((sp.train, sp.test), (sp.val, sp.test), (sp.train, sp.val)):
            assert not set(data.groups[a]) & set(data.groups[b])
        assert len(sp.val) and len(sp.train) and len(sp.test)
        seen_test.append(sp.test)
    if protocol == "iid" and not holdout:  # k-fold: every text tested exactly once
        assert np.array_equal(np.sort(np.concatenate(seen_test)), np.arange(len(data.y)))
    if protocol == "loco":
        assert [sp.fold for sp in splits] == ["cz", "de", "it"]
        for sp in splits:
            assert set(data.corpora[sp.test]) == {sp.fold}
            assert sp.fold not in set(data.corpora[sp.fit_all])
    if protocol == "lolo":
        assert sorted(sp.fold for sp in splits) == ["cs", "de"]


def test_leakage_is_detected():
    groups = np.array(["a", "b", "c", "a"])
    with pytest.raises(LeakageError, match="1 author"):
        check_disjoint(groups, np.array([0, 1]), np.array([2, 3]), "demo")


def test_planted_leak_is_not_selected(data):
    """Layer 1 predicts the label perfectly on training and *test* texts but is noise on the
    validation texts; layer 0 is moderately predictive everywhere. A selector that looked at the
    test fold would pick layer 1; the runner must pick layer 0."""
    sp = make_splits("iid", data.y, data.groups, data.corpora, data.languages, folds=3, seed=0,
                     val_size=0.25)[0]
    rng = np.random.default_rng(1)
    n = len(data.y)
    X = rng.normal(size=(2, n, 4)).astype(np.float32)
    X[0, :, 0] = data.y + rng.normal(scale=0.7, size=n)  # honest, moderate signal
    X[1, :, 0] = data.y  # planted: perfect ...
    X[1, sp.val, 0] = rng.permutation(data.y[sp.val]) * 3.0  # ... except on validation texts
    res = run_cell(X, data.y, sp, "ridge", mode="tuned", n_classes=5, seed=0, width=4,
                   metric="qwk", refit=False)
    from learnerprobe.evaluation.metrics import qwk

    test_qwk = [qwk(data.y[sp.test], res.pred[i], labels=5) for i in range(2)]
    assert test_qwk[1] > 0.95 > test_qwk[0]  # the leak would have been attractive ...
    assert res.selected == 0  # ... but selection only saw validation data
    assert res.val_scores[0] > res.val_scores[1]
    assert res.pred.shape == (2, len(sp.test))

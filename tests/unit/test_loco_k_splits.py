"""loco_k splits: the k labelled texts and their authors never reach the score set; k = 0 is
LOCO; draws are stratified by level, seeded and differ between repeats."""

import numpy as np
import pytest

from learnerprobe.errors import LearnerprobeError
from learnerprobe.evaluation.protocols import draw_labelled, make_adapt_splits, make_splits


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    corpora = np.array(["a", "b", "c"])[np.arange(n) % 3]
    y = rng.integers(0, 4, n)
    # authors with two texts each inside a corpus: grouping must remove the partner text
    groups = np.array([f"{c}:{i // 6}" for i, c in enumerate(corpora)], dtype=object)
    return y, groups, corpora


def _loco(y, groups, corpora):
    return make_splits("loco", y, groups, corpora, corpora, folds=3, seed=0, val_size=0.2)


def test_k_texts_and_their_authors_never_scored():
    y, groups, corpora = _data()
    splits = make_adapt_splits(_loco(y, groups, corpora), y, groups, ks=[0, 5, 10, 25],
                               repeats=4, seed=0)
    for s in splits:
        assert len(s.adapt) == s.k
        assert not set(groups[s.adapt]) & set(groups[s.test])
        assert not set(groups[s.adapt]) & set(groups[s.loco.fit_all])
        assert set(corpora[s.adapt]) <= {s.test_corpus}
        assert set(corpora[s.test]) == {s.test_corpus}
        # the partner text of a drawn author is dropped from the score set too
        dropped = np.setdiff1d(s.loco.test, np.concatenate([s.test, s.adapt]))
        assert set(groups[dropped]) <= set(groups[s.adapt])
        assert len(set(groups[s.adapt].tolist())) == s.k  # one text per author


def test_k0_is_loco():
    y, groups, corpora = _data()
    loco = _loco(y, groups, corpora)
    k0 = [s for s in make_adapt_splits(loco, y, groups, ks=[0], repeats=5, seed=0)]
    assert len(k0) == len(loco)  # one repeat: nothing is drawn
    for s, sp in zip(k0, loco, strict=True):
        assert np.array_equal(s.test, sp.test) and len(s.adapt) == 0


def test_draws_stratified_seeded_and_varied():
    y, groups, corpora = _data()
    within = np.flatnonzero(corpora == "a")
    a = draw_labelled(y, groups, within, 20, seed=1)
    assert np.array_equal(a, draw_labelled(y, groups, within, 20, seed=1))
    assert not np.array_equal(a, draw_labelled(y, groups, within, 20, seed=2))
    share = np.bincount(y[within], minlength=4) / len(within) * 20
    got = np.bincount(y[a], minlength=4)
    assert np.all(np.abs(got - share) < 1.0 + 1e-9)  # largest remainder: within one text
    splits = make_adapt_splits(_loco(y, groups, corpora), y, groups, ks=[10], repeats=3, seed=0)
    firsts = [tuple(s.adapt) for s in splits if s.test_corpus == "a"]
    assert len(set(firsts)) == 3


def test_too_few_authors_refused():
    y, groups, corpora = _data(n=60)
    with pytest.raises(LearnerprobeError, match="only"):
        draw_labelled(y, groups, np.flatnonzero(corpora == "a"), 50, seed=0)

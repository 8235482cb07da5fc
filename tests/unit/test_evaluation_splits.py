"""Splits (grouped, stratified, seeded) and class balancing."""

from collections import Counter

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.evaluation.splits import (
    class_weights,
    downsample,
    grouped_holdout,
    grouped_stratified_kfold,
    inner_validation_split,
    leave_one_group_out,
    leave_one_out,
)


def make_data(seed=1, n_authors=120):
    rng = np.random.default_rng(seed)
    y, groups = [], []
    for a in range(n_authors):
        label = ["A2", "B1", "B2", "C1"][rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
        for _ in range(rng.integers(1, 4)):
            y.append(label)
            groups.append(f"author{a}")
    groups[:10] = [None] * 10  # missing author ids -> own groups
    return np.array(y), groups


def test_kfold_no_author_overlap_and_stratified():
    y, groups = make_data()
    folds = grouped_stratified_kfold(y, groups, n_splits=5, seed=0)
    assert len(folds) == 5
    overall = {k: v / len(y) for k, v in Counter(y).items()}
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests) == list(range(len(y)))  # each row tested exactly once
    g = np.array([str(x) for x in groups], dtype=object)
    for tr, te in folds:
        assert not set(tr) & set(te)
        named = {x for x in g[te] if x != "None"}
        assert not named & set(g[tr])
        share = Counter(y[te])
        for label, p in overall.items():
            assert abs(share[label] / len(te) - p) < 0.08, (label, share)


def test_missing_groups_are_singletons():
    y = ["a", "b"] * 10
    folds = grouped_stratified_kfold(y, [None] * 20, n_splits=5, seed=0)
    assert all(len(te) == 4 for _, te in folds)


def test_seeded_and_reproducible():
    y, groups = make_data()
    a = grouped_stratified_kfold(y, groups, seed=3)
    b = grouped_stratified_kfold(y, groups, seed=3)
    c = grouped_stratified_kfold(y, groups, seed=4)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b, strict=True))
    assert any(not np.array_equal(x[1], z[1]) for x, z in zip(a, c, strict=True))


def test_holdout_and_inner_validation():
    y, groups = make_data()
    tr, te = grouped_holdout(y, groups, test_size=0.2, seed=0)
    assert 0.12 < len(te) / len(y) < 0.28
    g = np.array([str(x) for x in groups])
    assert not {x for x in g[te] if x != "None"} & set(g[tr])
    fit, val = inner_validation_split(y, groups, within=tr, test_size=0.25, seed=0)
    assert set(fit) | set(val) == set(tr) and not set(val) & set(te)
    assert not {x for x in g[val] if x != "None"} & set(g[fit])
    with pytest.raises(ConfigError):
        grouped_holdout(y, groups, test_size=1.5)


def test_too_few_groups_is_clear_error():
    with pytest.raises(ConfigError, match="2 groups"):
        grouped_stratified_kfold(["a", "b", "a"], ["x", "y", "x"], n_splits=5)


def test_leave_one_group_out_names():
    corpus = ["merlin", "cowsl2h", "merlin", "efcamdat", "cowsl2h"]
    out = leave_one_group_out(corpus)
    assert [n for n, _, _ in out] == ["cowsl2h", "efcamdat", "merlin"]
    name, tr, te = out[2]
    assert list(te) == [0, 2] and list(tr) == [1, 3, 4]
    assert leave_one_out is leave_one_group_out
    with pytest.raises(ConfigError):
        leave_one_group_out(["de", "de"])


def test_downsample_sizes_and_seed():
    y = ["a"] * 50 + ["b"] * 30 + ["c"] * 10
    idx_min = downsample(y, "min", seed=0)
    assert Counter(np.array(y)[idx_min]) == {"a": 10, "b": 10, "c": 10}
    idx_mean = downsample(y, "mean", seed=0)
    assert Counter(np.array(y)[idx_mean]) == {"a": 30, "b": 30, "c": 10}
    assert np.array_equal(idx_mean, downsample(y, "mean", seed=0))
    assert not np.array_equal(downsample(y, "min", seed=1), idx_min)
    assert list(idx_min) == sorted(idx_min)
    with pytest.raises(ConfigError):
        downsample(y, "max")


def test_class_weights_balanced():
    w = class_weights(["a"] * 30 + ["b"] * 10)
    assert w == pytest.approx({"a": 40 / 60, "b": 40 / 20})


# --------------------------------------------------------------------------- shared by both tasks
def pinned_data():
    rng = np.random.default_rng(7)
    y = np.array(["A2", "B1", "B2"])[rng.integers(0, 3, 30)]
    return y, [f"a{i // 2}" for i in range(30)]  # 15 authors, two texts each


def test_folds_are_pinned():
    """The exact folds of a fixed dataset: a refactor of the splitting code must not move a text
    (study and NLI results depend on them)."""
    y, groups = pinned_data()
    folds = grouped_stratified_kfold(y, groups, 3, seed=0)
    assert [te.tolist() for _, te in folds] == [
        [0, 1, 2, 3, 12, 13, 18, 19, 20, 21],
        [6, 7, 10, 11, 14, 15, 24, 25, 28, 29],
        [4, 5, 8, 9, 16, 17, 22, 23, 26, 27]]
    fit, val = inner_validation_split(y, groups, within=folds[0][0], test_size=0.25, seed=0)
    assert val.tolist() == [4, 5, 8, 9]
    assert fit.tolist() == [6, 7, 10, 11, 14, 15, 16, 17, 22, 23, 24, 25, 26, 27, 28, 29]
    codes = np.unique(y, return_inverse=True)[1]
    _, val = inner_validation_split(codes, groups, test_size=0.25, seed=0, fallback="unsplittable")
    assert val.tolist() == [16, 17, 24, 25, 28, 29]


def test_group_keys_namespace_authors_by_corpus():
    from learnerprobe.evaluation.splits import group_keys
    from learnerprobe.records import LearnerText

    recs = [LearnerText(id="t1", corpus="merlin-de", language="de", text="x", author_id="7"),
            LearnerText(id="t2", corpus="merlin-de", language="de", text="x"),
            LearnerText(id="t3", corpus="cowsl2h", language="es", text="x", author_id="7")]
    keys = group_keys([*recs, "plain text", {"text": "y", "author_id": "9", "corpus": "c"}])
    assert keys.tolist() == ["merlin-de:7", "merlin-de:t2", "cowsl2h:7", "#3", "c:9"]


def test_one_corpus_prefix_keeps_the_folds():
    """StratifiedGroupKFold sorts the group labels; a common ``corpus:`` prefix keeps their
    order, so namespacing authors did not move any text of a one-corpus study."""
    rng = np.random.default_rng(3)
    y = rng.choice(["x", "y", "z"], 200)
    bare = [str(v) for v in rng.integers(0, 70, 200)]
    keyed = [f"merlin-de:{b}" for b in bare]
    for seed in (0, 1):
        a = grouped_stratified_kfold(y, bare, 5, seed)
        b = grouped_stratified_kfold(y, keyed, 5, seed)
        assert all(np.array_equal(p[1], q[1]) for p, q in zip(a, b, strict=True))


def test_unsplittable_fallback_is_sklearn_then_group_shuffle():
    """``fallback="unsplittable"``: the first StratifiedGroupKFold fold as scikit-learn makes it
    from the bare groups; a grouped shuffle split when it refuses (every class < folds)."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    y, groups = pinned_data()
    codes = np.unique(y, return_inverse=True)[1]
    cv = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=2)
    tr, va = next(iter(cv.split(np.zeros(30), codes, groups)))
    fit, val = inner_validation_split(codes, groups, test_size=0.25, seed=2,
                                      fallback="unsplittable")
    assert np.array_equal(fit, tr) and np.array_equal(val, va)
    y2, g2 = np.array([0, 1, 0, 1, 2, 2]), ["a", "b", "c", "d", "e", "f"]
    fit, val = inner_validation_split(y2, g2, test_size=0.25, seed=0, fallback="unsplittable")
    ref = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(np.zeros(6), groups=g2))
    assert sorted(val) == sorted(ref[1]) and set(fit) | set(val) == set(range(6))
    with pytest.raises(ConfigError):
        inner_validation_split(y2, g2, fallback="never")


def test_downsample_rounding_is_explicit():
    from learnerprobe.evaluation.splits import balance_indices

    y = ["a"] * 7 + ["b"] * 4  # mean class size 5.5
    assert Counter(np.array(y)[downsample(y, "mean", 0)]) == {"a": 5, "b": 4}
    assert Counter(np.array(y)[downsample(y, "mean", 0, rounding="round")]) == {"a": 6, "b": 4}
    y = ["a"] * 5 + ["b"] * 4  # 4.5: half to even
    assert Counter(np.array(y)[downsample(y, "mean", 0, rounding="round")]) == {"a": 4, "b": 4}
    # a generator argument is advanced (the fine-tuner goes on drawing from it); draw_all
    # draws for every class, so it advances it further
    r1, r2 = np.random.default_rng(0), np.random.default_rng(0)
    a = downsample(y, "min", r1)
    b = downsample(y, "min", r2, draw_all=True)
    assert len(a) == len(b) == 8 and r1.random() != r2.random()
    assert balance_indices(y, "weights").tolist() == list(range(9))
    assert np.array_equal(balance_indices(y, "min", 0), downsample(y, "min", 0))
    with pytest.raises(ConfigError):
        balance_indices(y, "max")
    with pytest.raises(ConfigError):
        downsample(y, "mean", rounding="ceil")

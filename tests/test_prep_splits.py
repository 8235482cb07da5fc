"""Splits (grouped, stratified, seeded) and class balancing."""

from collections import Counter

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.prep.balance import class_weights, downsample
from learnerprobe.prep.splits import (
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

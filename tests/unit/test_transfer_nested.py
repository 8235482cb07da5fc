"""Nested leave-one-corpus-out selection never sees the held-out corpus (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.engine.data import encode
from learnerprobe.engine.nested import TransferInputs, make_fit_many
from learnerprobe.evaluation.metrics import qwk
from learnerprobe.evaluation.protocols import make_splits
from learnerprobe.selection import nested
from tests.helpers.study import synthetic_records, tiny_config


@pytest.fixture(scope="module")
def data():
    return encode(tiny_config(), synthetic_records(n_per_corpus=45))


@pytest.fixture(scope="module")
def plans(data):
    splits = make_splits("loco", data.y, data.groups, data.corpora, data.languages, folds=3,
                         seed=0, val_size=0.25)
    return nested.plan(splits, data.corpora, data.groups)


def test_inner_folds_hold_out_each_training_corpus(data, plans):
    assert [p.fold for p in plans] == ["cz", "de", "it"]
    for p in plans:
        assert p.inner_kind == "loco"
        assert sorted(name for name, _, _ in p.inner) == sorted({"cz", "de", "it"} - {p.fold})
        for name, tr, va in p.inner:
            assert set(data.corpora[va]) == {name}
            assert p.fold not in set(data.corpora[tr]) | set(data.corpora[va])
            assert not set(data.groups[tr]) & set(data.groups[va])
            assert not np.isin(np.concatenate([tr, va]), p.test).any()


def test_planted_leak_is_not_selected(data, plans):
    """Candidate "leak" predicts the held-out corpus perfectly and is noise on every inner
    validation corpus; "honest" is moderately right everywhere. A selector that looked at the
    held-out corpus would take the leak; nested LOCO must take the honest one in every fold."""
    y = data.y
    rng = np.random.default_rng(0)
    noisy = np.clip(y + rng.integers(-1, 2, y.size), 0, 4)
    outer_test = {int(i): p.fold for p in plans for i in p.test}
    cands = [nested.Candidate((("kind", "leak"),), 0), nested.Candidate((("kind", "honest"),), 0)]

    def fit_many(jobs):
        out = []
        for j in jobs:
            kind = dict(j.candidate.options)["kind"]
            rows = j.predict
            is_final = any(np.array_equal(j.train, p.train) and np.array_equal(rows, p.test)
                           for p in plans)
            if kind == "honest":
                pred = noisy[rows]
            elif is_final:  # the planted leak: perfect on the held-out corpus only
                pred = y[rows]
            else:
                pred = rng.integers(0, 5, rows.size)
            out.append((pred, None))
        return out

    folds = nested.nested_loco(plans, cands, y, fit_many, n_classes=5)
    for f in folds:
        assert f.choice.options == (("kind", "honest"),)
        assert f.inner_scores[1] > f.inner_scores[0]
        assert qwk(y[f.test], y[f.test], labels=5) > qwk(y[f.test], f.pred, labels=5)
    assert outer_test  # every held-out text was predicted by the honest candidate
    assert np.array_equal(np.concatenate([f.pred for f in folds]),
                          noisy[np.concatenate([f.test for f in folds])])


def test_fits_never_receive_held_out_labels(data, plans):
    """A spy fit: no job trains on a held-out row, and the labels it receives are exactly the
    training rows' labels (poisoned held-out labels never reach it)."""
    y = data.y.copy()
    seen = []

    def fit_many(jobs):
        seen.extend(jobs)
        return [(np.zeros(j.predict.size, int), None) for j in jobs]

    for p in plans:
        poisoned = y.copy()
        poisoned[p.test] = 99  # would raise in any estimator, and is visible to the spy
        nested.nested_loco([p], [nested.Candidate((), 0)], poisoned, fit_many, n_classes=5)
        assert len(seen) == len(p.inner) + 1
        for j in seen:
            assert not np.isin(j.train, p.test).any()
            assert 99 not in j.y_train
            inner = not np.array_equal(j.predict, p.test)
            assert not (inner and np.isin(j.predict, p.test).any())
        seen.clear()


def _inputs(data, seed=0):
    rng = np.random.default_rng(seed)
    n = len(data.y)
    acts = rng.normal(size=(2, n, 5))
    acts[1, :, 0] += data.y + 0.8 * (data.corpora == "de")  # level plus a corpus shift
    S = np.log1p(np.abs(rng.normal(size=(n, 3))) + data.y[:, None])
    return TransferInputs(acts, [0, 1], S, np.asarray(data.corpora), "synthetic", 5, seed)


@pytest.mark.parametrize("method", ["em_prior", "domain_standardize", "bbse", "combined_tta"])
def test_transductive_methods_ignore_poisoned_target_labels(data, plans, method):
    """Real estimators through the stage's fitting: the held-out corpus's labels are replaced
    by garbage (shuffled, then out of range); the predictions do not change."""
    from learnerprobe.config.transfer import TransferConfig
    from learnerprobe.engine.nested import method_grid

    inp = _inputs(data)
    cands = [nested.Candidate(g, L) for L in (0, 1)
             for g in method_grid(method, TransferConfig())][:2]

    def run(plans, y):
        fm = make_fit_many(method, inp, n_jobs=1, threads=1, cache=False, stats={})
        return nested.nested_loco(plans, cands, y, fm, n_classes=5)

    clean = run(plans, data.y)
    rng = np.random.default_rng(3)
    for p, ref in zip(plans, clean, strict=True):
        for poison in ("shuffle", "garbage"):  # only this fold's held-out corpus is poisoned
            y = data.y.copy()
            y[p.test] = rng.permutation(y[p.test]) if poison == "shuffle" else 77
            got = run([p], y)[0]
            assert got.chosen == ref.chosen
            assert np.array_equal(got.pred, ref.pred)
            assert np.allclose(got.proba, ref.proba)

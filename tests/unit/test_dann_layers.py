"""The domain-adversarial MLP trained on several layers at once (issue 11, item 5).

The study fits dann on every candidate layer in one batched torch training; a layer's probe
must be the one ``DomainAdversarialMLP().fit`` gives on that layer alone (the bundle path), and
must not depend on which other layers share the batch."""

from __future__ import annotations

import numpy as np
import pytest

from learnerprobe.engine.nested import TransferInputs, make_fit_many
from learnerprobe.estimators.transfer.torch_probes import (
    DomainAdversarialMLP,
    fit_predict_dann_layers,
)
from learnerprobe.methods.registry import BuildContext, get_method
from learnerprobe.selection import nested

PARAMS = {"n_classes": 4, "epochs": 30, "hidden": 16, "reversal": 0.5, "random_state": 3}


def _layers(n=240, d=12, n_layers=13, seed=0):
    """Synthetic hidden states (``n_layers x n x d``): the level grows clearer with depth, a
    domain shift on feature 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    dom = np.repeat(np.array(["a", "b", "c"]), n // 3)
    acts = rng.normal(size=(n_layers, n, d)).astype(np.float32)
    acts[:, :, 1] += 0.15 * np.arange(n_layers)[:, None] * y
    acts[:, :, 0] += 2.0 * (dom == "b")
    return acts, y, dom


def test_a_layer_does_not_depend_on_its_batch_and_matches_the_estimator():
    acts, y, dom = _layers()
    tr, te = np.arange(0, 200), np.arange(200, 240)
    both = fit_predict_dann_layers([acts[4][tr], acts[8][tr]], y[tr], dom[tr],
                                   [acts[4][te], acts[8][te]], dom[te], **PARAMS)
    alone = fit_predict_dann_layers([acts[8][tr]], y[tr], dom[tr], [acts[8][te]], dom[te],
                                    **PARAMS)
    est = DomainAdversarialMLP(**PARAMS).fit(acts[8][tr], y[tr], domains=dom[tr])
    np.testing.assert_allclose(both[1][1], alone[0][1], atol=1e-6)
    np.testing.assert_allclose(est.predict_proba(acts[8][te]), alone[0][1], atol=1e-6)
    np.testing.assert_array_equal(both[1][0], est.predict(acts[8][te]))
    # the two layers are different probes (not one fit copied)
    assert np.abs(both[0][1] - both[1][1]).max() > 1e-3


def test_deterministic_and_seeded():
    acts, y, dom = _layers()
    a = DomainAdversarialMLP(**PARAMS).fit(acts[6], y, domains=dom).predict_proba(acts[6])
    b = DomainAdversarialMLP(**PARAMS).fit(acts[6], y, domains=dom).predict_proba(acts[6])
    np.testing.assert_array_equal(a, b)
    c = DomainAdversarialMLP(**{**PARAMS, "random_state": 4}).fit(
        acts[6], y, domains=dom).predict_proba(acts[6])
    assert np.abs(a - c).max() > 1e-4


def test_layers_must_have_the_same_shape():
    acts, y, dom = _layers()
    with pytest.raises(ValueError, match="shape"):
        fit_predict_dann_layers([acts[4], acts[5][:, :6]], y, dom, [acts[4], acts[5][:, :6]],
                                dom, **PARAMS)


# n_jobs = 2: worker processes importing torch, ~25 s
@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_study_fits_equal_the_estimator_per_job(tmp_path, monkeypatch, n_jobs):
    """make_fit_many("dann") groups the jobs of a variant over layers; each job's result is
    the registry estimator fitted on that job alone; the cache keeps them."""
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    acts, y, dom = _layers(n_layers=3)
    inp = TransferInputs(acts, [4, 6, 8], np.zeros((len(y), 3)), dom, "synthetic", 4, 0)
    a, b = np.arange(0, 160), np.arange(160, 240)
    opts = (("reversal", 0.5), ("epochs", 20), ("hidden", 16))
    jobs = [nested.Job(nested.Candidate(opts, L), tr, y[tr], te)
            for L in (0, 2) for tr, te in ((a, b), (b, a))]
    stats: dict[str, float] = {}
    fit_many = make_fit_many("dann", inp, n_jobs=n_jobs, threads=1, cache=True, stats=stats)
    got = list(fit_many(jobs))
    for job, (pred, proba) in zip(jobs, got, strict=True):
        est = get_method("dann").build(BuildContext(n_classes=4, seed=0), dict(opts))
        est.fit(acts[job.candidate.layer][job.train], job.y_train, domains=dom[job.train])
        np.testing.assert_allclose(proba, est.predict_proba(acts[job.candidate.layer][
            job.predict]), atol=1e-6)
        np.testing.assert_array_equal(pred, est.predict(acts[job.candidate.layer][job.predict]))
    again = list(fit_many(jobs[::-1]))
    assert stats["fits"] == 4 and stats["cached"] == 4
    for (p1, q1), (p2, q2) in zip(got[::-1], again, strict=True):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(q1, q2)

"""The ensemble on the run's outer folds (nli.stacking): no test text in any fit, the bases'
out-of-fold results reused (no refits), pair fits cached; and the converged sentence solver."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from learnerprobe.estimators.nli.ensemble import StackingL1Classifier
from learnerprobe.estimators.nli.ovr_logistic import OvrLogistic
from learnerprobe.evaluation.splits import grouped_stratified_kfold
from learnerprobe.nli.run import cross_validate_method
from learnerprobe.nli.stacking import BaseRun, stack_on_outer_folds
from learnerprobe.tasks.l1 import L1Data
from tests.unit.test_nli_ensemble import LOG, Hint, Memoriser, _data


def _task(n: int = 150) -> L1Data:
    recs, y = _data(n, 0)
    groups = np.array([r.author_id for r in recs], dtype=object)
    return L1Data(records=recs, y=np.asarray(y, dtype=object), groups=groups,
                  labels=sorted(set(y)))


def _bases(task, folds, tmp_path):
    out = []
    for name, make in (("memo", Memoriser), ("hint", lambda: Hint(0))):
        res = cross_validate_method(make, task, folds, balance="none", seed=0)
        out.append(BaseRun(name, make, res, tmp_path / f"{name}-pairs.npz"))
    return out


def test_outer_stacking_never_fits_on_a_test_text_and_refits_no_base(tmp_path):
    task = _task()
    folds = grouped_stratified_kfold(task.y, task.groups, 5, 0)
    bases = _bases(task, folds, tmp_path)
    LOG.clear()
    stacker = StackingL1Classifier([("memo", Memoriser()), ("hint", Hint(0))], seed=0)
    res = stack_on_outer_folds(stacker, task, folds, bases, balance="none", seed=0, log=lambda m: None)
    fits = [f for kind, f, _ in LOG if kind == "fit"]
    assert len(fits) == 10  # one per pair of the 5 folds; the outer models are not refitted
    text_fold = {task.records[i].text: f for f, (_, te) in enumerate(folds) for i in te}
    for seen in fits:  # each pair model was trained on exactly three of the five folds
        assert len({text_fold[t] for t in seen}) == 3
    # the memoriser's in-sample perfection never reached the stacker: it falls back on "hint"
    assert all(n["meta_choice"] in ("single:hint", *(f"pool:alpha={a:g}" for a in (1e-4, 1e-3, 1e-2)),
                                    *(f"logreg:C={c:g}" for c in (0.01, 0.1, 1.0, 10.0)))
               for n in res["notes"])
    acc = np.mean(np.asarray(task.labels, dtype=object)[res["proba"].argmax(1)] == task.y[res["idx"]])
    assert acc > 0.6  # the hint is right ~80 % of the time; a stacker fooled by memo says "Arabic"
    # a second run reads the pair fits from the cache: no fit at all
    LOG.clear()
    again = stack_on_outer_folds(stacker, task, folds, bases, balance="none", seed=0, log=lambda m: None)
    assert not [k for k, *_ in LOG if k == "fit"]
    np.testing.assert_allclose(again["proba"], res["proba"])


def test_outer_stacking_refuses_bases_other_than_the_stackers(tmp_path):
    task = _task(60)
    folds = grouped_stratified_kfold(task.y, task.groups, 3, 0)
    bases = _bases(task, folds, tmp_path)
    with pytest.raises(ValueError, match="bases"):
        stack_on_outer_folds(StackingL1Classifier([("hint", Hint(0))]), task, folds, bases,
                             balance="none", seed=0, log=lambda m: None)


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_ovr_logistic_minimises_sgds_objective(class_weight):
    """Binary: SGD's objective (mean weighted log-loss + alpha/2 ||w||^2) is sklearn's logistic
    regression with C = 1 / (alpha n); the converged solutions must coincide."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0.4).astype(int)
    alpha = 1e-2
    ours = OvrLogistic(alpha=alpha, class_weight=class_weight, gtol=1e-10).fit(X, y)
    ref = LogisticRegression(C=1 / (alpha * len(y)), class_weight=class_weight, tol=1e-12,
                             max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_ovr_logistic_multiclass_is_each_class_against_the_rest():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 5))
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3] + 0.3 * rng.normal(size=(240, 3)), 1)]
    m = OvrLogistic(alpha=1e-2, gtol=1e-10).fit(X, y)
    for k, c in enumerate(m.classes_):  # class k's column: the binary problem "c vs rest"
        b = OvrLogistic(alpha=1e-2, gtol=1e-10).fit(X, (y == c).astype(int))
        np.testing.assert_allclose(m.coef_[k], b.coef_[0], atol=1e-4)
    p = m.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.mean(m.predict(X) == y) > 0.8

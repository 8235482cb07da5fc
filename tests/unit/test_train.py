"""`train` picks on validation data, bundles, and a fresh process reproduces the probabilities."""


import pytest


def test_train_refuses_results_of_an_incomplete_run(tmp_path):
    """--results reads through the run reader: a results.csv without the completion marker (a run
    killed while writing) is refused instead of being copied into a bundle card."""

    from learnerprobe.study.results import IncompleteRunError
    from learnerprobe.train import _study_metrics

    (tmp_path / "results.csv").write_text("task,probe,test_corpus,metric,value\n")
    with pytest.raises(IncompleteRunError):
        _study_metrics(tmp_path, "cefr", "ridge")

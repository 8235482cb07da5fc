"""The NLI protocol end to end through the study runner, on a small real MERLIN subset."""

import numpy as np
import pandas as pd
import pytest

from learnerprobe.corpora.registry import load_corpus
from learnerprobe.errors import ConfigError
from tests.helpers.study import nli_config


@pytest.fixture(scope="module")
def subset(data_root):
    recs = load_corpus("merlin-de", root=data_root)
    out = []
    for l1 in ("Russian", "Polish", "Spanish"):
        out += [r for r in recs if r.l1 == l1][:40]
    out += [r for r in recs if r.l1 == "Italian"][:10]  # below the minimum: dropped, reported
    return out


_cfg = nli_config


def test_run_nli_rows_figures_and_analyses(subset, tmp_path):
    from learnerprobe.study.runner import run

    res = run(_cfg(["ngram", "metadata", "ensemble"]), tmp_path, records=subset, log=lambda m: None)
    df = pd.read_csv(tmp_path / "results.csv")
    assert set(df.task) == {"l1"}
    maj = df[df.metric == "majority_rate"]
    assert len(maj) == 1 and maj.value.iloc[0] == pytest.approx(1 / 3)
    for method in ("ngram", "metadata", "ensemble"):
        d = df[df.probe == method].set_index("metric")
        for m in ("accuracy", "macro_f1"):
            assert d.loc[m, "ci_low"] <= d.loc[m, "value"] <= d.loc[m, "ci_high"]
            assert d.loc[m, "n"] == 120
        assert np.allclose(df[df.probe == method].majority_rate, 1 / 3)
        assert {"precision/Russian", "recall/Polish", "f1/Spanish"} <= set(d.index)
        assert {"within_family_error_share", "level_chi2_p", "level_cramers_v",
                "logit_level_ctrl_length_coef"} <= set(d.index)
        assert (tmp_path / "nli" / f"confusion_{method}.png").is_file()
        assert (tmp_path / "nli" / f"confusion_{method}_norm.png").is_file()
    assert df[(df.probe == "ngram") & (df.metric == "accuracy")].value.iloc[0] > 0.45
    diff = df[df.metric == "diff_accuracy_vs_ngram"]
    assert len(diff) == 1 and diff.ci_low.iloc[0] <= diff.value.iloc[0] <= diff.ci_high.iloc[0]
    task = res.manifest["nli"]["task"]
    assert task["dropped_l1"] == {"Italian": 10} and task["masked"]
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    ng = preds[preds.probe == "ngram"]
    assert len(ng) == 120 and np.allclose([p.sum() for p in ng.proba], 1, atol=1e-5)
    assert (tmp_path / "report.html").is_file()
    # The combiner each outer fold chose (on inner data) is kept and shown.
    import json

    notes = json.loads((tmp_path / "nli" / "analyses.json").read_text())["ensemble"]["combiner"]
    assert len(notes) == 3 and all(n["meta_choice"] in n["meta_scores"] for n in notes)
    assert "combiner chosen per outer fold" in (tmp_path / "report.html").read_text()


def test_method_results_are_cached_and_reused_until_their_settings_change(subset, tmp_path):
    """A rerun (e.g. after a crash) reuses each finished method; a changed setting recomputes."""
    from learnerprobe.study.runner import run

    logs: list[str] = []
    run(_cfg(["ngram", "metadata"]), tmp_path, records=subset, log=logs.append)
    cache = sorted((tmp_path / "nli" / "cache").glob("*.npz"))
    # one cached cell per method and fold (3 folds)
    assert [p.name.split("-seed")[0] for p in cache] == ["metadata"] * 3 + ["ngram"] * 3
    first = pd.read_csv(tmp_path / "results.csv")
    logs.clear()
    run(_cfg(["ngram", "metadata"]), tmp_path, records=subset, log=logs.append)
    assert sum("cached result" in m for m in logs) == 2
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "results.csv"))
    logs.clear()
    cfg = _cfg(["ngram", "metadata"],
               ngram={"char_ngrams": [2, 4], "word_ngrams": [1, 1], "min_df": 3})
    run(cfg, tmp_path, records=subset, log=logs.append)
    assert [m for m in logs if "cached result" in m] == [
        next(m for m in logs if "nli metadata" in m and "cached" in m)]


def test_crashed_nli_run_is_refused_and_resumes_from_its_cache(subset, tmp_path, monkeypatch):
    """Killed before the completion marker: readers refuse the folder, the method cache in
    OUT/nli/cache survives, and the rerun reuses it and publishes a complete run."""
    from learnerprobe.study import rundir
    from learnerprobe.study.rundir import IncompleteRunError, read_run_results
    from learnerprobe.study.runner import run

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "write_marker", killed)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(["metadata"]), tmp_path, records=subset, log=lambda m: None, report=False)
    monkeypatch.undo()
    with pytest.raises(IncompleteRunError):
        read_run_results(tmp_path)
    assert len(list((tmp_path / "nli" / "cache").glob("metadata-*.npz"))) == 3  # a cell a fold
    logs: list[str] = []
    run(_cfg(["metadata"]), tmp_path, records=subset, log=logs.append, report=False)
    assert any("cached result" in m for m in logs)
    marker = rundir.check_run_complete(tmp_path)
    assert "nli/confusion_metadata.csv" in marker["files"]
    assert not any(n.startswith("nli/cache") for n in marker["files"])
    assert len(read_run_results(tmp_path))


def test_named_variants_run_alone_and_inside_the_ensemble(subset, tmp_path):
    """[nli.variants.NAME] = a method with other options (the NLI shared tasks' stacking of
    one classifier per feature type): reported as its own row and usable as an ensemble base."""
    from learnerprobe.study.runner import run

    cfg = _cfg(["ngram", "char-svm", "word-svm", "ensemble"],
               ensemble_of=["char-svm", "word-svm"],
               variants={"char-svm": {"method": "ngram", "word_ngrams": []},
                         "word-svm": {"method": "ngram", "char_ngrams": []}})
    run(cfg, tmp_path, records=subset, log=lambda m: None)
    df = pd.read_csv(tmp_path / "results.csv")
    acc = df[df.metric == "accuracy"].set_index("probe").value
    assert {"ngram", "char-svm", "word-svm", "ensemble"} <= set(acc.index)
    assert acc["char-svm"] != acc["word-svm"]
    preds = pd.read_parquet(tmp_path / "predictions.parquet")
    p = {m: np.stack(preds[preds.probe == m].proba) for m in ("ngram", "char-svm", "word-svm")}
    assert not np.allclose(p["char-svm"], p["ngram"])
    assert not np.allclose(p["word-svm"], p["ngram"])
    with pytest.raises(ConfigError, match="variant 'x' needs method"):
        _cfg(["x"], variants={"x": {"method": "ensemble"}})

"""Headline tables pick the validation-chosen rows and keep CIs, majority rate and chance."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from learnerprobe.study.summary import comparisons, headline, to_markdown


def _rows():
    base = {"model": "m", "seed": 0, "test_corpus": "all", "ci_low": 0.1, "ci_high": 0.9, "n": 50}
    rows = []
    for layer, v in (("3", 0.99), ("selected", 0.70)):  # a per-layer row must not leak in
        rows.append({**base, "task": "cefr", "mode": "tuned", "protocol": "iid",
                     "probe": "ridge", "layer": layer, "metric": "qwk", "value": v})
    rows.append({**base, "task": "cefr", "mode": "tuned", "protocol": "loco", "probe": "ridge",
                 "layer": "selected", "metric": "qwk", "value": 0.4, "test_corpus": "merlin-cs"})
    for probe, layer, acc in (("ngram", "none", 0.39), ("logistic", "6", 0.33),
                              ("ensemble", "none", 0.42)):
        for metric, v in (("accuracy", acc), ("macro_f1", acc - 0.05)):
            rows.append({**base, "task": "l1", "mode": "tuned", "protocol": "iid", "probe": probe,
                         "layer": layer, "selected_layer": 6 if layer == "6" else None,
                         "metric": metric, "value": v})
    for metric, v in (("majority_rate", 0.236), ("chance", 0.111)):
        rows.append({**base, "task": "l1", "probe": metric, "layer": "none", "metric": metric,
                     "value": v, "ci_low": None, "ci_high": None})
    rows.append({**base, "task": "l1", "probe": "ensemble", "layer": "none",
                 "metric": "diff_accuracy_vs_ngram", "value": 0.03, "ci_low": 0.01,
                 "ci_high": 0.05})
    return pd.DataFrame(rows)


def test_cefr_headline_uses_selected_layer_and_pooled_rows():
    tab = headline(_rows(), "cefr")
    assert tab.to_dict("records") == [{"mode": "tuned", "protocol": "iid", "probe": "ridge",
                                       "model": "m", "qwk": "0.700 [0.100, 0.900]"}]


def test_l1_headline_sorted_with_majority_and_chance():
    tab = headline(_rows(), "l1")
    assert list(tab.probe) == ["ensemble", "ngram", "logistic"]
    assert list(tab.columns) == ["probe", "model", "layer", "accuracy", "macro_f1", "n",
                                 "majority_rate", "chance"]
    assert tab.set_index("probe").loc["logistic", "layer"] == "6"
    assert set(tab.majority_rate) == {"0.236"} and set(tab.chance) == {"0.111"}
    md = to_markdown(tab)
    assert md.splitlines()[2].startswith("| ensemble | m |  | 0.420 [0.100, 0.900]")
    c = comparisons(_rows())
    assert c.iloc[0].difference == "0.030 [0.010, 0.050]"


def test_headline_errors_are_clear():
    with pytest.raises(ValueError, match="several tasks"):
        headline(_rows())
    with pytest.raises(ValueError, match="no l1 rows"):
        headline(_rows(), "l1", ["qwk"])


def test_results_command(tmp_path):
    from learnerprobe.cli import app
    from learnerprobe.study.rundir import mark_complete

    df = _rows()
    df.to_csv(tmp_path / "results.csv", index=False)
    r = CliRunner().invoke(app, ["results", str(tmp_path), "--task", "l1", "--markdown"])
    assert r.exit_code != 0 and "no finished run" in str(r.exception)  # no completion marker
    mark_complete(tmp_path)
    r = CliRunner().invoke(app, ["results", str(tmp_path), "--task", "l1", "--markdown"])
    assert r.exit_code == 0, r.output
    assert "| ensemble | m |" in r.output and "diff_accuracy_vs_ngram" in r.output
    r = CliRunner().invoke(app, ["results", str(tmp_path / "nope")])
    assert r.exit_code != 0

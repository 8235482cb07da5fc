"""The runner end to end on a tiny synthetic study (fake activations, real probes and metrics)."""

import json

import pandas as pd
import pytest

from learnerprobe.engine import providers
from learnerprobe.evaluation.results import PREDICTION_COLUMNS, RESULT_COLUMNS
from learnerprobe.study import runner
from tests.helpers.study import fake_activations, row_decode, synthetic_records, tiny_config

N_LAYERS = 3


@pytest.fixture()
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    recs = synthetic_records()
    cfg = tiny_config(probes=["ridge", "surface"])
    y = runner.encode(cfg, recs).y
    acts = {"fake": fake_activations(recs, y, n_layers=N_LAYERS)}
    return cfg, recs, acts, tmp_path / "out"


def _run(study, **kw):
    cfg, recs, acts, out = study
    return runner.run(cfg, out, records=recs, activations=acts, log=lambda s: None,
                      progress=False, **kw)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One run shared by the schema and report tests: two probes, both modes."""
    tmp = tmp_path_factory.mktemp("study")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEARNERPROBE_CACHE", str(tmp / "cache"))
    recs = synthetic_records()
    cfg = tiny_config(mode="both")
    y = runner.encode(cfg, recs).y
    acts = {"fake": fake_activations(recs, y, n_layers=N_LAYERS)}
    res = runner.run(cfg, tmp / "out", records=recs, activations=acts, log=lambda s: None,
                     progress=False)
    yield res
    mp.undo()


def test_results_schema_rows_and_files(full):
    out = full.out
    for f in ("results.csv", "results.parquet", "predictions.parquet", "report.html",
              "timings.json", "manifest.json", "config.toml", "residuals.csv"):
        assert (out / f).is_file(), f
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    pooled = df[(df.metric == "qwk") & (df.test_corpus == "all") & (df.levels == "all")]
    # 2 probes x (3 layers + selected) + surface, for 2 protocols x 2 modes
    per_cell = 2 * (N_LAYERS + 1) + 1
    assert len(pooled) == 2 * 2 * per_cell
    for (mode, proto), p in pooled.groupby(["mode", "protocol"]):
        assert len(p) == per_cell
        assert set(p[p.probe == "ridge"].layer.astype(str)) == {"0", "1", "2", "selected"}
        assert list(p[p.probe == "surface"].layer) == ["none"]
        if (mode, proto) == ("reference", "iid"):  # reference: one grouped 80/20 split
            assert 15 <= p.n.iloc[0] <= 30 and (p.n == p.n.iloc[0]).all()
        else:
            assert (p.n == 108).all()  # k-fold / leave-one-out: every text scored once
    per_corpus = df[(df.metric == "qwk") & (df.protocol == "loco") & (df.levels == "all")]
    assert set(per_corpus.test_corpus) == {"all", "cz", "de", "it", "corpus_mean"}  # + mean
    assert set(df.metric) >= {"qwk", "accuracy", "adjacent_accuracy", "macro_f1", "mae",
                              "spearman"}
    assert not (df.ci_low > df.ci_high + 1e-9).any()
    # only Spearman is undefined, for constant predictions (noise layers collapse to one level)
    assert set(df[df.value.isna()].metric) <= {"spearman"}
    # the signal lives in layer 1: validation picks it and it beats the noise layers
    pooled = pooled[pooled["mode"] == "tuned"]
    sel = pooled[(pooled.layer == "selected") & (pooled.protocol == "iid")]
    assert (sel.selected_layer == 1).all()
    iid = pooled[(pooled.protocol == "iid") & (pooled.probe == "ridge")].set_index("layer")
    assert iid.loc["1", "value"] > 0.8 > iid.loc["0", "value"]
    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.columns) == PREDICTION_COLUMNS
    n_ref_iid = int(df[(df["mode"] == "reference") & (df.protocol == "iid")].n.iloc[0])
    assert len(preds) == (3 * 108 + n_ref_iid) * per_cell
    assert len(preds[preds.probe == "logistic"].iloc[0].proba) == 5
    assert preds[preds.probe == "ridge"].proba.isna().all()  # regression: no probabilities
    timings = json.loads((out / "timings.json").read_text())
    assert {"load", "extract", "probe", "evaluate", "report"} <= set(timings["stages"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["activation_cache_keys"]["fake"].startswith("array-")
    # every number says which dtype extracted its activations (none for the surface baseline)
    assert manifest["extraction_dtypes"] == {"fake": "float32"}
    assert set(df[df.model == "fake"].extraction_dtype) == {"float32"}
    assert set(df[df.probe == "surface"].extraction_dtype) == {"none"}


def test_report_is_self_contained_with_summary(full):
    html = (full.out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') >= 5
    assert 'id="summary-table"' in html and "surface" in html and "selected" not in html[:200]
    assert "leave-one-corpus-out: cz" in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    # the same figures as PNG files, listed in the completion marker
    pngs = sorted((full.out / "figures").glob("*.png"))
    assert len(pngs) == html.count('<img src="data:image/png;base64,')
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    files = json.loads((full.out / "manifest.json").read_text())["files"]
    assert {f"figures/{p.name}" for p in pngs} <= set(files)


def test_resume_after_crash_recomputes_only_missing_cells(study, monkeypatch):
    calls = []
    real = providers.run_cell

    def crashing(*a, **kw):
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated crash")
        calls.append(a[3])
        return real(*a, **kw)

    monkeypatch.setattr(providers, "run_cell", crashing)
    with pytest.raises(KeyboardInterrupt):
        _run(study, report=False)
    assert len(calls) == 5
    total = (3 + 3) * 2  # (3 iid folds + 3 loco folds) x (ridge, surface)
    counted = []

    def counting(*a, **kw):
        counted.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(providers, "run_cell", counting)
    first = _run(study, report=False)
    assert len(counted) == total - 5  # only the cells the crash did not finish
    assert first.timings["cells"] == total
    counted.clear()
    again = _run(study, report=False)
    assert counted == [] and again.timings["cells_cached"] == total
    pd.testing.assert_frame_equal(first.results, again.results)


def test_probes_never_train_on_test_texts(study, monkeypatch):
    """Spy on every fit: training rows and evaluated rows share no text and no author."""
    cfg, recs, acts, out = study
    data = runner.encode(cfg, recs)
    seen = []
    real = providers.fit_layers

    def spy(X_train, y_train, X_test, probe, **kw):
        tr, te = row_decode(X_train[0, :, 0]), row_decode(X_test[0, :, 0])
        assert not set(tr) & set(te)
        assert not set(data.groups[tr]) & set(data.groups[te])
        seen.append(len(te))
        return real(X_train, y_train, X_test, probe, **kw)

    monkeypatch.setattr(providers, "fit_layers", spy)
    runner.run(cfg, out, records=recs, activations=acts, log=lambda s: None, progress=False,
               report=False)
    assert len(seen) == 6

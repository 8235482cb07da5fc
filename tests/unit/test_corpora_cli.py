"""`learnerprobe corpus list|stats|export` on the fixtures (real-data CLI checks are in
test_corpora_real.py)."""

import json

import pytest
from typer.testing import CliRunner

from learnerprobe.cli import app
from learnerprobe.cli.corpus import parse_options
from learnerprobe.corpora import load_corpus
from learnerprobe.corpora.record_files import corpus_stats, read_records, write_records
from learnerprobe.errors import ConfigError, LearnerprobeError
from tests.helpers.corpus_fixtures import fixture_tree

GOOD = fixture_tree() / "good"
runner = CliRunner()


def invoke(*args):
    res = runner.invoke(app, list(args))
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res.output


def test_list_shows_every_corpus():
    out = invoke("corpus", "list")
    for name in ("merlin-cs", "cowsl2h", "efcamdat", "bea19", "icle500", "universalcefr",
                 "cefr-sp", "table"):
        assert name in out
    assert "CC BY-SA" in out and "ucdaviscl" in out


def test_stats_json_is_one_object():
    s = json.loads(invoke("corpus", "stats", "bea19", "--root", str(GOOD), "--json"))
    assert s["n_texts"] == 7
    assert s["by_language"] == {"en": 7}
    assert s["by_cefr"] == {"(none)": 4, "A2": 1, "A2+": 1, "B1": 1}
    assert s["by_l1"] == {"(none)": 3, "Catalan": 2, "English": 1, "Spanish": 1}
    assert s["by_split"] == {"train": 6, "dev": 1}


def test_stats_table_output_and_options():
    out = invoke("corpus", "stats", "merlin", "--root", str(GOOD), "-o", "languages=cs,it")
    assert "merlin: 4 texts" in out and "Hungarian" in out and "Russian" not in out


def test_stats_with_config_file():
    cfg = GOOD / "table" / "my_essays.toml"
    s = json.loads(invoke("corpus", "stats", "table", "--root", str(GOOD), "--config", str(cfg),
                          "--json"))
    assert s["by_language"] == {"de": 2, "cs": 1, "en": 1, "it": 1}
    assert s["by_corpus"] == {"my-essays": 5}


def test_parse_options():
    o = parse_options(["path=x.csv", "columns.text=essay", "columns.cefr=level",
                       "languages=cs,de", "keep_other=false", "n=3"], None)
    assert o == {"path": "x.csv", "columns": {"text": "essay", "cefr": "level"},
                 "languages": ["cs", "de"], "keep_other": False, "n": 3}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["novalue"], None)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_export_round_trip(tmp_path, suffix):
    out = tmp_path / f"merlin{suffix}"
    invoke("corpus", "export", "merlin", "--root", str(GOOD), "--out", str(out))
    back = read_records(out)
    orig = load_corpus("merlin", root=GOOD)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in orig]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(out)
        assert {"id", "text", "cefr", "l1", "hash", "meta"} <= set(t.column_names)
        assert t.column("hash").to_pylist()[0] == orig[0].hash


def test_export_rejects_other_suffix(tmp_path):
    with pytest.raises(LearnerprobeError, match=r"\.parquet or \.jsonl"):
        invoke("corpus", "export", "merlin", "--root", str(GOOD), "--out", str(tmp_path / "x.csv"))
    with pytest.raises(LearnerprobeError):
        write_records([], tmp_path / "x.txt")


def test_stats_counts_none():
    s = corpus_stats(load_corpus("merlin", root=GOOD))
    assert s["by_cefr"]["(none)"] == 1 and s["n_texts"] == 7 and s["n_with_correction"] == 5


def _geo_table(tmp_path):
    p = tmp_path / "geo.csv"
    p.write_text("id,text,lang\n"
                 "a,Ich habe zwei Jahre in Deutschland gewohnt und spreche Deutsch.,de\n"
                 "b,Ich habe zwei Jahre in Deutschland gewohnt und spreche Deutsch.,de\n"
                 "c,Sono nato a Roma ma vivo in Germania.,it\n", encoding="utf-8")
    return ["-o", f"path={p}", "-o", "language=de", "-o", "columns.language=lang"]


def test_export_mask(tmp_path):
    pytest.importorskip("learnerprobe.prep.mask")
    out = tmp_path / "geo.jsonl"
    log = invoke("corpus", "export", "table", "--out", str(out), "--mask", "--show-masked",
                 *_geo_table(tmp_path))
    recs = read_records(out)
    assert "Deutschland" not in recs[0].text and "Germania" not in recs[2].text
    assert "Deutschland" in log and "mask:" in log


def test_export_dedupe(tmp_path):
    pytest.importorskip("learnerprobe.prep.clean")
    out = tmp_path / "geo.parquet"
    invoke("corpus", "export", "table", "--out", str(out), "--dedupe", *_geo_table(tmp_path))
    assert [r.id for r in read_records(out)] == ["a", "c"]


def test_stats_json_counts_what_loading_skipped():
    # BEA-2019 edits with null corrections, same-offset and overlapping edits: the corpus loads
    # and `corpus stats --json` says what was skipped.
    hard = fixture_tree() / "hard"
    res = runner.invoke(app, ["corpus", "stats", "bea19", "--root", str(hard), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout.strip().splitlines()[-1])
    assert s["n_texts"] == 6
    counts = s["load_report"]["counts"]
    assert counts["edits_skipped_overlap"] == 1 and counts["edits_detection_only"] == 4
    assert counts["unparseable_cefr"] == 1
    assert any("B.dev.json: line 1" in e for e in s["load_report"]["examples"]["edits_skipped_overlap"])


def test_cli_strict_option_refuses_unparseable_label():
    hard = fixture_tree() / "hard"
    res = runner.invoke(app, ["corpus", "stats", "bea19", "--root", str(hard), "-o", "strict=true"])
    # main() prints a LearnerprobeError as one line with exit code 2 (see the test above).
    assert isinstance(res.exception, LearnerprobeError)
    assert "B.dev.json: line 2: unrecognised CEFR label 'Z9'" in str(res.exception)

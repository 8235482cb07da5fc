"""`learnerprobe predict` / `serve`: every bad argument or input is refused before any model is
loaded, with a one-line `error: ...` and exit code 2, never a traceback."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers.bundles import make_bundle

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
       b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


def run_cli(*args, stdin=subprocess.DEVNULL, input=None, close_stdin=False, timeout=60):
    kw = {"input": input} if input is not None else {"stdin": stdin}
    return subprocess.run(
        [sys.executable, "-m", "learnerprobe.cli", *map(str, args)], capture_output=True,
        timeout=timeout, preexec_fn=(lambda: os.close(0)) if close_stdin else None, **kw,
    )


def assert_refused(r, *words):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err and "Traceback" not in r.stdout.decode("utf-8", "replace")
    assert "error:" in err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("cli-bundle"))
    return path


def test_predict_works_and_escapes_markup(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from learnerprobe.bundles.io import save_bundle
    from tests.helpers.bundles import LABELS, TEXTS

    hostile = {"de": "[bold red]de[/]", "it": "[link=x]it"}
    labels = [hostile[x] for x in LABELS]
    est = make_pipeline(TfidfVectorizer(analyzer="char_wb"), LogisticRegression()).fit(TEXTS, labels)
    path = save_bundle(tmp_path / "b", task="l1", method="ngram", labels=list(est.classes_),
                       estimator=est, preprocessing={"features": "text", "mask": False})
    r = run_cli("predict", "--bundle", path, "Ich wohne in der Stadt")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "[bold red]de[/]" in out and "[link=x]it" in out  # shown literally, not as markup
    r = run_cli("predict", "--bundle", path, "--json", "Ich wohne in der Stadt")
    assert json.loads(r.stdout)["l1"]["label"] == "[bold red]de[/]"


INPUT_CASES = {
    "random-bytes": (os.urandom(4096) + b"\xff\xfe", "not UTF-8"),
    "png": (PNG, "binary"),
    "nul-bytes": (b"\x00" * 64, "NUL"),
    "nul-in-text": (b"Ich bin\x00 hier\n", "NUL"),
    "latin-1": ("Grüße aus München\n".encode("latin-1"), "not UTF-8"),
    "utf-16": ("Ich wohne hier\n".encode("utf-16"), "not UTF-8"),
    "zero-width-only": ("\u200b\u200c\u200d\ufeff\n".encode(), "empty"),
    "controls-only": (b"\x01\x02\x03\n", "binary"),
    "empty": (b"", "no texts"),
    "blank-lines": (b"\n \n\t\n", "no texts"),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_bad_file_refused(bundle, tmp_path, case):
    data, word = INPUT_CASES[case]
    f = tmp_path / "texts.txt"
    f.write_bytes(data)
    assert_refused(run_cli("predict", "--bundle", bundle, "--file", f), word)


@pytest.mark.parametrize("suffix,content,word", [
    (".jsonl", b'{"text": "\\ud800 hi"}\n', "lone surrogate"),
    (".jsonl", b'{"text": "\\u200b"}\n', "empty"),
    (".jsonl", b'{"text": 5}\n', "expected an object"),
    (".jsonl", b"[" * 100_000 + b"\n", "invalid JSON"),
    (".jsonl", b"{not json\n", "invalid JSON"),
    (".csv", b"id,body\n1,hallo\n", "'text' column"),
    (".csv", b'text\n"unterminated\n', "invalid CSV"),
    (".csv", b"text,x\n\xe2\x80\x8b,1\n", "empty"),
    (".csv", b"text,x\n", "no texts"),
])
def test_bad_structured_file_refused(bundle, tmp_path, suffix, content, word):
    f = tmp_path / f"texts{suffix}"
    f.write_bytes(content)
    r = run_cli("predict", "--bundle", bundle, "--file", f)
    assert_refused(r, *([word] if word else []))


def test_file_paths_refused(bundle, tmp_path):
    assert_refused(run_cli("predict", "--bundle", bundle, "--file", tmp_path), "is a directory")
    assert_refused(run_cli("predict", "--bundle", bundle, "--file", tmp_path / "nope.txt"),
                   "no such file")
    if os.geteuid() != 0:  # root reads anything
        f = tmp_path / "secret.txt"
        f.write_text("hallo")
        f.chmod(0)
        assert_refused(run_cli("predict", "--bundle", bundle, "--file", f), "cannot read")


def test_stdin_cases(bundle):
    assert_refused(run_cli("predict", "--bundle", bundle, close_stdin=True), "stdin is closed")
    assert_refused(run_cli("predict", "--bundle", bundle, "-", close_stdin=True), "stdin is closed")
    assert_refused(run_cli("predict", "--bundle", bundle, input=PNG), "not UTF-8")
    assert_refused(run_cli("predict", "--bundle", bundle, input=b"\x00\x00\x00"), "binary")
    assert_refused(run_cli("predict", "--bundle", bundle, input=b"\xe2\x80\x8b\n"), "empty")
    assert_refused(run_cli("predict", "--bundle", bundle), "empty")  # /dev/null
    r = run_cli("predict", "--bundle", bundle, "--json", input=b"Ich wohne in Berlin\n")
    assert r.returncode == 0 and json.loads(r.stdout)["l1"]["label"] == "de"


@pytest.mark.parametrize("text,word", [
    ("\u200b\u200b", "empty"), ("\u2060\u00ad", "empty"), ("a\x01b", "binary"),
    ("\x1b\x07", "binary"), ("   ", "empty"),
])
def test_bad_text_argument(bundle, text, word):
    assert_refused(run_cli("predict", "--bundle", bundle, text), word)


def test_bad_options_predict(bundle, tmp_path):
    assert_refused(run_cli("predict", "--bundle", tmp_path / "none", "hallo"), "no such bundle")
    assert_refused(run_cli("predict", "--bundle", bundle, "--top-k", "0", "hallo"), "--top-k")
    assert_refused(run_cli("predict", "--bundle", bundle, "--batch-size", "0", "hallo"),
                   "--batch-size")
    assert_refused(run_cli("predict", "--bundle", bundle, "--expect-digest", "a",
                           "--expect-digest", "b", "hallo"), "one --expect-digest per --bundle")
    f = tmp_path / "t.txt"
    f.write_text("hallo\n")
    assert_refused(run_cli("predict", "--bundle", bundle, "--file", f, "hallo"), "not both")


@pytest.mark.parametrize("args,word", [
    (["--port", "99999"], "--port"),
    (["--port", "0"], "--port"),
    (["--port", "-5"], "--port"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-1"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--timeout", "inf"], "--timeout"),
    (["--max-chars", "0"], "--max-chars"),
    (["--max-queue", "0"], "--max-queue"),
    (["--host", "no-such-host.invalid"], "--host"),
    (["--host", ""], "--host"),
    (["--host", "256.1.1.1"], "--host"),
    (["--expect-digest", "x", "--expect-digest", "y"], "--expect-digest"),
])
def test_bad_serve_options_fail_fast(bundle, args, word):
    t0 = time.monotonic()
    r = run_cli("serve", "--bundle", bundle, *args, timeout=30)
    assert_refused(r, word)
    assert time.monotonic() - t0 < 20


def test_serve_port_in_use(bundle):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_refused(run_cli("serve", "--bundle", bundle, "--port", port, timeout=30),
                       "cannot listen")


def test_serve_bundle_missing_before_loading(tmp_path):
    assert_refused(run_cli("serve", "--bundle", tmp_path / "none"), "no such bundle")


def test_usage_errors_exit_2_without_traceback(bundle):
    r = run_cli("serve", "--bundle", bundle, "--port", "abc")
    assert r.returncode == 2 and b"Traceback" not in r.stderr


def test_expect_digest(bundle):
    from learnerprobe.bundles.integrity import bundle_digest

    digest = bundle_digest(bundle)
    r = run_cli("predict", "--bundle", bundle, "--expect-digest", digest, "--json", "Ich bin hier")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["l1"]["label"] in ("de", "it")
    r = run_cli("predict", "--bundle", bundle, "--expect-digest", "sha256:" + digest.upper(),
                "--allow-version-mismatch", "Ich bin hier")
    assert r.returncode == 0, r.stderr
    assert_refused(run_cli("predict", "--bundle", bundle, "--expect-digest", "0" * 64, "hallo"),
                   "digest")
    for bad in ["abc", "g" * 64, "0" * 63, "[bold]x"]:
        assert_refused(run_cli("predict", "--bundle", bundle, "--expect-digest", bad, "hallo"),
                       "not a sha256 digest")
    assert_refused(run_cli("serve", "--bundle", bundle, "--port", "0", "--expect-digest", "x"),
                   "--port")  # port checked first, before the digest and the bundle


def test_serve_docs_needs_local_assets(bundle):
    code = ("import sys; sys.modules['fastapi_offline'] = None; "
            "sys.argv = ['learnerprobe', 'serve', '--docs', '--bundle', sys.argv[1]]; "
            "from learnerprobe.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, timeout=60)
    assert_refused(r, "fastapi-offline")

"""The served app on loopback (127.0.0.1 only): bounded load and oversized-body tests that watch the
server's memory, and real-browser tests (Debian's headless Chromium) of the page: results, the
masked text with emoji, a hostile bundle whose strings carry HTML/script payloads, and crafted API
responses (via request interception) that would inject HTML into a page using innerHTML."""

import concurrent.futures as cf
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.bundles import LABELS, TEXTS, make_bundle

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MiB = 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(*bundles, extra=()):
    port = _free_port()
    args = [sys.executable, "-m", "learnerprobe.cli", "serve", "--port", str(port), *extra]
    for b in bundles:
        args += ["--bundle", str(b)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("server exited: " + (proc.stderr.read() if proc.stderr else ""))
        try:
            if httpx.get(url + "/api/bundles", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not start: " + (proc.stderr.read() if proc.stderr else ""))


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("bundle"))
    url, proc = _start_server(path)
    yield url, proc
    _stop(proc)


# --- load and memory ------------------------------------------------------------------------

def test_load_16_clients_no_5xx_flat_rss(server):
    """16 concurrent keep-alive clients for a bounded 15 s: every answer 200, labels right, RSS
    flat after a warm-up round."""
    url, proc = server
    texts = [("Ich wohne seit zwei Jahren in der Stadt", "de"), ("Io abito a Milano con mia sorella", "it")]

    def client_loop(seconds, worker):
        codes, wrong = [], 0
        end = time.monotonic() + seconds
        with httpx.Client(timeout=30) as c:
            i = 0
            while time.monotonic() < end:
                text, want = texts[(worker + i) % 2]
                r = c.post(url + "/api/predict", json={"text": f"{text} {i}"})
                codes.append(r.status_code)
                if r.status_code == 200 and r.json()["l1"]["label"] != want:
                    wrong += 1
                i += 1
        return codes, wrong

    rss = psutil.Process(proc.pid)
    with cf.ThreadPoolExecutor(16) as ex:  # warm-up round
        list(ex.map(lambda w: client_loop(3, w), range(16)))
    before = rss.memory_info().rss
    with cf.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(lambda w: client_loop(15, w), range(16)))
    after = rss.memory_info().rss
    codes = [c for cs, _ in results for c in cs]
    assert len(codes) > 100, "too few requests in 15 s"
    assert all(c == 200 for c in codes), sorted(set(codes))
    assert sum(w for _, w in results) == 0
    assert after - before < 50 * MiB, f"server RSS grew by {(after - before) / MiB:.1f} MiB"


def _post_outcome(url, **kw):
    try:
        with httpx.Client(timeout=60) as c:
            r = c.post(url + "/api/predict", headers={"content-type": "application/json"}, **kw)
        return r.status_code
    except httpx.TransportError as e:  # the server closed the connection mid-upload: fine
        return type(e).__name__


def test_oversized_bodies_are_not_buffered(server):
    """8 parallel 20 MB uploads (Content-Length) and 4 chunked ones: 413 or a closed connection,
    never a 5xx, and the server's memory hardly moves (the bodies are refused unread)."""
    url, proc = server
    rss = psutil.Process(proc.pid)
    before = rss.memory_info().rss
    blob = b'{"text": "' + b"x" * (20 * MiB) + b'"}'

    def chunked():
        for _ in range(20):
            yield b"x" * MiB

    with cf.ThreadPoolExecutor(12) as ex:
        futs = [ex.submit(_post_outcome, url, content=blob) for _ in range(8)]
        futs += [ex.submit(_post_outcome, url, content=chunked()) for _ in range(4)]
        outcomes = [f.result(timeout=120) for f in futs]
    after = rss.memory_info().rss
    assert all(o == 413 or isinstance(o, str) for o in outcomes), outcomes
    assert 413 in outcomes, outcomes
    assert after - before < 50 * MiB, f"server RSS grew by {(after - before) / MiB:.1f} MiB"
    assert httpx.post(url + "/api/predict", json={"text": "Ich bin hier"}).status_code == 200


def test_malformed_requests_live_get_4xx_and_keep_the_connection(server):
    """The inputs that used to give a 500 and drop the connection: lone surrogate, 1e999, 1e400."""
    url, _ = server
    cases = [b'{"text": "\\ud800"}', b'{"text": 1e999}', b'{"text": "a", "top_k": 1e400}',
             b'{"text": "\\u200b\\u200b"}', b'{"text": "a\\u0000b"}', b'{"texts": [NaN]}',
             b"\xff\xfe\x00", b"[" * 3000 + b"]" * 3000]
    with httpx.Client(timeout=30) as c:
        for body in cases:
            r = c.post(url + "/api/predict", content=body,
                       headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text)
            assert "detail" in r.json()
            assert r.headers.get("connection") != "close"
        assert c.post(url + "/api/predict", json={"text": "Ich bin hier"}).status_code == 200


def _raw_response(port: int, request: bytes, trickle: bytes = b"") -> tuple[bytes, float]:
    """Send `request`, then `trickle` one byte per 0.25 s; the whole answer and its delay."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        t0 = time.monotonic()
        for ch in trickle:
            try:
                s.sendall(bytes([ch]))
            except OSError:
                break
            time.sleep(0.25)
            if time.monotonic() - t0 > 3:
                break
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data, time.monotonic() - t0


def test_serve_cli_body_timeout_and_json_400(tmp_path):
    """`serve --body-timeout 1`: a trickled body gets a JSON 408 after ~1 s (not held for the
    whole trickle), and a Content-Length uvicorn's parser refuses gets a JSON 400."""
    path, _ = make_bundle(tmp_path)
    url, proc = _start_server(path, extra=["--body-timeout", "1"])
    port = int(url.rsplit(":", 1)[1])
    try:
        head = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 40\r\n\r\n")
        data, took = _raw_response(port, head, b'{"text": "Ich wohne seit zwei Jahren"}')
        assert data.startswith(b"HTTP/1.1 408") and b"application/json" in data, data[:300]
        assert took < 3
        data, _ = _raw_response(port, head.replace(b"40", b"x4"))
        assert data.startswith(b"HTTP/1.1 400") and b"application/json" in data, data[:300]
        assert json.loads(data.partition(b"\r\n\r\n")[2])["detail"]
    finally:
        _stop(proc)


# --- browser --------------------------------------------------------------------------------

def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0:  # the test setup installs it where missing
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed and could not be installed (apt-get install chromium)")
    return exe


class Browser:
    """A headless page that records console errors, page errors and any non-loopback request."""

    def __init__(self, pw):
        self.browser = pw.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        self.page = self.browser.new_page()
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def guard(route):
            if route.request.url.startswith("http://127.0.0.1:"):
                route.continue_()
            else:  # offline page: nothing may leave the machine
                self.external.append(route.request.url)
                route.abort()

        self.page.route("**/*", guard)

    def close(self):
        self.browser.close()


@pytest.fixture()
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = Browser(pw)
        yield b
        b.close()


def test_browser_page(server, browser):
    url, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.page
    page.goto(url + "/")
    page.fill("#text", "Ich wohne seit zwei Jahren in einer kleinen Wohnung in der Stadt.")
    page.click("#submit")
    page.wait_for_selector("#l1-chart .bar-row", timeout=20_000)
    bars = page.locator("#l1-chart .bar-row").all_inner_texts()
    assert bars and bars[0].startswith("de")
    assert "ngram" in page.inner_text("#cards")
    page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 1000
    assert browser.errors == [], browser.errors  # no CSP violation for our own script/style
    assert browser.external == []


@pytest.fixture(scope="module")
def trust_server(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("trust"), applicability=True)
    url, proc = _start_server(path)
    yield url, proc
    _stop(proc)


def test_browser_page_shows_set_and_warnings(trust_server, browser):
    """The page shows the prediction set with its coverage and the flags that fired (an
    English text to a bundle trained on German and Italian: the language warning)."""
    url, _ = trust_server
    page = browser.page
    page.goto(url + "/")
    page.fill("#text", "I would like to ask a question about the flat please")
    page.click("#submit")
    page.wait_for_selector("#l1-flags li", timeout=20_000)
    assert page.inner_text("#l1-set").startswith("Set at 90 % coverage: {")
    warnings = page.locator("#l1-flags li").all_inner_texts()
    assert any(w.startswith("Language: the text looks like en") for w in warnings), warnings
    assert "Calibration: validation ECE" in page.inner_text("#cards")
    page.fill("#text", "Ich habe eine Frage zu der Wohnung bitte")
    page.click("#submit")
    for _ in range(100):  # the page's CSP forbids wait_for_function's eval: poll instead
        if page.locator("#l1-flags li").count() == 0:
            break
        page.wait_for_timeout(200)
    assert page.locator("#l1-flags li").count() == 0
    assert browser.errors == [], browser.errors


XSS = [
    '<img src=x onerror="window.__xss=1;document.title=\'pwned\'">',
    "<script>window.__xss=2;document.title='pwned'</script>",
    '"><svg onload="window.__xss=3">',
    "<iframe srcdoc=\"<script>parent.__xss=4</script>\"></iframe>",
]


def _hostile_bundle(tmp_path):
    """A German masking bundle whose every string field carries a payload; fields a stricter
    manifest schema refuses fall back to plain values, one at a time."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.errors import LearnerprobeError
    from learnerprobe.predict import Predictor

    labels = {"de": XSS[0], "it": XSS[1]}
    est = make_pipeline(TfidfVectorizer(analyzer="char_wb"), LogisticRegression()).fit(
        TEXTS, [labels[x] for x in LABELS])
    fields = {
        "method": XSS[2],
        "training_data": {"corpora": [XSS[3], XSS[0]], "n_texts": len(TEXTS)},
        "metrics": {"validation": {XSS[1]: {"value": 0.5}, "qwk": 0.61}},
        "card": {"limits": XSS[0] + " " + XSS[1]},
    }
    plain = {"method": "ngram", "training_data": {"corpora": ["toy"], "n_texts": len(TEXTS)},
             "metrics": {}, "card": {"limits": "toy"}}
    for drop in [None, *fields]:
        if drop is not None:
            fields[drop] = plain[drop]
        try:
            path = save_bundle(tmp_path / "hostile", task="l1", labels=list(est.classes_),
                               estimator=est, **fields,
                               preprocessing={"features": "text", "mask": True, "language": "de"})
            Predictor.load(path)
            return path, fields
        except LearnerprobeError:
            continue
    pytest.fail("no hostile bundle could be loaded")


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    path, fields = _hostile_bundle(tmp_path_factory.mktemp("hostile"))
    url, proc = _start_server(path)
    yield url, fields
    _stop(proc)


def _assert_not_injected(page):
    assert page.evaluate("window.__xss") is None
    assert page.title() == "learnerprobe"
    assert page.locator("#cards img, #cards script, #cards svg, #cards iframe").count() == 0
    assert page.locator("#result img, #result script, #result svg, #result iframe").count() == 0


def test_browser_hostile_bundle_shows_payloads_as_text(hostile_server, browser):
    url, fields = hostile_server
    page = browser.page
    page.goto(url + "/")
    page.wait_for_selector("#cards .card", timeout=20_000)
    page.fill("#text", "Ich wohne seit zwei Jahren in der Stadt.")
    page.click("#submit")
    page.wait_for_selector("#l1-chart .bar-row", timeout=20_000)
    page.wait_for_timeout(300)  # let any injected handler fire
    _assert_not_injected(page)
    cards = page.inner_text("#cards")
    assert XSS[0] in cards and XSS[1] in cards  # labels and card limits, literally
    if fields["method"] == XSS[2]:
        assert XSS[2] in cards
    if fields["training_data"]["corpora"][0] == XSS[3]:
        assert XSS[3] in cards
    chart = page.inner_text("#l1-chart")
    assert XSS[0] in chart and XSS[1] in chart
    assert browser.errors == [], browser.errors
    assert browser.external == []


def test_browser_emoji_before_masked_name(hostile_server, browser):
    """Span offsets are code points; the page must not cut an emoji or shift the <mark>."""
    url, _ = hostile_server
    page = browser.page
    page.goto(url + "/")
    for text, want in [("😀 Ich komme aus Polen.", "😀 Ich komme aus Land."),
                       ("👩‍👩‍👧😀 Wir fahren nach Polen, 🇩🇪 ja.", "👩‍👩‍👧😀 Wir fahren nach Land, 🇩🇪 ja."),
                       ("Cafe\u0301 in Polen", "Caf\u00e9 in Land")]:
        page.fill("#text", text)
        page.evaluate("document.getElementById('masked').replaceChildren()")
        page.click("#submit")
        page.wait_for_selector("#masked mark", timeout=20_000)
        assert page.locator("#masked mark").all_inner_texts() == ["Land"]
        assert page.inner_text("#masked") == want
        assert page.get_attribute("#masked mark", "title") == "Country: Polen"
    assert browser.errors == [], browser.errors


CRAFTED_BUNDLES = {
    "l1": {
        "task": "l1", "method": XSS[2], "labels": [XSS[0], 7, None, {"x": XSS[1]}],
        "model": {"name": XSS[1]}, "layer": XSS[0],
        "training_data": {"corpora": XSS[3], "n_texts": XSS[1]},
        "metrics": {"validation": {XSS[0]: XSS[1], "acc": {"value": XSS[2]}, "f1": 0.5}},
        "card": {"limits": {"nested": XSS[0]}},
    },
    XSS[1]: "not an object",
}
# Well-formed apart from HTML where numbers belong: the old innerHTML page ran this payload.
CRAFTED_PLAIN = {"l1": {"task": "l1", "method": "ngram", "labels": ["de", "it"],
                        "model": {"name": "m"}, "layer": XSS[0],
                        "training_data": {"corpora": ["toy"], "n_texts": XSS[1]},
                        "metrics": {"validation": {"qwk": XSS[2], "acc": {"value": XSS[3]}}},
                        "card": {"limits": "toy"}}}
CRAFTED_PREDICTION = {
    "cefr": {"label": XSS[0], "score": XSS[1], "probabilities": {XSS[2]: "0.5", XSS[3]: 0.5}},
    "l1": {"label": XSS[1], "probabilities": {XSS[0]: 0.9, XSS[1]: None}},
    "masked": {"source": "ab", "text": XSS[0],
               "spans": [{"start": 0, "end": 1, "original": XSS[1], "replacement": XSS[0],
                          "category": XSS[2]},
                         {"start": "1", "end": 99, "replacement": XSS[1]}]},
}


@pytest.mark.parametrize("manifests", [CRAFTED_PLAIN, CRAFTED_BUNDLES], ids=["plain", "malformed"])
def test_browser_crafted_api_responses(server, browser, manifests):
    """Manifests or predictions that bypassed validation (HTML in n_texts, layer, metric values,
    labels, scores, spans; wrong types) are still written as text by the page's script."""
    url, _ = server
    page = browser.page

    def fake(route, body):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route(url + "/api/bundles", lambda r: fake(r, manifests))
    page.route(url + "/api/predict", lambda r: fake(r, CRAFTED_PREDICTION))
    page.goto(url + "/")
    page.wait_for_selector("#cards .card", timeout=20_000)
    page.fill("#text", "ab")
    page.click("#submit")
    page.wait_for_selector("#masked mark", timeout=20_000)
    page.wait_for_timeout(300)
    _assert_not_injected(page)
    cards = page.inner_text("#cards")
    for s in XSS if manifests is CRAFTED_BUNDLES else XSS[:2]:
        assert s in cards, s
    assert XSS[0] in page.inner_text("#cefr-level")
    assert XSS[2] in page.inner_text("#cefr-chart")
    assert page.locator("#masked mark").all_inner_texts() == [XSS[0]]
    assert page.inner_text("#masked") == XSS[0] + "b"
    assert browser.errors == [], browser.errors
    assert browser.external == []


def test_no_external_urls_in_page_assets(server):
    import re

    url, _ = server
    for path in ["/", "/static/page.js", "/static/page.css"]:
        r = httpx.get(url + path)
        assert r.status_code == 200
        assert "content-security-policy" in r.headers
        assert not re.findall(r"(?i)\b(?:https?:)?//[^\s'\"<>]+", r.text), path


def test_browser_docs_offline(tmp_path, browser):
    """`serve --docs`: Swagger UI from the locally installed fastapi-offline files, under the CSP,
    no request leaving the machine."""
    pytest.importorskip("fastapi_offline")
    path, _ = make_bundle(tmp_path)
    url, proc = _start_server(path, extra=["--docs"])
    try:
        page = browser.page
        page.goto(url + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/predict" in paths and "/api/bundles" in paths
        assert browser.errors == [], browser.errors
        assert browser.external == []
        assert httpx.get(url + "/redoc").status_code == 404
    finally:
        _stop(proc)

"""The web API: every bad input gets a clear 4xx; good input the documented JSON."""

import pytest
from fastapi.testclient import TestClient

from learnerprobe.predict import Predictor
from learnerprobe.serve.app import create_app
from tests.helpers.bundles import make_bundle
from tests.helpers.serve import StubPredictor

JSON = {"content-type": "application/json"}


@pytest.fixture()
def client(tmp_path):
    path, _ = make_bundle(tmp_path)
    return TestClient(create_app(Predictor.load(path), max_chars=1000, timeout_s=10))


def test_predict_ok(client):
    r = client.post("/api/predict", json={"text": "Ich wohne in Berlin", "top_k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["l1"]["label"] == "de"
    assert abs(sum(body["l1"]["probabilities"].values()) - 1) < 1e-4
    assert body["masked"]["text"] == "Ich wohne in Berlin"
    r = client.post("/api/predict", json={"texts": ["Io abito a Roma", "Ich bin hier"]})
    assert [x["l1"]["label"] for x in r.json()["results"]] == ["it", "de"]


def test_bundles_and_docs(client):
    assert client.get("/api/bundles").json()["l1"]["method"] == "ngram"
    assert client.get("/openapi.json").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text


@pytest.mark.parametrize(
    "kwargs,status",
    [
        ({"json": {"text": ""}}, 422),
        ({"json": {"text": "   \n"}}, 422),
        ({"json": {"text": "x" * 1001}}, 413),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"json": {"text": 5}}, 422),
        ({"json": {"texts": "abc"}}, 422),
        ({"json": {"texts": []}}, 422),
        ({"json": {}}, 422),
        ({"json": {"text": "a", "unknown": 1}}, 422),
        ({"content": b'{"text": "\xff\xfe bad"}', "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"x" * 20_000, "headers": {"content-type": "application/json"}}, 413),
        # lone surrogates, infinities, NaN, zero-width/control-only and binary texts
        ({"content": b'{"text": "\\ud800"}', "headers": JSON}, 422),
        ({"content": b'{"texts": ["ok", "a\\udfff b"]}', "headers": JSON}, 422),
        ({"content": b'{"text": 1e999}', "headers": JSON}, 422),
        ({"content": b'{"text": "a", "top_k": 1e400}', "headers": JSON}, 422),
        ({"content": b'{"text": "a", "top_k": NaN}', "headers": JSON}, 422),
        ({"content": b'{"text": "a", "top_k": -Infinity}', "headers": JSON}, 422),
        ({"content": b'{"text": "a", "top_k": 1' + b"0" * 400 + b'}', "headers": JSON}, 422),
        ({"content": b'{"\\ud800": 1}', "headers": JSON}, 422),
        ({"content": b'{"text": "a", "\\ud800x": 1e999}', "headers": JSON}, 422),
        ({"json": {"text": "\u200b\u200c\u2060"}}, 422),
        ({"json": {"text": "\x01\x02"}}, 422),
        ({"json": {"text": "Ich\x00bin"}}, 422),
        ({"json": {"texts": ["gut", "\ufeff"]}}, 422),
        ({"content": b"[" * 3000 + b"]" * 3000, "headers": JSON}, 422),  # malformed, as {not json
        ({"content": b'{"text": "hallo"}', "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b'{"text": "hallo"}', "headers": {"content-length": "abc"}}, 400),
    ],
)
def test_bad_input(client, kwargs, status):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    assert r.headers["content-type"].startswith("application/json")


def test_timeout_gives_504(tmp_path):
    import time

    path, _ = make_bundle(tmp_path)
    pred = Predictor.load(path)
    slow = pred.predict

    def sleepy(texts, top_k=None):
        time.sleep(1.0)
        return slow(texts, top_k)

    pred.predict = sleepy
    c = TestClient(create_app(pred, timeout_s=0.2))
    r = c.post("/api/predict", json={"text": "Ich bin hier"})
    assert r.status_code == 504


def test_security_headers_everywhere(client):
    for method, path in [("GET", "/"), ("GET", "/static/page.js"), ("GET", "/api/bundles"),
                         ("GET", "/openapi.json"), ("GET", "/nope"), ("POST", "/api/predict")]:
        r = client.request(method, path, json={"text": ""} if method == "POST" else None)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp, path
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_page_has_no_inline_code_and_no_external_urls(client):
    import re

    html = client.get("/").text
    assert "<script>" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert 'src="/static/page.js"' in html
    js = client.get("/static/page.js")
    css = client.get("/static/page.css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert css.headers["content-type"].startswith("text/css")
    assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text
    assert "document.write" not in js.text and "eval(" not in js.text
    for text in (html, js.text, css.text):
        assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), "external URL"
        assert "@import" not in text
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/app.py").status_code == 404


def test_docs_off_by_default_openapi_kept(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404
    spec = client.get("/openapi.json").json()
    assert "/api/predict" in spec["paths"]


def test_docs_served_locally_when_asked():
    import fastapi_offline  # noqa: F401  (dev extra; a missing package fails, never skips)
    c = TestClient(create_app(StubPredictor(), docs=True))
    html = c.get("/docs").text
    assert "http" not in html and "/docs/assets/swagger-ui-bundle.js" in html
    js = c.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert c.get("/docs/assets/docs.js").status_code == 200
    assert c.get("/docs/assets/index.html").status_code == 404
    assert "script-src 'self';" in c.get("/docs").headers["content-security-policy"]
    assert c.get("/redoc").status_code == 404


def test_docs_refused_without_local_assets(monkeypatch):
    import learnerprobe.serve.app as serve_app
    from learnerprobe.errors import LearnerprobeError

    monkeypatch.setattr(serve_app, "_swagger_assets", lambda: None)
    with pytest.raises(LearnerprobeError, match="fastapi-offline"):
        create_app(StubPredictor(), docs=True)


def _run_middleware(headers, chunks, max_body=10_000):
    """Drive the pure-ASGI body guard with a receive() that streams `chunks`; count the reads."""
    import asyncio

    from learnerprobe.serve.app import _Hardening

    reads, sent, seen = [], [], []

    async def inner(scope, receive, send):  # the wrapped app: echo the body size
        msg = await receive()
        seen.append(len(msg["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        i = len(reads)
        reads.append(1)
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "headers": headers}
    asyncio.run(_Hardening(inner, max_body=max_body)(scope, receive, send))
    return sent[0]["status"], len(reads), seen, dict(sent[0]["headers"])


def test_chunked_body_over_limit_is_cut_off():
    """A body with no Content-Length is counted while it streams: 413 once it crosses the limit."""
    status, reads, seen, headers = _run_middleware([], [b"x" * 1024] * 1000)
    assert status == 413 and reads == 10 and not seen  # stopped at the 10th KiB, app never ran
    assert headers[b"connection"] == b"close"
    assert b"content-security-policy" in headers
    status, reads, seen, _ = _run_middleware([], [b"{}"] * 3)
    assert status == 200 and seen == [6]


def test_content_length_over_limit_refused_unread():
    status, reads, seen, _ = _run_middleware([(b"content-length", b"50000000")], [b"x"])
    assert status == 413 and reads == 0 and not seen
    for bad in (b"-1", b"1e3", b"", b"99999999999999999999999"):
        status, reads, _, _ = _run_middleware([(b"content-length", bad)], [b"x"])
        assert status == 400 and reads == 0, bad
    status, _, _, _ = _run_middleware([(b"content-length", b"1"), (b"content-length", b"2")], [b"x"])
    assert status == 400


def test_timeout_stops_the_work():
    """After a 504 the worker stops at the next chunk instead of scoring every text."""
    import time

    stub = StubPredictor(delay=0.1)
    app = create_app(stub, timeout_s=0.25, chunk_size=2)
    c = TestClient(app)
    t0 = time.monotonic()
    r = c.post("/api/predict", json={"texts": [f"Text {i}" for i in range(40)]})  # 20 chunks
    assert r.status_code == 504 and "detail" in r.json()
    assert time.monotonic() - t0 < 1.0
    time.sleep(0.4)
    calls = stub.calls
    assert calls <= 5, f"{calls} chunks scored after the timeout"
    time.sleep(0.3)
    assert stub.calls == calls, "the worker is still running"
    assert app.state.in_flight() == 0


def test_queued_request_never_starts_after_timeout():
    import threading

    gate = threading.Event()
    stub = StubPredictor(gate=gate)
    app = create_app(stub, timeout_s=0.3, workers=1)
    c = TestClient(app)
    with cf_pool(2) as ex:
        futs = [ex.submit(c.post, "/api/predict", json={"text": f"Text {i}"}) for i in range(2)]
        codes = sorted(f.result().status_code for f in futs)
    assert codes == [504, 504]
    gate.set()
    import time

    time.sleep(0.3)
    assert stub.calls == 1, "the queued request ran after its 504"
    assert app.state.in_flight() == 0


def cf_pool(n):
    import concurrent.futures as cf

    return cf.ThreadPoolExecutor(n)


def test_queue_full_gives_503_with_retry_after():
    import threading
    import time

    gate = threading.Event()
    stub = StubPredictor(gate=gate)
    app = create_app(stub, timeout_s=5, max_queue=2)
    c = TestClient(app)
    with cf_pool(2) as ex:
        futs = [ex.submit(c.post, "/api/predict", json={"text": f"Text {i}"}) for i in range(2)]
        deadline = time.monotonic() + 5
        while app.state.in_flight() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.post("/api/predict", json={"text": "one too many"})
        assert r.status_code == 503 and "busy" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        gate.set()
        assert [f.result().status_code for f in futs] == [200, 200]
    assert app.state.in_flight() == 0
    assert c.post("/api/predict", json={"text": "now there is room"}).status_code == 200


def test_prediction_errors_are_json():
    from learnerprobe.errors import LearnerprobeError
    from learnerprobe.textinput import TextInputError

    class Failing(StubPredictor):
        def __init__(self, exc):
            super().__init__()
            self.exc = exc

        def predict(self, texts, top_k=None):
            raise self.exc

    for exc, status in [(TextInputError("text 1: bad"), 422), (LearnerprobeError("no"), 422),
                        (RuntimeError("bug \ud800"), 500)]:
        c = TestClient(create_app(Failing(exc)), raise_server_exceptions=False)
        r = c.post("/api/predict", json={"text": "Ich bin hier"})
        assert r.status_code == status and "detail" in r.json(), (exc, r.text)

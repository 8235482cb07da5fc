"""The web API's input handling: characters counted after JSON decoding, duplicate keys, strict
`top_k`, and, against a real uvicorn server on 127.0.0.1 (in a thread, a stub predictor), the
body read timeout and JSON answers to requests uvicorn's parser refuses."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient

from learnerprobe.serve.app import JsonErrorH11Protocol, create_app
from learnerprobe.textinput import MAX_CHARS
from tests.helpers.serve import StubPredictor

JSON = {"content-type": "application/json"}


@pytest.fixture()
def client():
    return TestClient(create_app(StubPredictor(), timeout_s=10))


def _escaped(obj) -> bytes:
    """The body as requests' `json=` and `json.dumps` send it: every non-ASCII char escaped."""
    return json.dumps(obj).encode("ascii")


@pytest.mark.parametrize("char,n", [("中", 15_000), ("中", MAX_CHARS), ("😀", MAX_CHARS)])
def test_escaped_text_under_the_character_limit_is_accepted(client, char, n):
    """15,000 CJK characters as \\uXXXX are 90 kB: within the limit of 20,000 characters."""
    r = client.post("/api/predict", content=_escaped({"text": char * n}), headers=JSON)
    assert r.status_code == 200, r.text[:200]


def test_character_limit_counts_decoded_characters(client):
    r = client.post("/api/predict", content=_escaped({"text": "中" * (MAX_CHARS + 1)}),
                    headers=JSON)
    assert r.status_code == 413 and f"over {MAX_CHARS} characters" in r.json()["detail"]
    r = client.post("/api/predict", json={"texts": ["gut", "a" * (MAX_CHARS + 1)]})
    assert r.status_code == 413 and "text 2" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    b'{"text": "harmlos", "text": "anders"}',
    b'{"texts": ["a"], "top_k": 1, "top_k": 2}',
    b'{"text": "a", "\\u0074ext": "b"}',  # the same key, one of them escaped
])
def test_duplicate_json_keys_refused(client, body):
    r = client.post("/api/predict", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "duplicate key" in json.dumps(r.json())


@pytest.mark.parametrize("top_k", ["3", True, 2.0, 0, 101])
def test_top_k_is_a_strict_integer(client, top_k):
    r = client.post("/api/predict", json={"text": "Ich wohne hier", "top_k": top_k})
    assert r.status_code == 422, r.text


def test_top_k_integer_accepted(client):
    assert client.post("/api/predict", json={"text": "Ich wohne hier", "top_k": 2}).status_code == 200


def test_invisible_only_text_refused(client):
    for t in ("\u3164\u3164", "\u2800", "\u0301\ufe0f"):
        r = client.post("/api/predict", json={"text": t})
        assert r.status_code == 422 and "empty" in r.json()["detail"]


# --- a live server on loopback -------------------------------------------------------------------

@pytest.fixture()
def live():
    """uvicorn serving the app (body timeout 1 s) as `serve` runs it, on a free loopback port."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(StubPredictor(), body_timeout_s=1.0)
    server = uvicorn.Server(uvicorn.Config(app, http=JsonErrorH11Protocol, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)
    sock.close()


def _response(s: socket.socket, limit_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response until the server closes the connection."""
    s.settimeout(limit_s)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(x.lower().split(": ", 1) for x in lines[1:] if ": " in x)
    return int(lines[0].split()[1]), headers, body


def test_trickled_body_gets_408_within_the_body_timeout(live):
    """1 byte every 0.2 s of a 40-byte body: answered 408 (JSON) and closed after ~1 s."""
    with socket.create_connection(("127.0.0.1", live)) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40\r\n\r\n")
        t0 = time.monotonic()
        status = None
        for ch in b'{"text": "Ich wohne seit zwei Jahren"}':
            try:
                s.sendall(bytes([ch]))
            except OSError:  # the server closed the connection
                break
            time.sleep(0.2)
            if time.monotonic() - t0 > 1.5:
                break
        status, headers, body = _response(s)
        took = time.monotonic() - t0
    assert status == 408 and headers["content-type"] == "application/json"
    assert "within 1 s" in json.loads(body)["detail"]
    assert took < 4


def test_prompt_body_is_unaffected(live):
    with socket.create_connection(("127.0.0.1", live)) as s:
        body = b'{"text": "Ich wohne hier"}'
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        status, _, out = _response(s)
    assert status == 200 and json.loads(out)["l1"]["label"] == "de"


@pytest.mark.parametrize("length", [b"abc", b"-5", b"1, 2"])
def test_bad_content_length_gets_json_400(live, length):
    """uvicorn's parser refuses these before the app sees them; the answer is still JSON."""
    with socket.create_connection(("127.0.0.1", live)) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + length + b"\r\n\r\n{}")
        status, headers, body = _response(s)
    assert status == 400 and headers["content-type"] == "application/json"
    assert "Content-Length" in json.loads(body)["detail"]
    assert headers["x-content-type-options"] == "nosniff"

"""The web API: every bad input gets a clear 4xx; good input the documented JSON."""

import pytest
from fastapi.testclient import TestClient

from learnerprobe.predict import Predictor
from learnerprobe.serve.app import create_app
from tests.test_bundle_predict import make_bundle


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
        ({"content": b"x" * 10_000, "headers": {"content-type": "application/json"}}, 413),
    ],
)
def test_bad_input(client, kwargs, status):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


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

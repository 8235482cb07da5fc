"""Fuzzing the HTTP API: whatever arrives (random JSON, wrong types, infinities and NaN as raw JSON,
lone surrogates, deep nesting, invalid UTF-8, wrong content types, random paths and methods), the
answer is never a 5xx, and every error is JSON with a `detail`. Bounded: a few hundred examples,
a fast stub predictor, well under 30 s."""

import json
import unicodedata

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnerprobe.serve.app import create_app
from tests.helpers.serve import StubPredictor

SETTINGS = settings(
    max_examples=250, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "application/vnd.api+json", "text/plain", "text/html", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/octet-stream", None, "", "json", ";;;",
]
# Text with what breaks naive servers: lone surrogates, zero-width and bidi marks, NUL and other
# controls, combining marks, astral characters (emoji), and very long runs.
NASTY = st.sampled_from(["\ud800", "\udfff", "\u200b", "\u200d", "\ufeff", "\u202e", "\x00",
                         "\x1b", "\x7f", "\u0301", "😀", "👩‍👩‍👧", "\uffff", "\U0010ffff", "\r\n"])
TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.text(max_size=5), NASTY), max_size=12).map("".join),
    st.text(alphabet=st.characters(codec=None), max_size=20),
    st.integers(0, 3000).map(lambda n: "Wort " * n),
)
NUMBER = st.one_of(
    st.integers(), st.integers(-2**80, 2**80), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 100, 101, 2**63, -2**63 - 1, 1e308, -0.0]),
)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBER, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.one_of(TEXT, st.sampled_from(["text", "texts"])),
                                            inner, max_size=5)),
    max_leaves=20,
)
PREDICT_BODY = st.fixed_dictionaries(
    {},
    optional={"text": st.one_of(TEXT, JSON_VALUE), "texts": st.one_of(st.lists(TEXT, max_size=8),
                                                                       JSON_VALUE),
              "top_k": st.one_of(NUMBER, JSON_VALUE), "extra": JSON_VALUE},
)
RAW_JSON_TEXT = st.sampled_from([
    "1e999", "-1e999", "1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 4000, "-0",
    "0.1e-99999", "true", "null", '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"',
])


def _encode(obj, rng_ascii: bool, surrogatepass: bool) -> bytes:
    s = json.dumps(obj, ensure_ascii=rng_ascii)  # NaN/Infinity written raw, as Python does
    return s.encode("utf-8", "surrogatepass" if surrogatepass else "backslashreplace")


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind <= 2:  # a predict-like object
        return _encode(draw(PREDICT_BODY), draw(st.booleans()), draw(st.booleans()))
    if kind == 3:  # any JSON value
        return _encode(draw(JSON_VALUE), draw(st.booleans()), draw(st.booleans()))
    if kind == 4:  # raw number/escape tokens in a field
        field = draw(st.sampled_from(["text", "texts", "top_k"]))
        token = draw(RAW_JSON_TEXT)
        wrap = draw(st.sampled_from(["{}", "[{}]"]))
        value = wrap.format(token)
        return f'{{"{field}": {value}}}'.encode()
    if kind == 5:  # deep nesting
        n = draw(st.integers(1, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"text":[', "]}")]))
        return (opener * n + "1" + closer * n).encode()
    if kind == 6:  # arbitrary bytes, invalid UTF-8 included
        return draw(st.binary(max_size=600))
    return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")  # not JSON at all


PATHS = st.one_of(
    st.sampled_from(["/api/predict", "/api/bundles", "/", "/static/page.js", "/static/page.css",
                     "/openapi.json", "/docs", "/redoc", "/api/", "/api/predict/", "/static/",
                     "/static/..%2fapp.py", "/%ff", "/api/predict?text=1", "/index.html"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF,
                                   exclude_characters="/?#"), max_size=30).map(lambda s: "/" + s),
)


@pytest.fixture(scope="module")
def app():
    return create_app(StubPredictor(), max_chars=2000, timeout_s=5)


def _check(r, method: str) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400 and method != "HEAD":
        assert r.headers["content-type"].startswith("application/json"), r.headers
        body = r.json()
        assert isinstance(body, dict) and "detail" in body, body
    assert "content-security-policy" in r.headers


@SETTINGS
@given(body=bodies(), ctype=st.sampled_from(CONTENT_TYPES))
def test_fuzz_predict_bodies(app, body, ctype):
    c = TestClient(app, raise_server_exceptions=False)
    headers = {} if ctype is None else {"content-type": ctype}
    r = c.post("/api/predict", content=body, headers=headers)
    _check(r, "POST")
    if r.status_code == 200:
        out = r.json()
        assert "results" in out or "l1" in out


@settings(SETTINGS, max_examples=150)
@given(method=st.sampled_from(METHODS), path=PATHS, body=st.one_of(st.just(b""), bodies()),
       ctype=st.sampled_from(CONTENT_TYPES))
def test_fuzz_paths_and_methods(app, method, path, body, ctype):
    c = TestClient(app, raise_server_exceptions=False)
    headers = {} if ctype is None else {"content-type": ctype}
    r = c.request(method, path, content=body or None, headers=headers)
    _check(r, method)


def _schema_strategy(schema: dict, spec: dict, depth: int = 0):
    """Values for an OpenAPI schema: mostly well-typed with hostile contents, sometimes anything."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _schema_strategy(spec["components"]["schemas"][name], spec, depth)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([_schema_strategy(o, spec, depth) for o in options])
    kind = schema.get("type")
    if kind == "object" and depth < 3:
        props = {k: _schema_strategy(v, spec, depth + 1)
                 for k, v in schema.get("properties", {}).items()}
        return st.fixed_dictionaries({}, optional=props)
    if kind == "array" and depth < 3:
        return st.lists(_schema_strategy(schema.get("items", {}), spec, depth + 1), max_size=300)
    if kind == "string":
        return st.one_of(TEXT, JSON_VALUE)
    if kind == "integer":
        return st.one_of(NUMBER, st.integers(schema.get("minimum", 0) - 2,
                                             schema.get("maximum", 100) + 2))
    if kind == "null":
        return st.one_of(st.none(), JSON_VALUE)
    return JSON_VALUE


def _operations(app):
    spec = app.openapi()
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            schema = (op.get("requestBody", {}).get("content", {})
                      .get("application/json", {}).get("schema"))
            ops.append((method.upper(), path, schema))
    return spec, ops


def test_schema_lists_the_endpoints(app):
    _, ops = _operations(app)
    assert ("POST", "/api/predict") in [(m, p) for m, p, _ in ops]
    assert ("GET", "/api/bundles") in [(m, p) for m, p, _ in ops]


@st.composite
def schema_requests(draw, app):
    spec, ops = _operations(app)
    method, path, schema = draw(st.sampled_from(ops))
    body = draw(_schema_strategy(schema, spec)) if schema else draw(st.one_of(st.none(), JSON_VALUE))
    return method, path, body


@pytest.fixture(scope="module")
def schema_app():
    return create_app(StubPredictor(), max_chars=2000, timeout_s=5)


def test_fuzz_from_openapi_schema(schema_app):
    @settings(SETTINGS, max_examples=200)
    @given(req=schema_requests(schema_app), surrogatepass=st.booleans())
    def run(req, surrogatepass):
        method, path, body = req
        c = TestClient(schema_app, raise_server_exceptions=False)
        content = None if body is None else _encode(body, True, surrogatepass)
        r = c.request(method, path, content=content, headers={"content-type": "application/json"})
        _check(r, method)

    run()


def test_fuzz_real_predictor_with_masking(tmp_path):
    """The real toy bundle, with German masking on: arbitrary valid Unicode never gives a 5xx, and
    the masked spans always index `masked.source` (the text sent, NFC, in code points)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from learnerprobe.bundles.io import save_bundle
    from learnerprobe.predict import Predictor
    from tests.helpers.bundles import LABELS, TEXTS

    est = make_pipeline(TfidfVectorizer(analyzer="char_wb"), LogisticRegression()).fit(TEXTS, LABELS)
    path = save_bundle(tmp_path / "m", task="l1", method="ngram", labels=list(est.classes_),
                       estimator=est, preprocessing={"features": "text", "mask": True,
                                                     "language": "de"})
    c = TestClient(create_app(Predictor.load(path), max_chars=2000), raise_server_exceptions=False)
    words = st.sampled_from(["Ich", "komme", "aus", "Polen", "Berlin", "wohne", "in", "Italien",
                             "Deutschland", "Rom", "😀", "👩‍👩‍👧", "\u200b", "e\u0301", " ", "\n"])

    @settings(SETTINGS, max_examples=80)
    @given(parts=st.lists(st.one_of(words, st.text(max_size=6)), min_size=1, max_size=15))
    def run(parts):
        text = " ".join(parts)
        r = c.post("/api/predict", json={"text": text})
        _check(r, "POST")
        if r.status_code == 200:
            masked = r.json()["masked"]
            assert unicodedata.normalize("NFC", masked["source"]) == unicodedata.normalize("NFC", text)
            cps = list(masked["source"])
            for s in masked["spans"]:
                assert "".join(cps[s["start"]:s["end"]]) == s["original"]

    run()

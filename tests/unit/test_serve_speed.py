"""Quiet predict/serve, a warm server, one encoder forward shared by bundles, and batching of
concurrent requests (issue 20, parts 5, 7, 8)."""

import logging
import threading
import time
import warnings

import pytest
from fastapi.testclient import TestClient

from learnerprobe import predict as predict_mod
from learnerprobe.predict import Predictor
from learnerprobe.serve.app import create_app
from learnerprobe.serve.batching import Cancelled, MicroBatcher
from tests.helpers.bundles import make_bundle, make_hidden_bundle
from tests.helpers.cli import run_main
from tests.helpers.serve import StubPredictor


# --------------------------------------------------------------------------- quiet
def _noisy_load_model(real):
    """The real loader, plus the chatter transformers and torch print while loading."""

    def load(*a, **k):
        from transformers.utils import logging as tl

        for _ in tl.tqdm(range(3), desc="Loading weights"):
            pass
        tl.get_logger("transformers.modeling_utils").warning("Some weights were not used")
        warnings.warn_explicit("torch says something", UserWarning, "torch/nn/x.py", 1,
                               module="torch.nn.x")
        return real(*a, **k)

    return load


@pytest.mark.parametrize("verbose", [False, True])
def test_predict_hides_third_party_chatter_unless_verbose(tmp_path, monkeypatch, capfd, verbose):
    from transformers.utils import logging as tl

    path = make_hidden_bundle(tmp_path)
    monkeypatch.setattr(predict_mod, "load_model", _noisy_load_model(predict_mod.load_model))
    args = ["predict", "--bundle", path, "--encoder", "torch", "Ich wohne in Berlin."]
    before = tl.get_verbosity()  # other tests in the process may have lowered it
    tl.set_verbosity_warning()  # transformers' default: the chatter is on unless we hide it
    # transformers' own stderr handler may hold a stream of an earlier test's capture, so its
    # log lines are collected here as records (a record exists only if the level lets it out)
    logged: list[str] = []
    collect = logging.Handler()
    collect.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("transformers").addHandler(collect)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, out, err = run_main(args + (["--verbose"] if verbose else []), capfd)
    finally:
        tl.set_verbosity(before)
        logging.getLogger("transformers").removeHandler(collect)
    assert code == 0 and "cefr:" in out
    err += "".join(str(w.message) for w in caught)  # pytest records warnings instead of printing
    err += "".join(logged)
    chatter = ("Loading weights", "Some weights were not used", "torch says something")
    if verbose:  # the test can fail: the chatter is there to be hidden
        assert all(c in err for c in chatter), err
    else:
        assert not any(c in err for c in chatter), err


def test_quiet_keeps_our_own_warnings_and_restores_settings():
    from transformers.utils import logging as tl

    from learnerprobe.models.quiet import quiet_third_party

    bars = tl.is_progress_bar_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_third_party():
            warnings.warn_explicit("ours", UserWarning, "learnerprobe/bundles/manifest.py", 1,
                                   module="learnerprobe.bundles.manifest")
            warnings.warn_explicit("theirs", UserWarning, "sklearn/x.py", 1, module="sklearn.x")
            assert not tl.is_progress_bar_enabled()
    assert [str(w.message) for w in caught] == ["ours"]
    assert tl.is_progress_bar_enabled() == bars


# --------------------------------------------------------------------------- warm server
def test_warm_loads_the_encoder_so_the_first_request_loads_no_model(tmp_path, monkeypatch):
    pred = Predictor.load(make_hidden_bundle(tmp_path), encoder="torch")
    assert pred.engines["cefr"]["encoder"] is None  # lazily loaded until warmed
    pred.warm()
    assert pred.engines["cefr"]["encoder"] == "torch"

    def no_loading(*a, **k):
        raise AssertionError("a request loaded a model")

    monkeypatch.setattr(predict_mod, "load_model", no_loading)
    monkeypatch.setattr(predict_mod, "_load_encoder", no_loading)
    c = TestClient(create_app(pred))
    assert c.post("/api/predict", json={"text": "Ich wohne in Berlin."}).status_code == 200


def test_serve_warms_before_it_reports_ready(tmp_path, monkeypatch, capfd):
    import uvicorn

    seen = {}

    def fake_run(app, **kw):  # what uvicorn would serve, at the moment it would say "ready"
        seen["engines"] = app.state.predictor.engines

    monkeypatch.setattr(uvicorn, "run", fake_run)
    path = make_hidden_bundle(tmp_path)
    import socket

    with socket.socket() as s:  # a free port (serve binds it once to check, then releases it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run_main(["serve", "--bundle", path, "--port", port], capfd)
    assert code == 0, err
    assert seen["engines"]["cefr"]["encoder"] is not None, "served before the encoder loaded"
    assert "warm" in err


# --------------------------------------------------------------------------- shared forward
def test_bundles_on_the_same_encoder_share_one_forward(tmp_path, monkeypatch):
    a = make_hidden_bundle(tmp_path, name="a")
    l1, _ = make_bundle(tmp_path, task="l1", name="l1")
    calls = []
    real = predict_mod.extract

    def counting(texts, *a, **k):
        calls.append(len(texts))
        return real(texts, *a, **k)

    monkeypatch.setattr(predict_mod, "extract", counting)
    pred = Predictor.load(a, l1, encoder="torch")
    lo_b = pred._loaded["cefr"]
    # a second hidden-state task on the same model, layer and extraction (an L1 probe, say)
    pred._loaded["l1-probe"] = predict_mod._Loaded(bundle=lo_b.bundle, estimator=lo_b.estimator,
                                                   featurizer="hidden", folder=lo_b.folder)
    out = pred.predict(["Ich wohne in Berlin.", "Hallo"])
    assert len(calls) == 1, calls  # one forward for both hidden-state bundles
    assert out[0]["cefr"] == out[0]["l1-probe"]
    # no second model loaded: the forward was shared (or the same loaded encoder reused)
    assert pred._loaded["l1-probe"].encoder in (None, pred._loaded["cefr"].encoder)


# --------------------------------------------------------------------------- batching
def test_concurrent_requests_are_merged_into_few_predictor_calls():
    stub = StubPredictor(delay=0.05)
    app = create_app(stub, timeout_s=10)
    c = TestClient(app)
    n = 24
    with __import__("concurrent.futures").futures.ThreadPoolExecutor(n) as ex:
        codes = list(ex.map(lambda i: c.post("/api/predict", json={"text": f"T {i}"}).status_code,
                            range(n)))
    assert codes == [200] * n
    assert stub.calls < n / 3, f"{stub.calls} predictor calls for {n} concurrent requests"
    # without batching every request is its own call
    stub2 = StubPredictor()
    c2 = TestClient(create_app(stub2, max_batch=0))
    for i in range(3):
        c2.post("/api/predict", json={"text": f"T {i}"})
    assert stub2.calls == 3


def test_batched_results_equal_direct_ones_with_top_k(tmp_path):
    l1, _ = make_bundle(tmp_path, task="l1", name="l1")
    pred = Predictor.load(l1)
    b = MicroBatcher(pred.predict)
    texts = ["Ich wohne in Berlin.", "La mia famiglia abita a Roma"]
    assert b.predict(texts, 1) == pred.predict(texts, top_k=1)
    assert b.predict(texts) == pred.predict(texts)


def test_batcher_isolates_errors_and_skips_cancelled_requests():
    gate = threading.Event()
    seen = []

    def predict(texts, top_k=None):
        gate.wait(5)
        seen.append(list(texts))
        if "bad" in texts:
            raise ValueError("bad text")
        return [{"l1": {"label": t, "probabilities": {t: 1.0}}} for t in texts]

    b = MicroBatcher(predict)
    res = {}

    def ask(name, texts, cancel=None):
        try:
            res[name] = b.predict(texts, None, cancel)
        except (ValueError, Cancelled) as e:
            res[name] = type(e).__name__

    first = threading.Thread(target=ask, args=("first", ["a"]))
    first.start()
    time.sleep(0.2)  # the batcher is now busy with "first"; the rest queue up behind it
    cancel = threading.Event()
    others = [threading.Thread(target=ask, args=a) for a in
              (("good", ["b"]), ("bad", ["bad"]), ("gone", ["c"], cancel))]
    for t in others:
        t.start()
    time.sleep(0.2)
    cancel.set()
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert res["first"][0]["l1"]["label"] == "a"
    assert res["good"][0]["l1"]["label"] == "b"  # merged with "bad", yet answered
    assert res["bad"] == "ValueError" and res["gone"] == "Cancelled"
    assert ["c"] not in seen and not any("c" in s for s in seen)


def test_quiet_restores_transformers_first_imported_inside(monkeypatch):
    """A caller whose first transformers import happens inside the quiet block (a notebook
    calling predict first) gets transformers' own defaults back, not our silence."""
    import subprocess
    import sys

    code = (
        "from learnerprobe.models.quiet import quiet_third_party\n"
        "with quiet_third_party():\n"
        "    from transformers.utils import logging as tl\n"
        "    assert tl.get_verbosity() >= 40\n"
        "print(tl.get_verbosity(), tl.is_progress_bar_enabled())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["30", "True"]  # WARNING, bars on

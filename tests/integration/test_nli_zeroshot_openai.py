"""The OpenAI-compatible backend against a real local HTTP server with canned answers."""

import asyncio
import re
import socket
import threading
import time
from collections import Counter

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from learnerprobe.estimators.nli.llm_backends import BackendError, OpenAICompatible
from learnerprobe.estimators.nli.zeroshot import ZeroShotL1Classifier


def _token_logprob(tok: str) -> float:
    return -0.1 * len(tok.strip())


def _make_app(calls: Counter) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        model = body["model"]
        calls[model] += 1
        if model == "flaky" and calls[model] == 1:
            return JSONResponse({"error": "overloaded"}, status_code=500)
        if model == "slow":
            await asyncio.sleep(1.0)
        if model == "bad":
            return JSONResponse({"error": "unknown model"}, status_code=404)
        content = "Chinese." if "Mandarin" not in body["messages"][0]["content"] else "Polish"
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

    @app.post("/v1/completions")
    async def completions(req: Request):
        body = await req.json()
        calls["completions"] += 1
        choices = []
        for i, prompt in enumerate(body["prompt"]):
            if body["model"] == "no-echo":
                choices.append({"index": i, "text": "x", "logprobs": None})
                continue
            # a whitespace tokenizer: each token carries its leading space, as BPE does
            toks = [(m.group(), m.start()) for m in re.finditer(r"\s*\S+", prompt)]
            tokens = [t for t, _ in toks] + ["x"]
            offsets = [o for _, o in toks] + [len(prompt)]
            lps = [None] + [_token_logprob(t) for t, _ in toks[1:]] + [-1.0]
            choices.append({
                "index": i, "text": prompt + "x",
                "logprobs": {"tokens": tokens, "token_logprobs": lps, "text_offset": offsets},
            })
        return {"choices": choices[::-1]}  # out of order: the client must sort by index

    return app


@pytest.fixture(scope="module")
def server():
    import uvicorn

    calls: Counter = Counter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(_make_app(calls), log_level="warning"))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    deadline = time.time() + 10
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", calls
    srv.should_exit = True
    th.join(5)
    sock.close()


def test_generate_and_alias(server) -> None:
    url, _ = server
    backend = OpenAICompatible(url, "good", timeout=5)
    assert backend.generate(["Which language?"]) == ["Chinese."]
    clf = ZeroShotL1Classifier(backend=backend, scorer="generate", target_language="de")
    clf.fit(["a", "b"], ["Mandarin Chinese", "Russian"])  # label spelt differently from answer
    assert clf.predict(["Ich bin hier."]).tolist() == ["Mandarin Chinese"]
    assert clf.answers_ == ["Chinese."]


def test_retry_after_server_error(server) -> None:
    url, calls = server
    backend = OpenAICompatible(url + "/v1/", "flaky", timeout=5, max_retries=2, backoff=0.01)
    assert backend.generate(["Which language?"]) == ["Chinese."]
    assert calls["flaky"] == 2 and backend.n_retries_ == 1


def test_timeout_gives_a_clear_error(server) -> None:
    url, calls = server
    backend = OpenAICompatible(url, "slow", timeout=0.2, max_retries=1, backoff=0.01)
    t0 = time.time()
    with pytest.raises(BackendError, match=r"failed after 2 attempts: timed out after 0\.2 s"):
        backend.generate(["Which language?"])
    assert time.time() - t0 < 3
    assert backend.n_retries_ == 1


def test_client_error_is_not_retried(server) -> None:
    url, calls = server
    backend = OpenAICompatible(url, "bad", timeout=5, max_retries=3, backoff=0.01)
    with pytest.raises(BackendError, match="HTTP 404"):
        backend.generate(["Which language?"])
    assert calls["bad"] == 1


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    backend = OpenAICompatible(f"http://127.0.0.1:{port}", "m", max_retries=1, backoff=0.01)
    with pytest.raises(BackendError, match="connection failed"):
        backend.generate(["hi"])


def test_closed_set_scoring_from_echoed_logprobs(server) -> None:
    url, _ = server
    backend = OpenAICompatible(url, "good", timeout=5)
    cands = ["Russian", "Hungarian", "Mandarin Chinese"]
    logp, ntok = backend.score(["Text: Ich bin hier."], cands)
    # " Russian" is one token (-0.7), " Mandarin Chinese" two tokens (-0.8 + -0.7)
    np.testing.assert_allclose(logp[0], [-0.7, -0.9, -1.5])
    assert ntok[0].tolist() == [1, 1, 2]
    clf = ZeroShotL1Classifier(backend=backend, target_language="de").fit(["a", "b", "c"], cands)
    proba = clf.predict_proba(["Ich bin hier."])
    order = [clf.classes_.tolist().index(c) for c in cands]
    e = np.exp([-0.7, -0.9, -1.5])
    np.testing.assert_allclose(proba[0, order], e / e.sum())


def test_server_without_echo_logprobs(server) -> None:
    url, _ = server
    with pytest.raises(BackendError, match="scorer='generate'"):
        OpenAICompatible(url, "no-echo").score(["Text"], ["Russian", "Polish"])

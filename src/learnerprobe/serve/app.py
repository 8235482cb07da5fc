"""FastAPI app: `POST /api/predict`, `GET /api/bundles`, `/openapi.json`, and a page at `/`.

Every malformed request gets a 4xx with a JSON body `{"detail": ...}`, never a 500 or a dropped
connection: empty, invisible-only or binary texts and lone surrogates (422, the rules of
`learnerprobe.textinput`), invalid JSON, an object with a key twice, wrong types (no coercion:
`top_k` "3", true or 2.0 is refused), infinite numbers (422), texts over the character limit,
counted after JSON decoding (413), a body over the byte limit (413), a body not sent within the
body timeout (408), non-UTF-8 bodies or a bad Content-Length (400, JSON also when uvicorn's
parser refuses the request: serve with `http=JsonErrorH11Protocol`), unknown paths (404) and
methods (405).

Hardening, in order of the request's path through the app:

* `_Hardening`, a pure ASGI middleware, refuses a body over the limit *before* reading it (by
  Content-Length) or as soon as a chunked body crosses it, so oversized uploads cost no memory,
  and a body still incomplete after `body_timeout_s` (a client trickling bytes holds a
  connection and a task for as long as it likes otherwise);
  it also adds a strict Content-Security-Policy (scripts and styles from this server only, no
  inline code, no framing) and `nosniff`/`Referrer-Policy` headers to every response.
* Predictions run in a small dedicated thread pool with at most `max_queue` requests queued or
  running; beyond that the answer is 503 with `Retry-After`. A request's texts are scored in
  chunks and a timeout (504) sets a cancellation flag checked between chunks, so the worker stops
  soon after the client has been answered (a request still waiting in the queue never starts).
* The page and its script/style are served from this package (no CDN): the app works offline.
  Swagger UI (`/docs`) is off unless `docs=True` and the `fastapi-offline` package is installed
  (its Swagger UI files are then served locally, under the same CSP for scripts); ReDoc is off.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import unicodedata
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Protocol

import h11
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from learnerprobe.errors import LearnerprobeError, NonFiniteOutputError
from learnerprobe.serve import BODY_TIMEOUT_S
from learnerprobe.serve.batching import Cancelled, MicroBatcher
from learnerprobe.textinput import (
    MAX_CHARS,
    TextInputError,
    TextTooLongError,
    check_texts,
    loads_json,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets inline styles and uses data: images in its stylesheet; its scripts stay 'self'.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "img-src 'self'", "img-src 'self' data:"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
STATIC = {  # served from learnerprobe/serve/static; nothing else is reachable under /static
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}


class PredictorLike(Protocol):
    """What the app needs from `learnerprobe.predict.Predictor` (tests pass stubs)."""

    @property
    def manifests(self) -> dict[str, dict[str, Any]]: ...

    def predict(self, texts: list[str], top_k: int | None = None,
                **kw: Any) -> list[dict[str, Any]]: ...

    def mask(self, text: str) -> dict[str, Any]: ...


class PredictIn(BaseModel):
    """One text (`text`) or several (`texts`); `top_k` limits the listed probabilities;
    `coverage` (default 0.9, strictly between 0 and 1): of each prediction set."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = Field(default=None, max_length=256)
    top_k: StrictInt | None = Field(default=None, ge=1, le=100)
    coverage: StrictFloat | None = Field(default=None, gt=0.0, lt=1.0, allow_inf_nan=False)


class _Cancelled(Exception):
    """The request timed out; the worker stops between chunks."""


def _json_safe(v: Any, depth: int = 0) -> Any:
    """A JSON-encodable copy: no lone surrogates, NaN or infinities, bounded size and depth."""
    if isinstance(v, str):
        v = v if len(v) <= 200 else v[:200] + "…"
        return v.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else str(v)[:50]
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if depth > 3:
        return "…"
    if isinstance(v, (list, tuple)):
        return [_json_safe(x, depth + 1) for x in v[:20]]
    if isinstance(v, dict):
        return {str(_json_safe(str(k))): _json_safe(x, depth + 1) for k, x in list(v.items())[:20]}
    return _json_safe(repr(v))


def _json_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": _json_safe(detail)}, status, headers=headers)


# A JSON string escapes a character in at most 12 bytes (a surrogate pair, "\ud83d\ude00");
# requests and json.dumps send every non-ASCII character escaped, so the byte limit must allow a
# text at the character limit written that way.
BYTES_PER_CHAR = 12


class _JsonRequest(Request):
    """A request whose JSON body refuses duplicate keys (`{"text": "a", "text": "b"}`)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_json(await self.body())
        return self._json


class _StrictJsonRoute(APIRoute):
    """FastAPI's route, parsing JSON bodies with `loads_json` (FastAPI then answers a duplicate
    key as it answers invalid JSON)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_JsonRequest(request.scope, request.receive))

        return strict


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request its parser refuses (a malformed request line,
    header or Content-Length, which never reach the app) with JSON like every other error."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"detail": "invalid HTTP request (request line, headers or "
                                     "Content-Length)"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *SECURITY_HEADERS]
        try:
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:  # a response was already under way: just close
            pass
        self.transport.close()


class _Hardening:
    """Pure ASGI: body size limit without buffering more than the limit, a deadline for the
    whole body, and security headers."""

    def __init__(self, app: Any, *, max_body: int, docs_prefixes: tuple[str, ...] = (),
                 body_timeout: float = BODY_TIMEOUT_S):
        self.app = app
        self.max_body = max_body
        self.docs_prefixes = docs_prefixes
        self.body_timeout = body_timeout

    async def _read_body(self, receive: Receive) -> bytes | int | None:
        """The body, or 413 as soon as it crosses the limit, or None when the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return 413
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(self.docs_prefixes) and self.docs_prefixes else CSP
        extra = [*SECURITY_HEADERS, (b"content-security-policy", csp.encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in have
                ]
            await send(message)

        async def refuse(status: int, detail: str, close: bool = True) -> None:
            # close: the body was left unread, so the connection cannot carry another request
            body = json.dumps({"detail": detail}).encode()
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode())]
            await send_with_headers({
                "type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else []),
            })
            await send({"type": "http.response.body", "body": body})

        lengths = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if lengths:
            raw = lengths[0].strip()
            if len(lengths) > 1 or not raw.isdigit() or len(raw) > 18:
                await refuse(400, "invalid Content-Length header")
                return
            if int(raw) > self.max_body:
                await refuse(413, f"request body over {self.max_body} bytes")
                return
        # Read the body here, counting as it streams in (chunked uploads have no length).
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(receive)
        except TimeoutError:
            await refuse(408, f"request body not received within {self.body_timeout:g} s")
            return
        if body is None:
            return
        if isinstance(body, int):
            await refuse(413, f"request body over {self.max_body} bytes")
            return
        if body and path.startswith("/api/"):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                await refuse(400, "request body is not valid UTF-8", close=False)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send_with_headers)


def create_app(
    predictor: PredictorLike,
    *,
    max_chars: int = MAX_CHARS,
    timeout_s: float = 30.0,
    max_queue: int = 32,
    chunk_size: int = 8,
    workers: int = 2,
    max_body_bytes: int | None = None,
    docs: bool = False,
    body_timeout_s: float = BODY_TIMEOUT_S,
    max_batch: int = 64,
) -> FastAPI:
    """The app over one loaded predictor.

    `max_chars`: longest text in characters, counted after JSON decoding (413 beyond);
    `max_body_bytes`: largest request body (default `12 * max_chars + 4096`: a text at the
    limit fits however JSON escapes it); `timeout_s`: seconds before 504; `body_timeout_s`:
    seconds to receive the whole body before 408; `max_queue`: predictions queued or running
    before 503; `chunk_size`: texts scored between two cancellation checks; `docs`: serve
    Swagger UI at /docs from the locally installed `fastapi-offline` package; `max_batch`:
    texts of concurrent requests scored in one predictor call (:mod:`learnerprobe.serve.batching`;
    0: each request on its own). With batching, `workers` request threads wait on the one
    thread that owns the predictor, so up to `max(workers, max_queue)` requests can merge.
    """
    if max_chars < 1 or max_queue < 1 or chunk_size < 1 or workers < 1 or max_batch < 0:
        raise ValueError("max_chars, max_queue, chunk_size and workers must be >= 1, "
                         "max_batch >= 0")
    for t in (timeout_s, body_timeout_s):
        if not (t > 0 and math.isfinite(t)):
            raise ValueError("timeout_s and body_timeout_s must be positive numbers")
    swagger = _swagger_assets() if docs else None
    if docs and swagger is None:
        raise LearnerprobeError(
            "--docs needs the fastapi-offline package for local Swagger UI files "
            "(pip install fastapi-offline); the docs are never loaded from a CDN"
        )
    batcher = MicroBatcher(predictor.predict, max_texts=max_batch) if max_batch else None
    threads = max(workers, max_queue) if batcher is not None and workers > 1 else workers
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="learnerprobe-predict")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        if batcher is not None:
            batcher.close()

    app = FastAPI(
        title="learnerprobe", version="1", description="CEFR level and L1 of learner texts",
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None, lifespan=lifespan,
    )
    app.router.route_class = _StrictJsonRoute
    queue = _Queue(executor, max_queue)
    app.state.predictor = predictor
    app.state.executor = executor
    app.state.in_flight = queue.in_flight
    app.state.batcher = batcher
    app.add_middleware(
        _Hardening, max_body=max_body_bytes or max_chars * BYTES_PER_CHAR + 4096,
        docs_prefixes=("/docs",) if swagger else (), body_timeout=body_timeout_s,
    )
    _add_error_handlers(app)
    _add_api_routes(app, predictor, queue, max_chars=max_chars, timeout_s=timeout_s,
                    chunk_size=chunk_size, batcher=batcher)
    _add_page_routes(app)
    if swagger is not None:
        _add_docs_routes(app, swagger)
    return app


class _Queue:
    """Predictions queued or running, bounded: a full queue answers 503 instead of piling up
    work that would only time out."""

    def __init__(self, executor: ThreadPoolExecutor, limit: int) -> None:
        self.executor, self.limit = executor, limit
        self._n = 0
        self._lock = threading.Lock()

    def in_flight(self) -> int:
        return self._n

    def submit(self, fn: Callable[[], Any]) -> Future | None:
        """The future of `fn`, or None when the queue is full (raises RuntimeError when the
        executor is shutting down)."""
        with self._lock:
            if self._n >= self.limit:
                return None
            self._n += 1
        try:
            fut = self.executor.submit(fn)
        except RuntimeError:
            self._release()
            raise
        fut.add_done_callback(lambda _f: self._release())  # also when cancelled unstarted
        return fut

    def _release(self) -> None:
        with self._lock:
            self._n -= 1


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as a JSON body with a 4xx status (500 only for a bug), never echoing input."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and not (ctype == "application/json" or ctype.endswith("+json")):
            return _json_error(415, "send a JSON object with Content-Type: application/json")
        errors = []
        for e in exc.errors()[:20]:
            err = {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            ctx = e.get("ctx") or {}
            if e.get("type") == "json_invalid" and "error" in ctx:
                err["msg"] = f"invalid JSON: {ctx['error']}"
            errors.append(err)  # the input is never echoed back
        return _json_error(422, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json_error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(TextInputError)
    async def _bad_text(_request: Request, exc: TextInputError) -> JSONResponse:
        return _json_error(413 if isinstance(exc, TextTooLongError) else 422, str(exc))

    @app.exception_handler(LearnerprobeError)
    async def _refused(_request: Request, exc: LearnerprobeError) -> JSONResponse:
        return _json_error(422, str(exc))

    @app.exception_handler(NonFiniteOutputError)
    async def _non_finite(_request: Request, exc: NonFiniteOutputError) -> JSONResponse:
        # the bundle is broken, not the request; its server-side path is not sent
        return _json_error(500, "the bundle's estimator gave a non-finite probability or score "
                                "for this text (extreme or broken weights); nothing is returned")

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:  # a bug: say so in JSON
        return _json_error(500, f"internal error ({type(exc).__name__})")


def _request_texts(req: PredictIn, max_chars: int) -> list[str] | JSONResponse:
    """The request's texts, checked, or the error response that refuses them."""
    if (req.text is None) == (req.texts is None):
        return _json_error(422, "give exactly one of 'text' or 'texts'")
    texts = [req.text] if req.text is not None else list(req.texts or [])
    if not texts:
        return _json_error(422, "'texts' is empty")
    # characters as decoded (an escaped "\u4e2d" is one); over the limit 413, else 422
    return check_texts(texts, max_chars=max_chars)


def _prediction_work(predictor: PredictorLike, req: PredictIn, texts: list[str],
                     chunk_size: int, cancel: threading.Event,
                     batcher: MicroBatcher | None = None) -> Callable[[], Any]:
    """The work of one request, in chunks, stopping at the first check after `cancel` is set
    (through the batcher, merged with other requests' chunks, when there is one)."""

    kw = {} if req.coverage is None else {"coverage": req.coverage}

    def score(chunk: list[str]) -> list[dict[str, Any]]:
        if batcher is None:
            return predictor.predict(chunk, req.top_k, **kw)
        try:
            return batcher.predict(chunk, req.top_k, cancel, **kw)
        except Cancelled:
            raise _Cancelled from None

    def work() -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        results: list[dict[str, Any]] = []
        for i in range(0, len(texts), chunk_size):
            if cancel.is_set():
                raise _Cancelled
            results.extend(score(texts[i : i + chunk_size]))
        if cancel.is_set():
            raise _Cancelled
        masked = None
        if req.text is not None:
            # Masking works on the NFC form and its spans index that form (a decomposed "é"
            # is one code point there): send it along so the page can rebuild the text.
            source = unicodedata.normalize("NFC", req.text)
            masked = {**predictor.mask(source), "source": source}
        return results, masked

    return work


def _add_api_routes(app: FastAPI, predictor: PredictorLike, queue: _Queue, *, max_chars: int,
                    timeout_s: float, chunk_size: int, batcher: MicroBatcher | None = None
                    ) -> None:
    """`GET /api/bundles` and `POST /api/predict` (bounded queue, timeout that stops the work)."""

    @app.get("/api/bundles")
    def bundles() -> dict[str, Any]:
        return predictor.manifests

    @app.post(
        "/api/predict",
        responses={
            413: {"description": "Text or body over the size limit"},
            422: {"description": "Invalid JSON, wrong types, or a text that cannot be scored"},
            503: {"description": "Too many predictions queued; retry after `Retry-After` s"},
            504: {"description": f"Prediction took over the timeout ({timeout_s} s)"},
        },
    )
    async def predict(req: PredictIn) -> Any:
        texts = _request_texts(req, max_chars)
        if isinstance(texts, JSONResponse):
            return texts
        cancel = threading.Event()
        try:
            fut = queue.submit(_prediction_work(predictor, req, texts, chunk_size, cancel,
                                                batcher))
        except RuntimeError:  # shutting down
            return _json_error(503, "server is shutting down", {"Retry-After": "5"})
        if fut is None:
            retry = str(max(1, math.ceil(min(timeout_s, 30.0))))
            return _json_error(
                503, f"server busy ({queue.limit} predictions queued); retry later",
                {"Retry-After": retry},
            )
        try:
            results, masked = await asyncio.wait_for(asyncio.wrap_future(fut), timeout=timeout_s)
        except TimeoutError:
            cancel.set()
            fut.cancel()  # never starts if still queued
            return _json_error(504, f"prediction took over {timeout_s} s")
        except asyncio.CancelledError:  # client gone: stop the work too
            cancel.set()
            fut.cancel()
            raise
        if req.text is not None:
            return {**results[0], "masked": masked}
        return {"results": results}


def _add_page_routes(app: FastAPI) -> None:
    """The page and its whitelisted static files (nothing else under /static is reachable)."""
    page_html = resources.files("learnerprobe.serve").joinpath("page.html").read_text("utf-8")
    static_dir = resources.files("learnerprobe.serve").joinpath("static")
    static = {name: static_dir.joinpath(name).read_bytes() for name in STATIC}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers={"cache-control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in static:
            return _json_error(404, "Not Found")
        return Response(static[name], media_type=STATIC[name], headers={"cache-control": "no-cache"})


def _add_docs_routes(app: FastAPI, swagger: Any) -> None:
    """Swagger UI at /docs from local files only."""
    assets = {n: swagger.joinpath(n).read_bytes() for n in SWAGGER_FILES}
    docs_js = resources.files("learnerprobe.serve").joinpath("static", "docs.js").read_bytes()

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return HTMLResponse(_DOCS_HTML)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        if name == "docs.js":
            return Response(docs_js, media_type="text/javascript; charset=utf-8")
        if name not in assets:
            return _json_error(404, "Not Found")
        return Response(assets[name], media_type=SWAGGER_FILES[name])


def _swagger_assets() -> Any:
    """The Swagger UI files of the installed `fastapi-offline` package (Swagger UI 5, which reads
    FastAPI's OpenAPI 3.1; `swagger-ui-bundle` ships 4.x, which cannot), or None."""
    try:
        path = resources.files("fastapi_offline").joinpath("static")
    except (ImportError, TypeError):
        return None
    return path if all(path.joinpath(n).is_file() for n in SWAGGER_FILES) else None


_DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>learnerprobe API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
"""

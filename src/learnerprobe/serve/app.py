"""FastAPI app: `POST /api/predict`, `GET /api/bundles`, OpenAPI docs, and a page at `/`.

Bad input gets a clear 4xx, never a 500: empty text (422), over the size limit (413), invalid JSON
or wrong types (422), non-UTF-8 bodies (400). Prediction runs in the thread pool with a timeout
(504), so requests are served concurrently with one loaded model.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from learnerprobe.predict import Predictor


class PredictIn(BaseModel):
    """One text (`text`) or several (`texts`); `top_k` limits the listed probabilities."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = Field(default=None, max_length=256)
    top_k: int | None = Field(default=None, ge=1, le=100)


def create_app(
    predictor: Predictor, *, max_chars: int = 20_000, timeout_s: float = 30.0
) -> FastAPI:
    app = FastAPI(title="learnerprobe", version="1", description="CEFR level and L1 of learner texts")
    app.state.predictor = predictor

    @app.middleware("http")
    async def _guard_body(request: Request, call_next):
        if request.method == "POST" and request.url.path.startswith("/api/"):
            body = await request.body()
            if len(body) > max_chars * 4 + 4096:
                return JSONResponse({"detail": f"request body over {max_chars} characters"}, 413)
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return JSONResponse({"detail": "request body is not valid UTF-8"}, 400)
        return await call_next(request)

    @app.get("/api/bundles")
    def bundles() -> dict[str, Any]:
        return predictor.manifests

    @app.post("/api/predict")
    async def predict(req: PredictIn) -> Any:
        if (req.text is None) == (req.texts is None):
            return JSONResponse({"detail": "give exactly one of 'text' or 'texts'"}, 422)
        texts = [req.text] if req.text is not None else list(req.texts or [])
        if not texts:
            return JSONResponse({"detail": "'texts' is empty"}, 422)
        for t in texts:
            if not t.strip():
                return JSONResponse({"detail": "text is empty"}, 422)
            if len(t) > max_chars:
                return JSONResponse({"detail": f"text over {max_chars} characters"}, 413)
        try:
            results = await asyncio.wait_for(
                run_in_threadpool(predictor.predict, texts, req.top_k), timeout=timeout_s
            )
        except TimeoutError:
            return JSONResponse({"detail": f"prediction took over {timeout_s} s"}, 504)
        if req.text is not None:
            out = dict(results[0])
            out["masked"] = predictor.mask(req.text)
            return out
        return {"results": results}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("learnerprobe.serve").joinpath("page.html").read_text("utf-8")

    return app

"""Dynamic batching for the server: concurrent requests' texts scored in one predictor call.

Why: the page sends one text per request, and one text at a time leaves the encoder's matrix
products small and pays the per-call overhead (tokenizer, graph launch, estimators, Python)
once per text. One thread owns the predictor; whatever arrived while it was busy is merged into
its next call, so a lone request waits for nothing (no timer) and a burst is scored in batches.

A failing merged call is retried request by request, so one request's error (e.g. a
non-finite output) never reaches another request. Requests merge only with others of the same
options (``coverage``); ``top_k`` only shortens the listed probabilities, so it is applied per
request after a merged call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Predict = Callable[..., list[dict[str, Any]]]  # (texts, top_k, **options) -> results


class Cancelled(Exception):
    """The request gave up (timeout, client gone) before its texts were scored."""


@dataclass
class _Item:
    texts: list[str]
    top_k: int | None
    cancel: threading.Event | None = None
    kw: dict[str, Any] = field(default_factory=dict)  # other predict options (coverage)
    future: Future = field(default_factory=Future)

    @property
    def options(self) -> tuple:
        return tuple(sorted(self.kw.items()))

    def wanted(self) -> bool:
        """Still to be scored (a cancelled request's texts are skipped, never started)."""
        if self.cancel is not None and self.cancel.is_set():
            self.future.set_exception(Cancelled())
            return False
        return self.future.set_running_or_notify_cancel()


def _truncate(result: dict[str, Any], top_k: int | None) -> dict[str, Any]:
    """A text's result with at most ``top_k`` probabilities per task (they are listed most
    likely first, as ``Predictor.predict(..., top_k)`` lists them)."""
    if not top_k:
        return result
    out = {}
    for task, r in result.items():
        if isinstance(r, dict) and isinstance(r.get("probabilities"), dict):
            r = {**r, "probabilities": dict(list(r["probabilities"].items())[:top_k])}
        out[task] = r
    return out


class MicroBatcher:
    """Merges the texts of concurrent :meth:`predict` calls into calls of ``predict_fn`` of at
    most ``max_texts`` texts (a single larger request is passed on whole)."""

    def __init__(self, predict_fn: Predict, *, max_texts: int = 64) -> None:
        if max_texts < 1:
            raise ValueError("max_texts must be >= 1")
        self.predict_fn = predict_fn
        self.max_texts = max_texts
        self.calls = 0  # predictor calls made (tests and the benchmark read it)
        self._q: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="learnerprobe-batcher",
                                        daemon=True)
        self._thread.start()

    def predict(self, texts: list[str], top_k: int | None = None,
                cancel: threading.Event | None = None, **options: Any) -> list[dict[str, Any]]:
        """Results for ``texts`` (blocks until they are scored; errors are re-raised here).
        ``cancel`` set before the texts' turn: they are skipped and :class:`Cancelled` raised.
        ``options`` (e.g. ``coverage``) go to the predictor."""
        item = _Item(list(texts), top_k, cancel, dict(options))
        self._q.put(item)
        return item.future.result()

    def close(self) -> None:
        self._q.put(None)

    def _take(self, first: _Item) -> tuple[list[_Item], bool]:
        """``first`` and whatever else is queued now, up to ``max_texts``; and whether to stop."""
        items, n = [first], len(first.texts)
        while n < self.max_texts:
            try:
                nxt = self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return items, True
            items.append(nxt)
            n += len(nxt.texts)
        return items, False

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            items, stop = self._take(first)
            groups: dict[tuple, list[_Item]] = {}
            for it in items:
                if it.wanted():
                    groups.setdefault(it.options, []).append(it)
            for group in groups.values():
                self._run(group)
            if stop:
                return

    def _run(self, items: list[_Item]) -> None:
        if not items:
            return
        texts = [t for it in items for t in it.texts]
        try:
            self.calls += 1
            results = self.predict_fn(texts, None, **items[0].kw)
        except BaseException as e:  # noqa: BLE001 - each request gets its own outcome below
            if len(items) == 1:
                items[0].future.set_exception(e)
                return
            for it in items:
                self._one(it)
            return
        i = 0
        for it in items:
            part = results[i : i + len(it.texts)]
            i += len(it.texts)
            it.future.set_result([_truncate(r, it.top_k) for r in part])

    def _one(self, it: _Item) -> None:
        try:
            self.calls += 1
            res = self.predict_fn(it.texts, it.top_k, **it.kw)
        except BaseException as e:  # noqa: BLE001 - handed to the request's thread
            it.future.set_exception(e)
        else:
            it.future.set_result(res)

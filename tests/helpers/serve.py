"""A fast fake Predictor for the web-API tests."""


class StubPredictor:
    """A fast fake predictor that records its calls; `delay` seconds per predict() call."""

    def __init__(self, delay=0.0, gate=None):
        import threading

        self.delay, self.gate, self.calls = delay, gate, 0
        self.lock = threading.Lock()
        self.manifests = {"l1": {"task": "l1", "method": "stub", "labels": ["de", "it"]}}
        self.tasks = ["l1"]

    def predict(self, texts, top_k=None):
        import time

        with self.lock:
            self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        return [{"l1": {"label": "de", "probabilities": {"de": 0.75, "it": 0.25}}} for _ in texts]

    def mask(self, text, task=None):
        return {"text": text, "spans": []}

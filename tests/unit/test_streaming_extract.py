"""Streaming probes during extraction (tiny model, no cache): the statistics folded in chunk by
chunk equal those of the stored all-layer array, and give the in-memory ridge."""

from __future__ import annotations

import numpy as np

from learnerprobe.estimators.probes.online import LayerStats
from learnerprobe.execution.streaming import stream_layer_stats
from learnerprobe.extract import extract
from learnerprobe.models.testing import tiny_entry

TEXTS = [" ".join(["wort"] * (2 + (i * 3) % 30)) + f" {i}" for i in range(24)]
Y = np.arange(24) % 3


def test_stream_layer_stats_equals_stored_activations(tmp_path):
    st = stream_layer_stats(TEXTS, Y, tiny_entry("bert"), n_classes=3, chunk_texts=10)
    acts = extract(TEXTS, tiny_entry("bert"), cache_dir=tmp_path, progress=False,
                   dtype="float32", device="cpu")
    ref = LayerStats(acts.n_layers, acts.hidden_size, 3).update(np.asarray(acts.array), Y)
    assert st.n == 24 and not list(tmp_path.glob("*/shards/*/acts.npy"))[1:]  # one cache: ref
    np.testing.assert_allclose(st.sxx, ref.sxx, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st.sxk, ref.sxk, rtol=1e-9, atol=1e-9)
    a, b = st.ridge_path([1.0, 100.0]), ref.ridge_path([1.0, 100.0])
    np.testing.assert_allclose(a.predict(acts.array), b.predict(acts.array), rtol=1e-6, atol=1e-6)

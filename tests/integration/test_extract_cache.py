"""Activation cache: a run killed with SIGKILL in a subprocess resumes and computes only the
missing rows (the in-process cache tests are tests/unit/test_extract_cache.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np

from learnerprobe.extract import extract
from learnerprobe.extract.activation_cache import ActivationCache
from learnerprobe.models.testing import tiny_model
from tests.helpers.extract import text_records

_records = text_records


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from learnerprobe.extract import extract
    from learnerprobe.extract import engine
    from learnerprobe.models.testing import tiny_model
    texts = {texts!r}
    calls = 0
    orig = engine._Runner.__call__
    def dying(self, seqs, layer_idx):
        global calls
        calls += 1
        if calls > 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return orig(self, seqs, layer_idx)
    engine._Runner.__call__ = dying
    tok, model, entry = tiny_model("bert")
    extract(texts, (tok, model, entry), fingerprint="tiny-bert-seed0", cache_dir=sys.argv[1],
            progress=False, batch_tokens=256)
    """
)


def test_kill_9_mid_run_resumes(tmp_path):
    texts = [r.text for r in _records()]
    script = tmp_path / "die.py"
    script.write_text(_KILL_SCRIPT.format(texts=texts))
    cache_dir = tmp_path / "acts"
    proc = subprocess.run([sys.executable, str(script), str(cache_dir)], timeout=300)
    assert proc.returncode == -signal.SIGKILL
    cache = ActivationCache(next(p for p in cache_dir.iterdir() if p.is_dir()))
    (shard,) = cache.shards
    n_done = int(shard.done.sum())
    assert not shard.complete and 0 < n_done < len(texts)
    triple = tiny_model("bert")
    kw = dict(fingerprint="tiny-bert-seed0", cache_dir=cache_dir, progress=False)
    b = extract(texts, triple, batch_tokens=256, **kw)
    assert not b.cache_hit and b.texts_computed == len(texts) - n_done
    fresh = extract(texts, triple, cache=False, progress=False)
    np.testing.assert_allclose(b.array, fresh.array, atol=1e-5)
    assert extract(texts, triple, **kw).cache_hit

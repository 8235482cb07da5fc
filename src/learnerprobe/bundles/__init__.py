"""Trained models in use: the bundle format, its checks, and applying it without the training
stack. One concern per module (none imports the package itself, so importing one stays cheap):

- ``manifest``: the strict schema of ``manifest.json``, parsing, recorded library versions;
- ``integrity``: file digests, the folder scan, the digest pin, the manifest seal, the model's
  allowed sources, the skops zip limits;
- ``trust``: the exact list of types a skops file may reference, derived from the estimators'
  declarations, and loading a skops file with exactly those;
- ``checks``: token patterns, classes and width, finite outputs on check inputs;
- ``io``: :func:`~learnerprobe.bundles.io.save_bundle`, :func:`~learnerprobe.bundles.io.load_bundle`,
  :class:`~learnerprobe.bundles.io.Bundle`;
- ``arrays``: the array form (numpy only: what a cold ``predict`` applies), ``ngram_text`` its
  TF-IDF analyzers, ``export`` fitted estimators to it (save time only);
- ``onnx_encoder``: the bundle's encoder through onnxruntime, exported locally.

``learnerprobe.predict`` (the Predictor), ``serve`` and ``bench_predict`` sit on top.
"""

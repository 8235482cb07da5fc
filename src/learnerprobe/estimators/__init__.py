"""The estimators, by concept: each is a scikit-learn estimator built by name through
:mod:`learnerprobe.methods.registry`.

- :mod:`.probes`: proficiency probes over one layer's hidden states, the surface baseline, the
  all-layer fitting engine and the streaming (sufficient-statistics) probes;
- :mod:`.transfer`: probes that transfer to a held-out corpus;
- :mod:`.calibration`: a probe with its probabilities calibrated on held-out rows;
- :mod:`.nli`: the native-language identification classifiers over texts.

Importing this package (or :mod:`.nli`) imports nothing heavy: ``bundles.arrays`` reads a
helper from :mod:`.nli._base` on the scikit-learn-free prediction path.
"""

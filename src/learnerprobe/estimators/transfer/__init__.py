"""Probes that transfer to a held-out corpus.

Out of distribution, a proficiency probe falls to the level of text length and its predictions
are pulled towards the training corpora's label mix. The estimators here add, one at a time or
combined, what the domain-generalisation literature offers against that:

- :mod:`learnerprobe.estimators.transfer.adapt` -- the numerical pieces (closed-form LEACE and
  mean-difference erasure of corpus identity, per-domain standardisation, EM and black-box
  label-shift correction, QWK-tuned thresholds, expected-value decoding);
- :mod:`learnerprobe.estimators.transfer.probe` -- :class:`TransferProbe`, one scikit-learn
  classifier that composes them over one layer (optionally with surface features, or stacked
  with the surface baseline);
- :mod:`learnerprobe.estimators.transfer.torch_probes` -- a domain-adversarial MLP (gradient
  reversal) and a scalar mix of all layers (torch, imported only when fitted).

Estimators that need corpus identity take ``fit(X, y, domains=...)``; transductive ones adapt in
``predict_proba(X, domains=...)`` from the unlabeled rows of each target domain only -- no
method here ever receives target labels. Model selection over their variants is the nested
leave-one-corpus-out protocol of :mod:`learnerprobe.selection.nested`.
"""

"""Native language identification (NLI): the protocol (``run``: every configured method on the
same author-grouped folds, cached; ``analysis``: confusions, language families, per-level
results) and its settings. The methods themselves are classifiers in
:mod:`learnerprobe.estimators.nli`, built by name through :mod:`learnerprobe.methods.registry`.
"""

"""Native language identification (NLI): task preparation, methods, stacking, analyses.

Every method is a scikit-learn classifier over texts (``fit(X, y)``, ``predict_proba(X)``,
``classes_``) where ``X`` is a list of strings or of :class:`~learnerprobe.records.LearnerText`,
so that all of them can be cross-validated on the same author-grouped folds and stacked.
Heavy imports stay inside the submodules.
"""

METHODS: tuple[str, ...] = (
    "ngram", "sentence-sgd", "probe", "finetune", "zeroshot", "ensemble", "metadata",
)

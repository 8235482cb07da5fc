"""The NLI methods: scikit-learn classifiers over texts (``fit(X, y)``, ``predict_proba(X)``,
``classes_``) where ``X`` is a list of strings or of :class:`~learnerprobe.records.LearnerText`,
so that all of them can be cross-validated on the same author-grouped folds and stacked.

n-gram TF-IDF (``ngram``), sentence embeddings + SGD (``sentence_sgd``), a hidden-state probe
(``probe_method``), a metadata baseline, a zero-shot language model (``zeroshot``, backends in
``llm_backends``, answer parsing in ``aliases``), a fine-tuned encoder (``finetune``) and
stacking (``ensemble``). Heavy imports (torch, transformers, LLM clients) stay inside the
methods that need them.
"""

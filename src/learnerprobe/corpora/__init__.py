"""Learner corpora: a registry of loaders that all return :class:`~learnerprobe.records.LearnerText`."""

from learnerprobe.corpora.registry import CORPORA, CorpusEntry, get_corpus, load_corpus

__all__ = ["CORPORA", "CorpusEntry", "get_corpus", "load_corpus"]

"""Exceptions that the CLI turns into clear one-line messages instead of tracebacks."""


class LearnerprobeError(Exception):
    """Base class: a user-facing error whose message says what to do."""


class CorpusNotFoundError(LearnerprobeError):
    """A corpus folder or file is missing from the data root."""


class DataFormatError(LearnerprobeError):
    """A corpus file exists but is malformed; the message names file and row."""


class ConfigError(LearnerprobeError):
    """A config file is invalid (unknown corpus, model, probe, empty class...)."""


class BundleError(LearnerprobeError):
    """A model bundle is missing, incompatible or tampered with."""


class ModelError(LearnerprobeError):
    """A model cannot be loaded safely (custom code it would need, a folder it may not use)."""


class NonFiniteOutputError(BundleError):
    """A bundle's estimator gave a NaN or infinite probability or score: it is never emitted."""


class ArgumentTypeError(LearnerprobeError, TypeError):
    """A Python API argument has the wrong type (``Predictor.load(1)``, texts as a generator).

    Also a TypeError, so callers that catch the built-in one keep working."""

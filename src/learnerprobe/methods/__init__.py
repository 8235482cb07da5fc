"""One registry of methods (:mod:`.registry`): a probe, an NLI method or a transfer method is
added with one entry, and the study config checks, the study runner, the NLI protocol and
``learnerprobe train`` all build their estimators from it by name. The registry names its
estimators as ``"module:attr"`` strings (never imports them), so reading it stays cheap.
"""

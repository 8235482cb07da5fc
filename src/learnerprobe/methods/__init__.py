"""Methods shared by every task: one registry of methods (:mod:`.registry`) and one layer
sweep with validation selection (:mod:`.sweep`).

The study runner (CEFR), the NLI protocol and ``learnerprobe train`` all build their estimators
and choose their layers here, so a probe or an NLI method is added with one registry entry and
"best layer" means the same thing everywhere. This package imports the estimator libraries
(``probes``; NLI estimators lazily by name) and never ``study`` or ``nli``.
"""

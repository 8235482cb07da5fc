"""Choosing among fitted candidates, one rule everywhere.

- :mod:`.validation`: fit a probe on every layer and choose the layer on a validation split
  (``select_layer``, ``fit_layers``, ``best_index``: the one tie rule);
- :mod:`.nested`: nested leave-one-corpus-out choice of a method's variant and layer, made on
  the training corpora only.

The study runner, the NLI hidden-state probe, the transfer stage and ``learnerprobe train`` all
choose here; the estimators are built through :mod:`learnerprobe.methods.registry`.
"""

"""The evaluation engine: one loop from task data to scores, for every method family.

Modules (bottom to top):

- ``data``: records, task data and activations aligned with them (``load_records``,
  ``encode``, ``Acts``);
- ``folds``: protocol folds (``evaluation.protocols.make_splits``, the only splits) and the one
  fold holding all data that ``learnerprobe train`` uses;
- ``cells``: a cell (method x fold), its output, the cell cache and pooling of out-of-fold
  predictions;
- ``providers``: cell providers of probes (``"layers"``) and text baselines (``"features"``);
  ``nested``: transfer methods (``"nested"``); ``classifier``: NLI methods (``"classifier"``);
  each method names its provider in the method registry (``MethodEntry.cell_provider``);
- ``loop``: the one loop (``run_cells``), cached, side by side where a provider allows;
- ``score``: scores of pooled cells (``evaluation.results.score_rows``) and paired
  comparisons.

``study`` (the probe and transfer stages), ``nli`` (the NLI protocol) and ``train`` (one fold
holding all data, plus a refit) sit on top.
"""

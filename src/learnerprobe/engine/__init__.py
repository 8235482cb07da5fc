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
  ``loco_k``: adaptation methods on ``loco_k`` folds (``"adapt"``: the fold's source probe shared
  by its methods, every k x repeat draw predicted and carried in ``CellOutput.draws``);
  each method names its provider in the method registry (``MethodEntry.cell_provider``);
- ``loop``: the one loop (``run_cells``), cached, side by side where a provider allows;
- ``score``: scores of pooled cells (``evaluation.results.score_rows``) and paired
  comparisons.

``study`` (the probe, transfer and adapt stages), ``nli`` (the NLI protocol) and ``train`` (one fold
holding all data, plus a refit) sit on top.
"""

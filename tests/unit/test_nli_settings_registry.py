"""The [nli.<name>] option tables come from the method registry: a newly registered NLI method
with an options model gets its table (typed by ``nli.check`` after loading, errors naming the
key), built-in configs dump as before."""

from __future__ import annotations

import pytest

from learnerprobe.config.nli import MethodConfig, NgramConfig, NliConfig
from learnerprobe.errors import ConfigError
from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry, register
from learnerprobe.nli.check import check_nli, options_models


class ToyConfig(MethodConfig):
    strategy: str = "prior"
    smoothing: float = 0.0


def _toy(ctx, options):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy=options.get("strategy", "prior"))


@pytest.fixture()
def toy():
    register(MethodEntry("toy-prior", "text", _toy, ("l1",), ("text",), proba=True,
                         target="nominal", options=ToyConfig))
    yield
    registry.unregister("toy-prior")


def _checked(table: dict) -> NliConfig:
    nli = NliConfig.model_validate(table)
    check_nli(nli)
    return nli


def test_options_follow_the_registry(toy):
    opts = options_models()
    assert set(opts) == {"ngram", "sentence-sgd", "probe", "metadata", "zeroshot", "finetune",
                         "toy-prior"}
    assert opts["ngram"] is NgramConfig and opts["toy-prior"] is ToyConfig
    s = _checked({"methods": ["toy-prior"], "toy-prior": {"strategy": "uniform"}})
    assert s.table("toy-prior") == {"strategy": "uniform"}
    assert s.model_dump()["toy-prior"] == {"strategy": "uniform"}
    assert _checked({"toy_prior": {"smoothing": 0.5}}).table("toy-prior") == {"smoothing": 0.5}
    assert _checked({"toy_prior": {"smoothing": 0.5}}).model_dump()["toy-prior"] == {
        "smoothing": 0.5}
    with pytest.raises(ConfigError, match=r"nli\.toy-prior\.bogus: unknown key"):
        _checked({"methods": ["toy-prior"], "toy-prior": {"bogus": 1}})


def test_unregistered_tables_stay_unknown_and_builtins_dump_as_before():
    with pytest.raises(ConfigError, match=r"nli\.toy-prior: unknown key"):
        _checked({"toy-prior": {"strategy": "uniform"}})
    s = _checked({"ngram": {"C": 2.0}})
    assert s.table("ngram") == {"C": 2.0} and s.table("ensemble") == {}
    assert set(s.model_dump()) == set(NliConfig.model_fields)


def test_the_bottom_layer_keeps_an_extra_table_as_given_until_checked(toy):
    """``config.nli`` knows no registry: a registered method's table is kept as written (and
    dumped so), typed only by ``nli.check``; a variant is checked there too."""
    s = NliConfig.model_validate({"toy-prior": {"strategy": "uniform"}})
    assert s.table("toy-prior") == {} and s.extra_tables() == {"toy-prior": {"strategy": "uniform"}}
    assert s.model_dump()["toy-prior"] == {"strategy": "uniform"}
    check_nli(s)
    assert s.table("toy-prior") == {"strategy": "uniform"}
    with pytest.raises(ConfigError, match=r"nli\.variants\.short\.C: Input should be"):
        _checked({"variants": {"short": {"method": "ngram", "C": "big"}}})
    with pytest.raises(ConfigError, match=r"variant name .ngram. is a method name"):
        _checked({"variants": {"ngram": {"method": "ngram"}}})

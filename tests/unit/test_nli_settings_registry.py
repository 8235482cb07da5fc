"""The [nli.<name>] option tables come from the method registry: a newly registered NLI method
with an options model gets its table (typed, errors naming the key), built-in configs dump as
before."""

from __future__ import annotations

import pytest

from learnerprobe.errors import ConfigError
from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry, register
from learnerprobe.nli import settings
from learnerprobe.nli.settings import MethodOptions, NliSettings, settings_of


class ToyOptions(MethodOptions):
    strategy: str = "prior"
    smoothing: float = 0.0


def _toy(ctx, options):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy=options.get("strategy", "prior"))


@pytest.fixture()
def toy():
    register(MethodEntry("toy-prior", "text", _toy, ("l1",), ("text",), proba=True,
                         target="nominal", options=ToyOptions))
    yield
    registry.unregister("toy-prior")


class _Cfg:
    def __init__(self, nli):
        self.nli = nli


def test_options_follow_the_registry(toy):
    opts = settings.options_models()
    assert set(opts) == {"ngram", "sentence-sgd", "probe", "metadata", "zeroshot", "finetune",
                         "toy-prior"}
    assert settings.OPTIONS == opts
    assert opts["ngram"] is settings.NgramOptions and opts["toy-prior"] is ToyOptions
    s = NliSettings.model_validate({"methods": ["toy-prior"], "toy-prior": {"strategy": "uniform"}})
    assert s.table("toy-prior") == {"strategy": "uniform"}
    assert s.model_dump()["toy-prior"] == {"strategy": "uniform"}
    assert NliSettings.model_validate({"toy_prior": {"smoothing": 0.5}}).table("toy-prior") == {
        "smoothing": 0.5}
    with pytest.raises(ConfigError, match=r"nli\.toy-prior\.bogus: unknown key"):
        settings_of(_Cfg({"methods": ["toy-prior"], "toy-prior": {"bogus": 1}}))


def test_unregistered_tables_stay_unknown_and_builtins_dump_as_before():
    with pytest.raises(ConfigError, match=r"nli\.toy-prior: unknown key"):
        settings_of(_Cfg({"toy-prior": {"strategy": "uniform"}}))
    s = NliSettings.model_validate({"ngram": {"C": 2.0}})
    assert s.table("ngram") == {"C": 2.0} and s.table("ensemble") == {}
    assert set(s.model_dump()) == set(NliSettings.model_fields)

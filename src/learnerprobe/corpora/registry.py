"""The corpus registry: one entry per corpus with what it is, its licence, where to get it, and
how to load it. Loader modules are imported only when a corpus is loaded (fast CLI start-up).

A study config names a corpus either by its registry name or by a table
(``learnerprobe.config.corpus.CorpusConfig``: name, own root, loader options, and ``as``: the
name the study uses for it); :func:`check_corpus_config` and :func:`load_corpus_config` apply
the registry to it.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from learnerprobe.config.corpus import CorpusConfig
from learnerprobe.corpora._common import Records, collecting
from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.paths import data_root
from learnerprobe.records import LearnerText

Loader = Callable[..., list[LearnerText]]


def _lazy(module: str, **fixed: Any) -> Loader:
    """A loader that imports ``learnerprobe.corpora.<module>`` on first call."""

    def load(root: Path, **options: Any) -> list[LearnerText]:
        mod = importlib.import_module(f"learnerprobe.corpora.{module}")
        return mod.load(root, **{**fixed, **options})

    load.__name__ = f"load_{module}"
    load.__qualname__ = load.__name__
    load.module = module  # type: ignore[attr-defined]
    load.fixed = dict(fixed)  # type: ignore[attr-defined]
    return load


def loader_options(loader: Loader) -> dict[str, Any]:
    """Option name -> type hint of a registry loader (keyword options of its module's load)."""
    module = getattr(loader, "module", None)
    if module is None:
        fn, fixed = loader, {}
    else:
        fn = importlib.import_module(f"learnerprobe.corpora.{module}").load
        fixed = loader.fixed  # type: ignore[attr-defined]
    hints = typing.get_type_hints(fn)
    return {
        n: hints.get(n, Any) for n, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in fixed
    }


@dataclass(frozen=True)
class CorpusEntry:
    """What a user needs to know to find, cite and load a corpus."""

    name: str
    languages: tuple[str, ...]
    label_types: tuple[str, ...]
    licence: str
    url: str
    loader: Loader = field(repr=False, compare=False)
    description: str = ""

    def load(self, root: str | Path | None = None, **options: Any) -> list[LearnerText]:
        """The records (a list with ``.report``: what was skipped, also given as warnings).

        An unknown option, or one of the wrong type (``strict="maybe"``), is a ConfigError
        naming it (not a TypeError, nor a truthy string reaching the loader)."""
        known = loader_options(self.loader)
        bad = [k for k in options if k not in known]
        if bad:
            raise ConfigError(
                f"corpus {self.name!r}: unknown option(s) {', '.join(map(repr, bad))}; "
                f"accepted: {', '.join(sorted(known)) or '(none)'}"
            )
        options = self.check_options(options)
        with collecting(self.name) as report:
            recs = self.loader(data_root(root), **options)
        report.warn()
        return Records(recs, report)

    def check_options(self, options: dict[str, Any], where: str = "") -> dict[str, Any]:
        """Options validated against the loader's signature; ConfigError names the bad one."""
        known = loader_options(self.loader)
        where = where or f"corpus {self.name!r}"
        bad = [k for k in options if k not in known]
        if bad:
            raise ConfigError(
                f"{where}: unknown option(s) {', '.join(map(repr, bad))} for loader "
                f"{self.name!r}; accepted: {', '.join(sorted(known)) or '(none)'}"
            )
        out = {}
        for k, v in options.items():
            try:
                out[k] = TypeAdapter(known[k]).validate_python(v)
            except ValidationError as e:
                msg = "; ".join(err["msg"] for err in e.errors())
                raise ConfigError(f"{where}: option {k}={v!r}: {msg}") from None
        return out


_MERLIN_LIC = "CC BY-SA 4.0"
_MERLIN_URL = "https://merlin-platform.eu/ (CLARIN: http://hdl.handle.net/20.500.12124/6)"
_MERLIN_DESC = ("MERLIN v1.2 text release: learner texts from CEFR-linked exams with overall and "
                "six sub-ratings, L1, age, task and target hypotheses")

CORPORA: dict[str, CorpusEntry] = {
    e.name: e
    for e in [
        CorpusEntry("merlin", ("cs", "de", "it"), ("cefr", "l1"), _MERLIN_LIC, _MERLIN_URL,
                    _lazy("merlin"), _MERLIN_DESC + " (all three languages)"),
        CorpusEntry("merlin-cs", ("cs",), ("cefr", "l1"), _MERLIN_LIC, _MERLIN_URL,
                    _lazy("merlin", languages=["cs"]), _MERLIN_DESC + " (Czech)"),
        CorpusEntry("merlin-de", ("de",), ("cefr", "l1"), _MERLIN_LIC, _MERLIN_URL,
                    _lazy("merlin", languages=["de"]), _MERLIN_DESC + " (German)"),
        CorpusEntry("merlin-it", ("it",), ("cefr", "l1"), _MERLIN_LIC, _MERLIN_URL,
                    _lazy("merlin", languages=["it"]), _MERLIN_DESC + " (Italian)"),
        CorpusEntry("cowsl2h", ("es",), ("course-level", "l1"), "Apache-2.0",
                    "https://github.com/ucdaviscl/cowsl2h", _lazy("cowsl2h"),
                    "COWS-L2H: essays by L2 and heritage learners of Spanish (UC Davis), course "
                    "as ordinal proficiency proxy, L1, corrections"),
        CorpusEntry("efcamdat", ("en",), ("cefr", "ef-level", "l1"),
                    "EF research licence (registration with the EF Research Lab)",
                    "https://ef-lab.mmll.cam.ac.uk/EFCAMDAT.html", _lazy("efcamdat"),
                    "EFCAMDAT cleaned subcorpus (Shatz 2020), xlsx or csv; users bring the files"),
        CorpusEntry("bea19", ("en",), ("cefr", "score", "l1"),
                    "W&I+LOCNESS and FCE: non-commercial research licences of the releases",
                    "https://www.cl.cam.ac.uk/research/nl/bea2019st/", _lazy("bea19"),
                    "BEA-2019 W&I+LOCNESS (CEFR, e.g. A2.ii) and CLC FCE (L1, scores) JSON lines"),
        CorpusEntry("icle500", ("en",), ("cefr", "l1"),
                    "ICLE licence (UCLouvain CECL); users bring the files",
                    "https://uclouvain.be/en/research-institutes/ilc/cecl/icle.html",
                    _lazy("icle500"),
                    "ICLE500: ICLE essays with CEFR ratings (metadata table + Texts/ folder)"),
        CorpusEntry("universalcefr", ("en", "de", "it", "cs", "es", "fr", "pt", "nl", "ar", "hi",
                                      "ru", "et", "cy"), ("cefr",),
                    "per source (see each record's license field)",
                    "https://huggingface.co/UniversalCEFR", _lazy("universalcefr"),
                    "UniversalCEFR collection as published: one JSON array per corpus (title, "
                    "lang, source_name, format, category, cefr_level, license, text), by local "
                    "path or by dataset id through `datasets` (the [hub] extra)"),
        CorpusEntry("cefr-sp", ("en",), ("cefr",), "CC BY-NC-SA 4.0 (see the release)",
                    "https://github.com/yukiar/CEFR-SP", _lazy("cefrsp"),
                    "CEFR-SP: sentences with two annotator levels 1-6"),
        CorpusEntry("alc", ("ar",), ("study-level", "l1"),
                    "CC BY-NC 4.0 (cite Alfaifi, Atwell and Hedaya 2014)",
                    "https://www.arabiclearnercorpus.com/ (Alfaifi, Atwell and Hedaya 2014)",
                    _lazy("alc"),
                    "Arabic Learner Corpus v2: written texts by learners of Arabic (UTF-16 XML), "
                    "study level as ordinal proxy, L1; natives and spoken transcripts on request"),
        CorpusEntry("cefr-asag", ("en",), ("cefr", "l1"), "CC BY-NC-SA 4.0",
                    "https://github.com/anaistack/cefr-asag-corpus (Tack et al. 2017)",
                    _lazy("cefr_asag"),
                    "CEFR-ASAG: short English answers (TEI) rated by three examiners; label = "
                    "their majority, each examiner in meta"),
        CorpusEntry("icelandic-l2", ("is",), ("cefr", "l1"), "CC BY 4.0",
                    "https://github.com/antonkarl/iceErrorCorpusSpecialized (Icelandic L2 Error "
                    "Corpus)", _lazy("icelandic_l2"),
                    "Icelandic L2 Error Corpus: TEI essays with error annotation (learner's "
                    "original forms as text, corrections as text_corrected), CEFR and L1"),
        CorpusEntry("table", (), ("any",), "yours", "(your own file)", _lazy("table"),
                    "any CSV/TSV/JSONL/Parquet/XLSX with a column mapping (path=, columns=)"),
    ]
}


def configured_entry(corpus: CorpusConfig) -> CorpusEntry:
    """The registry entry a config's corpus names; an unknown name is a ConfigError listing
    the valid ones."""
    try:
        return CORPORA[corpus.name]
    except KeyError:
        raise ConfigError(
            f"unknown corpus {corpus.name!r}; valid: {', '.join(sorted(CORPORA))}"
        ) from None


def check_corpus_config(corpus: CorpusConfig) -> None:
    """Unknown corpus or loader option (or a badly typed one) -> ConfigError."""
    configured_entry(corpus).check_options(corpus.options, f"corpus {corpus.study_name!r}")


def load_corpus_config(corpus: CorpusConfig) -> list[LearnerText]:
    """A config's corpus: its registry loader with its own root and options."""
    return configured_entry(corpus).load(corpus.root, **corpus.options)


def get_corpus(name: str) -> CorpusEntry:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    try:
        return CORPORA[name]
    except KeyError:
        raise LearnerprobeError(
            f"unknown corpus {name!r}; known: {', '.join(CORPORA)}"
        ) from None


def load_corpus(name: str, root: str | Path | None = None, **options: Any) -> list[LearnerText]:
    """Load corpus ``name`` from ``root`` (default: ``paths.data_root()``) as LearnerText records.

    A missing corpus raises CorpusNotFoundError (where we looked, the env var, the official URL);
    a malformed file raises DataFormatError naming the file and the row.
    """
    return get_corpus(name).load(root, **options)

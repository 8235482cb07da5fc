"""UniversalCEFR: the collection's corpora as it publishes them, one JSON file per corpus.

Each file is a JSON array of objects with the collection's eight fields ``title``, ``lang``
(ISO 639-1), ``source_name``, ``format`` (``document-level``, ``paragraph-level``,
``discourse-level``, ``sentence-level``), ``category`` (``learner`` or ``reference``),
``cefr_level`` (``A1``..``C2``; a few corpora also use ``B1+``, a bare ``B`` or the no-label
markers ``EMPTY``, ``NA``, ``unrated``, ``Unassessable``), ``license`` and ``text``. JSON lines
and Parquet (the hub's parquet export) with the same fields load too. Format as published by
the collection: github.com/UniversalCEFR/universalcefr-data-directory (schema table) and the
conversion scripts in github.com/UniversalCEFR/universalcefr-experiments (``preprocessing/``).

Three ways to load:

* all files under ``$LEARNERPROBE_DATA/universalcefr/`` (or ``path=``), any sub-folders;
* ``subset="elle_et"`` (or a list): one corpus by its Hugging Face dataset name. Looked up as
  the folder ``universalcefr/elle_et/`` (what ``hf download UniversalCEFR/elle_et
  --repo-type dataset --local-dir universalcefr/elle_et`` writes), else a file named as the
  collection publishes it (``elle.json``, ``merlin-cs.json``: :data:`PUBLISHED_FILES`) or
  ``elle_et.json``/``.jsonl``/``.parquet``;
* ``dataset="UniversalCEFR/elle_et"`` (a bare ``elle_et`` means the UniversalCEFR
  organisation): through the ``datasets`` library from the Hugging Face hub (an optional
  extra, ``pip install 'learnerprobe[hub]'``), ``revision=`` pins a commit.

``language`` = ``lang`` normalised to ISO 639-1; ``id`` = ``<source_name>.<subset>.<row>``
(rows numbered from 1 in file order, so a subset has the same ids from disk and from the
hub; a file of another name loaded with all files: its stem instead); a ``title`` of
``NA`` is no title. ``meta`` keeps the other fields (``source_name``, ``format``,
``category``, ``license``) so studies can filter by source, plus ``subset`` and ``source``
(file and row). The collection mixes learner texts and graded reading texts, each with its own
licence; ``cople2_pt`` lists each text twice with adjacent levels (the study's ``dedupe`` keeps
the first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from learnerprobe.corpora._common import (
    cefr_label,
    check_unique_ids,
    clean_str,
    files_in,
    locate,
    read_table,
)
from learnerprobe.corpora.languages import language_code
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://huggingface.co/UniversalCEFR (https://universalcefr.github.io/)"
HUB_ORG = "UniversalCEFR"
REQUIRED = ("text", "lang", "cefr_level")
SUFFIXES = (".json", ".jsonl", ".parquet")
_USED = {"id", "text", "lang", "cefr_level"}
# no-label markers the collection uses besides those every loader knows (EMPTY, NA, unrated)
_NO_LABEL = {"unassessable", "unknown"}
_NO_TITLE = {"na", "n/a"}

#: Hugging Face dataset name -> the file the collection publishes in it (the reference
#: study's nine corpora; other subsets are found as <name>/ or <name>.json).
PUBLISHED_FILES: dict[str, str] = {
    "elle_et": "elle.json",
    "icle500_en": "icle500.json",
    "cefr_asag_en": "cefr_asag.json",
    "merlin_cs": "merlin-cs.json",
    "merlin_de": "merlin-de.json",
    "merlin_it": "merlin-it.json",
    "cople2_pt": "cople2.json",
    "peapl2_pt": "peapl2.json",
    "zaebuc_ar": "zaebuc-ar.json",
}
_PUBLISHED_AS = {f: name for name, f in PUBLISHED_FILES.items()}
_NAME = re.compile(r"[A-Za-z0-9][\w.\-]*")
_REVISION = re.compile(r"[\w.\-/]+")

Rows = Iterable[tuple[int, dict[str, Any]]]


def load(
    root: Path, *, path: str | Path | None = None, subset: str | list[str] | None = None,
    dataset: str | list[str] | None = None, revision: str | None = None, strict: bool = False,
) -> list[LearnerText]:
    """The records of the chosen corpora (``strict``: an unrecognised cefr_level is refused
    instead of loading unrated with a warning)."""
    if dataset is not None:
        if path is not None or subset is not None:
            raise ConfigError("corpus 'universalcefr': give dataset= (the hub) or path=/subset= "
                              "(local files), not both")
        sources = [(f"hf:{d}", d.split("/")[-1], _hub_rows(d, revision))
                   for d in map(_dataset_id, _names(dataset, "dataset", owner=True))]
        where = "the Hugging Face hub"
    else:
        if revision is not None:
            raise ConfigError("corpus 'universalcefr': revision= needs dataset= (the hub)")
        base = locate(root, ["universalcefr", "UniversalCEFR"], corpus="universalcefr",
                      url=URL, path=path)
        sources = list(_local_sources(base, subset))
        where = str(base)
    out: list[LearnerText] = []
    for label, key, rows in sources:
        out += _records(rows, label, key, strict=strict)
    check_unique_ids(out, where)
    return out


def _names(value: str | list[str], option: str, *, owner: bool = False) -> list[str]:
    """The dataset names of ``subset=``/``dataset=`` (``owner/name`` only for ``dataset=``)."""
    names = [value] if isinstance(value, str) else list(value)
    bad = [n for n in names if not isinstance(n, str) or not _NAME.fullmatch(n.split("/")[-1])
           or n.count("/") > int(owner)]
    if not names or bad:
        eg = "'elle_et' or 'UniversalCEFR/elle_et'" if owner else "'elle_et' or 'merlin_cs'"
        raise ConfigError(f"corpus 'universalcefr': {option}= takes dataset names such as "
                          f"{eg}; got {value!r}")
    return names


def _dataset_id(name: str) -> str:
    """``elle_et`` -> ``UniversalCEFR/elle_et``; an ``owner/name`` id is kept."""
    owner, _, ds = name.rpartition("/")
    if owner and not _NAME.fullmatch(owner):
        raise ConfigError(f"corpus 'universalcefr': not a Hugging Face dataset id: {name!r}")
    return f"{owner or HUB_ORG}/{ds}"


# --------------------------------------------------------------------------- local files
def _local_sources(base: Path, subset: str | list[str] | None
                   ) -> Iterator[tuple[str, str, Rows]]:
    """(label, id key, rows) per file: every file, or those of the chosen subsets."""
    if subset is None:
        files = files_in(base, SUFFIXES)
        if not files:
            raise CorpusNotFoundError(f"corpus 'universalcefr': no json/jsonl/parquet in {base}. "
                                      f"Get it from {URL}")
        for f in files:
            rel = f.relative_to(base).as_posix() if f != base else f.name
            yield rel, _PUBLISHED_AS.get(f.name, f.stem), read_table(f, required=REQUIRED)
        return
    for name in _names(subset, "subset"):
        files = _subset_files(base, name)
        for f in files:
            rel = f.relative_to(base).as_posix() if f != base else f.name
            key = name if len(files) == 1 else f"{name}.{Path(rel).stem}"
            yield rel, key, read_table(f, required=REQUIRED)


def _subset_files(base: Path, name: str) -> list[Path]:
    """The files of one subset: the folder ``<name>/``, else the published file name or
    ``<name>.<suffix>`` in ``base``; CorpusNotFoundError says where it looked and how to get
    it."""
    if not base.is_dir():
        raise ConfigError(f"corpus 'universalcefr': subset= needs a folder, but {base} is a "
                          "file (drop subset= to load that file)")
    folder = base / name
    if folder.is_dir():
        files = files_in(folder, SUFFIXES)
        if files:
            return files
    names = ([PUBLISHED_FILES[name]] if name in PUBLISHED_FILES else []) + [
        name + s for s in SUFFIXES]
    for n in names:
        if (base / n).is_file():
            return [base / n]
    looked = ", ".join([f"{folder}/"] + [str(base / n) for n in names])
    raise CorpusNotFoundError(
        f"corpus 'universalcefr': subset {name!r} not found (looked for {looked}). "
        f"Download it with: hf download {HUB_ORG}/{name} --repo-type dataset "
        f"--local-dir {folder}  (or use dataset='{HUB_ORG}/{name}')")


# --------------------------------------------------------------------------- the hub
def _hub_rows(dataset_id: str, revision: str | None) -> Rows:
    """Rows of the ``train`` split of a hub dataset, numbered from 1 (file order)."""
    if revision is not None and not _REVISION.fullmatch(revision):
        raise ConfigError(f"corpus 'universalcefr': not a revision: {revision!r}")
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "corpus 'universalcefr': dataset= needs the optional 'datasets' library: "
            "pip install 'learnerprobe[hub]' (or download the JSON files and use subset=)"
        ) from None
    # datasets >= 4 runs no loading scripts; these are its "cannot get it" errors (no
    # network, unknown or gated id: FileNotFoundError, ConnectionError, HTTP errors).
    errors: tuple[type[BaseException], ...] = (OSError, ValueError)
    base_error = getattr(getattr(datasets, "exceptions", None), "DatasetsError", None)
    if isinstance(base_error, type):
        errors += (base_error,)
    try:
        ds = datasets.load_dataset(dataset_id, split="train", revision=revision)
    except errors as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorpusNotFoundError(
            f"corpus 'universalcefr': cannot load {dataset_id!r} from the Hugging Face hub "
            f"({reason}); check the id and the network, or download the files (docs/STUDY.md)"
        ) from None
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise DataFormatError(f"hf:{dataset_id}: missing field(s) {', '.join(missing)}; "
                              f"found {', '.join(ds.column_names)}")
    return ((i, dict(row)) for i, row in enumerate(ds, 1))


# --------------------------------------------------------------------------- records
def _records(rows: Rows, label: str, key: str, *, strict: bool) -> list[LearnerText]:
    out = []
    for i, row in rows:
        where = f"{label}: row {i}"
        text = clean_str(row.get("text"))
        if text is None:
            raise DataFormatError(f"{where}: empty text")
        lang_raw = clean_str(row.get("lang"))
        lang = language_code(lang_raw) if lang_raw else None
        if lang is None:
            raise DataFormatError(f"{where}: unknown language {lang_raw!r} in 'lang'")
        cefr_raw = clean_str(row.get("cefr_level"))
        no_label = cefr_raw is not None and cefr_raw.lower() in _NO_LABEL
        cefr = None if no_label else cefr_label(cefr_raw, strict=strict, where=where)
        src = clean_str(row.get("source_name")) or "unknown"
        meta: dict[str, Any] = {k: clean_str(v) for k, v in row.items() if k not in _USED}
        if (meta.get("title") or "").lower() in _NO_TITLE:
            meta["title"] = None
        meta["subset"] = key
        meta["source"] = f"{label}:{i}"
        out.append(LearnerText(
            id=clean_str(row.get("id")) or f"{src}.{key}.{i}", corpus="universalcefr",
            language=lang, text=text, cefr=cefr, cefr_raw=cefr_raw, task=meta.get("title"),
            meta=meta,
        ))
    return out

"""MERLIN v1.2 text release (Czech, German, Italian learner texts rated on the CEFR).

Reads ``meta_ltext_THs/`` (or ``meta_ltext/``, which lacks target hypotheses) with one folder per
language (``czech``, ``german``, ``italian``; the ``*_metafn`` copies are ignored). Each file is a
metadata header, a dashed rule, the learner text, and target hypotheses 1 and 2::

    METADATA
    General:
    Author ID: 1023_0001416
    Test language: German
    CEFR level of test: B2
    Task : ask for information at Au pair Agency - ID: 1023_080401
    Mother tongue: Russian
    Age: 45
    Gender: female
    Rating:
    Overall CEFR rating: B2
    Grammatical accuracy: C1   (and five more sub-ratings)
    ----------------
    Learner text: ...
    ----------------
    Target hypothesis 1: ...   (or "No target hypothesis 1 available.")

Mapping: ``id`` and ``author_id`` = Author ID (MERLIN has one text per learner id);
``cefr`` = "Overall CEFR rating" (9 texts are "unrated"/"EMPTY" -> None, raw kept; any other
unparseable rating also loads as None with a warning naming the file, counted in the load report,
or is refused with ``strict=True``);
``text_corrected`` = target hypothesis 1 (tokenised, as released); ``task`` = the task text,
``meta``: test_level, task_id, age (int or None), age_raw ("2029" means an age band
20-29, given as age_range), gender, ratings (the six sub-ratings, raw: "0"/"-1" mean not rated),
target_hypothesis_2, source. ``l1`` normalised by :mod:`learnerprobe.corpora.languages`.

Labels: a header without "Overall CEFR rating" or "Mother tongue" is a DataFormatError naming
the file (``labels="optional"``: loaded unlabelled, counted in the load report with a warning).
A file holding a NUL byte is skipped and counted in the load report (refused with ``strict``).

Truncation: every file of the release ends with a newline, and in ``meta_ltext_THs`` every file
has both hypothesis sections ("Target hypothesis N:" or "No target hypothesis N available.").
A file without them, or ending mid-line, was cut short: DataFormatError naming it (default), or
skipped and counted in the load report with ``on_error="skip"`` (also for any other malformed
file). A folder named ``*.txt`` is skipped with a warning; a broken symbolic link is an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from learnerprobe.corpora._common import (
    LabelsMode,
    cefr_label,
    check_labels_mode,
    check_unique_ids,
    checked_text,
    files_in,
    locate,
    missing_labels,
    note,
    read_text_file,
)
from learnerprobe.corpora.languages import normalise_l1
from learnerprobe.errors import ConfigError, CorpusNotFoundError, DataFormatError
from learnerprobe.records import LearnerText

URL = "https://merlin-platform.eu/ (CLARIN: http://hdl.handle.net/20.500.12124/6)"
FOLDERS = {"cs": "czech", "de": "german", "it": "italian"}
LANG_NAMES = {"Czech": "cs", "German": "de", "Italian": "it"}
SUB_RATINGS = (
    "Grammatical accuracy", "Orthography", "Vocabulary range", "Vocabulary control",
    "Coherence/Cohesion", "Sociolinguistic appropriateness",
)
_RULE = re.compile(r"^-{16,}[ \t]*$", re.M)
_FIELD = re.compile(r"^([^:\n]+?)\s*:[ \t]?(.*)$")
_TASK_ID = re.compile(r"^(.*?)\s+-\s+ID:\s*(\S+)\s*$")
_NA = {"", "not reported", "empty", "unrated", "n/a"}
LABEL_FIELDS = ("Overall CEFR rating", "Mother tongue")


def _na(v: str | None) -> str | None:
    return None if v is None or v.strip().lower() in _NA else v.strip()


def find_root(root: Path, path: str | Path | None = None) -> Path:
    """The folder holding czech/german/italian (THs version preferred)."""
    cands = [
        f"{base}/{sub}"
        for base in ("merlin-text-v1.2", "merlin-text", "merlin")
        for sub in ("meta_ltext_THs", "meta_ltext")
    ]
    return locate(root, cands, corpus="merlin", url=URL, path=path)


def parse_file(
    path: Path, text: str | None = None, *, hypotheses: bool | None = None, strict: bool = False,
    labels: LabelsMode = "required",
) -> LearnerText:
    """Parse one MERLIN file; any structural problem names the file and the line.

    ``hypotheses``: the file must hold both target-hypothesis sections (True, the
    ``meta_ltext_THs`` layout), must not (False, ``meta_ltext``), or either (None). A header
    without the label fields ("Overall CEFR rating", "Mother tongue") is a DataFormatError, or
    with ``labels="optional"`` loads unlabelled, counted in the load report.
    """
    if text is None:
        text = read_text_file(path)
    text = text.replace("\r\n", "\n")
    rules = _check_layout(path, text)
    header = text[: rules[0].start()]
    fields = _header_fields(path, text, header)
    missing = [k for k in LABEL_FIELDS if k not in fields]
    if missing:
        missing_labels(f"{path}: metadata (lines 1-{header.count(chr(10)) + 1})",
                       f"no {' or '.join(map(repr, missing))} field", labels=labels, n=1)
    body, hyps = _learner_and_hypotheses(path, text, header, rules, hypotheses)
    author = fields["Author ID"]
    task, task_id = _task(fields.get("Task", ""))
    age, age_range = _age(_na(fields.get("Age")))
    cefr_raw = fields.get("Overall CEFR rating")
    l1_raw = fields.get("Mother tongue")
    return LearnerText(
        id=author,
        corpus="merlin",
        language=LANG_NAMES[fields["Test language"]],
        text=body,
        text_corrected=hyps.get(1),
        cefr=cefr_label(_na(cefr_raw), strict=strict,
                        where=f"{path}: line {_line_of(text, 'Overall CEFR rating')}"),
        cefr_raw=cefr_raw,
        l1=normalise_l1(l1_raw),
        l1_raw=l1_raw,
        author_id=author,
        task=task,
        meta={
            "test_level": _na(fields.get("CEFR level of test")),
            "task_id": task_id,
            "age": age,
            "age_range": age_range,
            "age_raw": fields.get("Age"),
            "gender": _na(fields.get("Gender")),
            "ratings": {k: fields.get(k) for k in SUB_RATINGS},
            "target_hypothesis_2": hyps.get(2),
            "source": f"{path.parent.name}/{path.name}",
        },
    )


def _check_layout(path: Path, text: str) -> list[re.Match[str]]:
    """The section rules of a complete file (it ends with a newline and starts with METADATA)."""
    if text and not text.endswith("\n"):
        raise DataFormatError(
            f"{path}: line {text.count(chr(10)) + 1}: file ends mid-line (every MERLIN file ends "
            "with a newline); truncated? Re-copy it from the release"
        )
    if not text.lstrip().startswith("METADATA"):
        raise DataFormatError(f"{path}: line 1: expected 'METADATA' header")
    rules = list(_RULE.finditer(text))
    if not rules:
        raise DataFormatError(f"{path}: no '----------------' rule after the metadata header")
    return rules


def _header_fields(path: Path, text: str, header: str) -> dict[str, str]:
    """The metadata fields, with the ones every file needs checked."""
    fields: dict[str, str] = {}
    for line in header.split("\n"):
        m = _FIELD.match(line)
        if m and m.group(1) not in ("General", "Rating"):
            fields[m.group(1).strip()] = m.group(2).strip()
    for key in ("Author ID", "Test language"):
        if key not in fields:
            line = header.count("\n") + 1
            raise DataFormatError(f"{path}: metadata (lines 1-{line}): missing field {key!r}")
    if not fields["Author ID"]:
        raise DataFormatError(f"{path}: line {_line_of(text, 'Author ID')}: empty Author ID")
    if fields["Test language"] not in LANG_NAMES:
        raise DataFormatError(
            f"{path}: line {_line_of(text, 'Test language')}: unknown test language "
            f"{fields['Test language']!r} (expected Czech, German or Italian)"
        )
    return fields


def _learner_and_hypotheses(
    path: Path, text: str, header: str, rules: list[re.Match[str]], hypotheses: bool | None,
) -> tuple[str, dict[int, str | None]]:
    """The learner text and the target hypotheses (None where "not available").

    Sections after the metadata: learner text, then target hypotheses. Text between the
    "Learner text:" section and the first hypothesis section is joined back, so a dashed line
    written by a learner does not truncate the text.
    """
    learner: list[str] | None = None
    hyps: dict[int, str | None] = {}
    for sec in _sections(text, rules):
        s = sec.lstrip("\n")
        m = re.match(r"(Target hypothesis (\d):[ \t]*\n)|(No target hypothesis (\d) available\.)", s)
        if m:
            if m.group(1):
                hyps[int(m.group(2))] = s[m.end():].strip() or None
            else:
                hyps[int(m.group(4))] = None
            continue
        if s.startswith("Learner text:"):
            learner = [s[len("Learner text:"):]]
        elif learner is not None and not hyps:
            learner.append(sec)
    if learner is None:
        raise DataFormatError(
            f"{path}: line {header.count(chr(10)) + 2}: missing 'Learner text:' section"
        )
    want = hypotheses if hypotheses is not None else bool(hyps)
    if want and sorted(hyps) != [1, 2]:
        missing = " and ".join(f"target hypothesis {i}" for i in (1, 2) if i not in hyps)
        raise DataFormatError(
            f"{path}: line {text.count(chr(10)) + 1}: missing {missing} section (a "
            "meta_ltext_THs file ends with both); the file looks truncated"
        )
    # Drop the blank lead-in and trailing whitespace; keep the learner's own inner layout.
    return "\n----------------".join(learner).strip(), hyps


def _task(task_raw: str) -> tuple[str | None, str | None]:
    """("Task name", "task id") from MERLIN's "Task" field."""
    tm = _TASK_ID.match(task_raw)
    return (tm.group(1), tm.group(2)) if tm else (task_raw or None, None)


def _age(age_raw: str | None) -> tuple[int | None, str | None]:
    """An age ("17") or an age range ("1620" -> "16-20"); anything else is unknown."""
    if age_raw and age_raw.isdigit():
        if len(age_raw) <= 2:
            return int(age_raw), None
        if len(age_raw) == 4:
            return None, f"{age_raw[:2]}-{age_raw[2:]}"
    return None, None


def _sections(text: str, rules: list[re.Match[str]]) -> list[str]:
    ends = [r.start() for r in rules[1:]] + [len(text)]
    return [text[r.end(): e] for r, e in zip(rules, ends, strict=True)]


def _line_of(text: str, key: str) -> int:
    i = text.find(key)
    return text.count("\n", 0, max(i, 0)) + 1


def load(
    root: Path, *, languages: list[str] | tuple[str, ...] | None = None,
    path: str | Path | None = None, strict: bool = False,
    on_error: Literal["error", "skip"] = "error", labels: LabelsMode = "required",
) -> list[LearnerText]:
    """All MERLIN texts (or only ``languages``, ISO codes), sorted by language then id.

    A file holding a NUL byte is skipped and counted (refused with ``strict``)."""
    check_labels_mode(labels)
    if on_error not in ("error", "skip"):
        raise ConfigError(f"merlin: on_error must be 'error' or 'skip', not {on_error!r}")
    base = find_root(root, path)
    # meta_ltext_THs files end with two hypothesis sections; meta_ltext files have none.
    hypotheses = {"meta_ltext_THs": True, "meta_ltext": False}.get(base.name)
    langs = list(languages) if languages else list(FOLDERS)
    unknown = [x for x in langs if x not in FOLDERS]
    if unknown:
        raise DataFormatError(f"merlin: unknown language(s) {unknown}; known: {list(FOLDERS)}")
    out: list[LearnerText] = []
    for code in langs:
        folder = base / FOLDERS[code]
        if not folder.is_dir():
            raise CorpusNotFoundError(
                f"corpus 'merlin-{code}' not found: no folder {folder}. Get the official "
                f"release from {URL}"
            )
        files = files_in(folder, (".txt",), recursive=False)
        if not files:
            raise CorpusNotFoundError(f"corpus 'merlin-{code}': no .txt files in {folder}")
        for f in files:
            try:
                text = read_text_file(f)
                if checked_text(text, where=str(f), strict=strict, allow_empty=True) is None:
                    continue
                rec = parse_file(f, text, hypotheses=hypotheses, strict=strict, labels=labels)
                if rec.language != code:
                    raise DataFormatError(
                        f"{f}: line {_line_of(text, 'Test language')}: "
                        f"test language {rec.language!r} in the {FOLDERS[code]} folder"
                    )
            except DataFormatError as e:
                if on_error == "error" or (strict and "(strict=True" in str(e)):
                    raise
                note("skipped_bad_file", str(e))
                continue
            out.append(rec)
    check_unique_ids(out, str(base))
    return out

"""Masking of geographic give-aways on the real MERLIN texts of every language (the word-list,
inflection and guard tests are tests/unit/test_prep_mask.py).
"""

import re
import time
from pathlib import Path

from learnerprobe.prep.mask import (
    CATEGORIES,
    mask_records,
    mask_text,
)
from learnerprobe.records import LearnerText


def _merlin_texts(root: Path, folder: str) -> list[str]:
    texts = []
    for p in sorted((root / "merlin-text-v1.2" / "meta_ltext_THs" / folder).glob("*.txt")):
        m = re.search(r"Learner text:\s*\n(.*?)\n-{5,}", p.read_text(encoding="utf-8"), re.S)
        texts.append(m.group(1) if m else "")
    return texts


def test_real_merlin_all_languages(data_root):
    per_lang = {"cs": "czech", "de": "german", "it": "italian"}
    recs = [
        LearnerText(f"{lang}{i}", "merlin", lang, t)
        for lang, folder in per_lang.items()
        for i, t in enumerate(_merlin_texts(data_root, folder))
    ]
    assert len(recs) == 2287
    mask_text("warm up", "de"), mask_text("warm up", "cs"), mask_text("warm up", "it")
    t0 = time.perf_counter()
    out, counts = mask_records(recs)
    elapsed = time.perf_counter() - t0
    assert elapsed < 30, elapsed  # ~4 s on a laptop core
    de = [r for r in out if r.language == "de"]
    assert not any(re.search(r"\bDeutschland\b", r.text) for r in de)
    n_de_masked = sum(1 for r in de if r.meta["mask_counts"])
    assert 400 < n_de_masked < len(de)  # many, not all, German texts mention such words
    assert not any(re.search(r"\bItalia\b", r.text) for r in out if r.language == "it")
    assert not any(re.search(r"\bčeštin[auy]\b", r.text) for r in out if r.language == "cs")
    assert all(counts[c] > 0 for c in CATEGORIES)
    # Guards hold on real text: German "Essen" (food) survives.
    assert sum("Essen" in r.text for r in de) > 10

"""The masking word lists are cached on disk (JSON) between processes; a damaged cache file is
rebuilt, never trusted, and masking gives the same result with and without the cache.

Each step runs in a fresh process, as a cold `learnerprobe predict` does (the lists are also
memoised per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TEXTS = {
    "de": "Ich wohne seit zwei Jahren in Deutschland, spreche Russisch und fahre nach München. "
          "Mein Haus ist klein, meine Freundin ist Italienerin.",
    "en": "I moved from Turkey to London, I speak Polish and my German friends live in Madrid. "
          "Michael Jordan said the house is nice.",
    # the prayer guard (context_stop) must survive the cache: المغرب masked once, not twice
    "ar": "صلينا المغرب في الرياض ثم سافرنا إلى المغرب بالطائرة.",
    "is": "Ég er frá Póllandi og bý í Reykjavík.",
}

_SCRIPT = """
import json, sys
from learnerprobe.prep.mask import lexicon_cache_path, mask_text
texts = json.loads(sys.argv[1])
out = {}
for lang, text in texts.items():
    r = mask_text(text, lang)
    out[lang] = {"text": r.text, "spans": r.spans, "path": str(lexicon_cache_path(lang))}
print(json.dumps(out))
"""


def _run(cache: Path) -> dict:
    env = {**os.environ, "LEARNERPROBE_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(TEXTS)], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def _masked(res: dict) -> dict:
    return {lang: (r["text"], r["spans"]) for lang, r in res.items()}


def test_damaged_cache_is_rebuilt_and_results_match(tmp_path):
    cache = tmp_path / "cache"
    built = _run(cache)  # no cache yet: built from babel/pycountry/geonames
    paths = {lang: Path(r["path"]) for lang, r in built.items()}
    assert all(p.is_file() and p.is_relative_to(cache) for p in paths.values())
    assert "Land" in built["de"]["text"] and "Stadt" in built["de"]["text"]
    assert "Haus" in built["de"]["text"]
    assert built["ar"]["text"] == "صلينا المغرب في مدينة ثم سافرنا إلى بلد بالطائرة."

    # damage: a truncated file and a well-formed file of the wrong shape
    good = paths["de"].read_text(encoding="utf-8")
    paths["de"].write_text(good[: len(good) // 2], encoding="utf-8")
    wrong = json.loads(paths["en"].read_text(encoding="utf-8"))
    wrong["exact"] = ["London"]
    paths["en"].write_text(json.dumps(wrong), encoding="utf-8")
    rebuilt = _run(cache)
    assert _masked(rebuilt) == _masked(built)
    for p in paths.values():  # rewritten whole
        d = json.loads(p.read_text(encoding="utf-8"))
        assert isinstance(d["exact"], dict) and d["exact"]

    assert _masked(_run(cache)) == _masked(built)  # read from the cache: same result

    # the cache is really what the next process uses (otherwise the check above proves nothing)
    planted = json.loads(paths["de"].read_text(encoding="utf-8"))
    planted["exact"]["Haus"] = "Country"
    paths["de"].write_text(json.dumps(planted, ensure_ascii=False), encoding="utf-8")
    assert "Haus" not in _run(cache)["de"]["text"]

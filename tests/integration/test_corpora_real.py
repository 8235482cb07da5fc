"""The MERLIN and COWS-L2H loaders on the real releases ($LEARNERPROBE_DATA)."""

import json
import subprocess
import sys
import time
from collections import Counter

import pytest

from learnerprobe.corpora import load_corpus
from learnerprobe.corpora.record_files import corpus_stats


@pytest.fixture(scope="module")
def merlin(data_root):
    t0 = time.perf_counter()
    recs = load_corpus("merlin", root=data_root)
    return recs, time.perf_counter() - t0


@pytest.fixture(scope="module")
def cows(data_root):
    return load_corpus("cowsl2h", root=data_root)


def test_merlin_counts_and_speed(merlin):
    recs, seconds = merlin
    assert seconds < 5, f"loading MERLIN took {seconds:.1f} s"
    s = corpus_stats(recs)
    assert s["n_texts"] == 2287
    assert s["by_language"] == {"de": 1033, "it": 813, "cs": 441}
    # "Overall CEFR rating" counted with grep over the release: 6 unrated + 3 EMPTY -> None.
    assert s["by_cefr"] == {"B1": 890, "A2": 875, "B2": 376, "A1": 87, "C1": 46, "(none)": 9,
                            "C2": 4}
    l1 = s["by_l1"]
    # "Mother tongue": 587 German, 253 Russian + 1 "Russa", 237 Polish, 178 Hungarian,
    # 124 "other" + 89 "Other", 280 "not reported" + 4 "EMPTY" + 1 "Slavic background".
    assert (l1["German"], l1["Russian"], l1["Polish"], l1["Hungarian"]) == (587, 254, 237, 178)
    assert l1["Other"] == 213 and l1["(none)"] == 285
    assert l1["Chinese/English"] == 1  # "English/Chinese"
    ids = [r.id for r in recs]
    assert len(set(ids)) == len(ids)
    assert all(r.text.strip() for r in recs)


def test_merlin_one_file_in_detail(merlin):
    r = next(x for x in merlin[0] if x.id == "1023_0001416")
    assert (r.language, r.cefr, r.cefr_raw, r.l1, r.author_id) == ("de", "B2", "B2", "Russian",
                                                                    "1023_0001416")
    assert r.task == "ask for information at Au pair Agency"
    assert r.meta["task_id"] == "1023_080401" and r.meta["test_level"] == "B2"
    assert r.meta["age"] == 45 and r.meta["gender"] == "female"
    assert r.meta["ratings"]["Grammatical accuracy"] == "C1"
    assert r.meta["ratings"]["Vocabulary control"] == "C2"
    assert r.text.startswith("M. Meier\nMüllergasse 1") and r.text.endswith("Maria Meier")
    assert r.text_corrected.startswith("M . Meier Müllergasse 1")
    assert "Target hypothesis" not in r.text and "----" not in r.text
    assert r.meta["target_hypothesis_2"].startswith("M . Meier")


def test_merlin_without_hypothesis_and_age_band(merlin):
    by_id = {r.id: r for r in merlin[0]}
    r = by_id["PHA0411027"]
    assert r.text_corrected is None and r.language == "cs"
    assert r.meta["age_range"] == "30-39" and r.meta["age"] is None
    assert r.meta["ratings"]["Sociolinguistic appropriateness"] == "0"


def test_merlin_per_language_entries(data_root):
    cs = load_corpus("merlin-cs", root=data_root)
    assert len(cs) == 441 and {r.language for r in cs} == {"cs"}
    assert Counter(r.cefr for r in cs)["A2"] == 188


def test_cowsl2h_counts(cows):
    s = corpus_stats(cows)
    assert s["n_texts"] == 5382
    assert s["by_language"] == {"es": 5382}
    assert s["by_cefr"] == {"(none)": 5382}
    ids = [r.id for r in cows]
    assert len(set(ids)) == len(ids)
    assert s["n_authors"] == 1935  # student ids recur across prompts and quarters
    course = Counter(r.meta["course"] for r in cows)
    assert (course["SPA 1"], course["SPA 2"], course["SPA 3"]) == (783, 1021, 1189)
    # beginner = SPA 1, 2, 3 and their variants 1Y (18), 2Y (1), 3V (2); heritage = 31-33.
    assert s["by_level"]["beginner"] == 783 + 1021 + 1189 + 18 + 1 + 2
    assert s["by_level"]["heritage"] == 164 + 122 + 293


def test_cowsl2h_l1_from_the_right_column(cows):
    # W21/S21 files hold counts ("3", "4 or more") in the "l1 language" column.
    assert not any(r.l1_raw in ("0", "1", "2", "3", "4 or more") for r in cows)
    w21 = [r for r in cows if r.meta["quarter"] == "W21"]
    assert w21 and Counter(r.l1 for r in w21)["English"] > 100
    assert Counter(r.l1 for r in cows)["English/Spanish"] > 0
    # Swapped age/gender columns (S18, W18) are repaired.
    s18 = [r for r in cows if r.meta["quarter"] == "S18"]
    assert Counter(r.meta["gender"] for r in s18)["female"] > 300
    assert all(r.meta["age"] is None or 15 <= r.meta["age"] <= 80 for r in s18)


def test_cli_stats_json_merlin(data_root):
    out = subprocess.run(
        [sys.executable, "-c", "from learnerprobe.cli import main; main()", "corpus", "stats", "merlin", "--root",
         str(data_root), "--json"], capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    s = json.loads(out)
    assert s["n_texts"] == 2287
    assert s["by_language"] == {"de": 1033, "it": 813, "cs": 441}
    assert s["by_cefr"]["B1"] == 890 and s["by_l1"]["German"] == 587

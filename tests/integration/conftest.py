"""Fixtures shared by the integration tests."""

import pytest


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A random tiny BERT (seed 0) saved as a plain transformers folder (safetensors), for tests
    that load a model by path: studies, training, fine-tuning. Tests only read it."""
    from learnerprobe.models.testing import tiny_model

    tok, model, _ = tiny_model("bert", seed=0)
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def cached_tiny_folder(tiny_folder, tmp_path):
    """``tiny_folder`` copied under ``tmp_path/cache/models`` (point LEARNERPROBE_CACHE at
    ``tmp_path/cache``): a bundle's model may only be a folder under the model cache
    (learnerprobe.models.sources), so tests that train or apply bundles use this one."""
    import shutil

    dst = tmp_path / "cache" / "models" / "tiny-bert"
    shutil.copytree(tiny_folder, dst)
    return dst

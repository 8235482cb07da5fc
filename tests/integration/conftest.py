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

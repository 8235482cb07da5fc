"""Shared by both test layers (tests/unit and tests/integration).

Sets the environment every test runs under (``LEARNERPROBE_DATA``, offline Hugging Face) and
provides the ``data_root`` fixture for the integration tests that read the real corpora.

``data_root`` *fails* (it does not skip) when MERLIN is missing: the house rule is that no
skipped test counts as passing, so a machine without the corpora must show red, not a row of
``s`` that reads as green. Unit tests never ask for ``data_root``; run them alone with
``make test-fast`` where the corpora are absent. Helpers both layers import live in
tests/helpers/ (tests never import other test modules).
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LEARNERPROBE_DATA", REPO.parent / "shared" / "data"))
os.environ.setdefault("LEARNERPROBE_DATA", str(DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "merlin-text-v1.2").is_dir():
        pytest.fail(f"MERLIN not found under {DATA}; set LEARNERPROBE_DATA")
    return DATA

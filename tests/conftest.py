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

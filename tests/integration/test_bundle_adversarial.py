"""A crafted bundle goes through the real CLI entry point in a subprocess: exit code 2, no
traceback, and the payload never runs (the full tampering table is tests/unit/test_bundle_adversarial.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.helpers.bundles import make_bundle
from tests.helpers.tampering import SENTINEL, exec_skops

CASES = {"T-skops-builtins-exec": exec_skops("builtins", "exec")}


@pytest.mark.parametrize("case_id", ["T-skops-builtins-exec"])
def test_cli_subprocess_no_traceback(tmp_path, case_id):
    base, _ = make_bundle(tmp_path, name="T")
    p = tmp_path / "bundle"
    shutil.copytree(base, p)
    CASES[case_id](p, tmp_path)
    for args in (["predict", "--bundle", str(p), "Ich wohne hier"], ["bundle", "verify", str(p)]):
        res = subprocess.run([sys.executable, "-m", "learnerprobe.cli", *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / SENTINEL).exists()

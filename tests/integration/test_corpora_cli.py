"""`learnerprobe corpus` in a subprocess: a loading error is one line, exit code 2, no traceback
(the in-process CLI tests are tests/unit/test_corpora_cli.py)."""

import subprocess
import sys


def test_cli_error_is_one_line_exit_2(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", "from learnerprobe.cli import main; main()", "corpus", "stats",
         "cowsl2h", "--root", str(tmp_path)], capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "github.com/ucdaviscl/cowsl2h" in res.stderr and str(tmp_path) in res.stderr

"""Running ``learnerprobe ARGS`` in-process as the console script does (``cli.main``)."""

from __future__ import annotations

import sys


def run_main(args, capsys) -> tuple[int, str, str]:
    """Run ``learnerprobe ARGS`` through main() as the console script does; (exit code, stdout,
    stderr). An exception main() does not turn into a message propagates, so a traceback fails
    the test."""
    import learnerprobe.cli as lp

    old = sys.argv
    sys.argv = ["learnerprobe", *map(str, args)]
    try:
        lp.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def call_main(args, capsys) -> tuple[int, str]:
    """:func:`run_main` with stdout and stderr together."""
    code, out, err = run_main(args, capsys)
    return code, out + err


def one_error_line(text: str) -> str:
    """The single ``error:`` line of a CLI failure (asserts there is exactly one)."""
    lines = [x for x in text.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]

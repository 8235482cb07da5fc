"""The CLI imports only the invoked command's module (start-up time of `learnerprobe predict`),
and still lists and runs every command."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

_SCRIPT = """
import json, sys
sys.argv = ["learnerprobe", *sys.argv[1:]]
from learnerprobe.cli import main
try:
    main()
except SystemExit:
    pass
mods = sorted(m for m in sys.modules if m.startswith(("learnerprobe", "pydantic_settings")))
print("\\nMODULES " + json.dumps(mods))
"""

TOP = ["nli-task", "extract", "predict", "serve", "mask", "run", "results", "train", "bundle",
       "corpus", "models", "bench"]
BENCH = ["study", "extract", "scale", "nli-zeroshot", "nli-finetune", "predict", "probes"]


def _modules(*args: str) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, *args], capture_output=True, text=True,
                          timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    out, _, mods = done.stdout.rpartition("\nMODULES ")
    return out, json.loads(mods)


def test_predict_help_imports_only_the_predict_module():
    out, mods = _modules("predict", "--help")
    assert "--bundle" in out and "--encoder" in out
    cli_mods = {m for m in mods if m.startswith("learnerprobe.cli.")}
    assert cli_mods <= {"learnerprobe.cli._lazy", "learnerprobe.cli.bench",
                        "learnerprobe.cli.predict"}, cli_mods
    assert "learnerprobe.cli.predict" in cli_mods
    assert not any(m.startswith(("learnerprobe.execution", "learnerprobe.study")) for m in mods)


def test_bench_subcommand_imports_its_module_only():
    out, mods = _modules("bench", "probes", "--help")
    assert "Fit every probe" in out
    assert "learnerprobe.cli.probes" in mods
    assert "learnerprobe.cli.extract" not in mods and "learnerprobe.cli.predict" not in mods


def test_help_lists_every_command_in_order():
    from learnerprobe.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    pos = [res.output.find(f"│ {name} ") for name in TOP]
    assert all(p >= 0 for p in pos) and pos == sorted(pos), pos
    res = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    pos = [res.output.find(f"│ {name} ") for name in BENCH]
    assert all(p >= 0 for p in pos) and pos == sorted(pos), pos


def test_unknown_command_is_a_usage_error():
    from learnerprobe.cli import app

    res = CliRunner().invoke(app, ["nosuch"])
    assert res.exit_code == 2 and "No such command" in res.output
    res = CliRunner().invoke(app, ["bench", "nosuch"])
    assert res.exit_code == 2 and "No such command" in res.output



def test_every_command_module_is_reachable():
    """Every command that any cli/<area>.py module registers is listed by a fresh process's
    ``--help`` (which imports only what the lazy tables name): a module missing from the tables
    would leave its commands silently unreachable."""
    import importlib
    import pkgutil

    import typer.main

    import learnerprobe.cli as cli
    from learnerprobe.cli.bench import bench_app

    for m in pkgutil.iter_modules(cli.__path__):
        if m.name != "__main__":  # runs the CLI
            importlib.import_module(f"learnerprobe.cli.{m.name}")
    for args, app in (((), cli.app), (("bench",), bench_app)):
        registered = set(typer.main.get_group(app).commands)
        out, _ = _modules(*args, "--help")
        missing = {n for n in registered if f"│ {n} " not in out}
        assert registered and not missing, missing

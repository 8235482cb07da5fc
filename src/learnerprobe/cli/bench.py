"""`learnerprobe bench ...`: the sub-app; benchmark commands register on it from their areas."""

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import typer

from learnerprobe.cli._lazy import lazy_group

# `bench` subcommands, each imported from its area's module on first use
_COMMANDS = {"study": "bench_study", "extract": "extract", "scale": "extract",
             "nli-zeroshot": "nli_llm", "nli-finetune": "nli_llm", "predict": "predict",
             "probes": "probes"}

bench_app = typer.Typer(cls=lazy_group(_COMMANDS, lambda: bench_app), no_args_is_help=True)

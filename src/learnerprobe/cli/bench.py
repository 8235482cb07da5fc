"""`learnerprobe bench ...`: the sub-app; benchmark commands register on it from their areas."""

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import typer

from learnerprobe.cli._lazy import LazyGroup

_CLI = "learnerprobe.cli."


class _BenchCommands(LazyGroup):
    """`bench` subcommands, each imported from its area's module on first use."""

    lazy = {
        "study": _CLI + "bench_study",
        "extract": _CLI + "extract",
        "scale": _CLI + "extract",
        "nli-zeroshot": _CLI + "nli_llm",
        "nli-finetune": _CLI + "nli_llm",
        "predict": _CLI + "predict",
        "probes": _CLI + "probes",
    }

    @staticmethod
    def typer_app() -> typer.Typer:
        return bench_app


bench_app = typer.Typer(cls=_BenchCommands, no_args_is_help=True)

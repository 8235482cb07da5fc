"""`learnerprobe bench ...`: the sub-app; benchmark commands register on it from their areas."""

# start-up time: heavy imports (numpy, torch, sklearn, the pipeline modules) stay inside the commands
import typer

bench_app = typer.Typer(no_args_is_help=True)

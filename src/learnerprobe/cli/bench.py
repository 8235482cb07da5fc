"""`learnerprobe bench ...`: the sub-app; benchmark commands register on it from their areas."""

import typer

bench_app = typer.Typer(no_args_is_help=True)

"""CLI commands of the models area (registered on learnerprobe.cli.app)."""

from learnerprobe.cli import app  # noqa: F401

"""CLI commands of the predict area (registered on learnerprobe.cli.app)."""

from learnerprobe.cli import app  # noqa: F401

"""CLI commands of the study area (registered on learnerprobe.cli.app)."""

from learnerprobe.cli import app  # noqa: F401

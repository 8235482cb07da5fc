"""CLI commands of the corpus area (registered on learnerprobe.cli.app)."""

from learnerprobe.cli import app  # noqa: F401

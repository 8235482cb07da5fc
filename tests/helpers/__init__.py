"""Shared test helpers, imported by both layers (tests/unit, tests/integration)."""

"""Model registry, offline providers and loading."""

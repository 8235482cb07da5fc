"""The probing study: TOML config -> protocols -> cached probe cells -> tidy results -> report."""

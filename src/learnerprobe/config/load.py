"""Reading a study config: TOML from a file (or a dict) into a :class:`StudyConfig`.

Every problem is one :class:`~learnerprobe.errors.ConfigError` naming the file and the key: an
unreadable or non-UTF-8 file, malformed TOML (also too-deep nesting and thousand-digit
numbers, ``limits.loads_toml``), unknown keys, wrong types and values out of range. The names
in it (corpora, models, probes, task, methods) are checked against the registries by
``learnerprobe.study.check.check_config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from learnerprobe.config.study import StudyConfig
from learnerprobe.errors import ConfigError
from learnerprobe.limits import loads_toml


def _loc(err: Any) -> str:
    """The dotted key of an error; a union member's tag ("literal['all']",
    "list[constrained-int]") is no key and is left out."""
    keep = err["type"] == "extra_forbidden"  # a user's own (odd) key is shown as written
    parts = [str(x) for x in err["loc"] if keep or not (isinstance(x, str) and "[" in x)]
    return ".".join(parts) or "(top level)"


def format_validation(e: ValidationError, source: str) -> str:
    """``SOURCE: invalid study config: KEY: message; ...``, one line."""
    parts = []
    errors = e.errors()
    for err in errors:
        loc = _loc(err)
        msg = err["msg"]
        if err["type"] == "literal_error" and any(
                o["type"] != "literal_error" and o["loc"][:1] == err["loc"][:1]
                and len(o["loc"]) > len(err["loc"]) for o in errors):
            continue  # layers = [-1]: the item's error says it; "should be 'all'" does not
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source}: invalid study config: " + "; ".join(parts)


def parse_config(data: dict[str, Any], source: str = "config") -> StudyConfig:
    """Validate a dict (from TOML) into a StudyConfig; ConfigError on any problem."""
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation(e, source)) from None


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a TOML study config (a corpus table's relative ``root`` is relative
    to the file's folder)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a config file (give the .toml file)")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {e.start}: {e.reason}); "
                          "save the config as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config: {e.strerror or e}") from None
    data = loads_toml(text, str(p))  # also refuses deep nesting and 5,000-digit numbers
    _resolve_corpus_roots(data, p.resolve().parent)
    return parse_config(data, str(p))


def _resolve_corpus_roots(data: dict[str, Any], base: Path) -> None:
    """A corpus table's relative ``root`` is relative to the config file's folder."""
    corpora = data.get("corpora")
    for c in corpora if isinstance(corpora, list) else []:
        if isinstance(c, dict) and isinstance(c.get("root"), str):
            root = Path(c["root"]).expanduser()
            c["root"] = str(root if root.is_absolute() else base / root)

"""A study's corpus entry: a registry name, or a table with its own root and loader options.

Only the shape lives here; whether the name is registered and the options fit its loader is
checked by :mod:`learnerprobe.corpora.registry` (``check_corpus_config``), which also loads it
(``load_corpus_config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CorpusConfig(BaseModel):
    """One corpus of a study: a registry ``name`` with its own ``root``, loader options (any
    other key, checked against the loader) and ``as``, the name the study gives it.

    TOML: ``corpora = ["merlin-de", { name = "bea19", root = "/data/bea2019", subset = "wi" },
    { name = "table", root = "data", path = "fce.csv", as = "fce-table", group_column = "id" }]``
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True,
                              frozen=True)

    name: str
    root: str | None = None
    as_: str | None = Field(None, alias="as", min_length=1)

    @property
    def study_name(self) -> str:
        """The corpus name inside the study (``as``, else ``name``)."""
        return self.as_ or self.name

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def with_root_base(self, base: str | Path) -> CorpusConfig:
        """A copy whose relative ``root`` is resolved against ``base`` (the config's folder)."""
        if self.root is None or Path(self.root).expanduser().is_absolute():
            return self
        return self.model_copy(update={"root": str(Path(base) / self.root)})


def as_corpus_config(corpus: str | CorpusConfig) -> CorpusConfig:
    """A config's corpus entry (a name or a table) as a CorpusConfig."""
    return corpus if isinstance(corpus, CorpusConfig) else CorpusConfig(name=corpus)

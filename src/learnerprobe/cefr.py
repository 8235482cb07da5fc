"""CEFR labels in one place: parsing the many spellings corpora use, collapsing, ordinal codes.

Canonical fine labels are A1, A1+, A2, A2+, B1, B1+, B2, B2+, C1, C1+, C2 ("+" marks the upper
half of a band or a boundary such as "C1/C2").  A :class:`CefrScheme` maps canonical labels onto
the coarser label set a study uses and to ordinal integers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LEVELS: tuple[str, ...] = ("A1", "A2", "B1", "B2", "C1", "C2")
FINE_LEVELS: tuple[str, ...] = (
    "A1", "A1+", "A2", "A2+", "B1", "B1+", "B2", "B2+", "C1", "C1+", "C2",
)
_SUBLEVEL = {"i": "", "1": "", "ii": "+", "2": "+", "+": "+", "-": "", "": ""}
_PAT = re.compile(r"^([ABC])\s*([12])\s*(?:[.\-_ ]?(ii|i|\+|-))?$", re.I)
_RANGE = re.compile(r"^([ABC][12])\s*[/|-]\s*([ABC][12])$", re.I)
# Spellings of "no rating" (MERLIN writes "unrated" and "EMPTY"); anything else that does not
# parse is an unparseable label: loaders warn and count it, or refuse it with strict=True.
_MISSING = {"", "na", "n/a", "none", "null", "nan", "-", "?", "unknown", "x", "unrated",
            "not rated", "empty", "not reported"}


def parse_cefr(raw: object, *, strict: bool = False) -> str | None:
    """Parse a raw CEFR label into a canonical fine label, or None when absent.

    Accepts "B1", "b1+", "B1-", "A2.ii", "A2.i", "C1/C2", numeric 1..6 and half steps ("3.5").
    With ``strict`` an unrecognised non-empty label raises ``ValueError``; otherwise it gives None.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"not a CEFR label: {raw!r}")
    if isinstance(raw, (int, float)):
        return _from_number(float(raw), raw, strict)
    s = str(raw).strip()
    if s.lower() in _MISSING:
        return None
    try:
        return _from_number(float(s), raw, strict)
    except ValueError:
        pass
    m = _RANGE.match(s)
    if m:
        lo, hi = sorted((m.group(1).upper(), m.group(2).upper()), key=LEVELS.index)
        if lo == hi:
            return lo
        if LEVELS.index(hi) - LEVELS.index(lo) == 1:
            return lo + "+"
        if strict:
            raise ValueError(f"CEFR range spans more than one level: {raw!r}")
        return None
    m = _PAT.match(s)
    if m:
        base = m.group(1).upper() + m.group(2)
        sub = (m.group(3) or "").lower()
        label = base + _SUBLEVEL[sub]
        return "C2" if label == "C2+" else label
    if strict:
        raise ValueError(f"not a CEFR label: {raw!r}")
    return None


def _from_number(x: float, raw: object, strict: bool) -> str | None:
    if x != x:  # NaN
        return None
    if 1 <= x <= 6 and (x * 2).is_integer():
        base = LEVELS[int(x) - 1]
        return base + ("+" if x % 1 else "")
    if strict:
        raise ValueError(f"numeric CEFR label out of range 1..6: {raw!r}")
    return None


def base_level(label: str) -> str:
    """Drop the "+" of a canonical label."""
    return label.rstrip("+")


@dataclass
class CefrScheme:
    """How a study collapses canonical labels.

    ``drop_plus`` maps B1+ to B1; ``merge`` lists groups that become one class named by
    ``names`` (default "C1+C2"-style joined names); ``abc`` keeps only the letter.
    """

    drop_plus: bool = True
    merge: Sequence[Sequence[str]] = field(default_factory=list)
    abc: bool = False
    names: dict[str, str] = field(default_factory=dict)

    def _group_name(self, group: Sequence[str]) -> str:
        key = "+".join(group)
        return self.names.get(key, key)

    @property
    def labels(self) -> list[str]:
        """The ordered class labels this scheme produces."""
        out: list[str] = []
        for fine in FINE_LEVELS:
            lab = self.map(fine)
            if lab is not None and lab not in out:
                out.append(lab)
        return out

    def map(self, label: str | None) -> str | None:
        if label is None:
            return None
        lab = parse_cefr(label, strict=True)
        if lab is None:
            return None
        if self.abc:
            return lab[0]
        if self.drop_plus:
            lab = base_level(lab)
        for group in self.merge:
            if lab in group or base_level(lab) in group:
                return self._group_name(group)
        return lab

    def to_int(self, label: str | None) -> int | None:
        lab = self.map(label)
        return None if lab is None else self.labels.index(lab)

    def from_int(self, i: int) -> str:
        labs = self.labels
        if not 0 <= int(i) < len(labs):
            raise ValueError(f"ordinal {i} outside 0..{len(labs) - 1}")
        return labs[int(i)]

    def encode(self, labels: Iterable[str | None]) -> list[int | None]:
        return [self.to_int(x) for x in labels]


# Named schemes that configs can refer to.
SCHEMES: dict[str, CefrScheme] = {
    "fine": CefrScheme(drop_plus=False),
    "six": CefrScheme(),
    "five": CefrScheme(merge=[["C1", "C2"]]),
    "abc": CefrScheme(abc=True),
}


def get_scheme(name: str) -> CefrScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown CEFR scheme {name!r}; known: {', '.join(SCHEMES)}") from None

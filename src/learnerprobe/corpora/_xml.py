"""What the XML corpus loaders (ALC, CEFR-ASAG, Icelandic L2) share: reading corpus XML safely
(a corpus file from a stranger must never expand entities, read local files or reach the
network), namespace-blind element helpers and the check of their common load options.

:func:`read_xml` parses with :mod:`defusedxml` (stdlib expat underneath). Settings:

- an internal DTD subset with element and attribute declarations is allowed: every file of the
  Arabic Learner Corpus carries one (``<!DOCTYPE doc [<!ELEMENT ...> <!ATTLIST ...>]>``);
- any entity declaration (general or parameter, internal or ``SYSTEM``) is refused: that stops
  "billion laughs" expansion and external entities such as ``file:///etc/passwd``;
- a DOCTYPE pointing at an external DTD (``SYSTEM``/``PUBLIC`` identifier) is refused too:
  expat would not fetch it, but no real corpus file has one, so it is a crafted file.

Every refusal and every parse error is a one-line :class:`DataFormatError` naming the file.
The byte-order mark or the XML declaration decides the encoding (ALC files are UTF-16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml.common import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from learnerprobe.errors import ConfigError, DataFormatError


class _SafeParser(DefusedXMLParser):
    """defusedxml with internal DTDs allowed but external DTD references refused."""

    def __init__(self) -> None:
        super().__init__(forbid_dtd=False, forbid_entities=True, forbid_external=True)
        # Not named "_doctype": XMLParser.__init__ sets an attribute of that name to None.
        self.parser.StartDoctypeDeclHandler = self._refuse_external_dtd

    @staticmethod
    def _refuse_external_dtd(name: str, sysid: str | None, pubid: str | None, _: Any) -> None:
        if sysid or pubid:
            raise ExternalReferenceForbidden(name, None, sysid, pubid)


def read_xml(path: Path, data: bytes | None = None) -> Element:
    """The root element of ``path`` (or of ``data`` read from it), parsed safely."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DataFormatError(f"{path}: cannot read ({e.strerror or e})") from None
    parser = _SafeParser()
    try:
        parser.feed(data)
        return parser.close()
    except EntitiesForbidden as e:
        where = f" (SYSTEM {e.sysid!r})" if e.sysid else ""
        raise DataFormatError(
            f"{path}: refused: the XML declares entity {e.name!r}{where}; entity expansion and "
            "external entities are not allowed in corpus files"
        ) from None
    except ExternalReferenceForbidden as e:
        raise DataFormatError(
            f"{path}: refused: the XML refers to an external resource ({e.sysid or e.pubid!r}); "
            "corpus files must be self-contained"
        ) from None
    except DefusedXmlException as e:
        raise DataFormatError(f"{path}: refused: unsafe XML ({type(e).__name__})") from None
    except ParseError as e:
        line, col = getattr(e, "position", (0, 0))
        msg = str(e).split(":", 1)[0]
        raise DataFormatError(f"{path}: line {line}, column {col}: malformed XML ({msg})") from None


def local(tag: Any) -> str:
    """An element's tag without its namespace (``{http://www.tei-c.org/ns/1.0}w`` -> ``w``)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(el: Element, name: str) -> Element | None:
    """The first child of ``el`` with local name ``name`` (namespace ignored)."""
    return next((c for c in el if local(c.tag) == name), None)


def descendants(el: Element, name: str) -> list[Element]:
    """All elements below ``el`` with local name ``name`` (namespace ignored), document order."""
    return [c for c in el.iter() if local(c.tag) == name and c is not el]


def text_of(el: Element | None) -> str | None:
    """All text inside ``el``, whitespace-collapsed; None when empty or absent."""
    if el is None:
        return None
    s = " ".join("".join(el.itertext()).split())
    return s or None


def check_load_options(corpus: str, on_error: str, **flags: Any) -> None:
    """``on_error`` is "error" or "skip" and every flag a real bool: ``-o natives=maybe`` from
    the command line arrives as a string, which would otherwise count as true."""
    if on_error not in ("error", "skip"):
        raise ConfigError(f"{corpus}: on_error must be 'error' or 'skip', not {on_error!r}")
    for name, v in flags.items():
        if not isinstance(v, bool):
            raise ConfigError(f"{corpus}: {name} must be true or false, not {v!r}")

"""Which types a bundle's skops file may reference, and loading it with exactly those.

skops builds an object from a file by calling the types the file names; any type outside an
EXACT list (not prefixes: ``builtins.exec`` or ``numpy.testing._private.utils.runstring`` are
refused, so a crafted file cannot run code on load) is refused before any object is built.

The list is derived, never written by hand: each estimator a bundle may hold declares itself
once, on its class::

    class RidgeOrdinal(...):
        _bundleable = {"types": (), "arrays": "ridge"}

``types``: the types, beyond skops' defaults (scikit-learn estimators, numpy/scipy arrays,
builtin containers and scalars), that its fitted state holds (exact names, or the classes);
``arrays``: its array form (:mod:`learnerprobe.bundles.export`): the name of an array kind
(:data:`learnerprobe.bundles.arrays.KINDS`), a function ``(estimator, prefix, tensors) -> spec``
(e.g. a method of the class), or None/absent for none. The trusted types are the declared
classes themselves plus their ``types``. A declaration belongs to its class alone: a subclass
inherits none (it may behave differently, so it is neither trusted nor exported).

Which classes: every scikit-learn estimator class (a ``BaseEstimator`` subclass) defined in
this process that declares itself, after importing :data:`ESTIMATOR_MODULES` (the built-in ones,
so the list never depends on what else happens to be imported; a test checks that every module
of the package that declares one is listed). A bundle cannot add to the list: the audit runs on
the type names in its file before anything in it is built, and a file names types, it never
defines them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learnerprobe.bundles.arrays import KINDS
from learnerprobe.bundles.integrity import skops_zip
from learnerprobe.errors import BundleError

ATTRIBUTE = "_bundleable"
ESTIMATOR_MODULES = (
    "learnerprobe.estimators.probes.level_probes",
    "learnerprobe.estimators.calibration",
    "learnerprobe.estimators.fewshot",
    "learnerprobe.estimators.nli.ngram",
    "learnerprobe.estimators.transfer.probe",
    "learnerprobe.estimators.transfer.torch_probes",
)
_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
# module roots whose types would hand a file the power to run code: never trusted, whatever a
# declaration says
_NEVER = frozenset({"builtins", "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy",
                    "pickle", "marshal", "shutil", "ctypes", "code", "codeop", "functools",
                    "operator", "types", "io", "socket"})


def type_name(cls: type) -> str:
    """The exact name skops uses for a type: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class Declaration:
    """A class's own declaration: the types a bundle of it may hold (itself included) and its
    array exporter (a kind name, a function, or None)."""

    cls: type
    types: frozenset[str]
    arrays: str | Callable[..., Any] | None


def _declared_type(t: Any, owner: type) -> str:
    name = type_name(t) if isinstance(t, type) else t
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TypeError(f"{type_name(owner)}.{ATTRIBUTE}: types must be classes or exact dotted "
                        f"names (module.Class), not {t!r}")
    if name.split(".")[0] in _NEVER or name.startswith("numpy.testing."):
        raise TypeError(f"{type_name(owner)}.{ATTRIBUTE}: {name} may never be trusted")
    return name


def declaration(cls: type) -> Declaration | None:
    """``cls``'s own declaration (None when the class itself declares none: a subclass of a
    declared class inherits nothing). TypeError for a malformed one (a programming error)."""
    d = vars(cls).get(ATTRIBUTE)
    if d is None:
        return None
    if not isinstance(d, dict) or not set(d) <= {"types", "arrays"}:
        raise TypeError(f"{type_name(cls)}.{ATTRIBUTE} must be a dict with the keys 'types' "
                        f"and/or 'arrays', not {d!r}")
    types = d.get("types", ())
    if isinstance(types, str) or not isinstance(types, (tuple, list, frozenset, set)):
        raise TypeError(f"{type_name(cls)}.{ATTRIBUTE}: types must be a tuple of classes or names")
    arrays = d.get("arrays")
    if not (arrays is None or arrays in KINDS or (callable(arrays) and not isinstance(arrays, str))):
        raise TypeError(f"{type_name(cls)}.{ATTRIBUTE}: arrays must be one of the array kinds "
                        f"{', '.join(KINDS)}, a function or None, not {arrays!r}")
    names = {_declared_type(t, cls) for t in types} | {_declared_type(cls, cls)}
    return Declaration(cls, frozenset(names), arrays)


def declarations() -> list[Declaration]:
    """Every declared estimator class in this process (see the module docstring), by name."""
    from sklearn.base import BaseEstimator

    for module in ESTIMATOR_MODULES:
        importlib.import_module(module)
    seen: set[type] = set()
    stack: list[type] = [BaseEstimator]
    out: list[Declaration] = []
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            d = declaration(sub)
            if d is not None:
                out.append(d)
    return sorted(out, key=lambda d: type_name(d.cls))


def trusted_types() -> frozenset[str]:
    """The exact types, beyond skops' defaults, a bundle's skops file may reference: the union
    of the declarations."""
    return frozenset().union(*(d.types for d in declarations()))


def refuse_untrusted(untrusted: list[str], trusted: frozenset[str], what: str) -> None:
    bad = sorted(t for t in untrusted if t not in trusted)
    if bad:
        raise BundleError(
            f"{what} references types that are not trusted: {', '.join(bad[:5])}; refusing to "
            "load it"
        )


def _loads_public(data: bytes, path: Path, what: str) -> Any:  # pragma: no cover
    """:func:`loads_trusted` through skops's public API (parses the file twice)."""
    import skops.io as sio

    skops_zip(data, path).close()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
        raise BundleError(f"{path}: not a readable skops file ({type(e).__name__}: {e})") from None
    trusted = trusted_types()
    refuse_untrusted(untrusted, trusted, what)
    try:
        return sio.loads(data, trusted=sorted(set(untrusted) & trusted))
    except Exception as e:  # noqa: BLE001
        raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None


def loads_trusted(data: bytes, path: Path, what: str) -> Any:
    """The object in a skops file, refused unless every type it references that skops does not
    trust by default is in :func:`trusted_types` (checked before any object is built).

    Why not ``get_untrusted_types`` then ``loads``: both parse the file into skops's node tree,
    and for an n-gram bundle (a vocabulary of ~10^5 entries, one node each) parsing is most of
    the load time. We parse once, audit that tree with the same ``get_unsafe_set`` skops's own
    ``get_untrusted_types`` uses, and construct from it -- the same steps ``skops.io.loads``
    takes, with our exact list in place of its audit. A skops without these internals falls
    back to the two public calls.
    """
    try:
        from skops.io._audit import get_tree
        from skops.io._utils import read_schema
    except ImportError:  # pragma: no cover - another skops layout: the public two-pass route
        return _loads_public(data, path, what)
    with skops_zip(data, path) as zf:
        try:
            schema, context = read_schema(zf)
            tree = get_tree(schema, context, trusted=None)
            untrusted = sorted(tree.get_unsafe_set())
        except Exception as e:  # noqa: BLE001 - any parse failure of a crafted file
            raise BundleError(f"{path}: not a readable skops file ({type(e).__name__}: {e})") from None
        refuse_untrusted(untrusted, trusted_types(), what)
        try:
            return tree.construct()
        except Exception as e:  # noqa: BLE001
            raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None

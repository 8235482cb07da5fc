"""Which types a bundle's skops file may reference, and loading it with exactly those.

skops builds an object from a file by calling the types the file names; any type outside an
EXACT list (not prefixes: ``builtins.exec`` or ``numpy.testing._private.utils.runstring`` are
refused, so a crafted file cannot run code on load) is refused before any object is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnerprobe.bundles.integrity import skops_zip
from learnerprobe.errors import BundleError

# The types, beyond skops' own defaults (sklearn estimators, numpy/scipy arrays, builtin
# containers and scalars), that a bundle's skops file may reference. An EXACT list, not prefixes.
# Derived by running `skops.io.get_untrusted_types` on every estimator `learnerprobe train` can
# bundle: the five probes (ridge, logistic, ordinal, mlp_reg, mlp_clf; tuned mode), ridge and
# mlp_reg inside the OrdinalCalibrated wrapper, and NgramClassifier in each of its variants (svm
# softmax, svm calibrated, logreg; char and/or word n-grams). tests/test_bundle_adversarial.py
# regenerates this from freshly fitted estimators and fails when it is no longer a superset.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "learnerprobe.calibration.OrdinalCalibrated",
    "learnerprobe.nli.ngram.NgramClassifier",
    "learnerprobe.probes.estimators.LogisticProbe",
    "learnerprobe.probes.estimators.MLPClfProbe",
    "learnerprobe.probes.estimators.MLPRegProbe",
    "learnerprobe.probes.estimators.OrdinalLogisticAT",
    "learnerprobe.probes.estimators.RidgeOrdinal",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",
    # the inductive transfer methods (issue 11; `learnerprobe train --method`): TransferProbe
    # (its LEACE / mean erasers) and the two torch probes, which store numpy arrays only
    "learnerprobe.transfer.adapt.Eraser",
    "learnerprobe.transfer.estimators.TransferProbe",
    "learnerprobe.transfer.torch_probes.DomainAdversarialMLP",
    "learnerprobe.transfer.torch_probes.ScalarMixProbe",
})


def refuse_untrusted(untrusted: list[str], what: str) -> None:
    bad = sorted(t for t in untrusted if t not in TRUSTED_TYPES)
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
    refuse_untrusted(untrusted, what)
    try:
        return sio.loads(data, trusted=sorted(set(untrusted) & TRUSTED_TYPES))
    except Exception as e:  # noqa: BLE001
        raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None


def loads_trusted(data: bytes, path: Path, what: str) -> Any:
    """The object in a skops file, refused unless every type it references that skops does not
    trust by default is in :data:`TRUSTED_TYPES` (checked before any object is built).

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
        refuse_untrusted(untrusted, what)
        try:
            return tree.construct()
        except Exception as e:  # noqa: BLE001
            raise BundleError(f"{path}: cannot load the estimator ({type(e).__name__}: {e})") from None

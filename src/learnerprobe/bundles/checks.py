"""Checks on a loaded estimator (skops or array form) before a bundle is used: what it holds
(no vectoriser regular expression outside the exact list), what it is (classes and input width
matching the manifest), and what it gives (finite probabilities and scores on check inputs made
from the bundle itself).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from learnerprobe.bundles import arrays as _arrays
from learnerprobe.bundles.manifest import Manifest
from learnerprobe.errors import BundleError

# Check inputs per load (besides the edge-case texts): enough to meet extreme weights, few
# enough to keep a cold `predict` fast (an n-gram array form: ~0.06 s)
CHECK_N = 16

_LEAVES = (str, bytes, int, float, complex, type(None))


def objects(root: Any, limit: int = 5_000_000) -> Any:
    """Every object reachable from a loaded estimator through instance attributes and container
    items (cycle-safe; scalars and numeric arrays are not yielded)."""
    import numpy as np

    seen: set[int] = set()
    stack = [root]
    while stack:
        o = stack.pop()
        if isinstance(o, _LEAVES) or id(o) in seen:
            continue
        if isinstance(o, np.ndarray) and o.dtype != object or isinstance(o, np.generic):
            continue
        seen.add(id(o))
        if len(seen) > limit:
            raise BundleError(f"the estimator holds over {limit} objects; not a learnerprobe "
                              "estimator")
        yield o
        if isinstance(o, dict):
            stack.extend(k for k in o if not isinstance(k, _LEAVES))
            stack.extend(v for v in o.values() if not isinstance(v, _LEAVES))
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(v for v in o if not isinstance(v, _LEAVES))
        elif isinstance(o, np.ndarray):
            stack.extend(v for v in o.ravel().tolist() if not isinstance(v, _LEAVES))
        elif isinstance(getattr(o, "__dict__", None), dict):
            stack.extend(v for v in vars(o).values() if not isinstance(v, _LEAVES))


def check_token_patterns(objs: list[Any], where: str) -> None:
    """The rule of the array form for every path: a vectoriser that compiles its token_pattern
    (analyzer "word") must use one from the exact list
    :data:`learnerprobe.bundles.arrays.TOKEN_PATTERNS`, so no regular expression from a
    bundle is ever compiled (a crafted one can backtrack for hours on a short text). ``objs``:
    the estimator's objects (:func:`objects`)."""
    for o in objs:
        attrs = getattr(o, "__dict__", None)
        if not isinstance(attrs, dict) or "token_pattern" not in attrs:
            continue
        analyzer = attrs.get("analyzer", "word")
        if analyzer in ("char", "char_wb"):
            continue  # these analyzers never compile the pattern
        pattern = attrs["token_pattern"]
        if analyzer != "word" or pattern not in _arrays.TOKEN_PATTERNS:
            shown = repr(pattern)[:80] if analyzer == "word" else f"analyzer {str(analyzer)[:40]!r}"
            raise BundleError(f"{where}: a vectoriser's token_pattern ({shown}) is not one of "
                              f"{list(_arrays.TOKEN_PATTERNS)}; a regular expression from a "
                              "bundle is never compiled")


def skops_inputs(est: Any, objs: list[Any], features: str, width: int | None) -> Any:
    """Check inputs for a skops estimator, made from the estimator itself (as
    :func:`learnerprobe.bundles.arrays.probe_inputs` does for the array form): texts of its
    vectorisers' vocabularies, or rows around its scalers' statistics (else standard normal)."""
    import numpy as np

    if features == "text":
        vocabs = [[k for k in o.vocabulary_ if isinstance(k, str)] for o in objs
                  if isinstance(getattr(o, "vocabulary_", None), dict)]
        return _arrays.text_inputs(_arrays.sample_terms(vocabs), n=CHECK_N)
    width = int(getattr(est, "n_features_in_", None) or width or 0)
    if width <= 0:
        return None
    scalers = []
    for o in objs:
        mean, scale = getattr(o, "mean_", None), getattr(o, "scale_", None)
        if (isinstance(mean, np.ndarray) and isinstance(scale, np.ndarray)
                and mean.shape == scale.shape == (width,)):
            scalers.append((mean, scale))
    return _arrays.feature_inputs(width, scalers[:4], n=CHECK_N)


def expected_width(spec: Manifest | None) -> int | None:
    """The estimator's input width the manifest implies (hidden-state bundles): the hidden size
    times the layers read, plus the surface columns."""
    if spec is None or spec.weights is None or spec.weights.hidden_size is None:
        return None
    return (spec.weights.hidden_size * len(spec.layers or [spec.layer])
            + spec.preprocessing.surface)


def check_estimator(folder: Path, labels: list[str], spec: Manifest | None, est: Any,
                    name: str) -> None:
    """Refuse an estimator without ``predict``, whose classes are not the manifest's labels (or
    the levels 0..K-1), or whose input width is not the one the manifest implies."""
    if not callable(getattr(est, "predict", None)):
        raise BundleError(f"{folder}: {name} holds no estimator (no predict method)")
    classes = getattr(est, "classes_", None)
    if classes is None or len(classes) != len(labels):
        n = "no" if classes is None else len(classes)
        raise BundleError(
            f"{folder}: the manifest lists {len(labels)} labels but the estimator has "
            f"{n} classes"
        )
    vals = list(classes)
    ints = all(isinstance(c, int) or type(c).__name__.startswith(("int", "uint")) for c in vals)
    if ints and [int(c) for c in vals] != list(range(len(labels))):
        raise BundleError(f"{folder}: estimator classes are not the levels 0..{len(labels) - 1}")
    if not ints and [str(c) for c in vals] != labels:
        raise BundleError(f"{folder}: estimator classes {vals[:5]} differ from the labels")
    want = expected_width(spec)
    width = getattr(est, "n_features_in_", None)
    if want is not None and width is not None and int(width) != want:
        hidden = spec.weights.hidden_size
        parts = "" if want == hidden else (
            f" ({len(spec.layers or [spec.layer])} layer(s) + "
            f"{spec.preprocessing.surface} surface columns = {want})")
        raise BundleError(
            f"{folder}: the estimator takes {width} features but the model's hidden "
            f"size is {hidden}{parts}"
        )


def check_outputs(folder: Path, est: Any, X: Any, name: str) -> None:
    """Refuse an estimator whose probabilities or scores on the bundle's own check inputs
    (``X``: made from its vocabulary or scaler statistics) are not finite numbers: extreme
    weights that pass every other check (3e38, a scale of 1e-310, a float32-max idf) would
    otherwise print NaN. The validation texts are not stored in a bundle (learner texts
    under corpus licences), hence inputs made from the estimator itself."""
    import numpy as np

    if X is None:
        return
    outs: list[tuple[str, Any]] = []
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for attr, what in (("predict_proba", "probabilities"), ("predict_score", "scores")):
                fn = getattr(est, attr, None)
                if fn is not None:
                    outs.append((what, np.asarray(fn(X), dtype=float)))
            est.predict(X)
    except Exception as e:  # noqa: BLE001 - any failure of a stranger's estimator
        why = (str(e).strip().splitlines() or [""])[0][:160]
        raise BundleError(f"{folder}: {name} fails on the bundle's own check inputs "
                          f"({type(e).__name__}: {why}); refusing it") from None
    for what, a in outs:
        if a.shape[:1] != (len(X),):
            raise BundleError(f"{folder}: {name} gives {what} of shape {a.shape} for "
                              f"{len(X)} check inputs")
        if not np.all(np.isfinite(a)):
            raise BundleError(
                f"{folder}: {name} gives non-finite {what} on the bundle's own check "
                "inputs (extreme weights); refusing it")

"""A bundleable estimator needs one declaration, on its class (learnerprobe.bundles.trust): a toy
estimator defined here, declared once, is bundled and loaded back through skops and through its
array form; without the declaration (a subclass inherits none) nothing trusts or exports it."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from learnerprobe.bundles.io import load_bundle, save_bundle
from learnerprobe.bundles.trust import declaration, trusted_types, type_name
from learnerprobe.errors import BundleError
from learnerprobe.methods import registry
from learnerprobe.methods.registry import MethodEntry
from learnerprobe.predict import Predictor
from tests.helpers.bundles import CEFR5, toy_levels

METHOD = "toy-centroids"
TEXT = "Ich wohne seit zwei Jahren in Wien und arbeite gern dort."


class ToyCentroids(ClassifierMixin, BaseEstimator):
    """Softmax over minus half the squared distance to each level's mean: a linear model (the
    squared norm of x cancels), so its array form is the built-in "logistic" kind."""

    def __init__(self, n_classes: int = 5):
        self.n_classes = n_classes

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        self.classes_ = np.arange(self.n_classes)
        self.means_ = np.stack([X[y == k].mean(axis=0) for k in self.classes_])
        self.n_features_in_ = X.shape[1]
        return self

    def _intercept(self) -> np.ndarray:
        return -0.5 * (self.means_ ** 2).sum(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64) @ self.means_.T + self._intercept()
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _to_arrays(self, prefix: str, tensors: dict) -> dict:
        """Its array form, as the "logistic" kind: coef = the means, no scaler."""
        tensors[prefix + "coef"] = self.means_
        tensors[prefix + "intercept"] = self._intercept()
        return {"kind": "logistic", "scaler": False, "present": list(range(self.n_classes)),
                "n_classes": self.n_classes}

    # The one declaration: a bundle may hold it (no skops types beyond itself), array form above.
    _bundleable = {"types": (), "arrays": _to_arrays}


class Undeclared(ToyCentroids):
    """The same estimator without a declaration of its own."""


@pytest.fixture
def toy_method():
    """The toy as a registered bundle method (a manifest names a bundle method)."""
    registry.register(MethodEntry(METHOD, "probe", lambda ctx, opts: ToyCentroids(), ("cefr",),
                                  ("activations", "model"), proba=True, target="nominal",
                                  bundle=True, description="toy: nearest level mean"))
    yield METHOD
    registry.unregister(METHOD)


def _save(root, est, X):
    from learnerprobe.models.pinning import weights_pin
    from learnerprobe.models.testing import tiny_entry

    entry = tiny_entry("bert")
    return save_bundle(root, task="cefr", method=METHOD, labels=CEFR5, estimator=est,
                       model=entry.to_dict(), weights=weights_pin(entry), layer=1,
                       preprocessing={"features": "hidden", "mask": False, "language": "de",
                                      "extraction": {"dtype": "float32", "max_length": 128,
                                                     "chunking": "truncate"}},
                       check_inputs=X[:40])


def test_toy_declared_once_is_bundled_and_loaded_through_skops_and_arrays(toy_method, tmp_path):
    X, y = toy_levels()
    est = ToyCentroids().fit(X, y)
    assert type_name(ToyCentroids) in trusted_types()

    b = load_bundle(_save(tmp_path / "toy", est, X))
    assert b.manifest["arrays"]["spec"]["kind"] == "logistic"  # exported through its declaration

    skops_est = b.load_estimator()  # trusted through its declaration
    assert type(skops_est) is ToyCentroids
    np.testing.assert_array_equal(skops_est.predict_proba(X), est.predict_proba(X))

    arr = b.load_array_estimator()
    assert arr is not None and arr.kind == "logistic"
    np.testing.assert_allclose(arr.predict_proba(X), est.predict_proba(X), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(arr.predict(X), est.predict(X))

    by_arrays, by_skops = Predictor.load(b.path), Predictor.load(b.path, arrays=False)
    assert by_arrays.engines["cefr"]["estimator"] == "arrays:logistic"
    assert by_skops.engines["cefr"]["estimator"] == "skops"
    assert by_arrays.predict([TEXT]) == by_skops.predict([TEXT])


def test_without_its_own_declaration_an_estimator_is_neither_trusted_nor_exported(toy_method,
                                                                                 tmp_path):
    X, y = toy_levels()
    assert declaration(Undeclared) is None  # the parent's declaration is not inherited
    assert type_name(Undeclared) not in trusted_types()

    b = load_bundle(_save(tmp_path / "undeclared", Undeclared().fit(X, y), X))
    assert "arrays" not in b.manifest and b.load_array_estimator() is None
    with pytest.raises(BundleError, match="not trusted"):
        b.load_estimator()


class _Plain:
    """Not an estimator: the discovery never sees it, so a bad declaration here harms no load."""


@pytest.mark.parametrize("decl, why", [
    ({"types": ("builtins.exec",)}, "may never be trusted"),
    ({"types": ("numpy.testing._private.utils.runstring",)}, "may never be trusted"),
    ({"types": ("sklearn.",)}, "exact dotted names"),
    ({"types": ("sklearn.*",)}, "exact dotted names"),
    ({"types": "sklearn.svm.LinearSVC"}, "tuple of classes or names"),
    ({"arrays": "bogus"}, "array kinds"),
    ({"array": "ridge"}, "must be a dict"),
    (["ridge"], "must be a dict"),
])
def test_a_malformed_declaration_is_refused(decl, why):
    cls = type("Bad", (_Plain,), {"_bundleable": decl})
    with pytest.raises(TypeError, match=why):
        declaration(cls)

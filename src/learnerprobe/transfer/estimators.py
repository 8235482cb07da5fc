"""TransferProbe: one layer's probe with the transfer methods as switches.

Every switch is one of the issue's methods, so each registry entry is this class with a few
parameters fixed and the nested protocol choosing the rest:

- ``decode``: ``argmax``; ``ev`` (round the expected level of the class probabilities);
  ``thresholds`` (cut points on the expected level / ridge score tuned for QWK on
  *cross-fitted* training predictions: leave-one-domain-out when domains are given);
- ``erase``: ``leace`` or ``mean`` erasure of domain identity, fitted on the training domains
  only, applied before the probe;
- ``standardize="domain"`` (transductive): every domain z-scored by its own statistics, the
  target by its unlabeled rows;
- ``prior``: ``em`` (Saerens et al. 2002) or ``bbse`` (Lipton et al. 2018) label-shift
  correction per target domain (transductive);
- ``features``: ``hidden``, ``hidden+surface`` (the last ``n_surface`` columns of ``X`` are
  surface features: one probe over both) or ``surface``; ``stack_surface``: a small logistic
  meta-model over the cross-fitted probe's expected level and the surface features (stacking
  with the surface baseline; out-of-domain cross-fitting teaches it how far to trust the probe
  on an unseen corpus).

Labels follow the probes' contract: with ``n_classes=K`` they are ``0..K-1`` and
``predict_proba`` has K columns; else the sorted unique training labels. ``domains`` defaults to
one domain, so the estimator also works as a plain probe (``fit(X, y)``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from learnerprobe.probes.estimators import encode_labels
from learnerprobe.transfer import adapt

DECODES = ("argmax", "ev", "thresholds")
ERASERS = (None, "leace", "mean")
PRIORS = (None, "em", "bbse")
FEATURES = ("hidden", "hidden+surface", "surface")


def _domains(domains: Any, n: int) -> np.ndarray:
    if domains is None:
        return np.zeros(n, dtype=object)
    d = np.asarray(domains, dtype=object)
    if d.shape != (n,):
        raise ValueError(f"domains has shape {d.shape}, expected ({n},)")
    return d


def _crossfit_folds(y: np.ndarray, domains: np.ndarray, seed: int) -> list[tuple[np.ndarray,
                                                                                np.ndarray]]:
    """Leave-one-domain-out when there are several domains (held-out predictions then look
    like a new corpus), else 3 stratified folds."""
    uniq = np.unique(domains)
    if len(uniq) > 1:
        return [(np.flatnonzero(domains != d), np.flatnonzero(domains == d)) for d in uniq]
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y)
    if counts[counts > 0].min() >= 3:
        cv: Any = StratifiedKFold(3, shuffle=True, random_state=seed)
    else:
        cv = KFold(3, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y)]


class TransferProbe(ClassifierMixin, BaseEstimator):
    """A linear probe (logistic or ridge) with the transfer switches of the module docstring.

    ``C``: inverse regularisation of the logistic base (ridge uses ``alpha = 1 / C``).
    ``class_weight="balanced"`` counters the pull towards the training label mix.
    """

    # see learnerprobe.bundles.trust; types: the LEACE / mean erasers; no array form
    _bundleable = {"types": (adapt.Eraser,)}

    def __init__(self, base: str = "logistic", C: float = 0.01, class_weight: str | None = None,
                 decode: str = "argmax", erase: str | None = None,
                 standardize: str | None = None, prior: str | None = None,
                 features: str = "hidden", n_surface: int = 0, stack_surface: bool = False,
                 n_classes: int | None = None, max_iter: int = 2000, tol: float = 1e-3,
                 random_state: int = 0):
        self.base = base
        self.C = C
        self.class_weight = class_weight
        self.decode = decode
        self.erase = erase
        self.standardize = standardize
        self.prior = prior
        self.features = features
        self.n_surface = n_surface
        self.stack_surface = stack_surface
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------ contract helpers
    @property
    def transductive(self) -> bool:
        """Adapts to each target domain's unlabeled rows at prediction time."""
        return self.standardize == "domain" or self.prior is not None

    def _check_params(self) -> None:
        checks = (("decode", self.decode, DECODES), ("erase", self.erase, ERASERS),
                  ("prior", self.prior, PRIORS), ("features", self.features, FEATURES),
                  ("base", self.base, ("logistic", "ridge")),
                  ("standardize", self.standardize, (None, "domain")))
        for name, v, ok in checks:
            if v not in ok:
                raise ValueError(f"{name}={v!r}; expected one of {ok}")
        if self.base == "ridge" and self.prior is not None:
            raise ValueError("prior correction needs class probabilities (base='logistic')")
        if (self.features != "hidden" or self.stack_surface) and self.n_surface <= 0:
            raise ValueError("surface features need n_surface > 0 (the last columns of X)")

    def _encode_y(self, y: np.ndarray) -> np.ndarray:
        self.classes_, yi = encode_labels(y, self.n_classes)
        return yi

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ns = int(self.n_surface)
        if ns <= 0:
            return X, X[:, :0]
        return X[:, :-ns], X[:, -ns:]

    # ------------------------------------------------------------------ features
    def _features(self, X: np.ndarray, domains: np.ndarray, fit: bool) -> np.ndarray:
        H, S = self._split(X)
        Z = {"hidden": H, "hidden+surface": np.hstack([H, S]), "surface": S}[self.features]
        Z = np.asarray(Z, dtype=float)
        if self.standardize == "domain":
            Z = adapt.standardize_by_domain(Z, domains)
        else:
            if fit:
                self.mean_ = Z.mean(0)
                sd = Z.std(0)
                self.scale_ = np.where(sd > 1e-8, sd, 1.0)
            Z = (Z - self.mean_) / self.scale_
        if self.erase is not None:
            if fit:
                many = len(np.unique(domains)) > 1
                fitter = adapt.leace_fit if self.erase == "leace" else adapt.mean_erasure_fit
                self.eraser_ = fitter(Z, domains) if many else None
            if self.eraser_ is not None:
                Z = self.eraser_(Z)
        return Z

    # ------------------------------------------------------------------ base model
    def _fit_base(self, Z: np.ndarray, yi: np.ndarray) -> Any:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.base == "ridge":
            sw = None
            if self.class_weight == "balanced":
                cnt = np.bincount(yi)
                sw = len(yi) / (np.count_nonzero(cnt) * cnt[yi])
            return Ridge(alpha=1.0 / self.C).fit(Z, yi.astype(float), sample_weight=sw)
        present = np.unique(yi)
        if len(present) == 1:
            return ("constant", int(present[0]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(C=self.C, class_weight=self.class_weight,
                                      max_iter=self.max_iter, tol=self.tol,
                                      random_state=self.random_state).fit(Z, yi)

    def _base_proba(self, model: Any, Z: np.ndarray) -> np.ndarray:
        k = len(self.classes_)
        out = np.zeros((len(Z), k))
        if isinstance(model, tuple):
            out[:, model[1]] = 1.0
            return out
        out[:, model.classes_] = model.predict_proba(Z)
        return out

    def _score(self, model: Any, Z: np.ndarray) -> np.ndarray:
        """Continuous level: ridge prediction, else the expected level."""
        if self.base == "ridge":
            return np.clip(model.predict(Z), 0, len(self.classes_) - 1)
        return adapt.expected_value(self._base_proba(model, Z))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, domains=None):
        """Fit on labelled rows of the training domains (``domains``: one name per row)."""
        self._check_params()
        X, y = validate_data(self, X, y)
        yi = self._encode_y(y)
        d = _domains(domains, len(yi))
        Z = self._features(X, d, fit=True)
        self.model_ = self._fit_base(Z, yi)
        n_iter = getattr(self.model_, "n_iter_", None)
        self.n_iter_ = 1 if n_iter is None else int(np.max(n_iter))
        need_cf = self.decode == "thresholds" or self.prior == "bbse" or self.stack_surface
        self.thresholds_ = None
        if need_cf:
            oof = self._crossfit(X, yi, d)
            self._fit_after(X, yi, oof)
        if self.base == "logistic":
            self.source_prior_ = self._base_proba(self.model_, Z).mean(0)
        return self

    def _crossfit(self, X: np.ndarray, yi: np.ndarray, d: np.ndarray) -> dict[str, np.ndarray]:
        """Held-out (leave-one-domain-out) predictions of the training rows."""
        k = len(self.classes_)
        proba = np.zeros((len(yi), k))
        score = np.zeros(len(yi))
        for tr, te in _crossfit_folds(yi, d, self.random_state):
            sub = self._clone_plain()
            sub.classes_ = self.classes_
            Ztr = sub._features(X[tr], d[tr], fit=True)
            Zte = sub._features(X[te], d[te], fit=False)
            m = sub._fit_base(Ztr, yi[tr])
            score[te] = sub._score(m, Zte)
            if self.base == "logistic":
                proba[te] = sub._base_proba(m, Zte)
        return {"proba": proba, "score": score}

    def _clone_plain(self) -> TransferProbe:
        p = self.get_params()
        p.update(decode="argmax", prior=None, stack_surface=False)
        return TransferProbe(**p)

    def _fit_after(self, X: np.ndarray, yi: np.ndarray, oof: dict[str, np.ndarray]) -> None:
        k = len(self.classes_)
        if self.prior == "bbse":
            self.bbse_y_ = yi
            self.bbse_pred_ = oof["proba"].argmax(1)
        if self.stack_surface:
            from sklearn.linear_model import LogisticRegression

            M = self._meta_features(oof["score"], X)
            self.meta_mean_, sd = M.mean(0), M.std(0)
            self.meta_scale_ = np.where(sd > 1e-8, sd, 1.0)
            self.meta_ = LogisticRegression(C=1.0, class_weight=self.class_weight,
                                            max_iter=self.max_iter).fit(
                (M - self.meta_mean_) / self.meta_scale_, yi)
            oof_score = adapt.expected_value(self._meta_proba(M))
        else:
            oof_score = oof["score"]
        if self.decode == "thresholds":
            self.thresholds_ = adapt.fit_thresholds(oof_score, yi, k)

    def _meta_features(self, score: np.ndarray, X: np.ndarray) -> np.ndarray:
        _, S = self._split(np.asarray(X, dtype=float))
        return np.column_stack([score, S])

    def _meta_proba(self, M: np.ndarray) -> np.ndarray:
        out = np.zeros((len(M), len(self.classes_)))
        out[:, self.meta_.classes_] = self.meta_.predict_proba(
            (M - self.meta_mean_) / self.meta_scale_)
        return out

    # ------------------------------------------------------------------ predict
    def _proba_and_score(self, X, domains) -> tuple[np.ndarray | None, np.ndarray]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        d = _domains(domains, len(X))
        Z = self._features(X, d, fit=False)
        if self.stack_surface:
            proba = self._meta_proba(self._meta_features(self._score(self.model_, Z), X))
        elif self.base == "ridge":
            return None, self._score(self.model_, Z)
        else:
            proba = self._base_proba(self.model_, Z)
        if self.prior is not None:
            proba = self._correct_prior(proba, d)
        return proba, adapt.expected_value(proba)

    def _correct_prior(self, proba: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Label-shift correction within each target domain, from its predictions only."""
        out = proba.copy()
        k = len(self.classes_)
        for dom in np.unique(d):
            m = d == dom
            if self.prior == "em":
                out[m] = adapt.em_prior(proba[m], self.source_prior_)[0]
            else:
                w = adapt.bbse_weights(self.bbse_y_, self.bbse_pred_, proba[m].argmax(1), k)
                out[m] = adapt.reweight(proba[m], w)
        return out

    def predict_proba(self, X, domains=None) -> np.ndarray:
        """Class probabilities (K columns). Ridge has none: a one-hot of the decoded level."""
        proba, score = self._proba_and_score(X, domains)
        if proba is None:
            return np.eye(len(self.classes_))[self._decode(None, score)]
        return proba

    def _decode(self, proba: np.ndarray | None, score: np.ndarray) -> np.ndarray:
        k = len(self.classes_)
        if self.thresholds_ is not None:
            return adapt.apply_thresholds(score, self.thresholds_).astype(int)
        if self.decode == "argmax" and proba is not None:
            return proba.argmax(1)
        return np.clip(np.rint(score), 0, k - 1).astype(int)

    def predict(self, X, domains=None) -> np.ndarray:
        proba, score = self._proba_and_score(X, domains)
        return self.classes_[self._decode(proba, score)]

    def decision_score(self, X, domains=None) -> np.ndarray:
        """The continuous level the decoding cuts (expected level or ridge score)."""
        return self._proba_and_score(X, domains)[1]

    def predict_score(self, X) -> np.ndarray:
        """:meth:`decision_score` of rows from no particular domain (what a bundle reports as
        the continuous ``score``, 0 = first level)."""
        return self.decision_score(X)

    @property
    def label_is_argmax(self) -> bool:
        """``predict`` is the argmax of ``predict_proba``; False for expected-value and
        threshold decoding, whose level a bundle must take from ``predict``
        (:mod:`learnerprobe.predict`)."""
        return self.decode == "argmax" or self.base == "ridge"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # ordinal decoding on non-ordinal check data
        return tags

"""DistributionCalibrator: scores or features -> annotator proportions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, _fit_context
from sklearn.decomposition import TruncatedSVD
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import (
    align_target_columns,
    check_not_label_encoded,
    check_proportions,
    check_threshold,
)
from .metrics import distribution_nll

_CLIP = 1e-6


def _soft_bce_affine(params: np.ndarray, z: np.ndarray, h: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean soft-target BCE of ``σ(a z + b)`` and its gradient in (a, b)."""
    a, b = params
    p = expit(a * z + b)
    eps = 1e-12
    loss = -np.mean(h * np.log(p + eps) + (1 - h) * np.log(1 - p + eps))
    residual = (p - h) / len(h)
    return loss, np.array([np.sum(residual * z), np.sum(residual)])


def _minimize_platt(z: np.ndarray, h: np.ndarray):
    return minimize(_soft_bce_affine, np.array([1.0, 0.0]), args=(z, h), jac=True,
                    method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 1000})


def fit_platt(z: np.ndarray, h: np.ndarray) -> tuple[float, float]:
    """Fit ``σ(a z + b)`` to soft targets ``h`` by BCE (z: logits of the scores).

    Examples
    --------
    >>> z = np.array([-2.0, -1.0, 1.0, 2.0]); h = expit(0.5 * z + 0.3)
    >>> np.round(fit_platt(z, h), 3)
    array([0.5, 0.3])
    """
    result = _minimize_platt(z, h)
    return float(result.x[0]), float(result.x[1])


def _minimize_temperature(Z: np.ndarray, H: np.ndarray):
    z, h = Z.ravel(), H.ravel()

    def loss(params):
        value, grad = _soft_bce_affine(np.array([params[0], 0.0]), z, h)
        return value, grad[:1]

    return minimize(loss, np.array([1.0]), jac=True, method="L-BFGS-B",
                    options={"gtol": 1e-10, "ftol": 1e-14})


def fit_temperature(Z: np.ndarray, H: np.ndarray) -> float:
    """One scale ``a`` shared by all labels: ``σ(a z)``, fitted by soft-target BCE.

    Examples
    --------
    >>> Z = np.array([[-2.0, 1.0], [2.0, -1.0]]); H = expit(0.5 * Z)
    >>> round(fit_temperature(Z, H), 3)
    0.5
    """
    return float(_minimize_temperature(Z, H).x[0])


class ConstantProbability:
    """Stand-in for a label whose training targets are all 0 (or all 1)."""

    def __init__(self, probability: float):
        self.probability = probability

    def predict_proba(self, X) -> np.ndarray:
        p = np.full(X.shape[0], self.probability)
        return np.column_stack([1 - p, p])


def fit_soft_logistic(X: np.ndarray, h: np.ndarray, C: float, max_iter: int):
    """Logistic regression on soft targets: each row appears as a positive with
    weight ``h`` and a negative with weight ``1 − h`` (exactly the soft BCE)."""
    rows = sp.vstack([X, X]).tocsr() if sp.issparse(X) else np.concatenate([X, X])
    labels = np.r_[np.ones(X.shape[0]), np.zeros(X.shape[0])]
    weights = np.r_[h, 1 - h]
    keep = weights > 0
    if len(np.unique(labels[keep])) < 2:  # a label never (or always) chosen in training
        return ConstantProbability(float(h.mean()))
    model = LogisticRegression(C=C, max_iter=max_iter)
    return model.fit(rows[keep], labels[keep], sample_weight=weights[keep])


class DistributionCalibrator(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Map LLM label scores (or any features) to annotator proportions.

    The final step of a Pipeline after
    :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier`, or a linear
    probe on hidden-state features. Targets are annotator proportions used as
    soft targets (never rounded); 0/1 labels work too.

    Parameters
    ----------
    method : {"platt", "temperature", "isotonic", "linear"}, default="platt"
        ``"platt"``: per label ``σ(a_l · logit(s_l) + b_l)``; ``"temperature"``:
        one shared ``σ(a · logit(s_l))``; ``"isotonic"``: per-label isotonic
        regression of the proportions on the scores; ``"linear"``: one logistic
        model per label on arbitrary features (the paper's probe), with L2
        strength ``C``. The first three need one score in [0, 1] per label.
    C : float, default=1.0
        Inverse L2 strength of ``"linear"``.
    standardize : bool, default=True
        ``"linear"`` only: scale features to unit variance (no centring).
    n_components : "auto", int or None, default="auto"
        ``"linear"`` only: TruncatedSVD size. ``"auto"`` is the paper's probe
        rule for dense features, ``max(d / 4, 512)`` capped by ``d − 1`` and
        ``n_samples − 1``, and no SVD for sparse features (TF-IDF and other
        bag-of-words inputs, which the logistic model handles directly and
        which a randomized SVD of thousands of components makes slow); None
        skips the SVD for every input.
    threshold : float or array-like of shape (n_labels,), default=0.5
        ``predict`` returns ``proba >= threshold``; each value in (0, 1). The
        label-set scorers of :func:`~sklearn_llm_multilabel.metrics.alignment_scorers`
        read ``predict``, so a search over ``threshold`` tunes them.
    max_iter : int, default=1000
        Iterations of the logistic solver.
    random_state : int, RandomState or None, default=0
        Seed of the TruncatedSVD (randomized), so that two identical fits
        give identical results; None draws a new seed every fit.

    Attributes
    ----------
    coef_ : ndarray of shape (n_labels, 2)
        ``(a_l, b_l)`` for ``"platt"``.
    temperature_scale_ : float
        ``a`` for ``"temperature"``.
    isotonic_ : list of IsotonicRegression
        For ``"isotonic"``: one per label.
    preprocessor_ : list of transformers
        For ``"linear"``: standardisation and, for wide inputs, TruncatedSVD.
    estimators_ : list of LogisticRegression
        For ``"linear"``: one soft-target logistic regression per label.
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels``.
    label_names_ : ndarray of str, shape (n_labels,)
        Output names: the columns of a DataFrame ``y``; else, for the
        per-label methods, the input feature names when there are some; else
        ``label0, label1, ...``.
    n_iter_ : ndarray of int of shape (n_labels,) or int
        Optimiser iterations: per label for ``"platt"`` and ``"linear"``, one
        number for ``"temperature"``; not set for ``"isotonic"`` (no
        iterative optimiser).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Input feature names, when ``S`` is a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> H = rng.integers(0, 4, (200, 2)) / 3
    >>> S = np.clip(H ** 2 + rng.normal(0, 0.05, H.shape), 0.01, 0.99)
    >>> cal = DistributionCalibrator().fit(S, H)
    >>> cal.predict_proba(S).shape
    (200, 2)
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"platt", "temperature", "isotonic", "linear"})],  # _METHODS
        "C": [Interval(Real, 0, None, closed="neither")],
        "standardize": ["boolean"],
        "n_components": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "threshold": [Interval(Real, 0, 1, closed="neither"), "array-like"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, method: str = "platt", *, C: float = 1.0, standardize: bool = True,
                 n_components="auto", threshold: float = 0.5, max_iter: int = 1000,
                 random_state=0):
        self.method = method
        self.C = C
        self.standardize = standardize
        self.n_components = n_components
        self.threshold = threshold
        self.max_iter = max_iter
        self.random_state = random_state

    def _sparse(self):
        """Sparse features (e.g. TF-IDF) are accepted by the linear method only."""
        return ("csr", "csc") if not _METHODS[self.method].per_label else False

    def _scores_to_logits(self, S: np.ndarray) -> np.ndarray:
        if S.size and (S.min() < 0 or S.max() > 1):
            raise ValueError(
                f"method={self.method!r} calibrates probabilities in [0, 1]; got scores in "
                f"[{S.min():g}, {S.max():g}]. Use method='linear' for arbitrary features."
            )
        return logit(np.clip(S, _CLIP, 1 - _CLIP))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, S, y):
        """Fit the mapping from ``S`` to the proportions ``y``.

        Parameters
        ----------
        S : array-like of shape (n_samples, n_features)
            Per-label scores (``n_features == n_labels``) or features.
        y : array-like of shape (n_samples, n_labels)
            Annotator proportions in [0, 1] or 0/1 labels.

        Returns
        -------
        self
        """
        check_not_label_encoded()
        if _METHODS[self.method].per_label:
            y = align_target_columns(y, S)  # per-label methods pair columns by name
        S = validate_data(self, S, dtype=np.float64, reset=True, accept_sparse=self._sparse())
        H = check_proportions(y, S.shape[0])
        n_labels = H.shape[1]
        check_threshold(self.threshold, n_labels)
        if _METHODS[self.method].per_label and S.shape[1] != n_labels:
            raise ValueError(
                f"method={self.method!r} needs one score per label: S has {S.shape[1]} columns "
                f"but y has {n_labels}. Use method='linear' for other features."
            )
        self.classes_ = [np.array([0, 1]) for _ in range(n_labels)]
        self.label_names_ = self._output_names(y, n_labels)
        if hasattr(self, "n_iter_"):
            del self.n_iter_
        _METHODS[self.method].fit(self, S, H)
        return self

    def _output_names(self, y, n_labels: int) -> np.ndarray:
        if hasattr(y, "columns"):
            return np.asarray([str(c) for c in y.columns], dtype=object)
        names = getattr(self, "feature_names_in_", None)
        if _METHODS[self.method].per_label and names is not None and len(names) == n_labels:
            return np.asarray(names, dtype=object)
        return np.asarray([f"label{k}" for k in range(n_labels)], dtype=object)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the columns of :meth:`transform` (see ``label_names_``).

        Examples
        --------
        >>> import pandas as pd
        >>> S = pd.DataFrame({"care": [0.2, 0.9, 0.1, 0.8], "purity": [0.7, 0.1, 0.6, 0.3]})
        >>> DistributionCalibrator().fit(S, S.round()).get_feature_names_out().tolist()
        ['care', 'purity']
        """
        check_is_fitted(self, "classes_")
        return np.asarray(self.label_names_, dtype=object)

    def _make_preprocessor(self, S: np.ndarray) -> list:
        steps = []
        X = S
        if self.standardize:
            steps.append(StandardScaler(with_mean=False).fit(X))
            X = steps[-1].transform(X)
        d, n = S.shape[1], S.shape[0]
        n_components = self.n_components
        if n_components == "auto":  # the paper's probe rule, for dense features
            n_components = None if sp.issparse(S) else max(d // 4, 512)
        if n_components is not None:
            n_components = min(n_components, d - 1, n - 1)
            if n_components >= 1:
                steps.append(TruncatedSVD(n_components, random_state=self.random_state).fit(X))
        return steps

    def _preprocess(self, S: np.ndarray) -> np.ndarray:
        X = S
        for step in self.preprocessor_:
            X = step.transform(X)
        return X

    def predict_proba(self, S) -> np.ndarray:
        """Calibrated per-label probabilities, shape (n_samples, n_labels)."""
        check_is_fitted(self, "classes_")
        S = validate_data(self, S, dtype=np.float64, reset=False, accept_sparse=self._sparse())
        return _METHODS[self.method].predict(self, S)

    def predict(self, S) -> np.ndarray:
        """0/1 labels: ``predict_proba(S) >= threshold``."""
        proba = self.predict_proba(S)
        return (proba >= check_threshold(self.threshold, proba.shape[1])).astype(int)

    def transform(self, S) -> np.ndarray:
        """Same as :meth:`predict_proba`, so the calibrator can also be a Pipeline step."""
        return self.predict_proba(S)

    def score(self, S, y, sample_weight=None) -> float:
        """Negative mean distribution NLL against ``y`` (higher is better)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score.")
        if _METHODS[self.method].per_label:
            y = align_target_columns(y, S)
        return -distribution_nll(check_proportions(y), self.predict_proba(S))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = not _METHODS[self.method].per_label
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_label = True
        return tags


# ------------------------------------------------------------------ the methods
def _fit_platt(est, S, H) -> None:
    Z = est._scores_to_logits(S)
    results = [_minimize_platt(Z[:, k], H[:, k]) for k in range(H.shape[1])]
    est.coef_ = np.array([r.x for r in results], dtype=float)
    est.n_iter_ = np.array([r.nit for r in results], dtype=int)


def _predict_platt(est, S) -> np.ndarray:
    return expit(est._scores_to_logits(S) * est.coef_[:, 0] + est.coef_[:, 1])


def _fit_temperature(est, S, H) -> None:
    result = _minimize_temperature(est._scores_to_logits(S), H)
    est.temperature_scale_ = float(result.x[0])
    est.n_iter_ = int(result.nit)


def _predict_temperature(est, S) -> np.ndarray:
    return expit(est.temperature_scale_ * est._scores_to_logits(S))


def _fit_isotonic(est, S, H) -> None:
    est._scores_to_logits(S)  # range check
    est.isotonic_ = [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(S[:, k], H[:, k])
        for k in range(H.shape[1])
    ]


def _predict_isotonic(est, S) -> np.ndarray:
    est._scores_to_logits(S)
    return np.column_stack([iso.predict(S[:, k]) for k, iso in enumerate(est.isotonic_)])


def _fit_linear(est, S, H) -> None:
    est.preprocessor_ = est._make_preprocessor(S)
    X = est._preprocess(S)
    est.estimators_ = [fit_soft_logistic(X, H[:, k], est.C, est.max_iter)
                       for k in range(H.shape[1])]
    est.n_iter_ = np.array([int(np.max(getattr(e, "n_iter_", 0))) for e in est.estimators_],
                           dtype=int)


def _predict_linear(est, S) -> np.ndarray:
    X = est._preprocess(S)
    return np.column_stack([e.predict_proba(X)[:, 1] for e in est.estimators_])


@dataclass(frozen=True)
class _Method:
    """One ``method`` of :class:`DistributionCalibrator`: what it reads and how it fits.

    ``per_label``: it maps each label's score to that label's probability
    (one score column per label, in [0, 1], columns paired with ``y``'s by
    name, dense); otherwise any features (sparse too) feed one model per label.
    """

    per_label: bool
    fit: Callable
    predict: Callable


#: every calibration method, looked up once by ``fit`` and ``predict_proba``
_METHODS: dict[str, _Method] = {
    "platt": _Method(True, _fit_platt, _predict_platt),
    "temperature": _Method(True, _fit_temperature, _predict_temperature),
    "isotonic": _Method(True, _fit_isotonic, _predict_isotonic),
    "linear": _Method(False, _fit_linear, _predict_linear),
}

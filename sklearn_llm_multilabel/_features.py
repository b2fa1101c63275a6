"""Hidden-state features from the step-scoring engine, for linear probes."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from ._classifier import LLMMultiLabelClassifier


class LLMHiddenStateFeatures(TransformerMixin, BaseEstimator):
    """Last-layer hidden state at the position that predicts the first label.

    ``make_pipeline(LLMHiddenStateFeatures(), DistributionCalibrator(method="linear"))``
    is the paper's linear probe. The features come from the same greedy
    decoding (and the same step cache) as
    :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier` with the same
    prompt, so probing texts the classifier already scored costs nothing.

    Parameters
    ----------
    classifier : LLMMultiLabelClassifier or None, default=None
        Decides the model, prompt and demonstrations; None means
        ``LLMMultiLabelClassifier()``. It is cloned and fitted in ``fit``.

    Attributes
    ----------
    classifier_ : LLMMultiLabelClassifier
        The fitted clone.
    n_features_out_ : int
        Hidden size of the model.

    Examples
    --------
    >>> from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
    >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
    >>> register_model("tiny-features-doc", *make_tiny_model_and_tokenizer())
    >>> feats = LLMHiddenStateFeatures(LLMMultiLabelClassifier(
    ...     "tiny-features-doc", n_shots=0, max_new_tokens=3, show_progress=False))
    >>> feats.fit_transform(["rain", "goal"], [["weather"], ["sports"]]).shape
    (2, 16)
    """

    _parameter_constraints: dict = {
        "classifier": [HasMethods(["fit", "first_step_hidden_states"]), None],
    }

    def __init__(self, classifier=None):
        self.classifier = classifier

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the classifier clone (choose demonstrations and the prompt).

        Returns
        -------
        self
        """
        base = LLMMultiLabelClassifier() if self.classifier is None else self.classifier
        self.classifier_ = clone(base).fit(X, y)
        config = self.classifier_.scoring_model().config
        self.n_features_out_ = int(config.get_text_config().hidden_size)
        return self

    def transform(self, X) -> np.ndarray:
        """Hidden states, shape (n_samples, hidden_size)."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.first_step_hidden_states(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``hidden0 ... hidden{d-1}``, one name per hidden-state dimension."""
        check_is_fitted(self, "n_features_out_")
        return np.array([f"hidden{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags

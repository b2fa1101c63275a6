"""Exceptions and warnings of :mod:`sklearn_llm_multilabel`.

Every error shares the package base class :class:`SklearnLLMError` and also
subclasses the built-in class a user would naturally catch (``ValueError``,
``ImportError``...), so ``except ValueError`` keeps working.
"""


class SklearnLLMError(Exception):
    """Base class of every error raised by this package."""


class ModelLoadError(SklearnLLMError, ValueError):
    """A model spec cannot be resolved or loaded (unknown spec, missing package, bad files)."""


class MissingModelPackageError(ModelLoadError, ImportError):
    """The package that ships an aliased model is not installed."""


class TokenizerError(SklearnLLMError, ValueError):
    """The model's tokenizer lacks something the prompt or the labels need."""


class ContextLengthError(SklearnLLMError, ValueError):
    """A prompt does not fit in the model's context window."""


class CacheWarning(UserWarning):
    """A cache entry was unreadable (truncated or corrupt) and is recomputed."""


class NoLabelStepWarning(UserWarning):
    """Some generations contained no label-generation step."""


class TruncationWarning(UserWarning):
    """Some texts were truncated to the per-text token budget."""


class LabelTokenWarning(UserWarning):
    """Label first tokens collide, so steps of those labels cannot be told apart by that token."""


class DemonstrationWarning(UserWarning):
    """The training data cannot supply the requested demonstrations."""


class DatasetFormatError(SklearnLLMError, ValueError):
    """A data file is malformed; the message names the file, the line and the problem."""


class DatasetWarning(UserWarning):
    """A data file is read, but part of it is not used (the message names what and why)."""


class PerformanceWarning(UserWarning):
    """Results are correct but computed on a slower path (e.g. no shared-prefix attention)."""


class ColumnOrderWarning(UserWarning):
    """A DataFrame target's columns were matched to ``labels`` by name, in another order."""


class IdenticalGenerationsWarning(UserWarning):
    """Every text got the same generated label list: the model may copy a demonstration."""


class UnknownLabelWarning(UserWarning):
    """The model wrote label names outside the label set (they are not scored as labels)."""


class UntrustedFileError(SklearnLLMError, ValueError):
    """A saved estimator would run code when loaded (a pickle), or holds untrusted types."""


class FineTuningWarning(UserWarning):
    """A fine-tuning run is too short to teach the adapter much (too few optimiser steps)."""


class StoreError(SklearnLLMError, ValueError):
    """A store folder cannot be used as it is (a damaged marker, both layouts' markers)."""

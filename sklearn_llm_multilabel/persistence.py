"""Save and load fitted estimators safely, with :mod:`skops.io`.

A joblib or pickle file runs whatever code it holds when it is loaded, so a
saved estimator received from someone else is a program. ``skops.io`` (the
scikit-learn ecosystem's safe format) stores the estimator as data: loading
builds only the types on a list of trusted ones, and refuses a file that
holds anything else. The base model's weights are never in the file (the
estimator stores its model spec; a fine-tuned one also its adapter's
weights, as arrays).

:func:`load_estimator` reads joblib and pickle files only when told to
(``trust_pickle=True``, ``sklml predict --trust-pickle``): do that only for
files you wrote yourself.
"""

from __future__ import annotations

import os
from pathlib import Path

from .exceptions import UntrustedFileError
from .store._atomic import atomic_write

__all__ = ["ESTIMATOR_FILE", "TRUSTED_TYPES", "UntrustedFileError", "load_estimator",
           "save_estimator"]

#: the types a saved estimator may hold beyond those skops trusts by default
TRUSTED_TYPES = (
    "sklearn_llm_multilabel._classifier.LLMMultiLabelClassifier",
    # a ``cache_dir`` given as a path object (building one runs no other code)
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
)
#: the file name ``sklml evaluate`` writes and ``sklml predict --model-dir`` reads
ESTIMATOR_FILE = "estimator.skops"
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def save_estimator(estimator, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to ``path`` in the skops format (no pickle).

    Parameters
    ----------
    estimator : LLMMultiLabelClassifier
    path : str or path-like
        The file to write (``.skops`` by convention); written under a
        temporary name and renamed into place.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
    >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
    >>> register_model("tiny-save-doc", *make_tiny_model_and_tokenizer())
    >>> clf = LLMMultiLabelClassifier("tiny-save-doc", n_shots=0, show_progress=False)
    >>> clf = clf.fit(["rain", "goal"], [["weather"], ["sports"]])
    >>> path = save_estimator(clf, tempfile.mkdtemp() + "/estimator.skops")
    >>> list(load_estimator(path).label_names_)
    ['sports', 'weather']
    """
    import skops.io as sio

    path = Path(path)
    atomic_write(path, lambda fh: sio.dump(estimator, fh))
    return path


def load_estimator(path: str | os.PathLike, *, trust_pickle: bool = False):
    """Read an estimator written by :func:`save_estimator` (or, if trusted, a pickle).

    Parameters
    ----------
    path : str or path-like
        A ``.skops`` file. A ``.joblib``, ``.pkl`` or ``.pickle`` file is
        refused unless ``trust_pickle=True``.
    trust_pickle : bool, default=False
        Read joblib and pickle files. Loading such a file runs any code it
        holds: only for files you wrote yourself.

    Returns
    -------
    estimator : LLMMultiLabelClassifier

    Raises
    ------
    UntrustedFileError
        A pickle without ``trust_pickle``, or a skops file holding types
        other than the library's estimators and what skops trusts.
    """
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        if not trust_pickle:
            raise UntrustedFileError(
                f"{path}: a joblib/pickle file runs any code it holds when loaded; save the "
                "estimator with sklearn_llm_multilabel.persistence.save_estimator (sklml evaluate "
                "writes estimator.skops), or pass trust_pickle=True (sklml predict --trust-pickle) "
                "for a file you wrote yourself.")
        import joblib

        return joblib.load(path)
    import skops.io as sio

    try:
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    except Exception as exc:  # a zip without skops' schema, or not a zip at all
        raise UntrustedFileError(f"{path}: not a skops file ({type(exc).__name__}: {exc}).") from None
    if untrusted:
        raise UntrustedFileError(
            f"{path}: holds types that are not trusted: {', '.join(untrusted)}; it was not loaded.")
    return sio.load(path, trusted=list(TRUSTED_TYPES))

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

A file cannot switch on code execution: an estimator saved with
``trust_remote_code=True`` (which lets transformers run a model folder's own
Python code) is refused unless the caller passes ``trust_remote_code=True``
to :func:`load_estimator` (``sklml predict --trust-remote-code``). A file is
also bounded before it is read: its schema at most 64 MiB and its members at
most ``max_bytes`` once decompressed, so that a small file cannot cost
gigabytes of memory.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .exceptions import UntrustedFileError
from .store._atomic import atomic_write

__all__ = ["ESTIMATOR_FILE", "MAX_SCHEMA_BYTES", "TRUSTED_TYPES", "UntrustedFileError",
           "load_estimator", "save_estimator"]

#: the types a saved estimator may hold beyond those skops trusts by default (scikit-learn's
#: own, such as ``Pipeline``, are trusted by skops)
TRUSTED_TYPES = (
    "sklearn_llm_multilabel._classifier.LLMMultiLabelClassifier",
    "sklearn_llm_multilabel._calibration.DistributionCalibrator",
    # a ``cache_dir`` given as a path object (building one runs no other code)
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
)
#: the file name ``sklml evaluate`` writes and ``sklml predict --model-dir`` reads
ESTIMATOR_FILE = "estimator.skops"
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: the most a saved file's ``schema.json`` may hold once decompressed (an estimator's
#: structure: kilobytes; its arrays are members of their own)
MAX_SCHEMA_BYTES = 64 * 2**20
#: the default bound on all members of a saved file once decompressed (a LoRA adapter's
#: weights are the largest part: megabytes for small models)
DEFAULT_MAX_BYTES = 4 * 2**30


def save_estimator(estimator, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to ``path`` in the skops format (no pickle).

    Parameters
    ----------
    estimator : LLMMultiLabelClassifier, DistributionCalibrator or Pipeline
        A fitted estimator of the library, or a scikit-learn ``Pipeline`` of
        them and scikit-learn's own estimators.
    path : str or path-like
        The file to write (``.skops`` by convention); written under a
        temporary name and renamed into place. Beside it,
        ``<path>.plan.json`` (plain JSON: the parameters, labels and key
        recipes) lets ``sklml predict`` answer a fully stored prediction
        without importing skops or torch; it is written for a single-prompt
        estimator without an adapter, and used only with this file.

    Returns
    -------
    path : Path

    Raises
    ------
    UntrustedFileError
        The estimator holds types that :func:`load_estimator` would refuse
        (for example an ``EncoderMultiLabelClassifier``, whose torch modules
        are not data): nothing is written.

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
    try:
        data = sio.dumps(estimator)
    except Exception as exc:  # skops cannot describe some object as data
        raise UntrustedFileError(
            f"{type(estimator).__name__} cannot be saved as data ({type(exc).__name__}: {exc}); "
            f"nothing was written to {path}. {_SAVED}") from None
    untrusted = _untrusted_types(sio.get_untrusted_types(data=data))
    if untrusted:
        raise UntrustedFileError(
            f"{path}: not written: the estimator holds types that load_estimator refuses "
            f"({', '.join(untrusted)}). {_SAVED}")
    atomic_write(path, lambda fh: fh.write(data))
    from ._plan import write_plan

    write_plan(estimator, path, data)  # beside it: what a fully stored prediction needs
    return path


_SAVED = ("save_estimator saves LLMMultiLabelClassifier, DistributionCalibrator and "
          "scikit-learn Pipelines of them (with a named aggregation); an "
          "EncoderMultiLabelClassifier holds torch modules: save its encoder_ and tokenizer_ "
          "with save_pretrained, or pickle it (joblib) for your own use.")


def _untrusted_types(found) -> list[str]:
    return [t for t in found if t not in TRUSTED_TYPES]


def _check_size(path: Path, max_bytes: int) -> None:
    """Refuse a file whose members decompress past the bounds, before any is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise UntrustedFileError(f"{path}: not a skops file ({type(exc).__name__}: {exc}).") \
            from None
    schema = sum(m.file_size for m in members if m.filename == "schema.json")
    total = sum(m.file_size for m in members)
    if schema > MAX_SCHEMA_BYTES:
        raise UntrustedFileError(
            f"{path}: its schema.json decompresses to {schema / 2**20:.0f} MiB (at most "
            f"{MAX_SCHEMA_BYTES // 2**20} MiB for an estimator's structure); it was not loaded.")
    if total > max_bytes:
        raise UntrustedFileError(
            f"{path}: its members decompress to {total / 2**20:.0f} MiB, more than "
            f"max_bytes={max_bytes} ({max_bytes / 2**20:.0f} MiB); it was not loaded. Pass a "
            "larger max_bytes for a file you trust.")


def _check_remote_code(estimator, path: Path, allowed: bool) -> None:
    """Refuse an estimator (or a step of a pipeline) saved with ``trust_remote_code=True``
    unless the caller allows it."""
    if allowed or not hasattr(estimator, "get_params"):
        return
    flagged = sorted(name for name, value in estimator.get_params(deep=True).items()
                     if name.split("__")[-1] == "trust_remote_code" and value is True)
    if flagged:
        raise UntrustedFileError(
            f"{path}: saved with {', '.join(flagged)}=True, which lets its "
            "model folder run its own Python code. A file cannot switch that on: pass "
            "trust_remote_code=True to load_estimator (sklml --trust-remote-code) if you trust "
            "the model it names.")


def load_estimator(path: str | os.PathLike, *, trust_pickle: bool = False,
                   trust_remote_code: bool = False, max_bytes: int = DEFAULT_MAX_BYTES):
    """Read an estimator written by :func:`save_estimator` (or, if trusted, a pickle).

    Parameters
    ----------
    path : str or path-like
        A ``.skops`` file. A ``.joblib``, ``.pkl`` or ``.pickle`` file is
        refused unless ``trust_pickle=True``.
    trust_pickle : bool, default=False
        Read joblib and pickle files. Loading such a file runs any code it
        holds: only for files you wrote yourself.
    trust_remote_code : bool, default=False
        Accept an estimator saved with ``trust_remote_code=True``. Without it
        such a file is refused: its model folder's own Python code would run
        when the model loads.
    max_bytes : int, default=4 GiB
        The most the file's members may hold once decompressed (checked from
        the zip directory before anything is read; the schema alone at most
        64 MiB).

    Returns
    -------
    estimator : LLMMultiLabelClassifier

    Raises
    ------
    UntrustedFileError
        A pickle without ``trust_pickle``, a skops file holding types
        other than the library's estimators and what skops trusts, a file
        past the size bounds, or ``trust_remote_code=True`` not allowed by
        the caller.
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

        estimator = joblib.load(path)
        _check_remote_code(estimator, path, trust_remote_code)
        return estimator
    import skops.io as sio

    _check_size(path, max_bytes)
    try:
        untrusted = _untrusted_types(sio.get_untrusted_types(file=path))
    except Exception as exc:  # a zip without skops' schema, or not a zip at all
        raise UntrustedFileError(f"{path}: not a skops file ({type(exc).__name__}: {exc}).") from None
    if untrusted:
        raise UntrustedFileError(
            f"{path}: holds types that are not trusted: {', '.join(untrusted)}; it was not loaded.")
    estimator = sio.load(path, trusted=list(TRUSTED_TYPES))
    _check_remote_code(estimator, path, trust_remote_code)
    return estimator

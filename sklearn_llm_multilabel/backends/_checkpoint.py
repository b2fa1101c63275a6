"""Checks of a checkpoint folder's weight files that read headers, never the weights.

Weights load lazily (at the first text to score), so a truncated
``model.safetensors`` would otherwise pass ``fit`` and fail inside a search or
a pipeline. :func:`check_weight_files` runs in ``fit`` (through the model
loader): every safetensors file's header must cover the file exactly (the
``safetensors`` library checks it when it opens the file, without reading the
tensors), every shard an index names must exist, and a zip-format ``.bin``
file must have its central directory (a truncated zip loses it).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..exceptions import ModelLoadError

_INDEXES = ("*.safetensors.index.json", "pytorch_model*.bin.index.json")


def _broken(spec: str, path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load model {spec!r}: {path} {why}. Check that the weight files are complete "
        "(copy or download them again).")


def check_weight_files(folder: str | Path, spec: str) -> None:
    """Raise :class:`ModelLoadError` naming the first incomplete or missing weight file.

    Parameters
    ----------
    folder : str or Path
        A checkpoint folder (``config.json`` and weight files).
    spec : str
        The model spec, for the message.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.safetensors").write_bytes(b"\\x08")
    >>> check_weight_files(folder, "mine")
    Traceback (most recent call last):
    ...
    sklearn_llm_multilabel.exceptions.ModelLoadError: Could not load model 'mine': ...
    """
    from safetensors import safe_open

    folder = Path(folder)
    for index in sorted(p for pattern in _INDEXES for p in folder.glob(pattern)):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _broken(spec, index, f"is not a readable weight index ({type(exc).__name__})") from None
        for name in sorted(shards):
            if not (folder / str(name)).is_file():
                raise _broken(spec, folder / str(name), f"is missing (listed in {index.name})")
    weights = sorted(folder.glob("*.safetensors"))
    for path in weights:
        try:
            with safe_open(str(path), "np"):
                pass
        except Exception as exc:  # the library's own error type; any failure means unreadable
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _broken(spec, path, f"is incomplete or damaged ({first}; "
                                      f"{path.stat().st_size} bytes)") from None
    for path in sorted(folder.glob("pytorch_model*.bin")):
        with open(path, "rb") as fh:
            is_zip_format = fh.read(2) == b"PK"
        if is_zip_format and not zipfile.is_zipfile(path):
            raise _broken(spec, path, "is incomplete or damaged (its zip directory is missing)")

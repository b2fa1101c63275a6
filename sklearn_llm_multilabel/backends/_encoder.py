"""Encoder checkpoints for fine-tuning: a fresh, trainable copy per call (never shared)."""

from __future__ import annotations

from pathlib import Path

from ..exceptions import MissingModelPackageError, ModelLoadError
from ._load import _HUB_ID, _first_line
from ._specs import ENCODER_ALIASES, package_folder


def encoder_source(spec: str) -> str:
    """The folder (or hub id) an encoder spec names: an alias, a local directory or a hub id.

    Examples
    --------
    >>> encoder_source("no/such-model")
    'no/such-model'
    """
    if spec in ENCODER_ALIASES:
        package, folder, install = ENCODER_ALIASES[spec]
        path = package_folder(spec, package, install) / folder
        if not (path / "config.json").is_file():
            raise MissingModelPackageError(f"{path} has no config.json; reinstall with: {install}")
        return str(path)
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser())
    if _HUB_ID.match(spec):
        return spec
    raise ModelLoadError(
        f"Unknown encoder spec {spec!r}. Pass the alias {sorted(ENCODER_ALIASES)}, a local "
        "directory with a transformers checkpoint, or a hub id in the local Hugging Face cache.")


def load_encoder(spec: str):
    """``(model, tokenizer)``: a new ``AutoModel`` (training mode) and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    source = encoder_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
    except Exception as exc:  # transformers raises many types here; re-raised with the path
        raise ModelLoadError(
            f"Could not load encoder {spec!r} from {source}: {type(exc).__name__}: "
            f"{_first_line(exc)}. A checkpoint directory needs its config, weights and "
            "tokenizer files; without network access, hub ids must already be in the local "
            "Hugging Face cache.") from exc
    if tokenizer.pad_token is None:
        raise ModelLoadError(f"The tokenizer of encoder {spec!r} has no padding token.")
    return model.train(), tokenizer

"""GGUF models converted once: a float checkpoint folder in the library's cache, loaded fast.

Reading a GGUF file costs every process its parse, a tokenizer rebuilt from
the file's metadata and the de-quantization of every tensor (about 18 s for
the embedded model on a 2-core CPU). The first process that loads a GGUF
model's weights writes what it obtained, exactly, into a folder of the
converted-model cache: ``model.safetensors`` (the de-quantized weights, in
the dtype they were loaded in), ``config.json`` without the quantization
fields and the tokenizer's files. Later processes load that folder with
``from_pretrained`` (memory-mapped), and the model fingerprint (hence every
record key) is the same as from the GGUF file.

A folder is named by a hash of the GGUF file's *content* (its SHA-256), the
dtype, and the versions of this conversion, of the library and of
transformers: every installation of the same file shares one conversion, and
a changed file (even one rewritten in place with its size and time restored)
or another version never reads stale weights. The records' keys come from
the same content hash, never from the folder's metadata. The folder is
written under a temporary name and renamed into place, its metadata file
last; the metadata holds the SHA-256 of every file written, and each is
checked before the folder is used (once per process while the file's stamp
stays the same: 0.3 s for the embedded model's weights). A folder whose
metadata or any file is missing, damaged or changed is removed and converted
again. A cache folder that cannot be written costs one
:class:`~sklearn_llm_multilabel.exceptions.PerformanceWarning` and nothing else.
A conversion killed mid-write leaves a temporary folder (named with its
process id); ``sklml cache info`` counts such orphans and ``sklml cache
prune`` removes them.

The cache is ``$SKLML_MODEL_CACHE``, else
``$XDG_CACHE_HOME/sklearn_llm_multilabel-models`` (``~/.cache/...``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from .._keys import file_digest
from .._leases import pid_alive
from .._warnings import warn_once
from ..exceptions import ModelLoadError, PerformanceWarning
from ._checkpoint import check_weight_files

#: bumped when the converted folder's content changes
CONVERSION_VERSION = "3"  # 2: tied weights stored under their source name; 3: keyed by content
#: the prefix of a conversion being written (``.tmp-<key>-<pid>-<random>``)
TMP_PREFIX = ".tmp-"
#: a temporary folder older than this is an orphan even if its process id is in use again
_ORPHAN_SECONDS = 24 * 3600
#: the metadata file, written last: a folder without it is incomplete
META = "sklml_conversion.json"
_CONFIG_DROP = ("quantization_config",)


def converted_root() -> Path:
    """The folder of converted models (``$SKLML_MODEL_CACHE`` or the user's cache)."""
    if os.environ.get("SKLML_MODEL_CACHE"):
        return Path(os.environ["SKLML_MODEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sklearn_llm_multilabel-models"


def conversion_key(sha256: str, dtype) -> str:
    """The folder name of the conversion of a GGUF file whose content has ``sha256``, at
    ``dtype`` (see the module docstring).

    transformers' version is read from its metadata, so naming a folder (as
    ``sklml cache info`` does for every conversion) imports nothing.
    """
    from importlib.metadata import version

    from .. import __version__

    parts = [sha256, str(dtype), CONVERSION_VERSION, __version__, version("transformers")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def find_conversion(sha256: str, dtype) -> Path | None:
    """The complete, unchanged conversion of the GGUF content ``sha256`` at ``dtype``, or None.

    Every file the metadata lists must have the SHA-256 written there when
    the folder was made. A folder that is there but incomplete, damaged or
    changed is removed (it will be converted again).
    """
    folder = converted_root() / conversion_key(sha256, dtype)
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("sha256") != sha256:
            raise ValueError("metadata of another source")
        files = meta.get("files")
        if not isinstance(files, dict) or not {"config.json", "tokenizer.json",
                                               "model.safetensors"} <= set(files):
            raise ValueError("metadata without the files' digests")
        for name, digest in files.items():
            if Path(name).name != name or file_digest(folder / name) != digest:
                raise ValueError(f"{name} differs from what was written")
        check_weight_files(folder, str(folder))
    except (OSError, ValueError, ModelLoadError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return folder


def write_conversion(gguf: Path, model, tokenizer, dtype, sha256: str) -> Path | None:
    """Write the conversion of ``gguf`` (content ``sha256``; its loaded ``model`` and
    ``tokenizer``); None if the cache cannot be written (one warning per process)."""
    root = converted_root()
    folder = root / conversion_key(sha256, dtype)
    if find_conversion(sha256, dtype) is not None:
        return folder  # another process converted it meanwhile
    tmp = root / f"{TMP_PREFIX}{folder.name}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        tmp.mkdir(parents=True)
        _save_weights(model, tmp / "model.safetensors")
        config = model.config.to_dict()
        for name in _CONFIG_DROP:  # the weights are floats now: no quantization to undo
            config.pop(name, None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True),
                                         encoding="utf-8")
        tokenizer.save_pretrained(tmp)
        files = {p.name: file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / META).write_text(json.dumps({"source": str(gguf), "sha256": sha256,
                                            "dtype": str(dtype), "files": files,
                                            "version": CONVERSION_VERSION}),
                                encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its conversion first
            if not folder.is_dir():
                raise
    except OSError as exc:
        warn_once(f"unwritable:{root}",
                  f"The converted-model cache {root} cannot be written ({type(exc).__name__}: "
                  f"{exc}); {gguf.name} is read from its GGUF file in every process (slower, "
                  "same results). Set SKLML_MODEL_CACHE to a writable folder.", PerformanceWarning)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _save_weights(model, path: Path) -> None:
    """Write ``model``'s weights, each tied pair once, under the name ``from_pretrained`` loads.

    A tied output layer (``lm_head.weight``, the same tensor as the input
    embeddings) is left out and the embeddings are kept, as ``save_pretrained``
    does: were only ``lm_head.weight`` stored, every load would first fill the
    missing embeddings with random numbers (a quarter of a second for the
    embedded model) before tying them back.
    """
    from safetensors.torch import save_file, save_model

    state = model.state_dict()
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    for target, source in tied.items():
        if (target in state and source in state
                and state[target].data_ptr() == state[source].data_ptr()):
            del state[target]
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path),
                  metadata={"format": "pt"})
    except RuntimeError:  # other tensors share memory: let safetensors choose the names
        save_model(model, str(path))


def stale_conversions(folders: list[Path]) -> list[Path]:
    """The complete conversions among ``folders`` that this version never reads.

    A conversion is stale when its folder is not the one this version would
    name for its source's content: written by another conversion, library or
    transformers version, of a source file that has since changed, or of a
    file that is gone. (Another installation with other versions, or with
    the same file at another path, may still read it; it converts again if
    it is removed.)
    """
    stale = []
    for folder in folders:
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            source = Path(meta["source"])
            current = (conversion_key(meta["sha256"], meta["dtype"])
                       if source.is_file() and file_digest(source) == meta["sha256"] else None)
        except (OSError, ValueError, KeyError, TypeError):  # gone, or no readable metadata
            current = None
        if current != folder.name:
            stale.append(folder)
    return stale


def orphaned_temporaries(root: Path | None = None) -> list[Path]:
    """Temporary folders of conversions whose process is gone (killed mid-write), or older
    than a day."""
    root = converted_root() if root is None else root
    found = []
    for path in sorted(root.glob(f"{TMP_PREFIX}*")) if root.is_dir() else []:
        try:
            pid = int(path.name.split("-")[-2])
            age = time.time() - path.stat().st_mtime
        except (ValueError, IndexError, OSError):
            found.append(path)  # not named as this module names them
            continue
        if age > _ORPHAN_SECONDS or not pid_alive(pid):
            found.append(path)
    return found


def folder_bytes(folders: list[Path]) -> int:
    """The bytes of the files under ``folders``."""
    return sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())


def cache_contents() -> tuple[Path, list[Path], int]:
    """The cache folder, its complete conversions and their bytes (for ``sklml cache info``)."""
    root = converted_root()
    folders = sorted(p for p in root.glob("*") if p.is_dir() and (p / META).is_file()
                     and not p.name.startswith(TMP_PREFIX)) if root.is_dir() else []
    return root, folders, folder_bytes(folders)

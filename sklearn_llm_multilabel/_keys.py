"""Record keys without the model: what a fitted estimator needs to find stored records.

A record's key is the SHA-256 of the scorer's fingerprint and the text's
query (``head + text + tail``, the text truncated to ``max_text_tokens``
tokens, salted when the text holds a special-token spelling). Building the
scorer needs transformers and the tokenizer; a :class:`KeyRecipe`, written
by ``fit`` and saved with the estimator, holds the few values the key is made
of, so that a prediction whose every record is stored imports neither torch
nor transformers.

The recipe is used only when it provably gives the scorer's own keys:

* the estimator's parameters that shape the prompt and the scorer are those
  it was made with (any change: the scorer decides);
* the model's files have the size, modification time, change time and inode
  they had (a changed file: the scorer re-hashes it; a file rewritten in
  place with its size and modification time restored still has a new change
  time, which no user call can set back);
* the library, transformers and tokenizers versions are the same;
* the text cannot have been truncated: the tokenizer is byte-level with no
  normaliser, so a text has at most one token per UTF-8 byte (plus a prefix
  space), and the text has at most ``max_text_tokens - 1`` bytes.

Anything else returns None, and the estimator takes its usual path.
Pure Python: nothing here imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: parameters that do not change what a record holds or its key
_NOT_IN_KEYS = frozenset({"aggregation", "threshold", "show_progress", "batch_size",
                          "cache_dir"})


def record_key(fingerprint: str, query: str, sealed: bool) -> str:
    """The content address of one query's record under a scorer's ``fingerprint``.

    A query whose text holds a special-token spelling (``sealed``) gets its own
    key: it is encoded sealed, so a record written before prompts were sealed
    is never reused. The engine's keys and the recipe's are both this function.

    Examples
    --------
    >>> record_key("fp", "Input: hi", False) != record_key("fp", "Input: hi", True)
    True
    """
    salt = "\x00sealed" if sealed else ""
    return hashlib.sha256((fingerprint + salt + "\x00" + query).encode()).hexdigest()


def params_signature(params: dict) -> str:
    """A digest of the parameters that shape the prompt, the model and the scorer."""
    shaped = {k: v for k, v in params.items() if k not in _NOT_IN_KEYS}
    return hashlib.sha256(repr(sorted(shaped.items())).encode()).hexdigest()


def software_versions() -> tuple[str, ...]:
    """The library's, transformers' and tokenizers' versions (metadata only: no import)."""
    found = []
    for name in ("sklearn_llm_multilabel", "transformers", "tokenizers"):
        try:
            found.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    return tuple(found)


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int, int, int]:
    """``(path, size, mtime_ns, ctime_ns, inode)`` of a file (a missing file: ``-1`` each).

    Any write to the file changes its change time (``ctime``), which, unlike
    the modification time, no user call can set back: a file swapped or
    rewritten in place with its size and modification time restored still
    gets a new stamp.
    """
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), -1, -1, -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def file_stamps(paths: Sequence[Path]) -> tuple[tuple[str, int, int, int, int], ...]:
    """:func:`file_stamp` of each file."""
    return tuple(file_stamp(path) for path in paths)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content, computed once per process while its
    :func:`file_stamp` stays the same (1.8 GB/s here: 0.06 s for the embedded
    model's GGUF file, 0.3 s for its converted weights).

    A file that changes while it is read is read again.
    """
    from . import _state

    path = Path(path).resolve()
    for _ in range(3):
        stamp = file_stamp(path)
        with _state.LOCK:
            if stamp in _state.FILE_HASHES:
                return _state.FILE_HASHES[stamp]
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        if file_stamp(path) == stamp:
            with _state.LOCK:
                _state.FILE_HASHES[stamp] = digest.hexdigest()
            return digest.hexdigest()
    raise OSError(f"{path}: the file kept changing while it was read; read it again when it "
                  "is no longer being written.")


def byte_level(tokenizer) -> bool:
    """Whether every token of ``tokenizer`` covers at least one byte of the UTF-8 input.

    True for a byte-level BPE tokenizer without a normaliser (GPT-2, SmolLM2,
    Llama 3, Qwen): its pre-tokeniser maps bytes to symbols one to one, and a
    normaliser could lengthen the text.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is not None:
        return False
    pre = backend.pre_tokenizer
    names = [type(pre).__name__]
    if names[0] == "Sequence":
        names = [type(p).__name__ for p in pre] if hasattr(pre, "__iter__") else names
    return "ByteLevel" in names


@dataclass(frozen=True)
class KeyRecipe:
    """The values a scorer's record keys are made of, and when they still hold.

    Parameters
    ----------
    kind : {"steps", "unary", "binary"}
    fingerprint : str
        The scorer's fingerprint (model, prompt, labels, decoding settings).
    head, tail : str
        A query is ``head + text + tail``.
    spellings : tuple of str
        The tokenizer's special-token spellings (a text holding one is
        encoded sealed and keyed apart).
    max_text_tokens : int
    signature : str
        :func:`params_signature` of the estimator when the recipe was made.
    stamps : tuple
        :func:`file_stamps` of the model's files.
    versions : tuple of str
        :func:`software_versions` when the recipe was made.
    checks : dict
        What a stored record must have: ``n_columns``, ``hidden_size`` and
        ``max_positions`` (steps) or ``n_queries`` (breakdowns); ``pairs``
        (binary) for the aggregation.
    """

    kind: str
    fingerprint: str
    head: str
    tail: str
    spellings: tuple[str, ...]
    max_text_tokens: int
    signature: str
    stamps: tuple
    versions: tuple[str, ...]
    checks: dict = field(default_factory=dict)

    def holds(self, params: dict, files: Sequence[Path] | None) -> bool:
        """Whether the recipe still gives the scorer's keys for an estimator with ``params``
        whose model spec now names ``files`` (a relative path may name other files from
        another working directory: then it does not hold)."""
        return (files is not None
                and [str(p) for p in files] == [stamp[0] for stamp in self.stamps]
                and params_signature(params) == self.signature
                and software_versions() == self.versions
                and file_stamps(files) == self.stamps)

    def keys(self, texts: Sequence[str]) -> list[str] | None:
        """Each text's record key, or None when a text might have been truncated."""
        from .backends._seal import spelling_pattern, unsealed_spans

        pattern = spelling_pattern(tuple(self.spellings))
        keys = []
        for text in texts:
            try:
                n_bytes = len(text.encode("utf-8"))
            except UnicodeEncodeError:  # the scorer's own check names it
                return None
            if n_bytes + 1 > self.max_text_tokens:
                return None
            query = self.head + text + self.tail
            span = (len(self.head), len(query) - len(self.tail))
            keys.append(record_key(self.fingerprint, query,
                                   bool(unsealed_spans(pattern, query, [span]))))
        return keys

    def check_record(self, record) -> None:
        """Raise ValueError when a stored record does not fit (as the scorer's own check)."""
        checks = self.checks
        if self.kind == "steps":
            if record.position_scores.shape[1] != checks["n_columns"]:
                raise ValueError(f"record has {record.position_scores.shape[1]} label columns; "
                                 f"expected {checks['n_columns']}")
            hidden = checks.get("hidden_size")
            if isinstance(hidden, int) and record.hidden.shape[0] != hidden:
                raise ValueError(f"record has a hidden state of size {record.hidden.shape[0]}; "
                                 f"expected {hidden}")
            if len(record.generated_ids) > checks["max_positions"]:
                raise ValueError("record has more positions than max_new_tokens")
        elif record.answer_scores.shape[0] != checks["n_queries"]:
            raise ValueError(f"record has {record.answer_scores.shape[0]} queries; expected "
                             f"{checks['n_queries']}")

"""Process-wide state of the library, in one place, under one lock.

Everything a process shares between estimators, clones and threads lives
here: loaded models, registered in-memory models, file hashes, prepared
scorers (with their encoded prompt prefixes), the in-memory step cache,
trained adapters and the counters of model work. Every read-modify-write of these goes through
:data:`LOCK` (re-entrant, so helpers may nest). The lock is never held while
the model runs: scoring itself only reads shared objects.

Pure Python; nothing here imports torch (:func:`quiet_transformers` imports
transformers' logging module when a model loads, when torch is there anyway).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager

#: the one lock of the process-wide state below
LOCK = threading.RLock()

#: ``(spec, device, dtype, trust_remote_code) -> LoadedModel``
MODELS: dict[tuple, object] = {}
#: ``key -> lock`` held while that model loads (one load per key, outside :data:`LOCK`)
LOADING: dict[tuple, threading.Lock] = {}
#: ``name -> (model, tokenizer, fingerprint or None)`` given to ``register_model``
CUSTOM: dict[str, tuple[object, object, str | None]] = {}
#: ``(path, size, mtime_ns, ctime_ns, inode) -> sha256`` of weight files (``_keys.file_digest``)
FILE_HASHES: dict[tuple, str] = {}
#: prepared scorers by their full configuration (LRU, at most :data:`MAX_SCORERS`)
SCORERS: OrderedDict[tuple, object] = OrderedDict()
MAX_SCORERS = 8
#: in-memory step cache ``key -> record`` (LRU, at most :data:`MEMORY_CACHE_SIZE`)
MEMORY: OrderedDict[str, object] = OrderedDict()
MEMORY_CACHE_SIZE = 200_000
#: bytes of the arrays of the records in :data:`MEMORY` (capped in ``store._memory``)
MEMORY_NBYTES = 0
#: trained LoRA adapters by content key ``key -> (weights, losses)`` (LRU, see ``MAX_ADAPTERS``)
ADAPTERS: OrderedDict[str, tuple] = OrderedDict()
MAX_ADAPTERS = 16
#: scoring models with an adapter merged in (LRU, bounded in ``backends._finetune``)
ADAPTED: OrderedDict[tuple, object] = OrderedDict()
#: store folders whose orphaned temporaries were cleaned by this process
OPENED_FOLDERS: set[str] = set()
#: what ``_warnings.warn_once`` has already reported in this process (an unwritable folder,
#: a damaged or foreign file), by key
WARNED_ONCE: set[str] = set()
#: encoders that embed texts for retrieved demonstrations ``spec -> (model, tokenizer)``
ENCODERS: dict[str, tuple] = {}
#: sentence embeddings of texts ``(encoder spec, text) -> vector`` (``backends._embed``)
EMBEDDINGS: OrderedDict[tuple, object] = OrderedDict()
MAX_EMBEDDINGS = 200_000
#: counters of model work (see ``get_scoring_stats``)
STATS: Counter = Counter()
#: loads running with transformers' progress bars switched off, and whether they were on
QUIET_LOADS = 0
PROGRESS_WAS_ON = False


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` (thread-safe)."""
    with LOCK:
        STATS[name] += n


@contextmanager
def quiet_transformers(quiet: bool = True):
    """Switch transformers' own progress bars off while a model loads (``quiet``).

    transformers has one process-wide switch
    (``transformers.utils.logging.disable_progress_bar``); it is flipped here
    only, under :data:`LOCK`, counting the quiet loads in flight, and put back
    as the user had it when the last one ends. A load that wants its bars and
    runs while another thread loads quietly shows none.
    """
    global QUIET_LOADS, PROGRESS_WAS_ON
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    with LOCK:
        if QUIET_LOADS == 0:
            PROGRESS_WAS_ON = hf_logging.is_progress_bar_enabled()
            if PROGRESS_WAS_ON:
                hf_logging.disable_progress_bar()
        QUIET_LOADS += 1
    try:
        yield
    finally:
        with LOCK:
            QUIET_LOADS -= 1
            if QUIET_LOADS == 0 and PROGRESS_WAS_ON:
                hf_logging.enable_progress_bar()

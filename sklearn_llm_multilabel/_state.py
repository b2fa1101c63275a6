"""Process-wide state of the library, in one place, under one lock.

Everything a process shares between estimators, clones and threads lives
here: loaded models, registered in-memory models, file hashes, prepared
scorers (with their encoded prompt prefixes), the in-memory step cache,
trained adapters and the counters of model work. Every read-modify-write of these goes through
:data:`LOCK` (re-entrant, so helpers may nest). The lock is never held while
the model runs: scoring itself only reads shared objects.

Pure Python; nothing here imports torch.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict

#: the one lock of the process-wide state below
LOCK = threading.RLock()

#: ``(spec, device, dtype, trust_remote_code) -> LoadedModel``
MODELS: dict[tuple, object] = {}
#: ``key -> lock`` held while that model loads (one load per key, outside :data:`LOCK`)
LOADING: dict[tuple, threading.Lock] = {}
#: ``name -> (model, tokenizer, fingerprint or None)`` given to ``register_model``
CUSTOM: dict[str, tuple[object, object, str | None]] = {}
#: ``(path, size, mtime_ns) -> sha256`` of weight files
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
#: counters of model work (see ``get_scoring_stats``)
STATS: Counter = Counter()


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` (thread-safe)."""
    with LOCK:
        STATS[name] += n

"""The record layer: what the engine computed, stored by content key. No torch.

* records (:class:`StepRecord`, :class:`BreakdownRecord`, :class:`AdapterRecord`):
  plain numpy, turned into arrays and JSON metadata, never pickles;
* :class:`RecordStore`: the protocol every store follows;
* two on-disk layouts: one ``.npz`` file per text (:class:`StepCache`, which
  also holds the in-process memory layer in front of either layout) and the
  sharded Parquet store (:class:`ShardedStore`), for millions of texts;
* one decision of a folder's layout, under a cross-process lock
  (:func:`~sklearn_llm_multilabel.scoring.open_store` and ``cache_dir=``);
* one atomic write, one byte-capped memory layer, one set of defences.
"""

from ._files import StepCache, check_cache_dir, clear_memory_cache
from ._layout import CacheContents
from ._protocol import RecordStore
from ._records import AdapterRecord, BreakdownRecord, StepRecord
from ._sharded import ShardedStore

__all__ = [
    "AdapterRecord",
    "BreakdownRecord",
    "CacheContents",
    "RecordStore",
    "ShardedStore",
    "StepCache",
    "StepRecord",
    "check_cache_dir",
    "clear_memory_cache",
]

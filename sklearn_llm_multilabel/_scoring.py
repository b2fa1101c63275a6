"""Glue between the cache and the engine: score only what the cache lacks."""

from __future__ import annotations

from collections.abc import Sequence

from ._cache import StepCache
from .backends._base import Scorer, StepRecord


def score_texts(
    scorer: Scorer,
    cache: StepCache,
    texts: Sequence[str],
    *,
    batch_size: int,
    show_progress: bool = False,
) -> list:
    """One :class:`StepRecord` per text, running the model only for texts not cached.

    Duplicate texts are scored once. Each finished batch is written to the
    cache immediately, so an interrupted run resumes where it stopped.
    """
    queries = scorer.prepare_queries(texts)
    keys = [scorer.query_key(q) for q in queries]
    found: dict[str, StepRecord] = {}
    todo: dict[str, str] = {}
    for key, query in zip(keys, queries):
        if key in found or key in todo:
            continue
        record = cache.get(key, kind=scorer.record_type, check=scorer.check_record)
        if record is None:
            todo[key] = query
        else:
            found[key] = record
    if todo:
        todo_keys = list(todo)

        def persist(indices: list[int], records: list[StepRecord]) -> None:
            for i, record in zip(indices, records):
                cache.put(todo_keys[i], record)
                found[todo_keys[i]] = record

        scorer.score_queries(
            [todo[k] for k in todo_keys],
            batch_size=batch_size,
            on_batch=persist,
            show_progress=show_progress,
        )
    return [found[k] for k in keys]

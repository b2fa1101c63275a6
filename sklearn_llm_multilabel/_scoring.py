"""The one glue between a store and a scorer: score only what the store lacks.

:func:`fill` is used by the estimator, :func:`~sklearn_llm_multilabel.scoring.score_texts`
and the Ray runner's actors alike (re-exported as ``scoring.fill``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .backends._base import Scorer
from .store._files import StepCache
from .store._records import StepRecord


def fill(
    scorer: Scorer,
    cache: StepCache,
    texts: Sequence[str],
    *,
    batch_size: int,
    show_progress: bool = False,
    with_keys: bool = False,
    check_keys: Callable[[list[str]], None] | None = None,
    on_scored: Callable[[int], None] | None = None,
):
    """One :class:`StepRecord` per text, running the model only for texts not cached.

    Duplicate texts are scored once. Each finished batch is written to the
    cache immediately, so an interrupted run resumes where it stopped.
    ``with_keys=True`` returns ``(keys, records)``. ``check_keys(keys)`` is
    called with every text's key before the store is read or the model runs
    (the Ray actors compare them with the driver's). ``on_scored(n)`` is called once the
    model has scored ``n`` texts the store lacked (not called when none was missing).
    """
    queries = scorer.prepare_queries(texts)
    keys = [scorer.query_key(q) for q in queries]
    if check_keys is not None:
        check_keys(keys)
    unique = list(dict.fromkeys(keys))  # duplicate texts are scored once
    cached = cache.get_many(unique, kind=scorer.record_type, check=scorer.check_record)
    found: dict[str, StepRecord] = {k: r for k, r in zip(unique, cached) if r is not None}
    query_of = dict(zip(keys, queries))
    todo: dict[str, str] = {k: query_of[k] for k, r in zip(unique, cached) if r is None}
    if todo:
        todo_keys = list(todo)

        def persist(indices: list[int], records: list[StepRecord]) -> None:
            batch_keys = [todo_keys[i] for i in indices]
            cache.put_many(batch_keys, records)
            found.update(zip(batch_keys, records))

        scorer.score_queries(
            [todo[k] for k in todo_keys],
            batch_size=batch_size,
            on_batch=persist,
            show_progress=show_progress,
        )
        if on_scored is not None:
            on_scored(len(todo_keys))
    records = [found[k] for k in keys]
    return (keys, records) if with_keys else records

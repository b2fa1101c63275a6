"""The fine-tuning step of ``LLMMultiLabelClassifier.fit``: find or train the adapter.

An adapter is content-addressed (:func:`~._finetune.adapter_key`): the base
model's fingerprint, every training example (prompt, answer, weight) and
every setting that shapes training. A fit whose key is in the step cache (in
memory, or ``cache_dir`` on disk, where adapters are entries like step
records) trains nothing.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from sklearn.utils import check_random_state

from . import _state
from ._finetune import MIN_USEFUL_STEPS, adapter_key, target_label_sets, training_examples
from ._prompts import _split_template
from ._warnings import warn
from .backends._seal import SealedEncoder
from .backends._text import truncate_texts
from .exceptions import FineTuningWarning
from .store._files import StepCache


def _require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "finetune='lora' needs peft: pip install peft (or the [finetune] extra of a checkout: "
            "pip install '.[finetune]')."
        ) from exc


def _training_prompt(est):
    """Prompt parts of the training examples: the estimator's format, ``finetune_shots`` demos."""
    shots = len(est.demonstrations_) if est.finetune_shots is None else est.finetune_shots
    if shots > len(est.demonstrations_):
        raise ValueError(
            f"finetune_shots={shots} is more than the {len(est.demonstrations_)} "
            "fitted demonstrations (n_shots); lower it or raise n_shots."
        )
    return est._prompt_parts(est.demonstrations_[:shots])


@dataclasses.dataclass(frozen=True)
class FittedAdapter:
    """What a fit's fine-tuning produced; the estimator copies it into its fitted attributes.

    Attributes
    ----------
    key : str
        The adapter's content address (``adapter_key_``).
    weights : dict of str to ndarray
    losses : ndarray
        Training loss per optimiser step.
    settings : dict
        The training settings, with the seed drawn from ``random_state``.
    base_fingerprint : str
        The base model it was trained on.
    n_examples : int
    seconds : float
        Time taken (training, or finding it cached).
    """

    key: str
    weights: dict
    losses: np.ndarray
    settings: dict
    base_fingerprint: str
    n_examples: int
    seconds: float


def fit_adapter(est, texts, Y, names, annotator_labels, base) -> FittedAdapter:
    """Train, or find in the store, the LoRA adapter of a fit (see ``LLMMultiLabelClassifier``)."""
    _require_peft()
    from .backends._finetune import LoraSettings, train_lora
    from .store._records import AdapterRecord

    start = time.perf_counter()
    seed = int(check_random_state(est.random_state).randint(np.iinfo(np.int32).max))
    targets = est.lora_target_modules
    if targets is not None and not isinstance(targets, str):  # a string is peft's (a regex, "all-linear")
        targets = tuple(str(t) for t in targets)
        if not targets:
            raise ValueError("lora_target_modules is empty; pass module names, a string or None.")
    settings = LoraSettings(
        rank=int(est.lora_rank), alpha=float(est.lora_alpha), dropout=float(est.lora_dropout),
        target_modules=targets, epochs=int(est.finetune_epochs),
        learning_rate=float(est.finetune_learning_rate), batch_size=int(est.finetune_batch_size),
        max_length=int(est.finetune_max_length), seed=seed,
    )
    label_sets = target_label_sets(
        Y, names, est.finetune_targets, annotator_labels=annotator_labels,
        n_sets=est.finetune_label_sets, rng=np.random.RandomState(seed),
    )
    parts = _training_prompt(est)
    _, mid, tail = _split_template(est.example_template)
    lead = "" if est.use_chat_template else mid[len(mid.rstrip()):]
    cut = truncate_texts(base.tokenizer, texts, est.max_text_tokens, what="fine-tuning texts")
    examples = training_examples(
        [parts.query(t) for t in cut], label_sets, label_format=est.label_format,
        none_label=est.none_label, answer_lead=lead, answer_end=tail + "\n",
    )
    described = {**dataclasses.asdict(settings), "prefix": parts.prefix,
                 "add_bos": parts.add_bos, "device": base.device.type}
    spans = [[parts.text_span(ex.prompt)] for ex in examples]
    sealer = SealedEncoder(base.tokenizer)
    if (sealer.needs_sealing(parts.prefix, parts.prefix_data)
            or any(sealer.needs_sealing(ex.prompt, s) for ex, s in zip(examples, spans))):
        described["sealed"] = True  # never reuse an adapter trained on unsealed control tokens
    key = adapter_key(base.fingerprint, examples, described)
    cache = StepCache(est.cache_dir)
    record = cache.get(key, kind=AdapterRecord)
    if record is None:
        weights, losses, n_cut = train_lora(base, examples, prefix=parts.prefix,
                                            add_bos=parts.add_bos, settings=settings,
                                            show_progress=est.show_progress,
                                            prefix_data=parts.prefix_data, query_data=spans)
        record = AdapterRecord(weights=weights, losses=losses, n_cut=n_cut)
        cache.put(key, record)
    else:
        _state.count("adapters_reused")
    n_steps = -(-len(examples) // settings.batch_size) * settings.epochs
    if n_steps < MIN_USEFUL_STEPS:
        warn(
            f"fine-tuning takes {n_steps} optimiser step(s) ({len(examples)} examples, "
            f"finetune_batch_size={settings.batch_size}, finetune_epochs={settings.epochs}); an "
            f"adapter learns little from fewer than {MIN_USEFUL_STEPS}: raise finetune_epochs, "
            "lower finetune_batch_size or train on more texts.",
            FineTuningWarning,
        )
    if record.n_cut:
        warn(
            f"{record.n_cut} of {len(examples)} fine-tuning examples were longer than "
            f"finetune_max_length={est.finetune_max_length} tokens and lost the start of their "
            "query; raise finetune_max_length or lower max_text_tokens.",
            UserWarning,
        )
    return FittedAdapter(key=key, weights=dict(record.weights),
                         losses=np.asarray(record.losses, dtype=float),
                         settings=dataclasses.asdict(settings), base_fingerprint=base.fingerprint,
                         n_examples=len(examples), seconds=time.perf_counter() - start)


def adapted(est, base):
    """The scoring model of a fine-tuned estimator: its base with the adapter merged in."""
    from .exceptions import ModelLoadError

    if base.fingerprint != est.adapter_base_fingerprint_:
        raise ModelLoadError(
            f"The model {est.model!r} is not the one the adapter was trained on (its weights, "
            "tokenizer or dtype differ from those at fit time); call fit again."
        )
    _require_peft()
    from .backends._finetune import LoraSettings, adapted_model

    settings = LoraSettings(**est.finetune_settings_)
    return adapted_model(base, est.adapter_key_, est.adapter_weights_, settings)

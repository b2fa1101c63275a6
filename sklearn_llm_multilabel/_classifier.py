"""LLMMultiLabelClassifier: a causal LLM as a scikit-learn multi-label classifier."""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._aggregation import (
    AGGREGATION_TABLE,
    AGGREGATIONS,
    Aggregation,
    pack_steps,
)
from ._aggregation import step_distributions as _step_distributions
from ._breakdown import (
    build_binary_prompt,
    build_unary_prompt,
    select_breakdown_demonstrations,
    select_breakdown_demonstrations_official,
)
from ._diagnostics import dominant_generation, unknown_label_message, unknown_label_summary
from ._finetune import FINETUNE_TARGETS
from ._prompts import (
    DEFAULT_EXAMPLE_TEMPLATE,
    DEFAULT_INSTRUCTION,
    LABEL_FORMATS,
    PROTOCOLS,
    _split_template,
    build_prompt,
    draw_demonstration_sets,
    join_label_names,
    label_separator,
    select_demonstrations,
    select_demonstrations_official,
)
from ._scoring import fill
from ._validation import (
    check_label_names,
    check_not_label_encoded,
    check_targets,
    check_texts,
    check_threshold,
    missing_annotator_id,
    text_multilabel_tags,
)
from ._warnings import one_per_call, warn
from .backends._specs import DEFAULT_ENCODER, DEFAULT_MODEL
from .backends._text import check_tokenizer, default_max_new_tokens, truncate_texts
from .exceptions import (
    ContextLengthError,
    DemonstrationWarning,
    IdenticalGenerationsWarning,
    NoLabelStepWarning,
    UnknownLabelWarning,
)
from .metrics import example_f1
from .store._files import StepCache, check_cache_dir
from .store._records import BreakdownRecord, StepRecord

#: ``demo_selection="annotator"`` prompts at most this many annotators (most labels first)
MAX_ANNOTATOR_PROMPTS = 10
#: parameters that decide, in ``fit``, which demonstrations each prompt shows: changing one
#: afterwards needs a new fit (checked before every prediction)
DEMONSTRATION_PARAMS = ("n_shots", "include_empty_demos", "demo_selection", "demo_encoder",
                        "n_prompts", "random_state")
#: ``include_empty_demos="auto"`` shows demonstrations with no label from this share of
#: training texts without a label (measured: docs/results/demonstrations.md)
EMPTY_SHARE = 0.25

if TYPE_CHECKING:  # the engine imports torch: only when a model is used
    from .backends._breakdown import BreakdownScorer
    from .backends._hf import StepScorer
    from .backends._registry import ScorerSpec


#: the parameters a fitted adapter depends on (changing one after fit asks for a refit)
FINETUNE_PARAMS = (
    "finetune", "finetune_targets", "finetune_label_sets", "finetune_shots", "finetune_epochs",
    "finetune_learning_rate", "finetune_batch_size", "finetune_max_length", "lora_rank",
    "lora_alpha", "lora_dropout", "lora_target_modules",
)


class LLMMultiLabelClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Multi-label classification with a causal LLM's per-step label distributions.

    The model is prompted (instruction, ``n_shots`` demonstrations from the
    training data, query) to write each text's label list, greedily. At every
    *label-generation step* the engine records the label scores (max logit
    over each label's first-token variants, and the empty-set word). The
    ``aggregation`` turns those cached scores into independent per-label
    probabilities, so changing it, or ``threshold``, never runs the model again.

    Parameters
    ----------
    model : str, default="smollm2-135m-instruct"
        Model spec: the alias of the embedded SmolLM2-135M-Instruct GGUF, a path
        to a ``.gguf`` file, a local checkpoint directory, a hub id, or a name
        given to :func:`~sklearn_llm_multilabel.register_model`. Only the string
        is stored; loaded models are shared through a process-level registry.
    labels : list of str or None, default=None
        Label names, one per column of ``y``. Required when ``y`` is a matrix;
        inferred (sorted) from label lists otherwise.
    aggregation : {"max", "first", "mean", "hard", "unary", "binary"} or callable, default="max"
        ``"max"``: max over generation steps of ``P_t(l)`` (the paper's
        max-over-generations); ``"first"``: compare-to-none at the first step,
        ``σ(s(l) − s(none))``; ``"mean"``: mean over steps of ``P_t(l)`` (the
        library's addition, not in the paper); ``"hard"``: ``1 − 1e-8`` for
        labels the model wrote, ``1e-8`` otherwise.
        ``"unary"``: one query per label ("is label l reasonable for this
        text?"), ``p_l = P(reasonable)``; ``"binary"``: one query per pair of
        labels + none ("a or b?"), Bradley–Terry scores ``s``,
        ``p_l = σ(s_l − s_none)``. The breakdowns run their own prompts (with
        demonstrations from the training data), once per text, and are cached
        like the generation steps. A callable gets ``(scores, mask)`` as in
        :func:`~sklearn_llm_multilabel.aggregation.pack_steps` and returns
        ``(n, L)`` probabilities.
    threshold : float or array-like of shape (n_labels,), default=0.5
        ``predict`` outputs ``proba >= threshold``; each value in (0, 1).
    n_shots : int, default=10
        Number of demonstrations (0 allowed). With ``demo_selection=
        "stratified"`` they are drawn once in ``fit`` and shared by every
        query.
    demo_selection : {"stratified", "knn", "annotator"}, default="stratified"
        ``"stratified"``: one seeded draw from the training data (the paper's
        sampler). ``"knn"``: for each text, the ``n_shots`` training texts
        nearest to it by cosine similarity of ``demo_encoder``'s sentence
        embeddings (exact neighbours; ties to the earlier training text; the
        nearest last, next to the query; a text never gets itself; texts with
        no label only with ``include_empty_demos``). Texts that get the same
        demonstrations share one prompt. ``"annotator"`` (perspectivist):
        one prompt per annotator (the 10 with the most labels), whose
        demonstrations are drawn from that annotator's own labels (``fit``
        needs ``annotator_labels`` and ``annotator_ids``); each text is scored
        with every annotator's prompt and the probabilities are averaged into
        soft labels, each annotator's in ``predict_steps``. The generation
        steps use these; the unary and binary breakdowns keep their fitted
        demonstrations.
    demo_encoder : str, default="all-minilm-l6-v2"
        The encoder of ``demo_selection="knn"``: the embedded
        all-MiniLM-L6-v2, an encoder checkpoint folder, or a hub id in the
        local cache.
    n_prompts : int, default=1
        Independently drawn demonstration sets (``"stratified"`` only): each
        text is scored with every prompt and the probabilities are averaged;
        ``predict_steps`` gives each prompt's probabilities. Fewer distinct
        sets than asked (small training data) are used with a warning.
    include_empty_demos : bool or "auto", default="auto"
        False: half the demonstrations have two or more labels and half
        exactly one (the paper's sampler); True also draws a third from
        zero-label examples (and lets retrieval show them). ``"auto"``: True
        when at least a quarter of the training texts have no label (a model
        never shown an empty answer rarely writes one; measured on the
        demonstrations results page), False otherwise;
        the choice is ``include_empty_demos_``. ``protocol="official"`` never
        shows zero-label examples, as the paper's code.
    label_format : {"comma", "json"}, default="comma"
        How label lists are written: ``care, purity`` or
        ``{"label": ["care", "purity"]}``; the empty set is ``none_label``.
    instruction : str, default=DEFAULT_INSTRUCTION
        First line of the prompt; ``{labels}`` is replaced by the label names.
    example_template : str, default="Input: {text}\\nLabel(s): {labels}"
        One demonstration; the query is this template cut before ``{labels}``.
    none_label : str, default="none"
        The word for the empty label set.
    use_chat_template : bool, default=False
        Wrap the prompt in the tokenizer's chat template (instruction-tuned
        models) instead of the paper's raw completion prompt.
    max_text_tokens : int, default=256
        Per-text token budget; longer texts are truncated with a warning.
    batch_size : int or "auto", default="auto"
        Texts decoded together (sorted by length, longest first). ``"auto"``
        sizes every batch from free memory (GPU) or available RAM (CPU) and
        the length of its longest text, so short texts go in larger batches.
    max_new_tokens : int or None, default=None
        Decoding budget; None means 18 (25 for more than 8 labels).
    device : str, default="auto"
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    dtype : str or None, default=None
        None means bfloat16 on CUDA, float32 on CPU.
    cache_dir : str, path or None, default=None
        Folder of a persistent step cache shared across processes; None keeps
        the cache in memory (per process) only. The estimator reads no
        environment variable: ``$SKLML_CACHE_DIR`` is the command line's
        default only (pass ``cache_dir=os.environ["SKLML_CACHE_DIR"]`` to
        share that cache).
    trust_remote_code : bool, default=False
        Allow checkpoints that ship their own modelling code.
    random_state : int, RandomState instance or None, default=0
        Seed of the demonstration sampler.
    show_progress : bool, default=True
        Show a progress bar while the model scores texts.
    protocol : {"library", "official"}, default="library"
        ``"official"`` reproduces the paper's released code for every
        aggregation: the tokenizer's own special tokens, one in-context token
        per label, decoding that stops only at the example prefix with steps
        found in the re-tokenised output, a uniform max-over-steps when no
        step is found, its demonstration samplers (Python's ``random`` seeded
        with ``random_state``, which must be an int), and its unary and binary
        prompts with answers read where the model first writes them.
        ``"library"`` keeps the library's improvements, each listed with its
        reason and measured effect in the user guide ("Departures from the
        released code"). Use it with the paper's prompt,
        :data:`~sklearn_llm_multilabel.PAPER_PROMPTS`, to replicate its numbers.
    add_bos : bool or None, default=None
        Special tokens before the prompt: None uses what the tokenizer adds by
        default (a BOS token for most Llama tokenizers, nothing for SmolLM2's),
        as the paper's released code does; True always puts the BOS token;
        False never.
    normalize_whitespace : bool, default=True
        Replace every run of whitespace in texts and demonstrations (newlines
        included) by one space, so that a text cannot open a new prompt line
        (a line that looks like ``Label(s): ...`` or ``Input: ...`` would
        otherwise steer the model). False keeps texts as given.
    finetune : {None, "lora"}, default=None
        None prompts the model as it is. ``"lora"`` trains a LoRA adapter (with
        peft, the ``[finetune]`` extra: ``pip install ".[finetune]"``) in ``fit`` on
        the training texts, to write their target label lists after the
        estimator's own prompt (loss on the answer tokens only); scoring then
        uses the base model with the adapter merged in. Each ``fit`` trains on
        its own data, so cross-validation stays honest; an identical refit
        (same base model, data, targets, settings and seed) reuses the adapter
        from memory or ``cache_dir`` and trains nothing.
    finetune_targets : {"majority", "annotators"}, default="majority"
        ``"majority"``: the labels at least half of the annotators chose (the
        paper's fine-tuning; the none word when there is none).
        ``"annotators"``: label sets that reproduce the annotator
        distribution: each annotator's set when ``fit`` gets
        ``annotator_labels``, else ``finetune_label_sets`` sets per text with
        each label in a share of them equal to its proportion. Identical sets
        of a text are merged and weighted, so every text weighs the same.
    finetune_label_sets : int, default=6
        Sets drawn per text for ``"annotators"`` targets without
        ``annotator_labels`` (6 represents thirds and halves exactly).
    finetune_shots : int or None, default=None
        Demonstrations (the first of the fitted ones) in the training prompt;
        None trains on the scoring prompt itself (``n_shots``), which is what
        the fine-tuned model then reads. The shared prefix is encoded once per
        training step, so demonstrations cost about one prompt per step, not
        one per text. A smaller value trains faster on a prompt that differs
        from the one that scores.
    finetune_epochs : int, default=2
    finetune_learning_rate : float, default=1e-3
        AdamW, linear warm-up over the first 10% of steps, then linear decay;
        no step has rate 0. A fit of fewer than 10 optimiser steps warns
        (``FineTuningWarning``).
    finetune_batch_size : int, default=8
    finetune_max_length : int, default=512
        Token limit of a training example's query and answer (after the shared
        prefix); longer queries lose their start (with a warning).
    lora_rank : int, default=8
    lora_alpha : float, default=16
    lora_dropout : float, default=0.0
    lora_target_modules : list of str, str or None, default=None
        Modules that get an adapter: names, or a string as peft takes it (a
        regular expression, or ``"all-linear"``); None uses peft's default for
        the architecture (the attention query and value projections of Llama).

    Attributes
    ----------
    label_names_ : ndarray of str, shape (n_labels,)
    classes_ : list of ndarray
        ``[array([0, 1])] * n_labels``, as for scikit-learn multi-label classifiers.
    demonstrations_ : list of (str, list of str)
        The demonstrations (text, gold labels) of the (first) prompt.
    prompt_demonstrations_ : list of lists of (str, list of str)
        The demonstrations of each prompt (``n_prompts`` draws, or one set
        per prompted annotator).
    prompt_annotators_ : list of str
        ``demo_selection="annotator"``: the annotator of each prompt.
    demo_pool_ : list of (str, list of str)
        ``demo_selection="knn"``: every training text (truncated as shown) and
        its gold labels, the candidates of retrieval.
    demo_embeddings_ : ndarray of shape (n_train, d)
        ``demo_selection="knn"``: their unit-norm embeddings.
    key_recipes_ : dict
        What finds stored records without loading the model (see the user
        guide, "A fully stored prediction"); empty when it cannot apply.
    include_empty_demos_ : bool
        Whether the demonstrations could be texts with no label (``"auto"``
        resolved on the training data).
    demonstration_params_ : dict
        The parameters the demonstrations were drawn with (``n_shots``,
        ``include_empty_demos``, ``demo_selection``, ``demo_encoder``,
        ``n_prompts``, ``random_state``); changing one after ``fit`` raises
        "call fit again" at prediction.
    empty_label_share_ : float
        The share of training texts with no label (no proportion of 0.5 or
        more).
    demonstration_indices_ : ndarray of int
        Their row indices in the training data.
    breakdown_demonstrations_ : list of (str, int, int, bool, bool)
        Demonstrations of the unary/binary prompts: text, a gold candidate, a
        non-gold candidate (indices into labels + none), whether the gold one
        is shown (unary), and whether it is placed first (binary).
    prompt_ : str
        The full prompt with ``{text}`` standing for the query text.
    protocol_ : str
        The protocol the demonstrations were drawn with (``set_params`` of
        another ``protocol`` needs a refit).
    adapter_key_ : str or None
        Content address of the fitted LoRA adapter (None without fine-tuning).
    adapter_weights_ : dict of str to ndarray
        The adapter's weights (a few MB; pickled with the estimator, the base
        model's weights are not). Only with ``finetune="lora"``.
    finetune_loss_ : ndarray of shape (n_steps,)
        Training loss per optimiser step. Only with ``finetune="lora"``.
    finetune_time_ : float
        Seconds the adapter took in ``fit`` (training, or finding it cached).
    n_finetune_examples_ : int
        Training examples (distinct text and label-set pairs).
    finetune_settings_ : dict
        The adapter's training settings, with the seed drawn from
        ``random_state``. Only with ``finetune="lora"``.
    adapter_base_fingerprint_ : str
        Fingerprint of the base model the adapter was trained on; scoring
        with another base is refused. Only with ``finetune="lora"``.
    finetune_params_ : dict
        The fine-tuning parameters at ``fit`` (changing one afterwards asks
        for a refit).

    See Also
    --------
    sklearn_llm_multilabel.metrics.distribution_nll : alignment with annotators.

    Examples
    --------
    >>> from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
    >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
    >>> register_model("tiny-doc", *make_tiny_model_and_tokenizer())
    >>> clf = LLMMultiLabelClassifier(model="tiny-doc", n_shots=2, show_progress=False)
    >>> X = ["the rain fell", "the game was won", "rain stopped the game", "sunny day"]
    >>> y = [["weather"], ["sports"], ["weather", "sports"], ["weather"]]
    >>> clf.fit(X, y).predict_proba(["rain again"]).shape
    (1, 2)
    >>> clf.set_params(aggregation="first").predict(["rain again"]).shape
    (1, 2)
    """

    _parameter_constraints: dict = {
        "model": [str],
        "labels": ["array-like", None],
        "aggregation": [StrOptions(set(AGGREGATIONS)), callable],
        "threshold": [Interval(Real, 0, 1, closed="neither"), "array-like"],
        "n_shots": [Interval(Integral, 0, None, closed="left")],
        "include_empty_demos": ["boolean", StrOptions({"auto"})],
        "demo_selection": [StrOptions({"stratified", "knn", "annotator"})],
        "demo_encoder": [str],
        "n_prompts": [Interval(Integral, 1, None, closed="left")],
        "label_format": [StrOptions(set(LABEL_FORMATS))],
        "instruction": [str],
        "example_template": [str],
        "none_label": [str],
        "use_chat_template": ["boolean"],
        "max_text_tokens": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_new_tokens": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str],
        "dtype": [str, None],
        "cache_dir": [str, os.PathLike, None],
        "trust_remote_code": ["boolean"],
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
        "normalize_whitespace": ["boolean"],
        "protocol": [StrOptions(set(PROTOCOLS))],
        "add_bos": ["boolean", None],
        "finetune": [StrOptions({"lora"}), None],
        "finetune_targets": [StrOptions(set(FINETUNE_TARGETS))],
        "finetune_label_sets": [Interval(Integral, 1, None, closed="left")],
        "finetune_shots": [Interval(Integral, 0, None, closed="left"), None],
        "finetune_epochs": [Interval(Integral, 1, None, closed="left")],
        "finetune_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "finetune_batch_size": [Interval(Integral, 1, None, closed="left")],
        "finetune_max_length": [Interval(Integral, 8, None, closed="left")],
        "lora_rank": [Interval(Integral, 1, None, closed="left")],
        "lora_alpha": [Interval(Real, 0, None, closed="neither")],
        "lora_dropout": [Interval(Real, 0, 1, closed="left")],
        "lora_target_modules": ["array-like", str, None],
    }

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        labels=None,
        aggregation="max",
        threshold=0.5,
        n_shots: int = 10,
        include_empty_demos: bool | str = "auto",
        demo_selection: str = "stratified",
        demo_encoder: str = DEFAULT_ENCODER,
        n_prompts: int = 1,
        label_format: str = "comma",
        instruction: str = DEFAULT_INSTRUCTION,
        example_template: str = DEFAULT_EXAMPLE_TEMPLATE,
        none_label: str = "none",
        use_chat_template: bool = False,
        max_text_tokens: int = 256,
        batch_size: int | str = "auto",
        max_new_tokens: int | None = None,
        device: str = "auto",
        dtype: str | None = None,
        cache_dir=None,
        trust_remote_code: bool = False,
        random_state=0,
        show_progress: bool = True,
        normalize_whitespace: bool = True,
        protocol: str = "library",
        add_bos: bool | None = None,
        finetune: str | None = None,
        finetune_targets: str = "majority",
        finetune_label_sets: int = 6,
        finetune_shots: int | None = None,
        finetune_epochs: int = 2,
        finetune_learning_rate: float = 1e-3,
        finetune_batch_size: int = 8,
        finetune_max_length: int = 512,
        lora_rank: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        lora_target_modules=None,
    ):
        self.model = model
        self.labels = labels
        self.aggregation = aggregation
        self.threshold = threshold
        self.n_shots = n_shots
        self.include_empty_demos = include_empty_demos
        self.demo_selection = demo_selection
        self.demo_encoder = demo_encoder
        self.n_prompts = n_prompts
        self.label_format = label_format
        self.instruction = instruction
        self.example_template = example_template
        self.none_label = none_label
        self.use_chat_template = use_chat_template
        self.max_text_tokens = max_text_tokens
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.trust_remote_code = trust_remote_code
        self.random_state = random_state
        self.show_progress = show_progress
        self.normalize_whitespace = normalize_whitespace
        self.protocol = protocol
        self.add_bos = add_bos
        self.finetune = finetune
        self.finetune_targets = finetune_targets
        self.finetune_label_sets = finetune_label_sets
        self.finetune_shots = finetune_shots
        self.finetune_epochs = finetune_epochs
        self.finetune_learning_rate = finetune_learning_rate
        self.finetune_batch_size = finetune_batch_size
        self.finetune_max_length = finetune_max_length
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules

    # ------------------------------------------------------------------ fit
    @one_per_call
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, annotator_labels=None, annotator_ids=None):
        """Pick the demonstrations and build the prompt (and fine-tune, if asked).

        The model's tokenizer is loaded (once per process) and checked; no text
        is scored here. Its weights are read when a text is first scored, so a
        prediction served entirely from the step cache never reads them. With
        ``finetune="lora"`` a LoRA adapter is trained on ``(X, y)`` (which
        reads them), or found in memory or ``cache_dir`` when an identical fit
        trained it before.

        Parameters
        ----------
        X : iterable of str
            Training texts.
        y : array-like of shape (n_samples, n_labels) or list of label lists
            0/1 indicators, annotator proportions in [0, 1] (binarised at 0.5 to
            choose demonstrations) or label-name lists.
        annotator_labels : sequence of lists of label lists or None, default=None
            Per text, every annotator's label list (the ``annotator_labels`` of
            the dataset loaders): the targets of ``finetune_targets="annotators"``
            and the demonstrations of ``demo_selection="annotator"``. Ignored
            otherwise.
        annotator_ids : sequence of lists of str or None, default=None
            Per text, the ids of those annotators, aligned with
            ``annotator_labels`` (the loaders' ``annotator_ids``); needed by
            ``demo_selection="annotator"`` only.

        Returns
        -------
        self : LLMMultiLabelClassifier
        """
        check_not_label_encoded()
        texts = self._texts(X)
        Y, names = check_targets(y, len(texts), self.labels)
        self._check_prompt_params(names)
        self._check_threshold(len(names))
        check_cache_dir(self.cache_dir)
        gold = Y >= 0.5
        official = self.protocol == "official"
        empty = (self.include_empty_demos if self.include_empty_demos != "auto"
                 else bool(len(gold)) and float(np.mean(~gold.any(axis=1))) >= EMPTY_SHARE)
        self.include_empty_demos_ = bool(empty) and not official
        self.empty_label_share_ = float(np.mean(~gold.any(axis=1))) if len(gold) else 0.0
        self.demonstration_params_ = {k: getattr(self, k) for k in DEMONSTRATION_PARAMS}
        self.__dict__.pop("_generations_checked", None)  # a new fit: its prompts are checked
        if official and (self.demo_selection != "stratified" or self.n_prompts > 1):
            raise ValueError("protocol='official' draws one set of demonstrations, as the "
                             "paper's released code does: use demo_selection='stratified' and "
                             "n_prompts=1 with it.")
        if self.demo_selection != "stratified" and self.n_prompts > 1:
            raise ValueError("n_prompts draws several stratified demonstration sets; "
                             f"demo_selection={self.demo_selection!r} chooses its own: use "
                             "n_prompts=1.")
        if official:
            seed = self._official_seed()
            draws = [select_demonstrations_official(gold, self.n_shots, seed)]
            breakdown = select_breakdown_demonstrations_official(gold, self.n_shots, seed)
        else:
            draws = draw_demonstration_sets(gold, self.n_shots, self.n_prompts,
                                            include_empty=self.include_empty_demos_,
                                            random_state=self.random_state)
            breakdown = select_breakdown_demonstrations(gold, self.n_shots,
                                                        random_state=self.random_state)
        # per prompt: (training row, the labels shown with it)
        demo_sets = [[(int(i), [names[j] for j in np.flatnonzero(gold[i])]) for i in drawn]
                     for drawn in draws]
        if self.demo_selection == "annotator":
            self.prompt_annotators_, demo_sets = self._annotator_sets(
                names, len(texts), annotator_labels, annotator_ids)
            draws = [np.array([i for i, _ in demos], dtype=int) for demos in demo_sets]
        indices = draws[0]
        loaded = self._base_model()
        check_tokenizer(loaded.tokenizer, self.use_chat_template, loaded.config)
        self.label_names_ = np.array(names, dtype=object)
        self.classes_ = [np.array([0, 1]) for _ in names]
        self.prompt_demonstrations_ = []
        for demos in demo_sets:
            shown = truncate_texts(loaded.tokenizer, [texts[i] for i, _ in demos],
                                   self.max_text_tokens, what="demonstrations")
            self.prompt_demonstrations_.append(
                [(t, labels) for t, (_, labels) in zip(shown, demos)])
        self.demonstrations_ = self.prompt_demonstrations_[0]
        self.demonstration_indices_ = np.asarray(indices, dtype=int)
        if self.demo_selection == "knn":
            self._fit_retrieval(texts, gold, names, loaded)
        breakdown_texts = truncate_texts(loaded.tokenizer, [texts[row] for row, *_ in breakdown],
                                         self.max_text_tokens, what="breakdown demonstrations")
        self.breakdown_demonstrations_ = [
            (text, *demo[1:]) for text, demo in zip(breakdown_texts, breakdown)
        ]
        self.protocol_ = self.protocol
        parts = self._prompt_parts()
        self.prompt_ = parts.prefix + parts.query("{text}")
        _check_room_for_a_text(loaded, parts, names, len(self.demonstrations_),
                               self.max_new_tokens or default_max_new_tokens(len(names)))
        self._fit_adapter(texts, Y, names, annotator_labels, loaded)
        self.key_recipes_ = self._key_recipes(loaded)
        return self

    def _annotator_sets(self, names: list[str], n_texts: int, annotator_labels,
                        annotator_ids) -> tuple[list[str], list[list]]:
        """``demo_selection="annotator"``: the prompted annotators (most labels first, at most
        :data:`MAX_ANNOTATOR_PROMPTS`) and, per annotator, demonstrations drawn from that
        annotator's own labels (the paper's sampler on their label sets)."""
        from collections import Counter

        if annotator_labels is None or annotator_ids is None:
            raise ValueError(
                "demo_selection='annotator' needs annotator_labels and annotator_ids in fit: "
                "per text, each annotator's label list and id. The loaders return them for "
                "annotator tables and Le-Wi-Di files: fit(X, y, annotator_labels="
                "bunch.annotator_labels, annotator_ids=bunch.annotator_ids).")
        if len(annotator_labels) != n_texts or len(annotator_ids) != n_texts or any(
                len(a) != len(b) for a, b in zip(annotator_labels, annotator_ids)):
            raise ValueError("annotator_labels and annotator_ids must have one entry per text, "
                             "each with one id per label list.")
        missing = missing_annotator_id(annotator_ids)
        if missing is not None:
            raise ValueError(
                f"annotator_ids of text {missing[0]} (entry {missing[1]}) is missing "
                f"({annotator_ids[missing[0]][missing[1]]!r}): demo_selection='annotator' "
                "prompts each annotator by id, and missing ids would pool unnamed annotators "
                "into one. Give every annotator an id, or drop those label lists.")
        rows: dict[str, list[tuple[int, list[str]]]] = {}
        for i, (sets, ids) in enumerate(zip(annotator_labels, annotator_ids)):
            for labels, annotator in zip(sets, ids):
                unknown = set(labels) - set(names)
                if unknown:
                    raise ValueError(f"annotator_labels of text {i} (annotator {annotator!r}) "
                                     f"name label(s) {sorted(unknown)} outside {names}.")
                rows.setdefault(str(annotator), []).append(
                    (i, [n for n in names if n in set(labels)]))
        counts = Counter({a: len(r) for a, r in rows.items()})
        chosen = [a for a, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
        if len(chosen) > MAX_ANNOTATOR_PROMPTS:
            warn(f"{len(chosen)} annotators: one prompt each for the {MAX_ANNOTATOR_PROMPTS} "
                 "with the most labels (demo_selection='annotator' scores every text once per "
                 "prompted annotator).", DemonstrationWarning)
            chosen = chosen[:MAX_ANNOTATOR_PROMPTS]
        sets = []
        for annotator in chosen:
            own = rows[annotator]
            gold = np.array([[n in labels for n in names] for _, labels in own], dtype=bool)
            picked = select_demonstrations(gold, self.n_shots,
                                           include_empty=self.include_empty_demos_,
                                           random_state=self.random_state)
            sets.append([own[k] for k in picked])
        return chosen, sets

    def _fit_retrieval(self, texts: list[str], gold: np.ndarray, names: list[str],
                       loaded) -> None:
        """The candidates of ``demo_selection="knn"`` and their embeddings."""
        from .backends._embed import embed_texts

        shown = truncate_texts(loaded.tokenizer, texts, self.max_text_tokens,
                               what="demonstration candidates")
        self.demo_pool_ = [(t, [names[j] for j in np.flatnonzero(row)])
                           for t, row in zip(shown, gold)]
        self.demo_pool_digests_ = [_text_digest(t) for t in texts]
        self.demo_embeddings_ = embed_texts(self.demo_encoder, texts,
                                            show_progress=self.show_progress)

    def _retrieved(self, texts: list[str]) -> list[tuple[tuple[int, ...], list[int]]]:
        """``demo_selection="knn"``: ``(pool rows, text positions)`` per distinct
        demonstration set, in order of first use."""
        from ._retrieval import nearest_demonstrations
        from .backends._embed import embed_texts

        eligible = np.array([bool(labels) or self.include_empty_demos_
                             for _, labels in self.demo_pool_])
        digests = {}
        for row, digest in enumerate(self.demo_pool_digests_):
            digests.setdefault(digest, []).append(row)
        own = [digests.get(_text_digest(t), []) for t in texts]
        chosen = nearest_demonstrations(embed_texts(self.demo_encoder, texts,
                                                    show_progress=self.show_progress),
                                        self.demo_embeddings_, self.n_shots, eligible=eligible,
                                        exclude=own)
        if chosen.shape[1] < self.n_shots:
            warn(f"demo_selection='knn' with n_shots={self.n_shots}, but only "
                 f"{int(eligible.sum())} training texts can be shown (texts with no label need "
                 f"include_empty_demos=True); using {chosen.shape[1]}.", DemonstrationWarning)
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, rows in enumerate(chosen):
            groups.setdefault(tuple(int(r) for r in rows if r >= 0), []).append(position)
        return list(groups.items())

    def _key_recipes(self, loaded) -> dict[str, dict]:
        """What finds each record kind's stored records without the model (``_keys``), for a
        model read from files with a byte-level tokenizer; empty otherwise (and with an
        adapter, whose key needs the model)."""
        from ._keys import KeyRecipe, byte_level, file_stamps, params_signature, software_versions
        from .backends._registry import build_scorer
        from .backends._seal import special_spellings
        from .backends._specs import model_files

        files = model_files(self.model)
        if (files is None or getattr(self, "adapter_key_", None) is not None
                or self.demo_selection != "stratified" or self.n_prompts > 1
                or not byte_level(loaded.tokenizer)):
            return {}
        common = {"spellings": tuple(special_spellings(loaded.tokenizer)),
                  "max_text_tokens": self.max_text_tokens,
                  "signature": params_signature(self.get_params(deep=False)),
                  "stamps": file_stamps(files), "versions": software_versions()}
        recipes = {}
        for kind in ("steps", "unary", "binary"):
            # the steps scorer is the one predict uses; the breakdowns' are built, not kept
            scorer = self._scorer() if kind == "steps" else build_scorer(self._spec(kind), loaded)
            if kind == "steps":
                hidden = getattr(loaded.config, "hidden_size", None)
                head, tail = scorer.parts.query_head, scorer.parts.query_tail
                checks = {"n_columns": len(scorer.label_names) + 1,
                          "hidden_size": hidden if isinstance(hidden, int) else None,
                          "max_positions": scorer.max_new_tokens}
            else:
                head, tail = scorer.parts.middle_head, scorer.parts.middle_tail
                checks = {"n_queries": len(scorer.suffix_ids),
                          "pairs": tuple(tuple(p) for p in scorer.parts.pairs)}
            recipe = KeyRecipe(kind, scorer.fingerprint, head, tail, checks=checks, **common)
            recipes[kind] = {name: getattr(recipe, name) for name in recipe.__dataclass_fields__}
        return recipes

    def _recipe(self, kind: str):
        """The fitted :class:`~._keys.KeyRecipe` of ``kind`` if it still holds, else None."""
        from ._keys import KeyRecipe

        found = getattr(self, "key_recipes_", {}).get(kind)
        if not found:
            return None
        from .backends._specs import model_files

        recipe = KeyRecipe(**found)
        return recipe if recipe.holds(self.get_params(deep=False), model_files(self.model)) else None

    def _stored(self, kind: str, texts: list[str]) -> list | None:
        """Every text's stored record of ``kind``, found by key without the model; None when
        the fitted recipe does not hold (see ``_keys``) or a record is missing."""
        recipe = self._recipe(kind)
        keys = recipe.keys(texts) if recipe is not None else None
        if keys is None:
            return None
        unique = list(dict.fromkeys(keys))
        record_type = StepRecord if kind == "steps" else BreakdownRecord
        records = StepCache(self.cache_dir).get_many(unique, kind=record_type,
                                                     check=recipe.check_record)
        if any(r is None for r in records):
            return None
        by_key = dict(zip(unique, records))
        return [by_key[k] for k in keys]

    def _finetune_params(self) -> dict:
        return {name: getattr(self, name) for name in FINETUNE_PARAMS}

    def _fit_adapter(self, texts, Y, names, annotator_labels, base) -> None:
        """Train (or find) the LoRA adapter of this fit; see ``finetune``."""
        for attr in ("adapter_weights_", "finetune_loss_", "finetune_time_",
                     "n_finetune_examples_", "finetune_settings_", "adapter_base_fingerprint_"):
            self.__dict__.pop(attr, None)
        self.adapter_key_ = None
        self.finetune_params_ = self._finetune_params()
        if self.finetune is None:
            return
        from ._adapters import fit_adapter

        adapter = fit_adapter(self, texts, Y, names, annotator_labels, base)
        self.adapter_key_ = adapter.key
        self.adapter_weights_ = adapter.weights
        self.finetune_loss_ = adapter.losses
        self.finetune_settings_ = adapter.settings
        self.adapter_base_fingerprint_ = adapter.base_fingerprint
        self.n_finetune_examples_ = adapter.n_examples
        self.finetune_time_ = adapter.seconds

    # ------------------------------------------------------------ internals
    def _texts(self, X) -> list[str]:
        """Validated texts, whitespace-normalised unless ``normalize_whitespace=False``."""
        texts = check_texts(X)
        if self.normalize_whitespace:
            texts = [" ".join(t.split()) for t in texts]
        return texts

    def _check_prompt_params(self, names) -> list[str]:
        """The checks of ``fit`` on the parameters that shape the prompt.

        Run again at predict time: ``set_params(none_label=..., label_format=...)``
        after ``fit`` is checked against the fitted labels.
        """
        names = check_label_names(
            names, none_label=self.none_label, separator=label_separator(self.label_format)
        )
        _split_template(self.example_template)
        return names

    def _official_seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        raise ValueError(
            "protocol='official' draws demonstrations with Python's random seeded by an int, as "
            f"the paper's released code does; random_state must be an int, got {self.random_state!r}."
        )

    def _check_fitted(self) -> None:
        check_is_fitted(self)
        self._validate_params()
        if getattr(self, "protocol_", "library") != self.protocol:
            raise ValueError(
                f"protocol={self.protocol!r} was set after fit with protocol={self.protocol_!r}; "
                "the demonstrations depend on it: call fit again."
            )
        drawn = getattr(self, "demonstration_params_", None)  # None: saved by an earlier version
        changed = [k for k in DEMONSTRATION_PARAMS
                   if drawn is not None and k in drawn and drawn[k] != getattr(self, k)]
        if changed:
            raise ValueError(
                "; ".join(f"{k}={getattr(self, k)!r} was set after fit with {k}={drawn[k]!r}"
                          for k in changed)
                + ": the demonstrations are drawn in fit from it, so predicting now would use "
                "the old ones: call fit again.")
        self._check_prompt_params(list(self.label_names_))
        fitted = getattr(self, "finetune_params_", None)
        if (fitted is not None and fitted != self._finetune_params()
                and (fitted["finetune"] is not None or self.finetune is not None)):
            changed = sorted(k for k, v in self._finetune_params().items() if fitted.get(k) != v)
            raise ValueError(
                f"{', '.join(changed)} changed after fit; the fine-tuned adapter depends on "
                "them: call fit again."
            )
        if self.use_chat_template and self._recipe("steps") is None:  # fit checked it
            check_tokenizer(self._loaded_model().tokenizer, True)

    def _base_model(self):
        from .backends._load import load_model  # torch is imported when a model is needed

        return load_model(
            self.model, device=self.device, dtype=self.dtype,
            trust_remote_code=self.trust_remote_code, lazy=True,
        )

    def _loaded_model(self):
        """The model that scores: the base, with the fitted adapter merged in if there is one."""
        base = self._base_model()
        if getattr(self, "adapter_key_", None) is None:
            return base
        from ._adapters import adapted

        return adapted(self, base)

    def _prompt_parts(self, demonstrations=None):
        """The fitted prompt; ``demonstrations`` replaces the fitted ones (fine-tuning prompts)."""
        renderer = None
        if self.use_chat_template:
            tokenizer = self._base_model().tokenizer  # an adapter keeps its base's tokenizer

            def renderer(message: str) -> str:
                return tokenizer.apply_chat_template(
                    [{"role": "user", "content": message}], tokenize=False,
                    add_generation_prompt=True,
                )

        demonstrations = self.demonstrations_ if demonstrations is None else demonstrations
        return build_prompt(
            list(self.label_names_), demonstrations, instruction=self.instruction,
            example_template=self.example_template, label_format=self.label_format,
            none_label=self.none_label, chat_template_renderer=renderer, add_bos=self.add_bos,
        )

    # ------------------------------------------------------------ the scoring seam
    def scorer_spec(self, kind: str = "steps", **engine_options) -> ScorerSpec:
        """What decides the scorer of this fitted estimator's prompt (the model aside).

        The public seam between the estimator and the engine:
        ``backends._registry.get_scorer(clf.scorer_spec(kind), clf.scoring_model())``
        is the process-wide scorer the estimator itself uses, and what
        :mod:`~sklearn_llm_multilabel.scoring` and the Ray runner use.

        Parameters
        ----------
        kind : {"steps", "unary", "binary"}, default="steps"
            The generation steps, or a breakdown's queries.
        **engine_options
            Fields of :class:`~sklearn_llm_multilabel.backends._registry.EngineOptions`
            (``early_exit``, ``decode_queries``, ...); part of the spec.

        Returns
        -------
        ScorerSpec
        """
        self._check_fitted()
        if kind == "steps" and (self.demo_selection != "stratified" or self.n_prompts > 1):
            raise ValueError(
                f"demo_selection={self.demo_selection!r} with n_prompts={self.n_prompts} scores "
                "each text with its own prompt(s), which one scorer spec cannot describe; "
                "scoring into a store (score_texts, score_dataset, sklml score) takes an "
                "estimator with demo_selection='stratified' and n_prompts=1.")
        return self._spec(kind, **engine_options)

    def _spec(self, kind: str, demonstrations=None, **engine_options) -> ScorerSpec:
        """:meth:`scorer_spec` of an estimator its caller has checked (``demonstrations``
        replace the fitted ones of the generation prompt)."""
        from .backends._registry import EngineOptions, ScorerSpec

        n_labels = len(self.label_names_)
        options = EngineOptions(
            max_new_tokens=self.max_new_tokens or default_max_new_tokens(n_labels),
            max_text_tokens=self.max_text_tokens, protocol=self.protocol, **engine_options)
        if kind == "steps":
            _, mid, _ = _split_template(self.example_template)
            return ScorerSpec("steps", self._prompt_parts(demonstrations), tuple(self.label_names_),
                              self.none_label, self.label_format, mid, self.add_bos, options)
        if kind not in ("unary", "binary"):
            raise ValueError(f"kind must be 'steps', 'unary' or 'binary'; got {kind!r}.")
        return ScorerSpec(kind, self._breakdown_parts(kind), tuple(self.label_names_),
                          self.none_label, self.label_format, "", self.add_bos, options)

    def scoring_model(self):
        """The loaded model that scores: the base model, with the fitted adapter merged in.

        Loaded once per process (weights on first use). Returns a
        ``LoadedModel`` (``.tokenizer``, ``.config``, ``.fingerprint``,
        ``.model``).
        """
        check_is_fitted(self)
        return self._loaded_model()

    def prepare_texts(self, X) -> list[str]:
        """The texts as the model reads them: validated, whitespace-normalised unless
        ``normalize_whitespace=False`` (record keys are computed from these)."""
        return self._texts(X)

    def _scorer(self, loaded=None, **engine_options) -> StepScorer:
        """The process-wide step scorer (``loaded`` replaces the model: benchmarks)."""
        from .backends._registry import get_scorer

        spec = self._spec("steps", **engine_options)
        return get_scorer(spec, self._loaded_model() if loaded is None else loaded)

    def _breakdown_parts(self, kind: str):
        build = build_unary_prompt if kind == "unary" else build_binary_prompt
        texts = [d[0] for d in self.breakdown_demonstrations_]
        demos = [(i, *demo[1:]) for i, demo in enumerate(self.breakdown_demonstrations_)]
        return build(list(self.label_names_), texts, demos, none_label=self.none_label,
                     protocol=self.protocol)

    def _breakdown_scorer(self, kind: str) -> BreakdownScorer:
        from .backends._registry import get_scorer

        return get_scorer(self._spec(kind), self._loaded_model())

    def _scorer_of(self, kind: str):
        """The scorer of ``kind``'s records: the generation steps, or a breakdown's."""
        return self._scorer() if kind == "steps" else self._breakdown_scorer(kind)

    def _records(self, X):
        self._check_fitted()
        return self._read("steps", X)[1]

    def _check_threshold(self, n_labels: int) -> np.ndarray:
        return check_threshold(self.threshold, n_labels)

    def _aggregation_entry(self) -> Aggregation:
        """The table entry of ``aggregation`` (a callable reads the step scores)."""
        if isinstance(self.aggregation, str):
            return AGGREGATION_TABLE[self.aggregation]
        return Aggregation("custom", "steps", self.aggregation, False, "a user's callable",
                           "first")

    def _read(self, kind: str, X) -> tuple:
        """The binary pairs (binary only) and the records of every text for the first prompt:
        from the store, found by key without the model when the fitted recipe allows, or
        scored and stored."""
        return self._read_prompts(kind, X)[0]

    def _read_prompts(self, kind: str, X) -> list[tuple]:
        """``(pairs, records)`` per prompt: one for a single prompt or retrieved
        demonstrations (each text's record from its own prompt), ``n_prompts`` otherwise.

        What the model wrote is checked for every prompt that scored texts in this call
        (:meth:`_check_generations`)."""
        texts = self._texts(X)
        scored: list[int] = []

        def counter():  # the texts the model scored for one prompt in this call
            scored.append(0)
            i = len(scored) - 1
            return lambda n: scored.__setitem__(i, scored[i] + n)

        if kind == "steps" and self.demo_selection == "knn":
            found = [self._read_retrieved(texts, counter())]
        elif kind == "steps" and len(self.prompt_demonstrations_) > 1:
            from .backends._registry import get_scorer

            loaded = self._loaded_model()
            found = [(None, fill(get_scorer(self._spec("steps", demos), loaded),
                                 StepCache(self.cache_dir), texts, batch_size=self.batch_size,
                                 show_progress=self.show_progress, on_scored=counter()))
                     for demos in self.prompt_demonstrations_]
        else:
            records = self._stored(kind, texts)
            if records is not None:
                found = [(self.key_recipes_[kind]["checks"].get("pairs"), records)]
                scored.append(0)
            else:
                scorer = self._scorer_of(kind)
                records = fill(scorer, StepCache(self.cache_dir), texts,
                               batch_size=self.batch_size, show_progress=self.show_progress,
                               on_scored=counter())
                found = [(scorer.parts.pairs if kind == "binary" else None, records)]
        if kind == "steps":
            self._check_generations(texts, [records for _, records in found], scored)
        return found

    def _prompt_names(self, n: int) -> list[str]:
        """How warnings name each of ``n`` prompts (nothing for a single one)."""
        if n == 1:
            return [""]
        annotators = getattr(self, "prompt_annotators_", None)
        if self.demo_selection == "annotator" and annotators is not None:
            return [f"prompt {i + 1} of {n} (annotator {a!r}): " for i, a in enumerate(annotators)]
        return [f"prompt {i + 1} of {n}: " for i in range(n)]

    def _check_generations(self, texts: list[str], per_prompt: list[list],
                           scored: list[int]) -> None:
        """Warn about what the model wrote (one label list for most texts, names outside the
        label set), for every prompt that scored texts in this call, naming the prompt; each
        prompt of a fit is checked once (a call served from the store warns again for none)."""
        checked = self.__dict__.setdefault("_generations_checked", set())
        identical, unknown = [], []
        for name, records, n_scored, digest in zip(
                self._prompt_names(len(per_prompt)), per_prompt, scored,
                self._prompt_digests(len(per_prompt))):
            if not n_scored or digest in checked:
                continue
            checked.add(digest)
            message = _identical_message(texts, records,
                                         getattr(self, "include_empty_demos_", False),
                                         getattr(self, "empty_label_share_", None))
            if message:
                identical.append(name + message)
            message = unknown_label_message(unknown_label_summary([r.unknown for r in records]))
            if message:
                unknown.append(name + message)
        if identical:
            warn("; ".join(identical), IdenticalGenerationsWarning)
        if unknown:
            text = "; ".join(unknown)
            warn(text[0].upper() + text[1:] + " predict_steps() shows them per text.",
                 UnknownLabelWarning)

    def _prompt_digests(self, n: int) -> list[str]:
        """An identity of each of the ``n`` prompts of this fit (what it shows the model)."""
        import hashlib

        sets = (self.prompt_demonstrations_ if n == len(self.prompt_demonstrations_)
                else [None] * n)
        return [hashlib.sha256(repr((self.prompt_, i, demos)).encode()).hexdigest()
                for i, demos in enumerate(sets)]

    def _read_retrieved(self, texts: list[str], on_scored=None) -> tuple:
        """Each text's step record from the prompt of its retrieved demonstrations; texts
        sharing demonstrations share one scorer (its prefix encoded once)."""
        from tqdm.auto import tqdm

        from .backends._registry import build_scorer

        loaded = self._loaded_model()
        records: list = [None] * len(texts)
        groups = self._retrieved(texts)
        with tqdm(total=len(texts), desc="Scoring (retrieved demonstrations)", unit="text",
                  disable=not self.show_progress or len(groups) < 2) as bar:
            for rows, positions in groups:
                demos = [self.demo_pool_[r] for r in rows]
                # one scorer per demonstration set, not kept: the sets are many
                scorer = build_scorer(self._spec("steps", demos), loaded)
                found = fill(scorer, StepCache(self.cache_dir), [texts[i] for i in positions],
                             batch_size=self.batch_size,
                             show_progress=self.show_progress and len(groups) == 1,
                             on_scored=on_scored)
                for i, record in zip(positions, found):
                    records[i] = record
                bar.update(len(positions))
        return None, records

    def _apply(self, entry: Aggregation, records: list, pairs) -> np.ndarray:
        """``entry``'s probabilities from the records it reads, checked."""
        n_labels = len(self.label_names_)
        if entry.consumes == "parsed":
            names = list(self.label_names_)
            proba = entry.function(np.array([[n in r.parsed for n in names] for r in records],
                                            dtype=bool))
        elif entry.consumes == "unary":  # the official protocol also asks about none
            proba = entry.function(np.stack([r.answer_scores for r in records])[:, :n_labels])
        elif entry.consumes == "binary":
            proba = entry.function(np.stack([r.answer_scores for r in records]),
                                   pairs, random_state=self.random_state)
        else:
            proba = self._apply_steps(entry, records)
        return self._checked(np.asarray(proba, dtype=float), len(records))

    def _apply_steps(self, entry: Aggregation, records: list) -> np.ndarray:
        missing = np.array([not r.has_steps for r in records])
        uniform = self.protocol == "official" and entry.official_no_step == "uniform"
        if missing.any():
            fallback = ("their max-over-steps probabilities are uniform (1/n_labels), as in the "
                        "paper's released code" if uniform
                        else "their probabilities come from the first generated position")
            warn(
                f"{int(missing.sum())} of {len(records)} generations contained no "
                f"label-generation step; {fallback}.",
                NoLabelStepWarning,
            )
        scores, mask = pack_steps([r.step_scores for r in records])
        proba = np.asarray(entry.function(scores, mask), dtype=float)
        if uniform and missing.any() and proba.shape[:1] == missing.shape:
            proba[missing] = 1.0 / len(self.label_names_)
        return proba

    def _checked(self, proba: np.ndarray, n: int) -> np.ndarray:
        if proba.shape != (n, len(self.label_names_)):
            raise ValueError(
                f"aggregation returned shape {proba.shape}; expected "
                f"{(n, len(self.label_names_))} (n_samples, n_labels)."
            )
        if not np.all(np.isfinite(proba)) or proba.min(initial=0) < 0 or proba.max(initial=0) > 1:
            bad = np.argwhere(~(np.isfinite(proba) & (proba >= 0) & (proba <= 1)))[0]
            raise ValueError(
                f"aggregation returned {proba[tuple(bad)]!r} at row {bad[0]}, label "
                f"{self.label_names_[bad[1]]!r}; probabilities must be finite and in [0, 1]."
            )
        return proba

    # ------------------------------------------------------------ inference
    @one_per_call
    def predict_proba(self, X) -> np.ndarray:
        """Independent per-label probabilities.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        proba : ndarray of shape (n_samples, n_labels)
        """
        self._check_fitted()
        entry = self._aggregation_entry()
        return np.mean([self._apply(entry, records, pairs)
                        for pairs, records in self._read_prompts(entry.record_kind, X)], axis=0)

    @one_per_call
    def predict(self, X) -> np.ndarray:
        """0/1 label indicators: ``predict_proba(X) >= threshold``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_labels), int
        """
        proba = self.predict_proba(X)
        return (proba >= self._check_threshold(proba.shape[1])).astype(int)

    @one_per_call
    def transform(self, X) -> np.ndarray:
        """Same as :meth:`predict_proba`, so the estimator can feed a Pipeline step."""
        return self.predict_proba(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output names of :meth:`transform`: the label names."""
        check_is_fitted(self)
        return np.asarray(self.label_names_, dtype=object)

    @one_per_call
    def score(self, X, y, sample_weight=None) -> float:
        """Mean example-F1 of :meth:`predict` against ``y``.

        ``y`` can be 0/1 labels, annotator proportions (gold sets are
        ``y >= 0.5``) or label lists. Accuracy, the default of classifiers, is
        meaningless for soft targets, hence this override.

        Returns
        -------
        score : float
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by score.")
        check_is_fitted(self)
        texts = self._texts(X)
        Y, _ = check_targets(y, len(texts), list(self.label_names_))
        return example_f1(Y, self.predict(texts))

    @one_per_call
    def first_step_hidden_states(self, X) -> np.ndarray:
        """Last-layer hidden states at the position that predicts the first label.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_size)
        """
        return np.stack([r.hidden for r in self._records(X)])

    @one_per_call
    def predict_steps(self, X) -> list[dict]:
        """Each text's generation, for analysis.

        Returns
        -------
        traces : list of dict
            Keys: ``generated_text``; ``parsed_labels``; ``unknown_labels``;
            ``step_labels`` (label names, in generation order; ``none_label``
            may appear); ``step_distributions`` (ndarray (n_steps, n_labels + 1),
            columns ``label_names_ + [none_label]``); ``label_mass`` (probability
            on label tokens at each step); ``has_steps``. With ``n_prompts > 1``
            the generation is the first prompt's, and ``prompt_probabilities``
            (ndarray (n_prompts, n_labels)) holds each prompt's probabilities
            under the generation-step ``aggregation`` (their mean is
            ``predict_proba``; their spread is how much the demonstrations
            move them).
        """
        self._check_fitted()
        prompts = self._read_prompts("steps", X)
        records = prompts[0][1]
        entry = self._aggregation_entry()
        per_prompt = None
        if len(prompts) > 1 and entry.record_kind == "steps":
            per_prompt = np.stack([self._apply(entry, found, pairs) for pairs, found in prompts],
                                  axis=1)
        names = [*self.label_names_, self.none_label]
        traces = []
        for i, r in enumerate(records):
            traces.append({
                "generated_text": r.text,
                "parsed_labels": list(r.parsed),
                "unknown_labels": list(r.unknown),
                "step_labels": [names[k] for k in r.step_labels],
                "step_distributions": _step_distributions(r.step_scores),
                "label_mass": r.label_mass[r.step_positions] if r.has_steps else r.label_mass[:1],
                "has_steps": r.has_steps,
                **({} if per_prompt is None else {"prompt_probabilities": per_prompt[i]}),
            })
        return traces

    @one_per_call
    def prompt_token_ids(self, text: str) -> list[int]:
        """The token ids the model reads for one text, as :meth:`predict_proba` builds them.

        Texts and demonstrations are data: a spelling of a special token in
        them (``<|im_end|>``, ``</s>``) is encoded as the characters it is
        made of, never as a control token, so a text cannot close its turn
        of a chat prompt or write a fake answer. Only the prompt's own parts
        (the chat template, the instruction) carry control tokens.

        For ``aggregation="unary"`` or ``"binary"`` these are the breakdown
        prompt's ids up to and including the text's part; each candidate
        label's suffix follows them.

        Parameters
        ----------
        text : str
            One text (whitespace-normalised and truncated as in prediction).

        Returns
        -------
        ids : list of int

        Examples
        --------
        >>> from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
        >>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
        >>> model, tok = make_tiny_model_and_tokenizer()
        >>> register_model("tiny-ids-doc", model, tok)
        >>> clf = LLMMultiLabelClassifier("tiny-ids-doc", n_shots=0, show_progress=False)
        >>> clf = clf.fit(["rain", "goal"], [["weather"], ["sports"]])
        >>> tok.eos_token_id in clf.prompt_token_ids("it ends here </s>")
        False
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be one str, got {type(text).__name__}.")
        self._check_fitted()
        kind = self._aggregation_entry().record_kind
        texts = self._texts([text])
        if kind == "steps" and self.demo_selection == "knn":
            from .backends._registry import build_scorer

            (rows, _), = self._retrieved(texts)
            scorer = build_scorer(self._spec("steps", [self.demo_pool_[r] for r in rows]),
                                  self._loaded_model())
        else:  # with n_prompts > 1: the first prompt's
            scorer = self._scorer_of(kind)
        return scorer.prompt_ids(scorer.prepare_queries(texts)[0])

    def __sklearn_tags__(self):
        return text_multilabel_tags(super().__sklearn_tags__())


def _text_digest(text: str) -> str:
    """What identifies a text among the retrieval candidates (a text never retrieves itself)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _check_room_for_a_text(loaded, parts, names: list[str], n_demos: int, max_new: int) -> None:
    """Raise :class:`ContextLengthError` in ``fit`` when the prompt leaves no room for a text.

    The prompt (instruction with the label list, demonstrations, the query's
    own words), a one-token text and ``max_new`` answer tokens must fit the
    model's context. The message names the label list's token count, so a
    label list too long for any prompt is not mistaken for a shots problem.
    """
    from .backends._engine import context_limit
    from .backends._seal import SealedEncoder
    from .backends._text import leading_special_ids

    limit = context_limit(loaded.config)
    if not limit:
        return
    tokenizer = loaded.tokenizer
    sealer = SealedEncoder(tokenizer)
    query = parts.query("a")
    used = (len(leading_special_ids(tokenizer, parts.add_bos))
            + len(sealer.encode_one(parts.prefix, parts.prefix_data))
            + len(sealer.encode_one(query, [parts.text_span(query)]))
            + max_new)
    if used <= limit:
        return
    label_tokens = len(tokenizer(join_label_names(names), add_special_tokens=False)["input_ids"])
    cause = ("the label list alone does not fit: use fewer labels or shorter names"
             if label_tokens + max_new >= limit else
             "use fewer labels or shorter names, fewer demonstrations (n_shots) or a smaller "
             "max_text_tokens (demonstrations are cut to it)")
    raise ContextLengthError(
        f"The label list ({len(names)} labels) takes {label_tokens} tokens; with the instruction, "
        f"{n_demos} demonstrations and {max_new} tokens for the answer the prompt needs {used} "
        f"tokens for a one-token text, more than the model's context of {limit} tokens: {cause}.")


def _identical_message(texts: list[str], records: list, include_empty_demos: bool,
                       empty_share: float | None) -> str | None:
    """What to say when one generated label list is written for most of ten or more distinct
    texts (None otherwise): a copied demonstration, or a run of the empty set, which is right
    when about that share of the texts have no label."""
    found = dominant_generation(texts, [r.text for r in records])
    if found is None:
        return None
    share = f"{found['count']} of {found['n_texts']} generations ({100 * found['share']:.0f}%)"
    same = [r for r in records if r.text == found["generation"]]
    if all(not r.parsed and not r.unknown for r in same):  # the empty set
        seen = ("" if empty_share is None else
                f" ({100 * empty_share:.0f}% of the training texts had none)")
        return (f"{share} name no label ({found['generation'].strip()!r}). That is right when "
                f"about as many of the texts have no label{seen}; if far fewer do, the model "
                "is not reading the texts: show fewer demonstrations without a label "
                "(include_empty_demos=False), draw others (random_state, n_shots) or use a "
                "larger model")
    hint = ("" if include_empty_demos else
            "; with data where most items have no label, include_empty_demos=True (sklml "
            "--include-empty-demos) also shows the model zero-label demonstrations")
    return (f"{share} are the same label list ({found['generation']!r}): the model may be "
            "copying a demonstration's labels rather than reading the texts. Try other "
            f"demonstrations (random_state, n_shots) or a larger model{hint}")

"""Tiny offline models and tokenizers for tests and examples (no download).

:func:`make_tiny_tokenizer` trains a byte-level BPE tokenizer on a small
built-in corpus (milliseconds), so leading-space tokens, newlines and
multi-token words behave as with real GPT-2/Llama tokenizers.
:func:`make_tiny_model` builds a randomly initialised Llama or GPT-2 with a
few thousand parameters from a config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CORPUS = [
    "Classify the following inputs into none, one, or multiple of the following labels per input:",
    "Input: the rain fell all day and the match was cancelled",
    "Label(s): weather, sports",
    "Input: the team won the game",
    "Label(s): sports",
    "Input: sunny skies and warm wind",
    "Label(s): weather",
    "Input: the election results were announced",
    "Label(s): politics",
    "Label(s): none",
    '{"label": ["weather", "sports"]}',
    '{"label": ["none"]}',
    "weather, sports, politics, none, Weather, Sports, Politics, None",
    "storm snow cloud goal score player vote minister law court music",
    "proportionality purity care equality loyalty authority",
    "Question: the rain fell\nLabel: weather\nIs the label reasonable: reasonable",
    "Question: the team won\nLabel: politics\nIs the label reasonable: unreasonable",
    "Question: the vote\na. politics\nb. sports\nCorrect Label: a",
    "Question: snow\na. none\nb. weather\nCorrect Label: b",
]


def make_tiny_tokenizer(extra_corpus: Sequence[str] = (), vocab_size: int = 600):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on a tiny corpus.

    Special tokens: ``<s>`` (BOS), ``</s>`` (EOS) and ``<pad>``.

    Examples
    --------
    >>> tok = make_tiny_tokenizer()
    >>> tok.decode(tok.encode("Label(s): weather\\n", add_special_tokens=False))
    'Label(s): weather\\n'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [*CORPUS, *extra_corpus]
    backend.train_from_iterator([line + "\n" for line in lines] * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
    )


def make_tiny_model(tokenizer, architecture: str = "llama", seed: int = 0):
    """A randomly initialised causal LM with a few thousand parameters.

    Parameters
    ----------
    tokenizer : tokenizer from :func:`make_tiny_tokenizer`
    architecture : {"llama", "gpt2"}, default="llama"
    seed : int, default=0
    """
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if architecture == "llama":
        config = LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=1024,
            **ids,
        )
        model = LlamaForCausalLM(config)
    elif architecture == "gpt2":
        config = GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=len(tokenizer),
                            n_positions=1024, **ids)
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(f"architecture must be 'llama' or 'gpt2', got {architecture!r}.")
    return model.eval()


def make_tiny_encoder_dir(path=None, seed: int = 0) -> str:
    """A tiny randomly initialised BERT and a WordPiece tokenizer, saved as a checkpoint folder.

    For tests of :class:`~sklearn_llm_multilabel.EncoderMultiLabelClassifier`,
    which loads encoders from a folder like any local checkpoint. ``path``
    defaults to a new temporary folder.

    Examples
    --------
    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(make_tiny_encoder_dir()).config.hidden_size
    16
    """
    import tempfile
    from pathlib import Path

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="tiny-encoder-"))
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator(CORPUS * 3, trainer=trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False))
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=backend.get_vocab_size(), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=256)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def make_tiny_model_and_tokenizer(architecture: str = "llama", seed: int = 0):
    """``(model, tokenizer)`` from :func:`make_tiny_model` and :func:`make_tiny_tokenizer`."""
    tokenizer = make_tiny_tokenizer()
    return make_tiny_model(tokenizer, architecture, seed), tokenizer


class ScriptedCausalLM(torch.nn.Module):
    """Wrap a causal LM so that greedy decoding writes a given token script.

    After the first ``prompt_length`` positions, the logit of ``script[g]`` is
    raised by ``boost`` at generation index ``g`` (read from the position
    ids), for every row whose prompt has that length. Everything else is the
    wrapped model's output, so the recorded scores stay realistic.
    """

    def __init__(self, model, script: Sequence[int], prompt_length: int, boost: float = 50.0):
        super().__init__()
        self.inner = model
        from .backends._engine import cache_kwarg

        self._inner_cache_kwarg = cache_kwarg(model)  # the wrapped model's name for its cache
        self.config = model.config
        self.script = list(script)
        self.prompt_length = int(prompt_length)
        self.boost = float(boost)
        # attention runs in the wrapped model, so its attention backend applies
        self._supports_attention_backend = getattr(model, "_supports_attention_backend", False)

    @property
    def device(self):
        return self.inner.device

    @property
    def dtype(self):
        return self.inner.dtype

    def forward(self, input_ids=None, position_ids=None, logits_to_keep=0, cache=None, **kwargs):
        past = cache if cache is not None else kwargs.pop("past_key_values", None)
        if past is not None:
            kwargs[self._inner_cache_kwarg] = past
        out = self.inner(input_ids=input_ids, position_ids=position_ids,
                         logits_to_keep=logits_to_keep, **kwargs)
        if position_ids is None:
            start = past.get_seq_length() if past is not None else 0
            last = torch.full((input_ids.shape[0],), start + input_ids.shape[1] - 1)
        else:
            last = position_ids[:, -1]
        logits = out.logits.clone()
        for row, pos in enumerate(last.tolist()):
            g = pos - (self.prompt_length - 1)
            if 0 <= g < len(self.script):
                logits[row, -1, self.script[g]] += self.boost
        out.logits = logits
        return out

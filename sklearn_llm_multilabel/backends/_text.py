"""Text-side checks of the engine: tokenizer requirements, truncation, encodability."""

from __future__ import annotations

from collections.abc import Sequence

from .._warnings import warn
from ..exceptions import TokenizerError, TruncationWarning
from ._seal import SealedEncoder


def default_max_new_tokens(n_labels: int) -> int:
    """18 new tokens, 25 for label sets of more than 8 labels (the paper's settings).

    Examples
    --------
    >>> default_max_new_tokens(6), default_max_new_tokens(28)
    (18, 25)
    """
    return 18 if n_labels <= 8 else 25


def end_ids(model, tokenizer) -> set[int]:
    """The end-of-sequence ids that stop transformers' ``generate`` for this model."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, (list, tuple)) else [eos]
    return {int(i) for i in ids if i is not None}


def leading_special_ids(tokenizer, add_bos: bool | None = None) -> list[int]:
    """Special tokens that start every prompt.

    ``add_bos=None`` (the default) follows the tokenizer: the tokens it puts
    before a text when called with its default ``add_special_tokens=True``
    (a BOS token for most Llama tokenizers, nothing for SmolLM2's or GPT-2's).
    ``True`` puts the BOS token (when the tokenizer has one); ``False`` puts
    nothing.

    Examples
    --------
    >>> from sklearn_llm_multilabel.testing import make_tiny_tokenizer
    >>> tok = make_tiny_tokenizer()  # adds no special tokens by default
    >>> leading_special_ids(tok), leading_special_ids(tok, True) == [tok.bos_token_id]
    ([], True)
    """
    if add_bos is not None:
        bos = getattr(tokenizer, "bos_token_id", None)
        return [int(bos)] if add_bos and bos is not None else []
    with_specials = list(tokenizer("x")["input_ids"])
    without = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    for k in range(len(with_specials) - len(without) + 1):
        if with_specials[k : k + len(without)] == without:
            return [int(i) for i in with_specials[:k]]
    return []


def check_encodable(texts: Sequence[str], *, what: str = "texts") -> None:
    """Raise ValueError naming the first text that cannot be encoded as UTF-8.

    Texts with lone surrogates (``"\\ud800"``, produced by some JSON decoders
    and broken file reads) cannot be encoded as UTF-8; tokenizers then raise a
    bare ``TypeError``. Here the row is named instead.
    """
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{what}[{i}] cannot be encoded as UTF-8 ({exc.reason} at character {exc.start}: "
                f"{text[max(0, exc.start - 10) : exc.start + 10]!r}); clean it, e.g. with "
                "text.encode('utf-8', 'replace').decode()."
            ) from None


def encode_texts(tokenizer, texts: Sequence[str], *, what: str = "texts",
                 sealer: SealedEncoder | None = None) -> list[list[int]]:
    """Token ids of every text (no added special tokens), sealed (:mod:`._seal`).

    A text is data: a special-token spelling in it is encoded as characters,
    never as a control token. A clear error names an unencodable text.
    """
    check_encodable(texts, what=what)
    sealer = SealedEncoder(tokenizer) if sealer is None else sealer
    return sealer.encode(texts, [[(0, len(text))] for text in texts])


#: tokens past the budget a prefix must hold before its first ones are trusted
_MARGIN = 8


def _first_prefix(budget: int) -> int:
    """The characters of the first prefix tried (texts up to twice as long are encoded whole)."""
    return max(4096, 16 * (budget + 1 + _MARGIN))


def _head_ids(sealer: SealedEncoder, text: str, budget: int) -> list[int]:
    """Token ids of ``text``, or of a prefix of it whose first ``budget + 1`` ids are the
    whole text's: a long text is never tokenised whole (an 8 MB text would cost a gigabyte).

    A prefix is trusted when it holds at least ``budget + 1 + _MARGIN`` tokens and a prefix
    twice as long starts with the same ``budget + 1`` ids (tokens far from a cut do not
    depend on it); else the prefix grows, up to the whole text.
    """
    def encode(part: str) -> list[int]:
        return sealer.encode([part], [[(0, len(part))]])[0]

    size = _first_prefix(budget)
    while 2 * size < len(text):
        head = encode(text[:size])
        if len(head) > budget + _MARGIN and \
                encode(text[:2 * size])[:budget + 1] == head[:budget + 1]:
            return head
        size *= 4
    return encode(text)


def truncate_texts(tokenizer, texts: Sequence[str], budget: int, *, what: str = "texts",
                   sealer: SealedEncoder | None = None) -> list[str]:
    """Cut texts to ``budget`` tokens; a :class:`TruncationWarning` counts the cut ones.

    A text is tokenised only as far as the cut needs (:func:`_head_ids`)."""
    if not texts:
        return []
    check_encodable(texts, what=what)
    sealer = SealedEncoder(tokenizer) if sealer is None else sealer
    short = [i for i, text in enumerate(texts) if len(text) <= 2 * _first_prefix(budget)]
    encoded: list = [None] * len(texts)
    for i, ids in zip(short, sealer.encode([texts[i] for i in short],
                                           [[(0, len(texts[i]))] for i in short])):
        encoded[i] = ids  # one batch for the usual texts
    for i, text in enumerate(texts):
        if encoded[i] is None:
            encoded[i] = _head_ids(sealer, text, budget)
    out = [text if len(ids) <= budget else tokenizer.decode(ids[:budget])
           for text, ids in zip(texts, encoded)]
    n_truncated = sum(len(ids) > budget for ids in encoded)
    if n_truncated:
        warn(
            f"{n_truncated} of {len(texts)} {what} exceed max_text_tokens={budget} tokens and "
            "were truncated.",
            TruncationWarning,
        )
    return out


def check_tokenizer(tokenizer, use_chat_template: bool, config=None) -> None:
    """Raise :class:`TokenizerError` when the tokenizer lacks what the prompt needs, or
    (given the model's ``config``) can produce ids the model has no embedding for."""
    for attr in ("encode", "decode", "all_special_ids"):
        if not hasattr(tokenizer, attr):
            raise TokenizerError(f"The tokenizer has no {attr!r}; a transformers tokenizer is needed.")
    if use_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(
            "use_chat_template=True but the tokenizer has no chat template; use the raw "
            "completion prompt (use_chat_template=False) for this model."
        )
    if config is not None:
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        rows = getattr(text_config, "vocab_size", None)
        if isinstance(rows, int) and len(tokenizer) > rows:
            raise TokenizerError(
                f"The tokenizer has {len(tokenizer)} token ids but the model embeds only {rows} "
                f"(config vocab_size): ids {rows} to {len(tokenizer) - 1} would fail or read "
                "another row. The tokenizer files do not belong to these weights (or tokens were "
                "added without model.resize_token_embeddings); use the checkpoint's own tokenizer.")

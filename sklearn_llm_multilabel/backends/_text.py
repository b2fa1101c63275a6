"""Text-side checks of the engine: tokenizer requirements, truncation, encodability."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from ..exceptions import TokenizerError, TruncationWarning


def default_max_new_tokens(n_labels: int) -> int:
    """18 new tokens, 25 for label sets of more than 8 labels (the paper's settings).

    Examples
    --------
    >>> default_max_new_tokens(6), default_max_new_tokens(28)
    (18, 25)
    """
    return 18 if n_labels <= 8 else 25


def encode_texts(tokenizer, texts: Sequence[str], *, what: str = "texts") -> list[list[int]]:
    """Token ids of every text (no special tokens); a clear error names an unencodable one.

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
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def truncate_texts(tokenizer, texts: Sequence[str], budget: int, *, what: str = "texts") -> list[str]:
    """Cut texts to ``budget`` tokens; a :class:`TruncationWarning` counts the cut ones."""
    if not texts:
        return []
    encoded = encode_texts(tokenizer, texts, what=what)
    out = [text if len(ids) <= budget else tokenizer.decode(ids[:budget])
           for text, ids in zip(texts, encoded)]
    n_truncated = sum(len(ids) > budget for ids in encoded)
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {len(texts)} {what} exceed max_text_tokens={budget} tokens and "
            "were truncated.",
            TruncationWarning,
            stacklevel=3,
        )
    return out


def check_tokenizer(tokenizer, use_chat_template: bool) -> None:
    """Raise :class:`TokenizerError` when the tokenizer lacks what the prompt needs."""
    for attr in ("encode", "decode", "all_special_ids"):
        if not hasattr(tokenizer, attr):
            raise TokenizerError(f"The tokenizer has no {attr!r}; a transformers tokenizer is needed.")
    if use_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TokenizerError(
            "use_chat_template=True but the tokenizer has no chat template; use the raw "
            "completion prompt (use_chat_template=False) for this model."
        )

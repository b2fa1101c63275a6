"""Sealed prompts: only the prompt's own parts can become control tokens.

A tokenizer turns every spelling of a special token (``<|im_end|>``,
``</s>``) into that control token, wherever it stands. A text under
classification (or a demonstration) that contains one could then close its
turn in a chat prompt and write a fake assistant turn. Here every string is
encoded together with the character spans that hold *data* (the texts): a
special-token spelling that touches a data span is encoded as the ordinary
characters it is made of; spellings in the prompt's own parts (the chat
template's control tokens, the instruction a researcher wrote) stay control
tokens.

Strings whose data holds no special-token spelling (nearly all) are encoded
exactly as before, in one call to the tokenizer. The others are split at the
prompt's own control tokens and each piece encoded with special tokens
disabled, on a private copy of the tokenizer's backend, so the shared
tokenizer's state is never flipped.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence

Span = tuple[int, int]


def special_spellings(tokenizer) -> list[str]:
    """Every special token's spelling, longest first (the order a tokenizer matches them in).

    Examples
    --------
    >>> from sklearn_llm_multilabel.testing import make_tiny_tokenizer
    >>> special_spellings(make_tiny_tokenizer())
    ['<pad>', '</s>', '<s>']
    """
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", ()) if str(t)}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found.update(str(tok) for tok in decoder.values() if getattr(tok, "special", False) and str(tok))
    return sorted(found, key=lambda s: (-len(s), s))


@functools.lru_cache(maxsize=64)
def spelling_pattern(spellings: tuple[str, ...]) -> re.Pattern | None:
    """One regular expression matching any of ``spellings`` (longest first), or None."""
    return re.compile("|".join(map(re.escape, spellings))) if spellings else None


def unsealed_spans(pattern: re.Pattern | None, text: str, data: Sequence[Span]) -> list[Span]:
    """Spans of ``pattern``'s spellings in ``text`` that touch a data span (those a plain
    tokenizer would read as control tokens). Used by the encoder and by the record keys that
    are computed without a tokenizer (``_keys``), so both decide alike.

    Examples
    --------
    >>> unsealed_spans(spelling_pattern(("</s>",)), "Input: </s> </s>", [(7, 11)])
    [(7, 11)]
    """
    if pattern is None or not data:
        return []
    return [m.span() for m in pattern.finditer(text) if _overlaps(m.span(), data)]


def _overlaps(span: Span, spans: Sequence[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


class SealedEncoder:
    """Token ids of prompt strings in which data spans cannot hold control tokens.

    Parameters
    ----------
    tokenizer : transformers tokenizer

    Examples
    --------
    >>> from sklearn_llm_multilabel.testing import make_tiny_tokenizer
    >>> tok = make_tiny_tokenizer()
    >>> sealer = SealedEncoder(tok)
    >>> query = "Input: </s>"
    >>> tok.eos_token_id in sealer.encode_one(query, [(7, len(query))])
    False
    >>> tok.eos_token_id in sealer.encode_one(query, [])  # not data: the prompt's own token
    True
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        spellings = special_spellings(tokenizer)
        self._pattern = spelling_pattern(tuple(spellings))
        self._lock = threading.Lock()
        self._backend = None

    def unsealed(self, text: str, data: Sequence[Span]) -> list[Span]:
        """Spans of special-token spellings in ``text`` that touch a data span."""
        return unsealed_spans(self._pattern, text, data)

    def needs_sealing(self, text: str, data: Sequence[Span]) -> bool:
        """Whether the tokenizer alone would read a control token out of the data."""
        return bool(self.unsealed(text, data))

    def encode(self, texts: Sequence[str], data: Sequence[Sequence[Span]]) -> list[list[int]]:
        """Token ids (no added special tokens) of every string, its data spans sealed."""
        if not texts:
            return []
        ids = [list(row) for row in
               self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        for i, (text, spans) in enumerate(zip(texts, data)):
            if self.needs_sealing(text, spans):
                ids[i] = self._encode_sealed(text, spans)
        return ids

    def encode_one(self, text: str, data: Sequence[Span]) -> list[int]:
        """:meth:`encode` of one string."""
        return self.encode([text], [data])[0] if text else []

    def plain(self, text: str) -> list[int]:
        """Token ids of ``text`` with every special-token spelling read as characters."""
        if not text:
            return []
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a Python tokenizer takes the option per call
            return list(self.tokenizer.encode(text, add_special_tokens=False,
                                              split_special_tokens=True))
        with self._lock:
            if self._backend is None:
                from tokenizers import Tokenizer

                private = Tokenizer.from_str(backend.to_str())
                private.encode_special_tokens = True
                self._backend = private
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def _encode_sealed(self, text: str, data: Sequence[Span]) -> list[int]:
        out: list[int] = []
        start = 0
        for match in self._pattern.finditer(text):
            if _overlaps(match.span(), data):
                continue
            out += self.plain(text[start : match.start()])
            out.append(int(self.tokenizer.convert_tokens_to_ids(match.group())))
            start = match.end()
        return out + self.plain(text[start:])

"""Token embeddings: one vector per token, with the tokens' text, and where they came
from; the book's running example; and how `--query` names a token."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError, setting

# The book's running example, section 3.3: "Your journey starts with one step".
BOOK_TOKENS = ("Your", "journey", "starts", "with", "one", "step")
BOOK_EMBEDDINGS = (
    (0.43, 0.15, 0.89),
    (0.55, 0.87, 0.66),
    (0.57, 0.85, 0.64),
    (0.22, 0.58, 0.33),
    (0.77, 0.25, 0.10),
    (0.05, 0.80, 0.55),
)
BOOK_SOURCE = "the built-in example"


@dataclass(frozen=True)
class Embeddings:
    """One vector per token: `matrix[i]` is the embedding x^(i+1) of `tokens[i]`."""

    tokens: tuple[str, ...]
    matrix: NDArray[np.floating[Any]]  # (T, d_in): float64 from text, as stored from .npy
    source: str = "<input>"  # how messages name where the data came from

    @property
    def d_in(self) -> int:
        return int(self.matrix.shape[1])

    def resolve_query(self, query: str) -> int:
        """The row a query names: exact token, then a unique case-insensitive match,
        then a 0-based index."""
        exact = [i for i, token in enumerate(self.tokens) if token == query]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            raise _ambiguous(query, exact, self.tokens)
        folded = [i for i, token in enumerate(self.tokens) if token.casefold() == query.casefold()]
        if len(folded) == 1:
            return folded[0]
        if len(folded) > 1:
            raise _ambiguous(query, folded, self.tokens)
        if re.fullmatch(r"[+-]?\d+", query.strip()):
            digits = len(query.strip().lstrip("+-").lstrip("0"))
            # int() refuses more than 4300 digits; 20 are beyond any input already
            index = int(query) if digits <= 20 else len(self.tokens)
            if 0 <= index < len(self.tokens):
                return index
            shown = query if digits <= 20 else f"{query.strip()[:12]}… ({digits} digits)"
            raise AttnError.usage(
                f"{setting('query', shown)} is out of range: {self.source} has "
                f"{len(self.tokens)} tokens, so an index runs from 0 to {len(self.tokens) - 1}"
            )
        import difflib  # only for a query that is not a token

        close = difflib.get_close_matches(query, self.tokens, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise AttnError.usage(
            f"{setting('query', repr(query))} is not a token of {self.source}; {hint}"
            f"tokens: {_listing(range(len(self.tokens)), self.tokens)} "
            "(a token's text or its 0-based index)"
        )


def book_example() -> Embeddings:
    """The book's six tokens with their 3-d embeddings (section 3.3)."""
    return Embeddings(BOOK_TOKENS, np.array(BOOK_EMBEDDINGS, dtype=np.float64), BOOK_SOURCE)


def _listing(indices: Sequence[int] | range, tokens: Sequence[str], limit: int = 12) -> str:
    shown = [f"{i} {tokens[i]!r}" for i in list(indices)[:limit]]
    more = len(indices) - limit
    return ", ".join(shown) + (f", ... ({more} more)" if more > 0 else "")


def _ambiguous(query: str, matches: list[int], tokens: Sequence[str]) -> AttnError:
    choices = " or ".join(setting("query", i, short=True) for i in matches[:6])
    return AttnError.usage(
        f"{setting('query', repr(query))} is ambiguous: it matches {len(matches)} tokens "
        f"({_listing(matches, tokens)}); pick one by index: {choices}"
    )

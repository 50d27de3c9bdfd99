"""Which keys each query may not see: the mask, as a value.

One mask is built from the settings (`AttentionParams.mask`, with a `--mask` file's
array joined by `with_file`) and asked by every consumer: the engine for a block of
rows, `explain` for its query, the tables, Markdown and pictures for the cells they
show. Nobody re-derives "is this cell masked?" from a mode, so a new kind of mask is
written here once and shows the same everywhere.

Masks are built from positions, as the book's ch04/06_swa builds its sliding window
(`diff = q_pos - k_pos`): the causal mask hides every key after the query (diff < 0),
a window of W also every key W or more before it (diff >= W), so that query i sees the
W keys i - W < j <= i, itself included (Gemma 3's and Hugging Face's convention). Key
j is at position j; query row i at position i + offset, where the offset aligns a
shorter block of queries to the end of the keys (bottom-right, as a KV cache needs).

A mask from a file adds, as torch's `scaled_dot_product_attention` takes `attn_mask`:
boolean (False hides) or float (added to the scaled scores; -inf hides), for every
head alike or one per head.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .errors import shown_text


class Mask(NamedTuple):
    """The keys hidden from each query. (A NamedTuple: as immutable as a frozen
    dataclass, and a fifth of its cost at every start.)"""

    causal: bool = False
    window: int | None = None  # causal only: the W keys i - W < j <= i are seen
    offset: int = 0  # query row i is at position i + offset
    cross: bool = False  # fewer queries than keys (or more): the alignment is worth saying
    # From a file, (1 or H, T_q, T_k): False where a query may not see a key
    allowed: NDArray[np.bool_] | None = None
    # From a float file, (1 or H, T_q, T_k): added to the scaled scores (finite entries)
    bias: NDArray[np.floating[Any]] | None = None
    source: str | None = None  # the file the array came from, for captions

    @classmethod
    def for_mode(
        cls, causal: bool, window: int | None = None, offset: int = 0, cross: bool = False
    ) -> Mask:
        return cls(causal=causal, window=window, offset=offset, cross=cross)

    def with_file(
        self, allowed: NDArray[np.bool_], bias: NDArray[np.floating[Any]] | None, source: str
    ) -> Mask:
        """This mask and a `--mask` file's (inputs.mask_file.MaskArray): `allowed`, (1 or
        H, T_q, T_k), False where a key is hidden; `bias`, a float mask's values (-inf
        where hidden), added to the scaled scores, or None."""
        if bias is not None:
            bias = np.where(allowed, bias, 0.0)  # the -inf cells are hidden; add 0 there
            if not bias.any():  # a float mask of 0 and -inf only: nothing to add
                bias = None
        return self._replace(allowed=allowed, bias=bias, source=source)

    @property
    def hides_any(self) -> bool:
        """Whether some query may not see some key."""
        return self.causal or self.allowed is not None

    @property
    def per_head(self) -> bool:
        """Whether heads differ in what they hide or add (a (H, T_q, T_k) file)."""
        return any(a is not None and a.shape[0] > 1 for a in (self.allowed, self.bias))

    @property
    def banded(self) -> bool:
        """Whether every hidden cell follows from positions alone (no file): then a
        block of rows needs only the keys of `seen_span`, and `hidden` only on
        `mixed_span`."""
        return self.allowed is None

    def hidden(
        self, rows: NDArray[np.intp], start: int, stop: int, head: int = 0
    ) -> NDArray[np.bool_]:
        """(n, stop - start): True where query `rows[i]` may not see key `start + j`
        (in head `head`, for a mask that differs per head).

        >>> Mask(causal=True).hidden(np.arange(3), 0, 3).astype(int).tolist()
        [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
        >>> Mask(causal=True, window=2).hidden(np.arange(4), 0, 4).astype(int).tolist()
        [[0, 1, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0]]
        >>> Mask(causal=True, offset=2).hidden(np.arange(2), 0, 4).astype(int).tolist()
        [[0, 0, 0, 1], [0, 0, 0, 0]]
        """
        hidden = np.zeros((len(rows), stop - start), dtype=bool)
        if self.causal:
            q_pos = rows[:, np.newaxis] + self.offset  # (n, 1)
            k_pos = np.arange(start, stop)[np.newaxis, :]  # (1, k)
            diff = q_pos - k_pos  # (n, k)
            hidden = diff < 0
            if self.window is not None:
                hidden |= diff >= self.window
        if self.allowed is not None:
            allowed = self.allowed[min(head, self.allowed.shape[0] - 1)]  # (T_q, T_k)
            hidden |= ~allowed[rows, start:stop]
        return hidden

    def hidden_heads(
        self, rows: NDArray[np.intp], start: int, stop: int, heads: int
    ) -> NDArray[np.bool_]:
        """(H, n, stop - start), or (1, n, ...) when every head hides the same keys."""
        count = heads if self.per_head else 1
        return np.stack([self.hidden(rows, start, stop, h) for h in range(count)])

    def bias_for(
        self, rows: NDArray[np.intp], start: int, stop: int, head: int = 0
    ) -> NDArray[np.float64] | None:
        """(n, stop - start): what a float mask file adds to these scaled scores, or None."""
        if self.bias is None:
            return None
        bias: NDArray[np.float64] = self.bias[min(head, self.bias.shape[0] - 1)][rows, start:stop]
        return bias

    def seen_span(self, rows: NDArray[np.intp], n_keys: int) -> tuple[int, int]:
        """The keys [start, stop) that some query of `rows` may see, by position: every
        other key is hidden from all of them, so the work on a block of rows can stop
        at `stop` (and, with a window, start at `start`).

        >>> Mask(causal=True).seen_span(np.array([2, 3]), 6), Mask().seen_span(np.array([2]), 6)
        ((0, 4), (0, 6))
        >>> Mask(causal=True, window=2).seen_span(np.array([4, 5]), 6)
        (3, 6)
        """
        if not self.causal or not len(rows):
            return 0, n_keys
        last = int(rows.max()) + self.offset
        first = 0 if self.window is None else int(rows.min()) + self.offset - self.window + 1
        stop = max(0, min(n_keys, last + 1))
        return min(max(0, first), stop), stop

    def mixed_span(self, rows: NDArray[np.intp], start: int, stop: int) -> tuple[int, int]:
        """Within the keys [start, stop), those some query of `rows` may see and another
        may not, by position: outside them every key is seen by all of `rows`, so a
        block of rows needs `hidden` only for these (the triangle of a causal block;
        the whole span with a window, whose band has two edges).

        >>> Mask(causal=True).mixed_span(np.array([2, 3, 4]), 0, 5)
        (3, 5)
        """
        if not self.causal or not len(rows):
            return start, start
        if self.window is not None:
            return start, stop
        return min(stop, max(start, int(rows.min()) + self.offset + 1)), stop

    def caption(self) -> str | None:
        """One line for a table's caption saying what is masked, or None."""
        parts = []
        if self.causal:
            align = ""
            if self.cross:
                align = (
                    " (queries aligned to the last keys)"
                    if self.offset
                    else " (queries aligned to the first keys, as torch's is_causal)"
                )
            if self.window is not None:
                parts.append(
                    f"sliding window {self.window}: query i sees keys i-{self.window} < j ≤ i"
                    f"{align}, the rest masked"
                )
            elif self.offset:
                parts.append(
                    f"causal: query i sees keys j ≤ i + {self.offset}, the rest masked{align}"
                )
            else:
                parts.append(f"causal: keys after the query (j > i) are masked{align}")
        if self.allowed is not None:
            added = (
                ", its finite values added to the scaled scores" if self.bias is not None else ""
            )
            parts.append(f"mask {shown_text(self.source or '')}: its hidden cells masked{added}")
        return "; ".join(parts) if parts else None

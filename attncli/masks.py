"""Which keys each query may not see: the mask, as a value.

One mask is built from the settings (`Mask.for_mode`) and asked by every consumer: the
engine for a block of rows, `explain` for its query, the tables, Markdown and pictures
for the cells they show. Nobody re-derives "is this cell masked?" from a mode, so a new
kind of mask is written here once and shows the same everywhere.

Masks are built from positions, as the book's ch04/06_swa builds its sliding window
(`diff = q_pos - k_pos`): the causal mask hides every key after the query (diff < 0).
A query row's position is its index among the tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class Mask(NamedTuple):
    """The keys hidden from each query: none, or (causal) those after it. (A NamedTuple:
    as immutable as a frozen dataclass, and a fifth of its cost at every start.)"""

    causal: bool = False

    @classmethod
    def for_mode(cls, causal: bool) -> Mask:
        return cls(causal=causal)

    @property
    def hides_any(self) -> bool:
        """Whether some query may not see some key."""
        return self.causal

    def hidden(self, rows: NDArray[np.intp], start: int, stop: int) -> NDArray[np.bool_]:
        """(n, stop - start): True where query `rows[i]` may not see key `start + j`.

        >>> Mask(causal=True).hidden(np.arange(3), 0, 3).astype(int).tolist()
        [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
        """
        q_pos = rows[:, np.newaxis]  # (n, 1)
        k_pos = np.arange(start, stop)[np.newaxis, :]  # (1, k)
        if self.causal:
            return k_pos > q_pos  # diff = q_pos - k_pos < 0: (n, k)
        return np.zeros((len(rows), stop - start), dtype=bool)

    def seen_span(self, rows: NDArray[np.intp], n_keys: int) -> tuple[int, int]:
        """The keys [start, stop) that some query of `rows` may see: every other key is
        hidden from all of them, so the work on a block of rows can stop at `stop`.

        >>> Mask(causal=True).seen_span(np.array([2, 3]), 6), Mask().seen_span(np.array([2]), 6)
        ((0, 4), (0, 6))
        """
        if self.causal and len(rows):
            return 0, min(n_keys, int(rows.max()) + 1)
        return 0, n_keys

    def mixed_span(self, rows: NDArray[np.intp], start: int, stop: int) -> tuple[int, int]:
        """Within the keys [start, stop), those some query of `rows` may see and another
        may not: outside them every key is seen by all of `rows`, so a block of rows
        needs `hidden` only for these (the triangle of a causal block).

        >>> Mask(causal=True).mixed_span(np.array([2, 3, 4]), 0, 5)
        (3, 5)
        """
        if not self.causal or not len(rows):
            return start, start
        return max(start, int(rows.min()) + 1), stop

    def caption(self) -> str | None:
        """One line for a table's caption saying what is masked, or None."""
        if self.causal:
            return "causal: keys after the query (j > i) are masked"
        return None

"""How the projections' columns form attention heads: the head layout, as a value.

The book's MultiHeadAttention (3.6.2) splits d_out into `heads` heads of head_dim =
d_out / heads: head h owns columns h * head_dim to (h + 1) * head_dim of the queries,
keys and values (`view(b, T, num_heads, head_dim).transpose(1, 2)`), and the heads'
context vectors are joined side by side in the same order before out_proj. The
wrapper of 3.6.1 lays its modules side by side the same way. Key/value heads equal the
query heads here; with grouped-query attention there are fewer, each shared by
consecutive query heads (torch's `repeat_interleave`).

The projections, the engine, `explain`, the weights-file reader and the renderers all
ask this one value, so none of them splits heads its own way.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=np.generic)


class HeadLayout(NamedTuple):
    """`heads` query heads of `head_dim` columns each, and `kv_heads` key/value heads
    (a NamedTuple: as immutable as a frozen dataclass, and cheaper at every start)."""

    heads: int
    head_dim: int
    key_value_heads: int = 0  # 0: as many as the query heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: the query heads' number unless fewer were given."""
        return self.key_value_heads or self.heads

    @classmethod
    def for_width(cls, width: int, heads: int) -> HeadLayout:
        """`heads` heads splitting `width` columns (which `heads` divides)."""
        return cls(heads, width // heads)

    @property
    def width(self) -> int:
        """Columns of the queries (and of the heads' context vectors side by side)."""
        return self.heads * self.head_dim

    @property
    def group_size(self) -> int:
        """Query heads that share one key/value head."""
        return self.heads // self.kv_heads

    def columns(self, h: int) -> slice:
        """Query head h's columns of the queries and of the joined context vectors.

        >>> HeadLayout(2, 3).columns(1)
        slice(3, 6, None)
        """
        return slice(h * self.head_dim, (h + 1) * self.head_dim)

    def kv_head(self, h: int) -> int:
        """The key/value head query head h attends with (repeat_interleave's order).

        >>> [HeadLayout(4, 2, key_value_heads=2).kv_head(h) for h in range(4)]
        [0, 0, 1, 1]
        """
        return h // self.group_size

    def kv_columns(self, h: int) -> slice:
        """Query head h's columns of the keys and values."""
        return slice(self.kv_head(h) * self.head_dim, (self.kv_head(h) + 1) * self.head_dim)

    def split(self, x: NDArray[F]) -> NDArray[F]:
        """(n, heads * head_dim) -> (heads, n, head_dim), as `view(...).transpose(1, 2)`.

        >>> HeadLayout(2, 2).split(np.arange(8.0).reshape(2, 4)).tolist()
        [[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]]]
        """
        n = x.shape[0]
        heads = x.shape[1] // self.head_dim
        split: NDArray[F] = x.reshape(n, heads, self.head_dim).transpose(
            1, 0, 2
        )  # (n, H * d) -> (H, n, d)
        return split

    def join(self, parts: list[NDArray[Any]] | NDArray[Any]) -> NDArray[Any]:
        """The heads' (n, head_dim) blocks side by side: (n, heads * head_dim).

        >>> HeadLayout(2, 1).join([np.array([[1.0]]), np.array([[2.0]])]).tolist()
        [[1.0, 2.0]]
        """
        joined: NDArray[Any] = np.concatenate(list(parts), axis=1)  # H x (n, d) -> (n, H * d)
        return joined

"""What today's models do to the scores on their way to the softmax: the `modifiers`
stage (after the scaling, before the mask), and the sinks that join the softmax.

- soft-capping (Gemma 2): scores -> C * tanh(scores / C), before the mask;
- ALiBi (Press et al.): a linear bias -slope_h * (i - j) for query position i and key
  position j, one slope per head from the paper's formula;
- attention sinks (gpt-oss): one logit per head joins each row's softmax as an extra
  column and is dropped afterwards, so the weights of a row sum to less than 1.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=np.floating[Any])


def alibi_slopes(heads: int) -> list[float]:
    """The ALiBi paper's slopes (ofirpress/attention_with_linear_biases, `get_slopes`):
    geometric, starting at 2^(-8/n), for a power of two n heads; otherwise those of the
    power of two below, then every other slope of the power of two above.

    >>> alibi_slopes(8) == [2.0 ** -k for k in range(1, 9)]
    True
    >>> [round(s, 4) for s in alibi_slopes(6)]
    [0.25, 0.0625, 0.0156, 0.0039, 0.5, 0.125]
    """

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


class Modifiers(NamedTuple):
    """The modifiers one attention layer applies; empty: none (chapter 3)."""

    softcap: float | None = None
    alibi: tuple[float, ...] | None = None  # one slope per query head
    sinks: tuple[float, ...] | None = None  # one sink logit per query head

    @property
    def any(self) -> bool:
        return self.softcap is not None or self.alibi is not None or self.sinks is not None

    def apply(
        self,
        scaled: NDArray[F],
        query_positions: NDArray[np.intp],
        key_positions: NDArray[np.intp],
        head: int,
    ) -> NDArray[F]:
        """The scaled scores (n, k) of head `head` for queries and keys at these positions,
        soft-capped, then ALiBi's bias added (the order Gemma 2 and the ALiBi models use
        alone; nothing combines them)."""
        dtype = scaled.dtype.type
        if self.softcap is not None:
            cap = dtype(self.softcap)
            scaled = np.tanh(scaled / cap) * cap
        if self.alibi is not None:
            distance = query_positions[:, np.newaxis] - key_positions[np.newaxis, :]  # (n, k)
            scaled = scaled - dtype(self.alibi[head]) * distance.astype(scaled.dtype)
        return scaled

    def sink(self, head: int) -> float | None:
        """Head `head`'s sink logit, or None."""
        return None if self.sinks is None else self.sinks[head]


NO_MODIFIERS = Modifiers()  # chapter 3: the scores go to the softmax as they are

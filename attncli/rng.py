"""Seeded draws that match PyTorch's CPU generator bit for bit, with numpy alone.

`torch.manual_seed(S)` seeds a classic MT19937 (`init_genrand(S mod 2**32)`), and
numpy's legacy-seeded MT19937 (`np.random.RandomState(S)`) produces the same stream
of 32-bit outputs. On top of that stream this module reproduces torch's recipes
(see ../shared/reference/torch_rng.md in the project workspace):

>>> gen = TorchGenerator(123)
>>> [hex(r) for r in gen.raw32(2)]
['0xb24bcdfe', '0xb6843d6d']
>>> TorchGenerator(123).rand(3, 2)[0].tolist()  # the book's W_query, first row
[0.29611194133758545, 0.516562283039093]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError, number_text, setting

# torch.manual_seed accepts exactly the integers that fit an int64 or a uint64.
SEED_MIN = -(2**63)
SEED_MAX = 2**64 - 1

_LOW24 = np.uint32(0xFFFFFF)
_TWO_POW_MINUS_24 = np.float32(2.0**-24)
_LOW53 = np.uint64(2**53 - 1)
_SKIP_CHUNK = 1 << 20  # draws discarded at a time when skipping ahead


def check_seed(seed: int, name: str = "seed") -> int:
    """Return `seed` if torch.manual_seed would accept it, else raise a usage error
    naming `name`, the setting that gave it (seed or dropout_seed)."""
    if not SEED_MIN <= seed <= SEED_MAX:
        raise AttnError.usage(
            f"{setting(name, number_text(seed))} is out of range: torch.manual_seed takes "
            f"integers from {SEED_MIN} to {SEED_MAX}; pick a seed in that range"
        )
    return seed


class TorchGenerator:
    """One seeded stream, consumed in order like torch's default CPU generator."""

    def __init__(self, seed: int) -> None:
        check_seed(seed)
        # Negative seeds wrap modulo 2**64 in torch; only the low 32 bits seed MT19937,
        # and 2**32 divides 2**64, so Python's modulo gives the same low word.
        self.seed = seed
        self._state = np.random.RandomState(seed % 2**32)

    def raw32(self, n: int) -> NDArray[np.uint32]:
        """The next `n` tempered 32-bit MT19937 outputs."""
        # Over the full uint32 range randint takes exactly one raw output per value.
        return self._state.randint(0, 2**32, size=n, dtype=np.uint32)

    def rand(self, rows: int, cols: int) -> NDArray[np.float32]:
        """`torch.rand(rows, cols)`: U[0, 1) float32, filled row-major.

        torch keeps the LOW 24 bits of each draw: value = (r & 0xFFFFFF) * 2**-24,
        exact in float32.
        """
        r = self.raw32(rows * cols).reshape(rows, cols)  # (rows * cols,) -> (rows, cols)
        values: NDArray[np.float32] = (r & _LOW24).astype(np.float32) * _TWO_POW_MINUS_24
        return values

    def uniform(self, rows: int, cols: int, low: float, high: float) -> NDArray[np.float32]:
        """`torch.empty(rows, cols).uniform_(low, high)` in float32, row-major.

        torch computes `x * (high - low) + low` in float32 with a single rounding (a
        fused multiply-add), x = (r & 0xFFFFFF) * 2**-24. Here the product is exact in
        float64 (24 x 24 bits), the sum is rounded once to float64, and the rare case
        where that rounding lands exactly on a float32 tie is settled by the sum's
        exact error, so the result is the correctly rounded float32, as the FMA's is.
        """
        low32, high32 = np.float32(low), np.float32(high)
        span = np.float64(high32 - low32)  # a float32 subtraction, as in torch
        x = (self.raw32(rows * cols) & _LOW24).astype(np.float64) * 2.0**-24
        result = fused_multiply_add_f32(x, span, np.float64(low32))
        result = np.where(result == high32, low32, result)  # torch keeps the range half-open
        values: NDArray[np.float32] = result.reshape(rows, cols)  # (rows * cols,) -> (rows, cols)
        return values

    def linear(
        self, d_in: int, d_out: int, bias: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
        """The weight (d_out, d_in) and bias (d_out,) of a new `nn.Linear(d_in, d_out)`.

        Kaiming-uniform with a = sqrt(5), evaluated in Python doubles as torch does,
        then the bias from U(-1/sqrt(d_in), 1/sqrt(d_in)).
        """
        a = math.sqrt(5)
        gain = math.sqrt(2.0 / (1 + a**2))
        std = gain / math.sqrt(d_in)
        bound = math.sqrt(3.0) * std
        weight = self.uniform(d_out, d_in, -bound, bound)
        if not bias:
            return weight, None
        bias_bound = 1 / math.sqrt(d_in)
        return weight, self.uniform(1, d_out, -bias_bound, bias_bound)[0]

    def copy(self) -> TorchGenerator:
        """An independent generator at the same point of the stream."""
        twin = TorchGenerator.__new__(TorchGenerator)
        twin.seed = self.seed
        twin._state = np.random.RandomState()
        twin._state.set_state(self._state.get_state())
        return twin

    def skip(self, n: int) -> None:
        """Advance the stream by `n` draws (MT19937 has no cheap jump to an offset)."""
        while n > 0:
            step = min(n, _SKIP_CHUNK)
            self.raw32(step)
            n -= step

    def dropout_keep(self, count: int, p: float) -> NDArray[np.bool_]:
        """Which of the next `count` elements `nn.Dropout(p)` keeps in training mode.

        Two draws per element (the first the high word): u = bits & (2**53 - 1) over
        2**53, kept when u < 1 - p, compared in double. p = 0 and p = 1 draw nothing.
        """
        if p <= 0.0:
            return np.ones(count, dtype=bool)
        if p >= 1.0:
            return np.zeros(count, dtype=bool)
        pairs = self.raw32(2 * count).astype(np.uint64).reshape(count, 2)  # (2n,) -> (n, 2)
        bits = ((pairs[:, 0] << np.uint64(32)) | pairs[:, 1]) & _LOW53
        u = bits.astype(np.float64) * 2.0**-53  # exact: 53-bit integers
        keep: NDArray[np.bool_] = u < 1.0 - p
        return keep


def fused_multiply_add_f32(
    x: NDArray[np.float64], y: np.float64, z: np.float64
) -> NDArray[np.float32]:
    """float32(x * y + z) rounded once, as an FMA would, for x and y with at most 24
    significant bits each (so x * y is exact in float64).

    The sum is rounded to float64 first; only when that lands exactly halfway between
    two float32 values could the second rounding go the wrong way, and then the exact
    error of the sum (TwoSum) says which way the true value lies.
    """
    product = x * y  # exact
    total = product + z  # rounded once, to float64
    back = total - product
    error = (product - (total - back)) + (z - back)  # total + error == product + z exactly
    result = total.astype(np.float32)
    nearest = result.astype(np.float64)
    toward = np.where(total > nearest, np.inf, -np.inf).astype(np.float32)
    other = np.nextafter(result, toward)  # the float32 on total's other side
    tie = (total != nearest) & (total == (nearest + other.astype(np.float64)) / 2)
    fix = tie & (error != 0)
    if fix.any():
        up, down = np.maximum(result, other), np.minimum(result, other)
        result = np.where(fix, np.where(error > 0, up, down), result)
    return result


def dropout_scale(p: float) -> float:
    """The factor nn.Dropout gives kept elements: float32(1) / float32(1 - p).

    torch multiplies by this float32 reciprocal, which is not always 1/(1 - p) exactly
    (p = 0.45 shows the difference). p = 1 keeps nothing: torch multiplies the input
    by zero then (rather than by 1/0), so the factor is 0.
    """
    if p >= 1.0:
        return 0.0
    return float(np.float32(1.0) / np.float32(1.0 - p))


class DropoutStream:
    """nn.Dropout's mask of an (H, T, T) weight tensor, drawn row-major from a seeded
    stream, handed out row by row. Rows asked for in order (head by head, rows
    ascending) are drawn as they come; rows left out are skipped over in the stream
    (MT19937 has no cheap jump, so that costs their draws); asking for an earlier row
    replays the stream from its start.

    Head h's mask starts `head_rows` rows of T draws after head h - 1's: T when the
    heads are one tensor (MultiHeadAttention, and any module on a batch of one); B * T
    for MultiHeadAttentionWrapper on a batch of B, whose every head draws the masks of
    all B batch items before the next head draws (attn shows item 0)."""

    def __init__(
        self, start: TorchGenerator, n_tokens: int, p: float, head_rows: int | None = None
    ) -> None:
        self._start = start.copy()
        self._gen = start.copy()
        self._position = 0  # mask elements drawn or skipped so far
        self.n_tokens = n_tokens
        self.head_rows = n_tokens if head_rows is None else head_rows
        self.p = p
        self._draws = 0 if p <= 0.0 or p >= 1.0 else 2  # per element

    def keep(self, head: int, rows: NDArray[np.intp]) -> NDArray[np.bool_]:
        """(len(rows), T): True where head `head`'s weight in that row survives."""
        T = self.n_tokens
        out = np.empty((len(rows), T), dtype=bool)
        k = 0
        while k < len(rows):
            run = 1  # consecutive rows are drawn in one go
            while k + run < len(rows) and rows[k + run] == rows[k] + run:
                run += 1
            start = (head * self.head_rows + int(rows[k])) * T
            if start < self._position:
                self._gen = self._start.copy()
                self._position = 0
            self._gen.skip(self._draws * (start - self._position))
            out[k : k + run] = self._gen.dropout_keep(run * T, self.p).reshape(run, T)
            self._position = start + run * T
            k += run
        return out

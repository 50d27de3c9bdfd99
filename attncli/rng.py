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

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError

# torch.manual_seed accepts exactly the integers that fit an int64 or a uint64.
SEED_MIN = -(2**63)
SEED_MAX = 2**64 - 1

_LOW24 = np.uint32(0xFFFFFF)
_TWO_POW_MINUS_24 = np.float32(2.0**-24)


def check_seed(seed: int) -> int:
    """Return `seed` if torch.manual_seed would accept it, else raise a usage error."""
    if not SEED_MIN <= seed <= SEED_MAX:
        raise AttnError.usage(
            f"--seed {seed} is out of range: torch.manual_seed takes integers from "
            f"{SEED_MIN} to {SEED_MAX}; pick a seed in that range"
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

"""The rotation of RoPE by itself (`attn rope`): for a head_dim and a run of positions,
the frequencies, the angles, and the cos and sin tables that turn queries and keys.

As the book's `compute_rope_params(head_dim, theta_base, context_length, freq_config)`
(pkg/llms_from_scratch/llama3.py) builds them:

    inv_freq_k  = 1 / theta ** (2k / d)        k = 0 .. d/2 - 1 (d: the rotary dims)
    angle_{p,k} = p * inv_freq_k                p: a position
    cos, sin    = cos(angle), sin(angle), laid out as the layout pairs the dimensions:
                  split     [a_0 .. a_{d/2-1}, a_0 .. a_{d/2-1}]  (torch.cat([a, a]))
                  interleaved [a_0, a_0, a_1, a_1, ...]           (pairs 2k, 2k+1)

With Llama 3.1's scaling each frequency falls in a band by its unscaled wavelength
2π / inv_freq: kept (shorter than original_context / high_freq_factor), divided by
`factor` (longer than original_context / low_freq_factor), or smoothed between.
The book computes inv_freq in float32 whatever its dtype; attn computes in float64
unless asked for float32.

>>> table = rope_table(4, 3)
>>> table.inv_freq.tolist(), table.positions.tolist()
([1.0, 0.01], [0, 1, 2])
>>> table.cos.round(4).tolist()[1]
[0.5403, 1.0, 0.5403, 1.0]
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError, number_text, setting
from .params import DType, check_rope
from .rope import Rope

# The most numbers one table holds (positions × head_dim): cos and sin each hold that
# many, and a terminal or a JSON file shows them all.
LARGEST_TABLE = 2**20
# Positions a float64 holds exactly: every integer up to 2^53.
LARGEST_POSITION = 2**53

BANDS = ("kept", "smoothed", "divided")  # Llama 3 scaling: high, medium, low frequencies


class RopeTable(NamedTuple):
    """The rotation for `head_dim` at `positions`: frequencies, angles, cos and sin."""

    rope: Rope
    head_dim: int
    dtype: DType
    positions: NDArray[np.int64]  # (n,)
    inv_freq: NDArray[np.floating[Any]]  # (r/2,), scaled when rope.scaling says so
    inv_freq_unscaled: NDArray[np.floating[Any]]  # (r/2,), before any scaling
    angles: NDArray[np.floating[Any]]  # (n, r/2): position times frequency

    @property
    def rotary_dim(self) -> int:
        return self.rope.rotary_dim(self.head_dim)

    @property
    def pairs(self) -> int:
        return self.rotary_dim // 2

    @property
    def wavelength(self) -> NDArray[np.floating[Any]]:
        """(r/2,) tokens per turn of each pair: 2π / inv_freq."""
        return _wavelength(self.inv_freq)

    @property
    def bands(self) -> list[str] | None:
        """With Llama 3 scaling, each frequency's band: kept, smoothed or divided (by the
        unscaled wavelength, as the book's torch.where calls decide); else None."""
        scaling = self.rope.scaling
        if scaling is None:
            return None
        kind = self.inv_freq.dtype.type
        wavelen = _wavelength(self.inv_freq_unscaled)
        low = kind(scaling.original_context / scaling.low_freq_factor)
        high = kind(scaling.original_context / scaling.high_freq_factor)
        return [
            "divided" if w > low else "kept" if w < high else "smoothed" for w in wavelen.tolist()
        ]

    def dims(self, k: int) -> tuple[int, int]:
        """The two dimensions pair k turns: (k, k + r/2) split, (2k, 2k + 1) interleaved."""
        if self.rope.layout == "interleaved":
            return 2 * k, 2 * k + 1
        return k, k + self.pairs

    def laid_out(self, values: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        """(n, r/2) per pair -> (n, r) per dimension, as the layout pairs them."""
        if self.rope.layout == "interleaved":
            return np.repeat(values, 2, axis=1)  # a_0, a_0, a_1, a_1, ...
        return np.concatenate([values, values], axis=1)  # [a, a]

    @property
    def cos(self) -> NDArray[np.floating[Any]]:
        """(n, r): the cos table as the layout applies it."""
        return self.laid_out(np.cos(self.angles))

    @property
    def sin(self) -> NDArray[np.floating[Any]]:
        """(n, r): the sin table as the layout applies it."""
        return self.laid_out(np.sin(self.angles))


def _wavelength(inv_freq: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    kind = inv_freq.dtype.type
    wavelength: NDArray[np.floating[Any]] = kind(2 * math.pi) / inv_freq
    return wavelength


def rope_table(
    head_dim: int,
    positions: int,
    position_offset: int = 0,
    rope: Rope | None = None,
    dtype: DType = DType.FLOAT64,
) -> RopeTable:
    """The rotation for `head_dim` at positions offset .. offset + positions - 1, checked
    (AttnError) before anything is allocated."""
    rope = rope or Rope()
    check_rope(rope)
    check_sizes(head_dim, positions, position_offset, rope)
    kind = np.dtype(dtype.value)
    at = np.arange(position_offset, position_offset + positions, dtype=np.int64)  # (n,)
    # float32 may overflow (a theta of 1e39): found below, never a warning
    with np.errstate(all="ignore"):
        inv_freq = rope.inv_freq(head_dim, kind)  # (r/2,)
        unscaled = rope._replace(scaling=None).inv_freq(head_dim, kind)
        angles = rope.angles(at, head_dim, kind)  # (n, 1) * (1, r/2) -> (n, r/2)
        finite = bool(
            np.isfinite(_wavelength(inv_freq)).all()
            and np.isfinite(_wavelength(unscaled)).all()
            and np.isfinite(inv_freq).all()
            and np.isfinite(angles).all()
        )
    if not finite:
        raise AttnError.usage(
            f"{setting('rope_theta', f'{rope.theta:g}')} with these settings gives frequencies "
            f"beyond what {dtype.value} holds (0 or infinite); give a smaller theta or "
            "other scaling factors"
            + (f", or {setting('dtype', 'float64')}" if dtype is DType.FLOAT32 else "")
        )
    return RopeTable(rope, head_dim, dtype, at, inv_freq, unscaled, angles)


def check_sizes(head_dim: int, positions: int, position_offset: int, rope: Rope) -> None:
    """A head_dim RoPE can turn, some positions, and a table that fits."""
    if head_dim < 2:
        raise AttnError.usage(
            f"{setting('head_dim', number_text(head_dim))} is too small: RoPE turns pairs of "
            f"dimensions; give {setting('head_dim', 2)} or more"
        )
    if positions < 1:
        raise AttnError.usage(
            f"{setting('positions', number_text(positions))} is too few: give "
            f"{setting('positions', 1)} or more"
        )
    if position_offset < 0:
        raise AttnError.usage(
            f"{setting('position_offset', number_text(position_offset))} is negative: "
            "positions start at 0 or later (P after a KV cache of P tokens)"
        )
    if position_offset + positions > LARGEST_POSITION:
        raise AttnError.usage(
            f"positions up to {number_text(position_offset + positions - 1)} are beyond 2^53, "
            "where float64 stops counting whole numbers; give a smaller "
            f"{setting('position_offset')} or {setting('positions')}"
        )
    if positions * head_dim > LARGEST_TABLE:
        raise AttnError.usage(
            f"{setting('head_dim', number_text(head_dim))} at "
            f"{setting('positions', number_text(positions))} is a table of "
            f"{positions * head_dim:,} numbers; attn rope shows at most "
            f"{LARGEST_TABLE:,} (positions × head_dim): ask for fewer positions "
            f"({setting('position_offset')} P starts them at P)"
        )
    if rope.partial == 1 and head_dim % 2:
        raise AttnError.usage(
            f"{setting('head_dim', head_dim)} is odd, and RoPE turns pairs of dimensions; "
            f"give an even {setting('head_dim')} (or {setting('rope_partial')} below 1 to "
            "rotate only part of it)"
        )
    if rope.rotary_dim(head_dim) < 2:
        raise AttnError.usage(
            f"{setting('rope_partial', f'{rope.partial:g}')} of "
            f"{setting('head_dim', head_dim)} rotates no pair of dimensions; give "
            f"{setting('rope_partial')} of at least {2 / head_dim:.4g}"
        )

"""Rotary position embeddings (RoPE): the `positions` stage, as the book computes them.

The book's `compute_rope_params(head_dim, theta_base, context_length, freq_config)` and
`apply_rope(x, cos, sin)` (pkg/llms_from_scratch/llama3.py, ch05/07_gpt_to_llama):

    inv_freq_k = 1 / theta ** (2k / d)               k = 0 .. d/2 - 1
    angle_{p,k} = p * inv_freq_k                      p: the token's position
    split halves (Hugging Face's, the book's):  x' = x * cos + rotate_half(x) * sin,
        with cos, sin = cos(angle), sin(angle) repeated [a, a] and
        rotate_half(x) = [-x2, x1] for the halves x1, x2 of x
    interleaved (Meta's original): the pairs (x_2k, x_2k+1) rotate by angle_k

Llama 3.1's frequency scaling (`freq_config`) divides the low frequencies by `factor`,
keeps the high ones, and blends the ones between; a partial rotation (Qwen3.5, Gemma 4)
rotates the first F * d dimensions only, its frequencies counted over those.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=np.floating[Any])


class Llama3Scaling(NamedTuple):
    """Llama 3.1's `freq_config` (its defaults are Llama 3.1's)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 8192


class Rope(NamedTuple):
    """How queries and keys are rotated: theta, the layout, a scaling, the part rotated."""

    theta: float = 10_000.0
    layout: str = "split"  # "split" halves (Hugging Face, the book) or "interleaved" pairs
    scaling: Llama3Scaling | None = None
    partial: float = 1.0  # the fraction of each head's dimensions rotated

    def rotary_dim(self, head_dim: int) -> int:
        """How many of a head's dimensions rotate: an even number.

        >>> Rope(partial=0.5).rotary_dim(8), Rope().rotary_dim(6)
        (4, 6)
        """
        return 2 * (int(head_dim * self.partial) // 2)

    def inv_freq(self, head_dim: int, dtype: np.dtype[Any]) -> NDArray[np.floating[Any]]:
        """(rotary_dim / 2,) the frequencies, scaled as Llama 3.1 scales them.

        >>> Rope().inv_freq(4, np.dtype(np.float64)).tolist()
        [1.0, 0.01]
        """
        dim = self.rotary_dim(head_dim)
        exponents = np.arange(0, dim, 2, dtype=dtype) / dtype.type(dim)
        inv_freq: NDArray[np.floating[Any]] = dtype.type(1.0) / (
            dtype.type(self.theta) ** exponents
        )
        if self.scaling is not None:
            inv_freq = _llama3_scaled(inv_freq, self.scaling)
        return inv_freq

    def angles(
        self, positions: NDArray[np.integer[Any]], head_dim: int, dtype: np.dtype[Any]
    ) -> NDArray[np.floating[Any]]:
        """(n, rotary_dim / 2): position times frequency."""
        inv_freq = self.inv_freq(head_dim, dtype)
        angles: NDArray[np.floating[Any]] = (
            positions.astype(dtype)[:, np.newaxis] * inv_freq[np.newaxis, :]
        )  # (n, 1) * (1, r/2) -> (n, r/2)
        return angles

    def rotate(self, x: NDArray[F], positions: NDArray[np.integer[Any]]) -> NDArray[F]:
        """x (n, head_dim) of one head, its rows at `positions`, rotated.

        >>> x = np.array([[1.0, 0.0, 0.0, 0.0]])
        >>> Rope().rotate(x, np.array([1])).round(4).tolist()  # the first pair turns by 1 rad
        [[0.5403, 0.0, 0.8415, 0.0]]
        >>> Rope(layout="interleaved").rotate(x, np.array([1])).round(4).tolist()
        [[0.5403, 0.8415, 0.0, 0.0]]
        """
        head_dim = x.shape[1]
        dim = self.rotary_dim(head_dim)
        angles = self.angles(positions, head_dim, x.dtype)  # (n, r/2)
        cos, sin = np.cos(angles), np.sin(angles)
        out: NDArray[F] = x.copy()
        part = x[:, :dim]
        if self.layout == "interleaved":
            even, odd = part[:, 0::2], part[:, 1::2]  # the pairs (x_2k, x_2k+1)
            out[:, 0:dim:2] = even * cos - odd * sin
            out[:, 1:dim:2] = even * sin + odd * cos
        else:
            half = dim // 2
            x1, x2 = part[:, :half], part[:, half:]  # rotate_half(x) = [-x2, x1]
            out[:, :half] = x1 * cos - x2 * sin
            out[:, half:dim] = x2 * cos + x1 * sin
        return out

    def describe(self) -> str:
        """One phrase for captions and settings lines."""
        parts = [f"RoPE {self.layout}", f"theta={self.theta:g}"]
        if self.scaling is not None:
            s = self.scaling
            parts.append(
                f"llama3 scaling (factor {s.factor:g}, low {s.low_freq_factor:g}, high "
                f"{s.high_freq_factor:g}, original context {s.original_context})"
            )
        if self.partial != 1.0:
            parts.append(f"partial {self.partial:g}")
        return " ".join(parts)


def _llama3_scaled(
    inv_freq: NDArray[np.floating[Any]], scaling: Llama3Scaling
) -> NDArray[np.floating[Any]]:
    """The book's freq_config adjustment: long wavelengths divided by `factor`, short ones
    kept, the ones between blended smoothly."""
    dtype = inv_freq.dtype.type
    low_freq_wavelen = dtype(scaling.original_context / scaling.low_freq_factor)
    high_freq_wavelen = dtype(scaling.original_context / scaling.high_freq_factor)
    wavelen = dtype(2 * math.pi) / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / dtype(scaling.factor), inv_freq)
    smooth = (dtype(scaling.original_context) / wavelen - dtype(scaling.low_freq_factor)) / (
        dtype(scaling.high_freq_factor) - dtype(scaling.low_freq_factor)
    )
    smoothed = (1 - smooth) * (inv_freq / dtype(scaling.factor)) + smooth * inv_freq
    medium = (wavelen <= low_freq_wavelen) & (wavelen >= high_freq_wavelen)
    result: NDArray[np.floating[Any]] = np.where(medium, smoothed, scaled).astype(inv_freq.dtype)
    return result

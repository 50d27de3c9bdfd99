"""Attention for long sequences: exact results in row blocks, in bounded memory.

Everything here works on one head's arrays (q, K, V of shape (n, d), (T, d), (T, d))
and never holds more than a block of the T x T matrix: `block_rows` picks how many
query rows fit a memory budget. Two kernels:

- `exact_rows`: scores, weights and context for some rows, the textbook way (max
  subtracted, then exp, then divide). Used for everything that shows scores or
  weights, and as the fallback of the fast kernel.
- `fast_context`: only the context vectors, with two passes over each block saved. The
  softmax shift is folded into the first matmul as an extra column: any shift at
  least the row maximum gives the same weights, and Cauchy-Schwarz gives one,
  u_i = |q_i| * max_j |k_j|, without looking at the scores. The row sums come out of
  the second matmul through a column of ones beside V. When a shift is so loose that
  exp() of the largest score would lose precision (u_i - max_i too large), that row
  is recomputed exactly.

Both give the same numbers to rounding (the tests hold them to 1e-12 in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from . import core

F = TypeVar("F", bound=np.floating[Any])

# Bytes of working memory the blocks may use, beyond inputs and outputs.
BLOCK_BUDGET = 128 * 1024 * 1024
MAX_BLOCK_ROWS = 256  # more rows per block stop paying off in BLAS and cost cache
# Smallest row sum after the bound shift that keeps full precision: the largest term is
# then far from underflow (exp(-600) in float64, exp(-40) in float32).
_MIN_SUM = {np.dtype(np.float64): np.exp(-600.0), np.dtype(np.float32): float(np.exp(-40.0))}

KeepFn = Callable[[NDArray[np.intp]], NDArray[np.bool_]]  # rows -> (n, T) dropout keep mask


def block_rows(n_keys: int, itemsize: int, budget: int | None = None) -> int:
    """How many query rows' worth of (rows x keys) scores fit `budget` (BLOCK_BUDGET by
    default), with room for a dropout mask and its raw draws beside them."""
    budget = BLOCK_BUDGET if budget is None else budget
    per_row = n_keys * (itemsize + 1 + 8)
    return int(max(1, min(MAX_BLOCK_ROWS, budget // max(per_row, 1))))


def exact_rows(
    q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    causal: bool,
    keep: NDArray[np.bool_] | None = None,
    keep_scale: float = 1.0,
) -> tuple[NDArray[F], NDArray[F], NDArray[F], NDArray[F]]:
    """(scores, softmax weights, weights used, context) for the query rows `rows`.

    `q` holds those rows' queries; scores are unscaled, -inf where masked; the weights
    used are the softmax weights after dropout (`keep`, scaled by `keep_scale`)."""
    scores = core.attention_scores(q, K)  # (n, d) @ (d, T) -> (n, T)
    if causal:
        scores = core.apply_mask(scores, core.causal_mask(rows, K.shape[0]))
    weights = core.attention_weights(scores, scale)  # (n, T)
    used = weights if keep is None else weights * keep * weights.dtype.type(keep_scale)
    context = core.context_vectors(used, V)  # (n, T) @ (T, d) -> (n, d)
    return scores, weights, used, context


def fast_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    causal: bool,
    keep: KeepFn | None = None,
    keep_scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
    budget: int | None = None,
) -> NDArray[F]:
    """The context vectors of the query rows `rows` (sorted), `Q` holding their queries.

    Rows go in blocks; with `keep` (dropout) each block's mask is asked for in order,
    so a seeded stream is consumed as nn.Dropout would consume it. `progress` hears
    the number of rows done after each block."""
    dtype = Q.dtype.type
    n, d = Q.shape
    T = K.shape[0]
    out = np.empty((n, d), dtype=Q.dtype)
    if n == 0:
        return out
    Qs = Q * dtype(scale)  # the scale folded into the queries once
    with np.errstate(over="ignore", invalid="ignore"):
        shift = np.linalg.norm(Qs, axis=1) * np.max(np.linalg.norm(K, axis=1))  # (n,)
    Qa = np.concatenate([Qs, -shift[:, np.newaxis].astype(Q.dtype)], axis=1)  # (n, d+1)
    KaT = np.empty((d + 1, T), dtype=Q.dtype)  # [K | 1].T: the shift rides the matmul
    KaT[:d] = K.T
    KaT[d] = 1
    V1 = np.empty((T, d + 1), dtype=Q.dtype)  # [V | 1]: the row sums ride the matmul
    V1[:, :d] = V
    V1[:, d] = 1
    block = block_rows(T, Q.dtype.itemsize, budget)
    buffer = np.empty((block, T), dtype=Q.dtype)
    sums = np.empty((block, d + 1), dtype=Q.dtype)
    min_sum = _MIN_SUM[Q.dtype]
    for start in range(0, n, block):
        stop = min(n, start + block)
        block_pos = rows[start:stop]  # (b,)
        width = int(block_pos[-1]) + 1 if causal else T  # later keys are masked for all
        S = buffer[: stop - start, :width]
        with np.errstate(over="ignore", invalid="ignore"):
            np.matmul(Qa[start:stop], KaT[:, :width], out=S)  # (b, d+1) @ (d+1, w) -> (b, w)
            if causal:
                S[core.causal_mask(block_pos, width)] = -np.inf
            np.exp(S, out=S)
            acc = sums[: stop - start]
            block_keep = None
            if keep is None:
                np.matmul(S, V1[:width], out=acc)  # (b, w) @ (w, d+1) -> (b, d+1)
                totals = acc[:, d]
            else:
                block_keep = keep(block_pos)  # (b, T), drawn once, in stream order
                totals = S.sum(axis=1)  # the softmax's sums come before dropout
                S *= block_keep[:, :width]
                np.matmul(S, V1[:width], out=acc)
                acc[:, :d] *= dtype(keep_scale)
            np.divide(acc[:, :d], totals[:, np.newaxis], out=out[start:stop])
        loose = ~(totals >= min_sum) | ~np.isfinite(out[start:stop]).all(axis=1)
        for i in np.flatnonzero(loose):  # a shift too far above the scores: do it exactly
            mask = None if block_keep is None else block_keep[i : i + 1]
            with np.errstate(over="ignore", invalid="ignore"):
                *_, context = exact_rows(
                    Q[start + i : start + i + 1],
                    K,
                    V,
                    scale,
                    block_pos[i : i + 1],
                    causal,
                    mask,
                    keep_scale,
                )
            out[start + i] = context[0]
        if progress is not None:
            progress(stop)
    return out

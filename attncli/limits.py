"""What cannot be computed, found before the work or the output starts: settings
whose weights or vectors cannot fit in memory, and numbers too large for the dtype,
blamed on what made them large.

Scores are the only step whose size is not plain from its inputs, and the only one
streamed: by Cauchy-Schwarz |q . k| <= |q| |k|, so `score_bound` (the largest query
norm times the largest key norm, in float64) tells when no score can overflow, which is
every ordinary input. Only when the bound comes near the dtype's largest number are
the scores computed in a pre-pass that checks them and keeps nothing. Weights after
the softmax are at most 1; the context vectors are at most the largest value times
dropout's 1 / (1 - p).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import engine, stages
from .embeddings import Embeddings
from .errors import AttnError, number_text, setting, size_text
from .masks import Mask
from .params import AttentionParams, Projections

FLOAT64 = np.dtype(np.float64)
# Bytes per element of the largest matrix drawn at once: nn.Linear's correctly rounded
# uniform works in float64 temporaries (measured: a peak of about 70 bytes).
DRAW_BYTES_PER_WEIGHT = 72
# Bytes per weight kept: as drawn, then side by side in float64.
STORED_BYTES_PER_WEIGHT = 16
# Where no memory figure can be read: sizes beyond this (1 PiB) fit no computer.
NO_COMPUTER_HOLDS = 2**50


def check_sizes(
    embeddings: Embeddings,
    params: AttentionParams,
    projections: Projections | None,
    available: int | None,
) -> None:
    """Refuse up front, before anything is drawn, settings whose weights or projected
    vectors cannot fit the `available` bytes of memory (None: unknown), naming the
    flag that asks for them."""
    n_tokens, d_in = len(embeddings.tokens), embeddings.d_in
    itemsize = np.dtype(params.dtype.value).itemsize
    if projections is None:
        width = params.d_out  # each module's: a wrapper's heads have d_out each
        D = width * params.heads if params.wrapper else width
        out_proj = params.out_proj
        stored = 3 * d_in * D + (D * D + D if out_proj else 0) + (3 * D if params.qkv_bias else 0)
        drawn = max(d_in * width, D * D if out_proj else 0)  # the largest drawn at once
        if params.latent_dim is not None:  # W_DKV (d_in, L), W_UK and W_UV (L, D)
            L = params.latent_dim
            stored += (d_in + 2 * D) * L + L
            drawn = max(drawn, L * max(d_in, D))
        weights_bytes = STORED_BYTES_PER_WEIGHT * stored + DRAW_BYTES_PER_WEIGHT * drawn
    else:
        D = projections.d_out
        out_proj = projections.W_out is not None
        weights_bytes = 0  # already in memory
    # queries, keys, values, one head's copies of them, the heads' context vectors side
    # by side (and out_proj's output): T x D each (measured: 1.8 GiB at T = 65 536,
    # D = 768, one head, float64, 5 such matrices being 1.9 GiB)
    vectors_bytes = (6 if out_proj else 5) * n_tokens * D * itemsize
    needed = weights_bytes + vectors_bytes
    limit = 0.8 * available if available is not None else NO_COMPUTER_HOLDS
    if needed <= limit:
        return
    free = (
        f"but about {size_text(available)} of memory is free"
        if available is not None
        else "more than any computer holds"
    )
    vectors = f"{n_tokens} x {number_text(D)} each"
    if projections is not None:
        raise AttnError(
            f"{projections.file}: its {D} output dimensions for the {n_tokens} tokens of "
            f"{embeddings.source} need about {_bytes_text(needed)} for the queries, keys, "
            f"values and context vectors ({vectors}), {free}; use a shorter input, or "
            "weights with fewer output dimensions"
        )
    d_out = setting("d_out", number_text(params.d_out))
    L = params.latent_dim or 0
    if max(params.d_out, d_in) < L:  # the latent is what is too large
        latent = setting("latent_dim", number_text(L))
        raise AttnError.usage(
            f"{latent} needs about {_bytes_text(needed)} of memory for the latent projections "
            f"(W_DKV of {d_in} x {number_text(L)}, W_UK and W_UV of {number_text(L)} x "
            f"{number_text(D)}), {free}; pick a smaller {setting('latent_dim')} (DeepSeek-V2 "
            "uses 512)"
        )
    if params.wrapper:
        heads = setting("heads", number_text(params.heads))
        flags = f"{heads} {setting('wrapper')} (heads of {d_out} each)"
        fix = f"pick fewer {setting('heads')} or a smaller {setting('d_out')}"
    else:
        flags = d_out
        fix = f"pick a smaller {setting('d_out')} (the book uses 2)"
    matrices = f"W_query, W_key and W_value of {d_in} x {number_text(D)}" + (
        f" and out_proj of {number_text(D)} x {number_text(D)}" if out_proj else ""
    )
    if weights_bytes <= limit:  # the weights alone would fit: the input's length matters
        fix += ", or use a shorter input"
    raise AttnError.usage(
        f"{flags} needs about {_bytes_text(needed)} of memory for the weights ({matrices}) "
        f"and the queries, keys, values and context vectors of {n_tokens} tokens "
        f"({vectors}), {free}; {fix}"
    )


def _bytes_text(n_bytes: int) -> str:
    """size_text, and beyond a thousand pebibytes an order of magnitude."""
    if n_bytes < 1024**6:
        return size_text(n_bytes)
    return f"10^{math.log10(n_bytes):.0f} bytes"


def score_bound(queries: NDArray[Any], keys: NDArray[Any]) -> float:
    """max |q_i| * max |k_j| over the rows of `queries` (n, d) and `keys` (T, d), in
    float64: no score q_i . k_j is larger in magnitude (Cauchy-Schwarz).

    >>> score_bound(np.array([[3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    10.0
    """
    return max_norm(queries) * max_norm(keys)


def safe_limit(dtype: np.dtype[Any], head_dim: int) -> float:
    """Score bounds below this cannot overflow `dtype`, with room for the rounding of
    a dot product of head_dim terms (within (head_dim + 2) ulps of the sum of
    |q_d k_d|, itself at most the bound)."""
    finfo = np.finfo(dtype)
    return float(finfo.max) / (1.0 + (head_dim + 2) * float(finfo.eps))


def max_norm(matrix: NDArray[Any]) -> float:
    """The largest row norm, in float64: scaled by a power of two so that the squares
    neither overflow nor underflow, in row blocks so that the float64 copy stays small.

    >>> max_norm(np.array([[3e300, 4e300], [1.0, 1.0]]))
    5e+300
    """
    if matrix.size == 0:
        return 0.0
    top = largest(matrix)
    if top == 0.0 or not math.isfinite(top):
        return top
    exponent = math.frexp(top)[1]  # scaling by 2**-exponent is exact
    result = 0.0
    step = max(1, (1 << 20) // matrix.shape[1])
    for start in range(0, matrix.shape[0], step):
        scaled = np.ldexp(matrix[start : start + step].astype(np.float64), -exponent)  # (b, d)
        squares = np.einsum("ij,ij->i", scaled, scaled)  # (b, d) -> (b,)
        result = max(result, math.sqrt(float(np.max(squares))))
    try:
        return math.ldexp(result, exponent)
    except OverflowError:  # a norm beyond float64: certainly no safe bound
        return math.inf


def scores_overflow(
    Q: NDArray[Any], K: NDArray[Any], rows: NDArray[np.intp], mask: Mask, head: int = 0
) -> bool:
    """Whether a score of the query rows `rows` (Q holding every token's queries, (T,
    d)) that the mask keeps overflows: computed exactly, in blocks, and only checked."""
    block = engine.block_rows(K.shape[0], K.dtype.itemsize)
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        with np.errstate(over="ignore", invalid="ignore"):
            scores = stages.scores(Q[part], K)  # (b, d) @ (d, T) -> (b, T)
        if overflowed(scores, part, mask, head):
            return True
    return False


def overflowed(
    scores: NDArray[Any], rows: NDArray[np.intp], mask: Mask, head: int | None = None
) -> bool:
    """Whether a score, (n, T) of head `head` or (H, n, T) of every head, that the mask
    keeps is not finite: -inf is a masked score only where the mask put it."""
    bad = ~np.isfinite(scores)
    if mask.hides_any and bad.any():
        n_keys = scores.shape[-1]
        if head is not None:
            bad &= ~mask.hidden(rows, 0, n_keys, head)  # (n, T)
        else:
            bad &= ~mask.hidden_heads(rows, 0, n_keys, scores.shape[0])  # (H or 1, n, T)
    return bool(bad.any())


def projection_error(
    name: str, embeddings: Embeddings, projections: Projections, dtype: np.dtype[Any]
) -> AttnError:
    """The queries, keys or values overflow; says whether float64 would hold them."""
    holds = False
    if dtype != FLOAT64:
        X = np.asarray(embeddings.matrix, dtype=np.float64)  # (T, d_in)
        with np.errstate(over="ignore", invalid="ignore"):
            source = X
            if projections.W_DKV is not None:  # keys and values from the latent
                source = X @ projections.W_DKV + (
                    0.0 if projections.b_DKV is None else projections.b_DKV
                )
            holds = all(
                bool(np.isfinite(inputs @ W + (0.0 if b is None else b)).all())
                for inputs, W, b in (
                    (X, projections.W_query, projections.b_query),
                    (source, projections.W_key, projections.b_key),
                    (source, projections.W_value, projections.b_value),
                )
            )
    return overflow_error(name, embeddings, projections, dtype, holds)


def scores_error(
    embeddings: Embeddings,
    projections: Projections | None,
    dtype: np.dtype[Any],
    bounds: list[float],
    head_dim: int,
) -> AttnError:
    """The scores overflow; float64 holds them when every head's bound says so."""
    holds = dtype != FLOAT64 and all(b < safe_limit(FLOAT64, head_dim) for b in bounds)
    return overflow_error("attention scores", embeddings, projections, dtype, holds)


def context_error(
    values: NDArray[Any],
    keep_scale: float,
    embeddings: Embeddings,
    projections: Projections | None,
) -> AttnError:
    """The scores fit but a context vector does not: the values times dropout's
    1 / (1 - p) (`keep_scale`), which bounds every entry since the weights sum to 1."""
    holds = values.dtype != FLOAT64 and largest(values) * keep_scale < float(
        np.finfo(np.float64).max
    ) / (1.0 + 1e-6)
    what = "context vectors"
    if keep_scale > 1.0:
        what += f" (values times dropout's 1 / (1 - p) = {keep_scale:.6g})"
    return overflow_error(what, embeddings, projections, values.dtype, holds)


def out_proj_error(
    heads_context: NDArray[Any], embeddings: Embeddings, projections: Projections
) -> AttnError:
    """out_proj's output overflows; float64 holds it if it computes it finite."""
    assert projections.W_out is not None  # only called after out_proj
    holds = False
    if heads_context.dtype != FLOAT64:
        with np.errstate(over="ignore", invalid="ignore"):
            again = heads_context.astype(np.float64) @ projections.W_out  # (n, D) @ (D, D)
            if projections.b_out is not None:
                again += projections.b_out
        holds = bool(np.isfinite(again).all())
    return overflow_error(
        "context vectors (after out_proj)", embeddings, projections, heads_context.dtype, holds
    )


def overflow_error(
    what: str,
    embeddings: Embeddings,
    projections: Projections | None,
    dtype: np.dtype[Any],
    float64_holds: bool,
) -> AttnError:
    """Which numbers overflowed which dtype, blaming what made them large: the weights
    of a file when they are larger than the embeddings, else the embeddings (drawn
    weights are at most 1); and --dtype float64 as the fix where it holds them."""
    limit = f"{float(np.finfo(dtype).max):.1e}".replace("e+", "e")
    inputs = largest(embeddings.matrix)
    file = projections.file if projections is not None else None
    weight = largest_weight(projections) if projections is not None and file is not None else 0.0
    fix = (
        f"add {setting('dtype', 'float64')} (it holds them), or rescale the "
        if float64_holds
        else "rescale the "
    )
    if file is not None and weight > inputs:
        return AttnError(
            f"{file}: the {what} overflow {dtype} (weights as large as {weight:.3g} make "
            f"numbers beyond {limit}, with inputs up to {inputs:.3g}); {fix}weights"
        )
    weights_too = f" and weights up to {weight:.3g}" if file is not None else ""
    return AttnError(
        f"{embeddings.source}: the {what} overflow {dtype} (inputs as large as {inputs:.3g}"
        f"{weights_too} make numbers beyond {limit}); {fix}embeddings"
    )


def largest(matrix: NDArray[Any]) -> float:
    """The largest magnitude in `matrix` (0 when empty)."""
    return float(np.max(np.abs(matrix))) if matrix.size else 0.0


def largest_weight(projections: Projections) -> float:
    arrays = (
        projections.W_query,
        projections.W_key,
        projections.W_value,
        projections.b_query,
        projections.b_key,
        projections.b_value,
        projections.W_out,
        projections.b_out,
        projections.W_DKV,
        projections.b_DKV,
    )
    return max(largest(a) for a in arrays if a is not None)

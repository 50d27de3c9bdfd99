"""Attention for long sequences: exact results in row blocks, in bounded memory.

Everything here works on one head's arrays (q, K, V of shape (n, d), (T, d), (T, d))
and never holds more than a block of the T x T matrix: `block_rows` picks how many
query rows fit a memory budget. Two kernels:

- `exact_rows`: scores, weights and context for some rows, the textbook way (max
  subtracted, then exp, then divide). Used for everything that shows scores or
  weights, and as the fallback of the fast kernel.
- `fast_context`: only the context vectors, in tiles of rows x keys small enough to
  stay in a core's cache, on worker threads (numpy lets go of the GIL in its matrix
  products and in exp). No tile needs the row's maximum: any shift at least the row
  maximum gives the same weights, and Cauchy-Schwarz gives one without looking at
  the scores, u_i = |q_i| * max_j |k_j|; when u_i is small enough that exp() of no
  score can overflow or lose the row, no shift is needed at all. The tiles' sums and
  products add up to the row's, and one division ends it. When a shift is so loose
  that exp() of the largest score would lose precision (u_i - max_i too large), that
  row is recomputed exactly.

Both give the same numbers to rounding (the tests hold them to 1e-12 in float64).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from . import blas, stages
from .masks import Mask
from .modifiers import Modifiers

F = TypeVar("F", bound=np.floating[Any])

# Bytes of working memory a block may use, beyond inputs and outputs (measured on two
# cores: rows of 256 to 512 keys-wide blocks are fastest; smaller blocks cost BLAS
# efficiency, larger ones cache).
BLOCK_BUDGET = 224 * 1024 * 1024
MAX_BLOCK_ROWS = 512
# Bytes per element that drawing a dropout mask needs beside the scores: two 32-bit
# draws, widened to 64 bits, the uniform double and the mask itself.
_DROPOUT_BYTES = 40
# Smallest row sum after the bound shift that keeps full precision: the largest term is
# then far from underflow (exp(-600) in float64, exp(-40) in float32).
_MIN_SUM = {np.dtype(np.float64): np.exp(-600.0), np.dtype(np.float32): float(np.exp(-40.0))}

# Exponents below this need no shift: with u_i at most -log(min sum), no exp() can
# overflow (T e^u stays finite) and the largest term of a row is at least the min sum.
_NO_SHIFT = {dtype: -float(np.log(value)) for dtype, value in _MIN_SUM.items()}
# fast_context's tiles: TILE_ROWS query rows by as many keys as fill TILE_BYTES of
# scores (measured on two cores, 1 MiB of L2 each: 256 x 256 float64 and 256 x 512
# float32 are fastest at d = 64; a wide head (d >= 256) gains from wider tiles, its
# products then dominate and larger ones run closer to the BLAS's peak).
TILE_ROWS = 256
TILE_BYTES = 512 * 1024
WIDE_HEAD = 256
# Below this many scores (query rows x keys), one thread does the work: starting
# others costs more than it saves.
_THREADED_WORK = 1 << 20

KeepFn = Callable[[NDArray[np.intp]], NDArray[np.bool_]]  # rows -> (n, T) dropout keep mask


def block_rows(n_keys: int, itemsize: int, budget: int | None = None, dropout: bool = False) -> int:
    """How many query rows' worth of (rows x keys) scores fit `budget` (BLOCK_BUDGET by
    default), with room for a dropout mask and its draws beside them when needed."""
    budget = BLOCK_BUDGET if budget is None else budget
    per_row = n_keys * (itemsize + (_DROPOUT_BYTES if dropout else 0))
    return int(max(1, min(MAX_BLOCK_ROWS, budget // max(per_row, 1))))


def exact_rows(
    q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: NDArray[np.bool_] | None = None,
    keep_scale: float = 1.0,
    head: int = 0,
    modifiers: Modifiers | None = None,
) -> tuple[NDArray[F], NDArray[F], NDArray[F], NDArray[F]]:
    """(scores, softmax weights, weights used, context) for the query rows `rows` of
    head `head`.

    `q` holds those rows' queries; scores are unscaled, -inf where masked; the weights
    used are the softmax weights after dropout (`keep`, scaled by `keep_scale`). A row
    whose keys are all masked gets zero weights and a zero context vector."""
    attn_scores = stages.scores(q, K)  # (n, d) @ (d, T) -> (n, T)
    scaled = stages.scale(attn_scores, scale)
    sink = None
    if modifiers is not None and modifiers.any:
        # positions as the mask aligns them: only the distance i - j matters
        scaled = modifiers.apply(scaled, rows + mask.offset, np.arange(K.shape[0]), head)
        sink = modifiers.sink(head)
    if mask.hides_any:
        bias = mask.bias_for(rows, 0, K.shape[0], head)  # (n, T) or None
        if bias is not None:
            scaled = stages.add_mask(scaled, bias)
        hidden = mask.hidden(rows, 0, K.shape[0], head)  # (n, T)
        scaled = stages.mask(scaled, hidden)
        attn_scores = stages.mask(attn_scores, hidden)  # as `attn scores` shows them
    weights = stages.softmax(scaled, sink)  # (n, T)
    used = stages.dropout(weights, keep, keep_scale)
    context = stages.context(used, V)  # (n, T) @ (T, d) -> (n, d)
    return attn_scores, weights, used, context


def fast_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: KeepFn | None = None,
    keep_scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
    budget: int | None = None,
    head: int = 0,
    modifiers: Modifiers | None = None,
) -> NDArray[F]:
    """The context vectors of the query rows `rows` (sorted), `Q` holding their queries,
    for head `head` (which only a per-head mask file tells apart).

    Rows go in blocks, on a worker thread per core (see _tiled_context); with `keep`
    (dropout), or a BLAS attn cannot hold to one thread, in blocks of at most `budget`
    bytes on this thread, each block's dropout mask asked for in order, so a seeded
    stream is consumed as nn.Dropout would consume it. `progress` hears the number of
    rows done after each block."""
    dtype = Q.dtype.type
    n, d = Q.shape
    T = K.shape[0]
    out = np.empty((n, V.shape[1]), dtype=Q.dtype)
    if n == 0:
        return out
    if not mask.banded or (modifiers is not None and modifiers.any):
        # a mask file (a (T_q, T_k) array is small), or scores changed on their way to
        # the softmax (the shift bound no longer holds): the exact way, block by block
        return _exact_context(
            Q, K, V, scale, rows, mask, keep, keep_scale, progress, head, out, modifiers
        )
    if keep is None:
        if n * T < _THREADED_WORK:
            return _tiled_context(Q, K, V, scale, rows, mask, progress, head, out, 1)
        with blas.single_threaded() as controlled:
            if controlled:  # else another BLAS splits the products: large blocks suit it
                count = min(workers(), -(-n // TILE_ROWS))
                return _tiled_context(Q, K, V, scale, rows, mask, progress, head, out, count)
    budget = BLOCK_BUDGET if budget is None else budget
    with np.errstate(over="ignore", invalid="ignore"):
        k_max = float(np.max(np.linalg.norm(K, axis=1)))  # for the shift bound
    # The fast form keeps [K | 1].T and [V | 1] beside K and V: worth it while those
    # copies are small next to the working memory; past that, two more passes per
    # block do the same without them, and memory stays bounded at any length.
    copies = 2 * T * (d + 1) * Q.dtype.itemsize
    augmented = copies <= budget // 2
    if augmented:
        budget -= copies
        KaT = np.empty((d + 1, T), dtype=Q.dtype)  # the shift rides the first matmul
        KaT[:d] = K.T
        KaT[d] = 1
        V1 = np.empty((T, d + 1), dtype=Q.dtype)  # the row sums ride the second
        V1[:, :d] = V
        V1[:, d] = 1
    block = block_rows(T, Q.dtype.itemsize, budget, dropout=keep is not None)
    buffer = np.empty(block * T, dtype=Q.dtype)  # flat, so every block's view is contiguous
    queries = np.empty((block, d + 1), dtype=Q.dtype)
    sums = np.empty((block, d + 1), dtype=Q.dtype)
    min_sum = _MIN_SUM[Q.dtype]
    for start in range(0, n, block):
        stop = min(n, start + block)
        b = stop - start
        block_pos = rows[start:stop]  # (b,)
        lo, hi = mask.seen_span(block_pos, T)  # the other keys are hidden from every row
        width = hi - lo
        S = buffer[: b * width].reshape(b, width)  # (b, w)
        qa = queries[:b]
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(Q[start:stop], dtype(scale), out=qa[:, :d])  # the scale, folded in
            # any shift at least the row's largest score gives the same weights
            shift = np.linalg.norm(qa[:, :d], axis=1) * dtype(k_max)  # (b,)
            if augmented:
                qa[:, d] = -shift
                np.matmul(qa, KaT[:, lo:hi], out=S)  # (b, d+1) @ (d+1, w) -> (b, w)
            else:
                np.matmul(qa[:, :d], K[lo:hi].T, out=S)  # (b, d) @ (d, w) -> (b, w)
                S -= shift[:, np.newaxis]
            first, last = mask.mixed_span(block_pos, lo, hi)  # seen by some rows only
            if last > first:
                S[:, first - lo : last - lo][mask.hidden(block_pos, first, last)] = -np.inf
            np.exp(S, out=S)
            acc = sums[:b]
            block_keep = None
            if keep is not None:
                block_keep = keep(block_pos)  # (b, T), drawn once, in stream order
                totals = S.sum(axis=1)  # the softmax's sums come before dropout
                S *= block_keep[:, lo:hi]
            if augmented:
                np.matmul(S, V1[lo:hi], out=acc)  # (b, w) @ (w, d+1) -> (b, d+1)
                if keep is None:
                    totals = acc[:, d]
            else:
                np.matmul(S, V[lo:hi], out=acc[:, :d])  # (b, w) @ (w, d) -> (b, d)
                if keep is None:
                    totals = S.sum(axis=1)
            if keep is not None:
                acc[:, :d] *= dtype(keep_scale)
            np.divide(acc[:, :d], totals[:, np.newaxis], out=out[start:stop])
        loose = ~(totals >= min_sum) | ~np.isfinite(out[start:stop]).all(axis=1)
        for i in np.flatnonzero(loose):  # a shift too far above the scores: do it exactly
            row_keep = None if block_keep is None else block_keep[i : i + 1]
            with np.errstate(over="ignore", invalid="ignore"):
                *_, context = exact_rows(
                    Q[start + i : start + i + 1],
                    K,
                    V,
                    scale,
                    block_pos[i : i + 1],
                    mask,
                    row_keep,
                    keep_scale,
                    head,
                )
            out[start + i] = context[0]
        if progress is not None:
            progress(stop)
    return out


def workers() -> int:
    """How many threads the engine runs on: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity call (macOS)
        return max(1, os.cpu_count() or 1)


def tile_shape(d: int, itemsize: int) -> tuple[int, int]:
    """(query rows, keys) of fast_context's tiles for heads of d dimensions."""
    keys = TILE_BYTES // (TILE_ROWS * itemsize)
    return TILE_ROWS, keys * 4 if d >= WIDE_HEAD else keys


def _tiled_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    progress: Callable[[int], None] | None,
    head: int,
    out: NDArray[F],
    count: int,
) -> NDArray[F]:
    """fast_context without dropout: blocks of TILE_ROWS rows handed out in turn to
    `count` worker threads, each walking its keys in cache-sized tiles.

    The calling thread is one of the workers and the only one that reports progress,
    so that a signal (Ctrl-C) lands in it between two tiles; it then stops the
    others before unwinding."""
    n = len(rows)
    T = K.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        # the shift bound; einsum, unlike norm, makes no T x d temporary
        k_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", K, K)))) if T else 0.0
    block, width = tile_shape(Q.shape[1], Q.dtype.itemsize)
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []
    handed = [0]  # the first row of the next block to hand out
    done = [0]  # rows finished, all workers together

    def work(reports: bool) -> None:
        # errstate is per thread: each worker says what the main one would
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            tiles = _Tiles(block, width, Q.shape[1], V.shape[1], Q.dtype)
            while not stop.is_set():
                with lock:
                    start = handed[0]
                    handed[0] += block
                if start >= n:
                    return
                end = min(n, start + block)
                _context_block(
                    Q, K, V, scale, k_max, rows, mask, head, start, end, tiles, out, stop
                )
                with lock:
                    done[0] += end - start
                    finished = done[0]
                if reports and progress is not None:
                    progress(finished)

    def helper() -> None:
        try:
            work(reports=False)
        except BaseException as error:  # handed to the calling thread, which raises it
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=helper, daemon=True) for _ in range(count - 1)]
    try:
        for thread in threads:
            thread.start()
        work(reports=True)
    except BaseException:
        stop.set()  # Ctrl-C or an error here: the others leave their blocks unfinished
        raise
    finally:
        for thread in threads:
            with contextlib.suppress(RuntimeError):
                # RuntimeError: a signal cut its start() short, before the thread said it
                # had started; it finds `stop` set and returns at once
                thread.join()
    if failures:
        raise failures[0]
    if progress is not None:
        progress(n)
    return out


class _Tiles:
    """One worker's buffers: the scores of a tile and a block's sums."""

    def __init__(self, block: int, width: int, d: int, d_v: int, dtype: np.dtype[Any]) -> None:
        self.scores = np.empty(block * width, dtype=dtype)  # flat: every tile's view contiguous
        self.width = width
        self.queries = np.empty((block, d), dtype=dtype)
        self.acc = np.empty((block, d_v), dtype=dtype)
        self.part = np.empty((block, d_v), dtype=dtype)
        self.totals = np.empty(block, dtype=dtype)


def _context_block(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    k_max: float,
    rows: NDArray[np.intp],
    mask: Mask,
    head: int,
    start: int,
    end: int,
    tiles: _Tiles,
    out: NDArray[F],
    stop: threading.Event,
) -> None:
    """The context vectors of rows[start:end] into out[start:end], tile by tile (left
    unfinished once `stop` is set: the computation is being abandoned)."""
    dtype = Q.dtype.type
    b = end - start
    T = K.shape[0]
    block_pos = rows[start:end]  # (b,)
    lo, hi = mask.seen_span(block_pos, T)  # the other keys are hidden from every row
    first, last = mask.mixed_span(block_pos, lo, hi)  # seen by some rows only
    qs = tiles.queries[:b]
    np.multiply(Q[start:end], dtype(scale), out=qs)  # the scale, folded in
    shift = np.linalg.norm(qs, axis=1) * dtype(k_max)  # (b,) at least each row's max
    shifted = not float(np.max(shift)) <= _NO_SHIFT[Q.dtype]
    acc, part, totals = tiles.acc[:b], tiles.part[:b], tiles.totals[:b]
    acc[...] = 0
    totals[...] = 0
    for t0 in range(lo, hi, tiles.width):
        if stop.is_set():
            return
        t1 = min(hi, t0 + tiles.width)
        S = tiles.scores[: b * (t1 - t0)].reshape(b, t1 - t0)  # (b, w)
        np.matmul(qs, K[t0:t1].T, out=S)  # (b, d) @ (d, w) -> (b, w)
        if shifted:
            S -= shift[:, np.newaxis]
        if t0 < last and first < t1:  # keys hidden from some of the rows
            a, z = max(t0, first), min(t1, last)
            np.copyto(S[:, a - t0 : z - t0], -np.inf, where=mask.hidden(block_pos, a, z, head))
        np.exp(S, out=S)
        totals += S.sum(axis=1)
        np.matmul(S, V[t0:t1], out=part)  # (b, w) @ (w, d_v) -> (b, d_v)
        acc += part
    np.divide(acc, totals[:, np.newaxis], out=out[start:end])
    loose = ~(totals >= _MIN_SUM[Q.dtype]) | ~np.isfinite(out[start:end]).all(axis=1)
    for i in np.flatnonzero(loose):  # a shift too far above the scores: do it exactly
        *_, context = exact_rows(
            Q[start + i : start + i + 1], K, V, scale, block_pos[i : i + 1], mask, head=head
        )
        out[start + i] = context[0]


def _exact_context(
    Q: NDArray[F],
    K: NDArray[F],
    V: NDArray[F],
    scale: float,
    rows: NDArray[np.intp],
    mask: Mask,
    keep: KeepFn | None,
    keep_scale: float,
    progress: Callable[[int], None] | None,
    head: int,
    out: NDArray[F],
    modifiers: Modifiers | None,
) -> NDArray[F]:
    """fast_context's result by exact_rows, block by block."""
    block = block_rows(K.shape[0], 4 * Q.dtype.itemsize, dropout=keep is not None)
    for start in range(0, len(rows), block):
        stop = min(len(rows), start + block)
        part = rows[start:stop]
        block_keep = keep(part) if keep is not None else None
        with np.errstate(over="ignore", invalid="ignore"):
            *_, out[start:stop] = exact_rows(
                Q[start:stop], K, V, scale, part, mask, block_keep, keep_scale, head, modifiers
            )
        if progress is not None:
            progress(stop)
    return out

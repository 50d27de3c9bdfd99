"""Attention computed: the inputs projected once (Prepared), then every intermediate
for some rows (compute), only the context vectors in bounded memory (context), or the
scores or weights streamed in blocks (iter_rows). The arithmetic is engine's; the
settings and weights are modes'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import engine
from .errors import AttnError, size_text
from .loading import Embeddings
from .modes import (
    AttentionParams,
    AttentionResult,
    Mode,
    Projections,
    check_params,
    draw_projections,
)
from .rng import DropoutStream, TorchGenerator, dropout_scale

# Bytes per (head, query, key) entry while computing: scores, the scaled and shifted
# copies, exp, weights (and their dropout copy), as float64.
COMPUTE_BYTES_PER_SCORE = 48


def available_memory() -> int | None:
    """Bytes this process can still allocate: the kernel's MemAvailable, or less if a
    cgroup (container) limit is lower; None where neither can be read."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit_file:
            limit = limit_file.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as current_file:
            current = int(current_file.read().strip())
        if limit != "max":
            room = int(limit) - current
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def check_memory(n_tokens: int, n_rows: int, heads: int, bytes_per_score: int, what: str) -> None:
    """Refuse up front a request whose (heads, rows, tokens) matrices cannot fit, rather
    than be killed by the operating system halfway."""
    scores = heads * n_rows * n_tokens
    needed = scores * bytes_per_score
    available = available_memory()
    if available is None or needed <= 0.8 * available:
        return
    shape = f"{heads} x {n_rows} x {n_tokens}" if heads > 1 else f"{n_rows} x {n_tokens}"
    raise AttnError(
        f"{what} for {n_tokens} tokens needs about {size_text(needed)} for its {shape} "
        f"attention matrix, but about {size_text(available)} of memory is free; ask for less: "
        "--query TOKEN computes one row, and a shorter input shrinks it quadratically"
    )


@dataclass(frozen=True)
class Prepared:
    """Attention made ready: the inputs projected once, in the chosen dtype, so that any
    rows can be computed from here, all at once or block by block."""

    embeddings: Embeddings
    params: AttentionParams
    weights: Projections | None  # None in plain mode
    heads: int
    scale: float  # 1/sqrt(head_dim), or 1 in plain mode
    queries: NDArray[np.floating[Any]]  # (T, D)
    keys: NDArray[np.floating[Any]]  # (T, D)
    values: NDArray[np.floating[Any]]  # (T, D)
    dropout: DropoutStream | None

    @property
    def n_tokens(self) -> int:
        return int(self.keys.shape[0])

    @property
    def causal(self) -> bool:
        return self.params.mode is Mode.CAUSAL

    def head(self, h: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """Head h's queries, keys and values, each (T, head_dim), contiguous."""
        width = self.keys.shape[1] // self.heads
        part = slice(h * width, (h + 1) * width)
        return tuple(  # type: ignore[return-value]
            np.ascontiguousarray(m[:, part]) for m in (self.queries, self.keys, self.values)
        )

    def keep_fn(self, h: int) -> engine.KeepFn | None:
        """Head h's dropout mask for given rows, drawn in nn.Dropout's order."""
        stream = self.dropout
        if stream is None:
            return None
        return lambda rows: stream.keep(h, rows)


def prepare(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    weights: Projections | None = None,
) -> Prepared:
    """Check the settings, draw (or take) the weights and project the inputs."""
    params = params or AttentionParams()
    check_params(params)
    dtype = np.dtype(params.dtype.value)
    X = np.asarray(embeddings.matrix, dtype=dtype)  # (T, d_in)
    gen: TorchGenerator | None = None
    heads = params.heads
    if not params.projected:
        projections = None
    elif weights is None:
        projections, gen = draw_projections(embeddings.d_in, params)
    else:
        projections = weights
        heads = _heads_for(weights, params, embeddings)
    # Overflow is possible only for absurd inputs; it is found in the results and said plainly.
    with np.errstate(over="ignore", invalid="ignore"):
        if projections is not None:
            queries = _project(X, projections.W_query, projections.b_query)  # (T, D)
            keys = _project(X, projections.W_key, projections.b_key)  # (T, D)
            values = _project(X, projections.W_value, projections.b_value)  # (T, D)
            for name, matrix in (("queries", queries), ("keys", keys), ("values", values)):
                _check_finite(matrix, name, embeddings)
            scale = float(projections.d_out // heads) ** -0.5  # 1/sqrt(d_k), per head
        else:
            queries = keys = values = X  # (T, d_in)
            scale = 1.0  # section 3.3 does not scale
    dropout = None
    if params.projected and params.dropout > 0.0:
        if params.dropout_seed is not None:
            gen = TorchGenerator(params.dropout_seed)
        elif gen is None:  # weights from a file: nothing drawn before the dropout
            gen = TorchGenerator(params.seed)
        dropout = DropoutStream(gen, X.shape[0], params.dropout)
    return Prepared(embeddings, params, projections, heads, scale, queries, keys, values, dropout)


def compute(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    query: int | None = None,
    weights: Projections | None = None,
    rows: NDArray[np.intp] | None = None,
) -> AttentionResult:
    """Run one attention pass over `embeddings`, for every token, just `query`, or the
    (sorted) `rows`, keeping every intermediate. `weights` replaces the seeded draws."""
    prepared = prepare(embeddings, params, weights)
    n_tokens = prepared.n_tokens
    rows = _rows(n_tokens, query, rows)
    check_memory(n_tokens, len(rows), prepared.heads, COMPUTE_BYTES_PER_SCORE, "attention")
    shape = (prepared.heads, len(rows), n_tokens)
    dtype = prepared.keys.dtype
    attn_scores = np.empty(shape, dtype)
    softmax_weights = np.empty(shape, dtype)
    attn_weights = np.empty(shape, dtype)
    keep_all = np.empty(shape, bool) if prepared.dropout is not None else None
    contexts: list[list[NDArray[Any]]] = [[] for _ in range(prepared.heads)]
    with np.errstate(over="ignore", invalid="ignore"):
        for h, span, keep, (scores, soft, used, context) in _exact_blocks(prepared, rows, True):
            attn_scores[h, span], softmax_weights[h, span], attn_weights[h, span] = (
                scores,
                soft,
                used,
            )
            if keep_all is not None and keep is not None:
                keep_all[h, span] = keep
            contexts[h].append(context)
        _check_scores(attn_scores, prepared)
        heads_context = np.concatenate(
            [np.concatenate(blocks) for blocks in contexts], axis=1
        )  # H x (n, head_dim) -> (n, D)
        context_vecs = _output(heads_context, prepared)
    return AttentionResult(
        embeddings=embeddings,
        params=prepared.params,
        query_index=query,
        rows=rows,
        heads=prepared.heads,
        scale=prepared.scale,
        weights=prepared.weights,
        queries=prepared.queries[rows],
        keys=prepared.keys,
        values=prepared.values,
        attn_scores=attn_scores,
        softmax_weights=softmax_weights,
        dropout_keep=keep_all,
        attn_weights=attn_weights,
        heads_context=heads_context,
        context_vecs=context_vecs,
    )


def context(
    prepared: Prepared,
    query: int | None = None,
    rows: NDArray[np.intp] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.floating[Any]]:
    """Only the context vectors (n, D) of every token, `query` or `rows`: computed in
    blocks, never holding the T x T matrix, so it works for long sequences."""
    rows = _rows(prepared.n_tokens, query, rows)
    total = prepared.heads * len(rows)
    contexts = []
    with np.errstate(over="ignore", invalid="ignore"):
        for h in range(prepared.heads):
            Q, K, V = prepared.head(h)
            done = h * len(rows)

            def report(count: int, done: int = done) -> None:
                if progress is not None:
                    progress(done + count, total)

            contexts.append(
                engine.fast_context(
                    Q if len(rows) == prepared.n_tokens else Q[rows],  # no copy for all rows
                    K,
                    V,
                    prepared.scale,
                    rows,
                    prepared.causal,
                    prepared.keep_fn(h),
                    dropout_scale(prepared.params.dropout) if prepared.dropout else 1.0,
                    report,
                )
            )
        heads_context = np.concatenate(contexts, axis=1)  # H x (n, head_dim) -> (n, D)
        # Weights are at most 1 and the values finite, so a context vector that is not
        # finite means the scores overflowed (the fast kernel does not keep them).
        _check_finite(heads_context, "attention scores", prepared.embeddings)
        result = _output(heads_context, prepared)
    return result


def iter_rows(
    prepared: Prepared,
    kind: str,
    query: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[NDArray[np.floating[Any]]]:
    """The attention scores (kind "scores": unscaled, -inf where masked) or weights
    ("weights": after dropout) of every token or `query`, as blocks of rows, head
    after head: for output streamed without holding the T x T matrix."""
    rows = _rows(prepared.n_tokens, query, None)
    total = prepared.heads * len(rows)
    for h, span, _, (scores, _, used, _) in _exact_blocks(prepared, rows, kind == "weights"):
        _check_scores(scores, prepared)
        if progress is not None:
            progress(h * len(rows) + span.stop, total)
        yield scores if kind == "scores" else used


def _exact_blocks(
    prepared: Prepared, rows: NDArray[np.intp], with_dropout: bool
) -> Iterator[tuple[int, slice, NDArray[np.bool_] | None, tuple[NDArray[Any], ...]]]:
    """engine.exact_rows over `rows` in blocks, head after head (nn.Dropout's order):
    (head, the block's slice of rows, its dropout mask, (scores, softmax weights,
    weights used, context))."""
    keep_scale = dropout_scale(prepared.params.dropout) if prepared.dropout else 1.0
    # exact_rows holds scores, weights and their temporaries: about four matrices' worth
    block = engine.block_rows(
        prepared.n_tokens, 4 * prepared.keys.dtype.itemsize, dropout=prepared.dropout is not None
    )
    for h in range(prepared.heads):
        Q, K, V = prepared.head(h)
        keep_fn = prepared.keep_fn(h) if with_dropout else None
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            keep = keep_fn(part) if keep_fn is not None else None
            with np.errstate(over="ignore", invalid="ignore"):
                results = engine.exact_rows(
                    Q[part], K, V, prepared.scale, part, prepared.causal, keep, keep_scale
                )
            yield h, slice(start, start + len(part)), keep, results


def _rows(n_tokens: int, query: int | None, rows: NDArray[np.intp] | None) -> NDArray[np.intp]:
    if query is not None:
        if not 0 <= query < n_tokens:
            raise AttnError.usage(f"query index {query} is out of range 0..{n_tokens - 1}")
        return np.array([query])
    if rows is not None:
        return np.asarray(rows, dtype=np.intp)
    return np.arange(n_tokens)


def _output(heads_context: NDArray[Any], prepared: Prepared) -> NDArray[Any]:
    """out_proj when the module has one; then a check that nothing overflowed."""
    weights = prepared.weights
    result = heads_context
    if weights is not None and weights.W_out is not None:
        result = _project(heads_context, weights.W_out, weights.b_out)
    _check_finite(result, "context vectors", prepared.embeddings)
    return result


def _check_scores(attn_scores: NDArray[Any], prepared: Prepared) -> None:
    # -inf is a masked score; anything else not finite is an overflow
    if (
        np.isnan(attn_scores).any()
        or np.isposinf(attn_scores).any()
        or (not prepared.causal and np.isneginf(attn_scores).any())
    ):
        _check_finite(attn_scores, "attention scores", prepared.embeddings)


def _project(
    X: NDArray[Any], W: NDArray[np.float64], b: NDArray[np.float64] | None
) -> NDArray[Any]:
    W = W.astype(X.dtype, copy=False)
    projected: NDArray[Any] = X @ W  # (n, d_in) @ (d_in, D) -> (n, D)
    return projected if b is None else projected + b.astype(X.dtype, copy=False)


def _heads_for(weights: Projections, params: AttentionParams, embeddings: Embeddings) -> int:
    """The head count for weights from a file, checked against the input and flags."""
    source = weights.file or "the weights"
    if weights.d_in != embeddings.d_in:
        raise AttnError(
            f"{source}: W_query expects d_in = {weights.d_in}, but "
            f"{embeddings.source} has {embeddings.d_in}-dimensional embeddings; use "
            "weights made for these inputs"
        )
    heads = params.heads
    if weights.heads is not None:
        if heads not in (1, weights.heads):
            raise AttnError.usage(
                f"--heads {heads} contradicts {source}, which holds "
                f"{weights.heads} heads; drop --heads"
            )
        heads = weights.heads
    if weights.d_out % heads:
        raise AttnError.usage(
            f"--heads {heads} does not divide the {weights.d_out} output dimensions of "
            f"{source}; pick a head count that divides {weights.d_out}"
        )
    return heads


def _check_finite(matrix: NDArray[Any], what: str, embeddings: Embeddings) -> None:
    if not np.isfinite(matrix).all():
        largest = float(np.max(np.abs(embeddings.matrix)))
        raise AttnError(
            f"{embeddings.source}: the {what} overflow float64 (inputs as large as "
            f"{largest:.3g} make numbers beyond 1.8e308); rescale the embeddings"
        )

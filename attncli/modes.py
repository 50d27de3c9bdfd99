"""The attention of the book's chapter 3: projections + core math -> AttentionResult.

- plain (3.3): the inputs are queries, keys and values; no scaling.
- trainable (3.4): queries = X @ W_query, keys = X @ W_key, values = X @ W_value,
  scores scaled by 1/sqrt(d_k).
- causal (3.5): trainable, with every key after the query masked.
- heads > 1 (3.6): d_out split into heads of head_dim = d_out / heads, each attending
  on its own, concatenated, then `out_proj` (MultiHeadAttention); or, with `wrapper`,
  `heads` separate single-head modules of d_out each, concatenated
  (MultiHeadAttentionWrapper).
- dropout (3.5.2): nn.Dropout on the attention weights, in training mode.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import core
from .errors import AttnError
from .loading import Embeddings
from .rng import TorchGenerator, check_seed, dropout_scale


class Mode(str, enum.Enum):
    PLAIN = "plain"
    TRAINABLE = "trainable"
    CAUSAL = "causal"


class Init(str, enum.Enum):
    """How W_query, W_key, W_value are drawn from the seed."""

    RAND = "rand"  # torch.rand(d_in, d_out), applied as X @ W (book 3.4.1)
    LINEAR = "linear"  # nn.Linear(d_in, d_out): weight (d_out, d_in), X @ W.T + b (3.4.2 on)


class Layout(str, enum.Enum):
    """How a weight matrix is written down (applied, every matrix acts as X @ W)."""

    XW = "xw"  # (d_in, d_out), applied as X @ W: the book's torch.rand matrices
    LINEAR = "linear"  # (d_out, d_in), applied as X @ W.T + b: nn.Linear's weight


@dataclass(frozen=True)
class AttentionParams:
    """Every setting that produces the numbers. Defaults follow the book."""

    mode: Mode = Mode.PLAIN
    d_out: int = 2
    seed: int = 123
    init: Init = Init.RAND
    qkv_bias: bool = False
    heads: int = 1
    wrapper: bool = False  # heads as separate modules of d_out each, no out_proj (3.6.1)
    dropout: float = 0.0
    dropout_seed: int | None = None  # re-seed just before the dropout draws

    def __post_init__(self) -> None:
        # Accept the plain strings a library user types: AttentionParams(mode="causal").
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "init", Init(self.init))

    @property
    def projected(self) -> bool:
        """Whether W_query, W_key, W_value exist (every mode but plain)."""
        return self.mode is not Mode.PLAIN


@dataclass(frozen=True)
class Projections:
    """The trainable weights, as applied: `X @ W_query + b_query` and so on, each W of
    shape (d_in, D); with several heads, head h owns columns h*head_dim to
    (h+1)*head_dim. `W_out`/`b_out` is MultiHeadAttention's out_proj, (D, D) applied as
    `context @ W_out + b_out`. `layout` is how the book (or the weights file) writes
    them, for display."""

    W_query: NDArray[np.float64]  # (d_in, D)
    W_key: NDArray[np.float64]  # (d_in, D)
    W_value: NDArray[np.float64]  # (d_in, D)
    b_query: NDArray[np.float64] | None = None  # (D,)
    b_key: NDArray[np.float64] | None = None
    b_value: NDArray[np.float64] | None = None
    W_out: NDArray[np.float64] | None = None  # (D, D)
    b_out: NDArray[np.float64] | None = None  # (D,)
    layout: Layout = Layout.XW
    heads: int | None = None  # fixed by the file (a wrapper's state_dict), else None
    file: str | None = None  # the weights file they came from; None when drawn

    @property
    def d_in(self) -> int:
        return int(self.W_query.shape[0])

    @property
    def d_out(self) -> int:
        return int(self.W_query.shape[1])

    @property
    def parameters(self) -> int:
        """How many trainable numbers the module has (exercise 3.3 counts them)."""
        arrays = (
            self.W_query,
            self.W_key,
            self.W_value,
            self.b_query,
            self.b_key,
            self.b_value,
            self.W_out,
            self.b_out,
        )
        return sum(int(a.size) for a in arrays if a is not None)


@dataclass(frozen=True)
class AttentionResult:
    """Every intermediate of one attention pass, for the query rows asked for.

    `rows` are the positions of the queries computed: every token, or the
    `query_index`; n = len(rows), T tokens, H heads, D = H * head_dim. Masked scores
    are -inf. `attn_weights` are the weights actually used (after dropout, if any);
    `softmax_weights` the ones before it.
    """

    embeddings: Embeddings
    params: AttentionParams
    query_index: int | None  # the `--query` row, or None when every token was computed
    heads: int
    scale: float  # scores are multiplied by this before the softmax: 1/sqrt(head_dim)
    weights: Projections | None  # None in plain mode
    queries: NDArray[np.float64]  # (n, D)
    keys: NDArray[np.float64]  # (T, D)
    values: NDArray[np.float64]  # (T, D)
    attn_scores: NDArray[np.float64]  # (H, n, T), unscaled
    softmax_weights: NDArray[np.float64]  # (H, n, T)
    dropout_keep: NDArray[np.bool_] | None  # (H, n, T), None without dropout
    attn_weights: NDArray[np.float64]  # (H, n, T)
    heads_context: NDArray[np.float64]  # (n, D): the heads' context vectors, side by side
    context_vecs: NDArray[np.float64]  # (n, D): after out_proj, when there is one

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.embeddings.tokens

    @property
    def rows(self) -> NDArray[np.intp]:
        """The positions of the query rows computed."""
        return query_rows(len(self.tokens), self.query_index)  # (n,)

    @property
    def head_dim(self) -> int:
        return int(self.keys.shape[1]) // self.heads


def query_rows(n_tokens: int, query: int | None) -> NDArray[np.intp]:
    return np.arange(n_tokens) if query is None else np.array([query])


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
        f"{what} for {n_tokens} tokens needs about {_size(needed)} for its {shape} "
        f"attention matrix, but about {_size(available)} of memory is free; ask for less: "
        "--query TOKEN computes one row, and a shorter input shrinks it quadratically"
    )


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} PiB"


def check_params(params: AttentionParams) -> None:
    """Refuse settings no attention module can have, with the fix."""
    if params.d_out < 1:
        raise AttnError.usage(
            f"--d-out {params.d_out} is too small: the projections need d_out ≥ 1 "
            "dimensions (the book uses 2)"
        )
    if params.heads < 1:
        raise AttnError.usage(f"--heads {params.heads} is too small: attention needs a head")
    if params.heads > 1 and not params.wrapper and params.d_out % params.heads:
        suggestion = max(1, params.d_out // params.heads)
        raise AttnError.usage(
            f"--d-out {params.d_out} does not split into --heads {params.heads}: "
            "MultiHeadAttention gives each head d_out / heads dimensions; pick a d_out "
            f"that {params.heads} divides (e.g. --d-out {params.heads * suggestion}), or "
            "--wrapper for heads of d_out each"
        )
    if not 0.0 <= params.dropout <= 1.0:
        raise AttnError.usage(
            f"--dropout {params.dropout} is not a probability; give a value from 0 to 1"
        )
    if params.qkv_bias and params.init is not Init.LINEAR:
        raise AttnError.usage(
            "--qkv-bias needs --init linear: the torch.rand weights of section 3.4.1 "
            "have no bias, nn.Linear's have"
        )
    check_seed(params.seed)
    if params.dropout_seed is not None:
        check_seed(params.dropout_seed)


def draw_projections(d_in: int, params: AttentionParams) -> tuple[Projections, TorchGenerator]:
    """W_query, W_key, W_value (and out_proj) drawn from one seeded stream in the order
    the book's modules draw them; returns the stream too, for the dropout draws that
    follow in a forward pass."""
    gen = TorchGenerator(params.seed)
    linear = params.init is Init.LINEAR
    groups = params.heads if params.wrapper else 1  # modules drawn one after another
    width = params.d_out  # each module's d_out: a wrapper's heads have d_out each
    drawn: list[tuple[NDArray[np.float64], NDArray[np.float64] | None]] = []
    for _ in range(groups):
        for _ in ("W_query", "W_key", "W_value"):
            if linear:
                weight, bias = gen.linear(d_in, width, params.qkv_bias)  # (width, d_in)
                drawn.append((weight.T.astype(np.float64), _f64(bias)))  # -> (d_in, width)
            else:
                drawn.append((gen.rand(d_in, width).astype(np.float64), None))  # (d_in, width)
    # drawn[g * 3 + k]: module g's query (k=0), key (1), value (2); heads side by side
    W_query, W_key, W_value = (
        np.concatenate([drawn[g * 3 + k][0] for g in range(groups)], axis=1) for k in range(3)
    )  # each (d_in, groups * width)
    b_query, b_key, b_value = (
        np.concatenate([_required(drawn[g * 3 + k][1]) for g in range(groups)])
        if params.qkv_bias
        else None
        for k in range(3)
    )
    W_out = b_out = None
    if params.heads > 1 and not params.wrapper:
        weight, bias = gen.linear(params.d_out, params.d_out, True)  # out_proj, (D, D)
        W_out, b_out = weight.T.astype(np.float64), _f64(bias)
    projections = Projections(
        W_query,
        W_key,
        W_value,
        b_query,
        b_key,
        b_value,
        W_out,
        b_out,
        layout=Layout.LINEAR if linear else Layout.XW,
    )
    return projections, gen


def _f64(array: NDArray[np.float32] | None) -> NDArray[np.float64] | None:
    return None if array is None else array.astype(np.float64)


def _required(array: NDArray[np.float64] | None) -> NDArray[np.float64]:
    assert array is not None  # drawn whenever qkv_bias is set
    return array


def compute(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    query: int | None = None,
    weights: Projections | None = None,
) -> AttentionResult:
    """Run one attention pass over `embeddings`, for every token or just `query`.

    `weights` replaces the seeded draws (trainable and causal modes)."""
    params = params or AttentionParams()
    check_params(params)
    X = embeddings.matrix  # (T, d_in)
    n_tokens = X.shape[0]
    if query is not None and not 0 <= query < n_tokens:
        raise AttnError.usage(f"query index {query} is out of range 0..{n_tokens - 1}")
    rows = query_rows(n_tokens, query)  # (n,)
    check_memory(n_tokens, len(rows), params.heads, COMPUTE_BYTES_PER_SCORE, "attention")

    gen: TorchGenerator | None = None
    heads = params.heads
    if not params.projected:
        projections = None
    elif weights is None:
        projections, gen = draw_projections(embeddings.d_in, params)
    else:
        projections = weights
        heads = _heads_for(weights, params, embeddings)

    # Overflow is possible only for absurd inputs; it is checked below and said plainly.
    with np.errstate(over="ignore", invalid="ignore"):
        if projections is not None:
            queries = _project(X[rows], projections.W_query, projections.b_query)  # (n, D)
            keys = _project(X, projections.W_key, projections.b_key)  # (T, D)
            values = _project(X, projections.W_value, projections.b_value)  # (T, D)
            head_dim = projections.d_out // heads
            scale = float(head_dim) ** -0.5  # 1/sqrt(d_k), d_k = keys.shape[-1] per head
        else:
            queries, keys, values = X[rows], X, X  # (n, d_in), (T, d_in), (T, d_in)
            scale = 1.0  # section 3.3 does not scale

        attn_scores = core.attention_scores(
            core.split_heads(queries, heads), core.split_heads(keys, heads)
        )  # (H, n, T)
        _check_finite(attn_scores, "attention scores", embeddings)
        if params.mode is Mode.CAUSAL:
            attn_scores = core.apply_mask(attn_scores, core.causal_mask(rows, n_tokens))
        softmax_weights = core.attention_weights(attn_scores, scale)  # (H, n, T)
        keep = None
        attn_weights = softmax_weights
        if params.projected and params.dropout > 0.0:
            if params.dropout_seed is not None:
                gen = TorchGenerator(params.dropout_seed)
            elif gen is None:  # weights from a file: nothing drawn before the dropout
                gen = TorchGenerator(params.seed)
            keep = _dropout_keep(gen, heads, n_tokens, rows, params.dropout)  # (H, n, T)
            attn_weights = softmax_weights * keep * dropout_scale(params.dropout)
        heads_context = core.merge_heads(
            core.context_vectors(attn_weights, core.split_heads(values, heads))
        )  # (H, n, head_dim) -> (n, D)
        context_vecs = heads_context
        if projections is not None and projections.W_out is not None:
            context_vecs = _project(heads_context, projections.W_out, projections.b_out)
        _check_finite(context_vecs, "context vectors", embeddings)
    return AttentionResult(
        embeddings=embeddings,
        params=params,
        query_index=query,
        heads=heads,
        scale=scale,
        weights=projections,
        queries=queries,
        keys=keys,
        values=values,
        attn_scores=attn_scores,
        softmax_weights=softmax_weights,
        dropout_keep=keep,
        attn_weights=attn_weights,
        heads_context=heads_context,
        context_vecs=context_vecs,
    )


def _project(
    X: NDArray[np.float64], W: NDArray[np.float64], b: NDArray[np.float64] | None
) -> NDArray[np.float64]:
    projected: NDArray[np.float64] = X @ W  # (n, d_in) @ (d_in, D) -> (n, D)
    return projected if b is None else projected + b


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


def _dropout_keep(
    gen: TorchGenerator, heads: int, n_tokens: int, rows: NDArray[np.intp], p: float
) -> NDArray[np.bool_]:
    """The dropout mask of the rows computed, drawn as nn.Dropout draws the whole
    (H, T, T) mask, row-major: rows not computed are skipped in the stream."""
    if len(rows) == n_tokens:
        return gen.dropout_keep(heads * n_tokens * n_tokens, p).reshape(heads, n_tokens, n_tokens)
    keep = np.empty((heads, len(rows), n_tokens), dtype=bool)
    position = 0  # elements of the full mask drawn or skipped so far
    draws = 0 if p <= 0.0 or p >= 1.0 else 2  # per element
    for h in range(heads):
        for k, row in enumerate(rows):
            start = (h * n_tokens + int(row)) * n_tokens
            gen.skip(draws * (start - position))
            keep[h, k] = gen.dropout_keep(n_tokens, p)
            position = start + n_tokens
    return keep


def _check_finite(matrix: NDArray[np.float64], what: str, embeddings: Embeddings) -> None:
    if not np.isfinite(matrix).all():
        largest = float(np.max(np.abs(embeddings.matrix)))
        raise AttnError(
            f"{embeddings.source}: the {what} overflow float64 (inputs as large as "
            f"{largest:.3g} make numbers beyond 1.8e308); rescale the embeddings"
        )

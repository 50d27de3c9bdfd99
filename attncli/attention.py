"""Attention computed: the inputs projected once (`prepare` -> Prepared), then every
intermediate for some rows (`compute` -> AttentionResult), only the context vectors in
bounded memory (`context`), or the scores or weights streamed in blocks (`iter_rows`).
The arithmetic is the stages' and the engine's; the settings and weights are params'.

Memory: `prepare` and `compute` refuse sizes that cannot fit the `memory` they are
told is free (bytes; None checks nothing): the command line measures it, a library
user may.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from . import engine, limits, stages
from .embeddings import Embeddings
from .errors import AttnError, number_text, setting, size_text
from .heads import HeadLayout
from .masks import Mask
from .modifiers import NO_MODIFIERS, Modifiers, alibi_slopes
from .params import AttentionParams, Projections, check_params, draw_projections
from .rng import DropoutStream, TorchGenerator, dropout_scale
from .rope import Rope

if TYPE_CHECKING:  # the readers' types only: importing them costs every start 11 ms
    from .inputs.mask_file import MaskArray
    from .inputs.qkv_file import QKV

# Bytes per (head, query, key) entry while computing: scores, the scaled and shifted
# copies, exp, weights (and their dropout copy), as float64.
COMPUTE_BYTES_PER_SCORE = 48


def check_memory(
    n_tokens: int, n_rows: int, heads: int, bytes_per_score: int, what: str, available: int | None
) -> None:
    """Refuse up front a request whose (heads, rows, tokens) matrices cannot fit the
    `available` bytes (None: unknown, nothing refused), rather than be killed by the
    operating system halfway."""
    scores = heads * n_rows * n_tokens
    needed = scores * bytes_per_score
    if available is None or needed <= 0.8 * available:
        return
    shape = f"{heads} x {n_rows} x {n_tokens}" if heads > 1 else f"{n_rows} x {n_tokens}"
    fewer_heads = (
        f", and fewer {setting('heads')} than {heads} shrink it in step" if heads > 1 else ""
    )
    raise AttnError(
        f"{what} for {n_tokens} tokens needs about {size_text(needed)} for its {shape} "
        f"attention matrix, but about {size_text(available)} of memory is free; ask for less: "
        f"{setting('query', 'TOKEN')} computes one row, and a shorter input shrinks it "
        f"quadratically{fewer_heads}"
    )


@dataclass(frozen=True)
class Prepared:
    """Attention made ready: the inputs projected once, in the chosen dtype, so that any
    rows can be computed from here, all at once or block by block."""

    embeddings: Embeddings
    params: AttentionParams
    projections: Projections | None  # W_query, W_key, W_value (...); None in plain mode
    layout: HeadLayout
    mask: Mask
    scale: float  # 1/sqrt(head_dim), or 1 in plain mode
    queries: NDArray[np.floating[Any]]  # (T, D)
    keys: NDArray[np.floating[Any]]  # (T, D)
    values: NDArray[np.floating[Any]]  # (T, D)
    dropout: DropoutStream | None
    latent: NDArray[np.floating[Any]] | None = None  # (T_k, L): c_kv of latent attention
    kv: Embeddings | None = None  # cross-attention: the keys' and values' tokens (--kv)
    qkv_source: str | None = None  # queries, keys and values read from this file (--qkv)
    # With RoPE: the queries and keys before their rotation (queries and keys are after)
    unrotated: tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]] | None = None
    modifiers: Modifiers = NO_MODIFIERS  # soft-capping, ALiBi, sinks: none by default
    # With QK-norm: the queries and keys before it (unrotated, or queries and keys, after)
    unnormed: tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]] | None = None
    gate_logits: NDArray[np.floating[Any]] | None = None  # (T, D): x @ W_gate + b_gate

    @property
    def projected(self) -> bool:
        """Whether the queries, keys and values are projections (W_query, ... or a
        model's, from --qkv), rather than the inputs themselves (plain attention)."""
        return self.params.projected or self.qkv_source is not None

    @property
    def before_rotation(self) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
        """Every query and key as QK-norm leaves them, before any rotation."""
        return self.unrotated or (self.queries, self.keys)

    @property
    def n_queries(self) -> int:
        """The query rows there are: one per input token."""
        return int(self.queries.shape[0])

    @property
    def n_keys(self) -> int:
        """The keys (and values) there are: the input's tokens, or --kv's."""
        return int(self.keys.shape[0])

    @property
    def key_tokens(self) -> tuple[str, ...]:
        """The tokens the keys and values belong to: the input's, or --kv's."""
        return self.embeddings.tokens if self.kv is None else self.kv.tokens

    @property
    def heads(self) -> int:
        return self.layout.heads

    @property
    def head_dim(self) -> int:
        return self.layout.head_dim

    @property
    def keep_scale(self) -> float:
        """What dropout multiplies the weights it keeps by (1 without dropout)."""
        return dropout_scale(self.params.dropout) if self.dropout is not None else 1.0

    def head(self, h: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """Head h's queries, keys and values, each (T, head_dim), contiguous."""
        query_part, kv_part = self.layout.columns(h), self.layout.kv_columns(h)
        return (
            np.ascontiguousarray(self.queries[:, query_part]),
            np.ascontiguousarray(self.keys[:, kv_part]),
            np.ascontiguousarray(self.values[:, kv_part]),
        )

    def settings(self) -> dict[str, Any]:
        """Every setting that produced the numbers, as JSON's `params` gives them (null
        where the mode has no such thing)."""
        params = self.params
        if not params.projected or self.qkv_source is not None:
            given = self.qkv_source is not None  # a model's q, k, v: its heads, no d_in
            return {
                "d_in": None if given else self.embeddings.d_in,
                "d_out": None,
                "seed": None,
                "init": None,
                "scale": self.scale,
                "heads": self.heads,
                "head_dim": self.head_dim if given else None,
                "wrapper": None,
                "qkv_bias": None,
                "dropout": None,
                "dropout_seed": None,
                "batch": None,
                "weights": None,
                "parameters": 0,
                "dtype": params.dtype.value,
                "kv_groups": self.layout.kv_heads if self.layout.kv_heads != self.heads else None,
                "latent_dim": None,
                **self._mask_settings(),
            }
        projections = self.projections
        file = projections.file if projections is not None else None
        seed_used = file is None or (params.dropout > 0 and params.dropout_seed is None)
        return {
            "d_in": self.embeddings.d_in,
            "d_out": self.layout.width,
            "seed": params.seed if seed_used else None,
            "init": None if file else params.init.value,
            "scale": self.scale,
            "heads": self.heads,
            "head_dim": self.head_dim,
            "wrapper": self.heads > 1 and (projections is not None and projections.W_out is None),
            "qkv_bias": projections is not None and projections.b_query is not None,
            "dropout": params.dropout,
            "dropout_seed": params.dropout_seed,
            "batch": params.batch,
            "weights": file,
            "parameters": projections.parameters if projections is not None else 0,
            "dtype": params.dtype.value,
            "kv_groups": (
                self.layout.kv_heads
                if params.grouped or self.layout.kv_heads != self.heads
                else None
            ),
            "latent_dim": projections.latent_dim if projections is not None else None,
            **self._mask_settings(),
        }

    def _mask_settings(self) -> dict[str, Any]:
        """The mask's settings beyond the mode (a window, a mask file, where a causal
        mask aligns shorter queries), where the vectors came from, and positions."""
        cross = self.n_queries != self.n_keys
        rope = self.params.rope
        modifiers = self.modifiers
        return {
            "softcap": modifiers.softcap,
            "alibi_slopes": list(modifiers.alibi) if modifiers.alibi is not None else None,
            # strict JSON has no -Infinity: a sink of -inf (none) is null, as a masked score
            "sink_logits": (
                [x if math.isfinite(x) else None for x in modifiers.sinks]
                if modifiers.sinks is not None
                else None
            ),
            "qk_norm": self.unnormed is not None,
            "gate": self.gate_logits is not None,
            "rope": None if rope is None else _rope_settings(rope),
            "position_offset": self.params.position_offset if rope is not None else None,
            "window": self.mask.window,
            "mask": self.mask.source,
            "causal_align": self.params.causal_align if cross and self.mask.causal else None,
            "kv": self.kv.source if self.kv is not None and self.qkv_source is None else None,
            "qkv": self.qkv_source,
        }

    def keep_fn(self, h: int) -> engine.KeepFn | None:
        """Head h's dropout mask for given rows, drawn in nn.Dropout's order."""
        stream = self.dropout
        if stream is None:
            return None
        return lambda rows: stream.keep(h, rows)


def prepare(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    projections: Projections | None = None,
    memory: int | None = None,
    mask_file: MaskArray | None = None,
    kv: Embeddings | None = None,
) -> Prepared:
    """Check the settings, draw (or take) the projections and project the inputs;
    `memory` is how many bytes are free (None: not checked); `mask_file` a mask read
    from a file (inputs.mask_file.load_mask), joining the settings' mask; `kv` other
    tokens for the keys and values (cross-attention: the queries are `embeddings`')."""
    params = params or AttentionParams()
    if kv is not None and kv.d_in != embeddings.d_in:
        raise AttnError(
            f"{kv.source} has {kv.d_in}-dimensional embeddings, but {embeddings.source} has "
            f"{embeddings.d_in}: the keys and values of cross-attention go through the same "
            f"projections as the queries; give {setting('kv')} tokens of d_in = {embeddings.d_in}"
        )
    given = params.projected and projections is not None
    check_params(params, from_file=given)
    dtype = np.dtype(params.dtype.value)
    gen: TorchGenerator | None = None
    heads = params.heads
    if not params.projected:
        projections = None
    elif projections is None:
        limits.check_sizes(embeddings, params, None, memory)
        projections, gen = draw_projections(embeddings.d_in, params)
    else:
        heads = _heads_for(projections, params, embeddings)
        limits.check_sizes(embeddings, params, projections, memory)
    latent = gate_logits = None
    with np.errstate(over="ignore"):
        X = np.asarray(embeddings.matrix, dtype=dtype)  # (T, d_in)
    if not np.isfinite(X).all():  # an input beyond float32's range
        raise limits.overflow_error("inputs", embeddings, None, dtype, True)
    X_kv = X  # (T_k, d_in): the keys' and values' tokens
    if kv is not None:
        with np.errstate(over="ignore"):
            X_kv = np.asarray(kv.matrix, dtype=dtype)
        if not np.isfinite(X_kv).all():
            raise limits.overflow_error("inputs", kv, None, dtype, True)
    # Overflow is possible only for absurd inputs; it is found in the results and said plainly.
    with np.errstate(over="ignore", invalid="ignore"):
        if projections is not None:
            queries = stages.projections(X, projections.W_query, projections.b_query)  # (T, D)
            source = X_kv
            if projections.W_DKV is not None:  # multi-head latent attention
                latent = stages.projections(source, projections.W_DKV, projections.b_DKV)
                source = latent  # (T_k, L)
            keys = stages.projections(source, projections.W_key, projections.b_key)  # (T_k, D)
            values = stages.projections(source, projections.W_value, projections.b_value)
            for name, matrix in (("queries", queries), ("keys", keys), ("values", values)):
                if not np.isfinite(matrix).all():
                    tokens = embeddings if name == "queries" or kv is None else kv
                    raise limits.projection_error(name, tokens, projections, dtype)
            scale = float(projections.d_out // heads) ** -0.5  # 1/sqrt(d_k), per head
            if projections.W_gate is not None:  # GatedMultiHeadAttention
                gate_logits = stages.projections(X, projections.W_gate, projections.b_gate)
        else:
            queries, keys, values = X, X_kv, X_kv  # (T, d_in), (T_k, d_in), (T_k, d_in)
            scale = 1.0  # section 3.3 does not scale
    dropout = None
    if params.projected and params.dropout > 0.0:
        if params.dropout_seed is not None:
            gen = TorchGenerator(params.dropout_seed)
        elif gen is None:  # weights from a file: nothing drawn before the dropout
            gen = TorchGenerator(params.seed)
        wrapper = params.wrapper or (projections is not None and projections.heads is not None)
        _check_batch(params, heads, wrapper)
        # A wrapper's heads are separate modules: each draws the masks of every batch
        # item before the next head draws; MultiHeadAttention's (b, H, T, T) tensor puts
        # all of item 0's heads first.
        head_rows = params.batch * X.shape[0] if wrapper else X.shape[0]
        dropout = DropoutStream(gen, X_kv.shape[0], params.dropout, head_rows)  # (T, T_k) rows
    else:
        _check_batch(params, heads, False)
    head_dim = int(queries.shape[1]) // heads
    # fewer key/value heads than query heads: grouped-query attention
    layout = HeadLayout(heads, head_dim, key_value_heads=int(keys.shape[1]) // head_dim)
    if params.scale is not None:
        scale = params.scale  # instead of 1/sqrt(head_dim)
    mask = _mask(params, mask_file, layout, X.shape[0], X_kv.shape[0])
    queries, keys, unnormed, unrotated = _positioned(
        queries, keys, layout, params, _norms(projections, layout)
    )
    return Prepared(
        embeddings,
        params,
        projections,
        layout,
        mask,
        scale,
        queries,
        keys,
        values,
        dropout,
        latent,
        kv,
        None,
        unrotated,
        _modifiers(params, layout, projections),
        unnormed,
        gate_logits,
    )


def _norms(projections: Projections | None, layout: HeadLayout) -> Pair | None:
    """q_norm's and k_norm's weights from a weights file (one without the other: unit),
    checked against the head size; None without them."""
    if projections is None or (projections.q_norm is None and projections.k_norm is None):
        return None
    d = layout.head_dim
    weights = []
    for name in ("q_norm", "k_norm"):
        weight = getattr(projections, name)
        if weight is None:
            weight = np.ones(d)
        if weight.shape != (d,):
            raise AttnError(
                f"{projections.file}: {name} has {weight.shape[0]} weights, but the heads have "
                f"head_dim {d}; give {setting('heads')} as the module has them"
            )
        weights.append(weight)
    return weights[0], weights[1]


def _modifiers(
    params: AttentionParams, layout: HeadLayout, projections: Projections | None = None
) -> Modifiers:
    """The score modifiers the settings (and a weights file's sinks) ask for, per head."""
    sinks = params.sink_logits
    if projections is not None and projections.sinks is not None:
        if sinks is not None:
            raise AttnError.usage(
                f"{setting('sink_logits')} contradicts {projections.file}, which holds the "
                f"sinks; drop {setting('sink_logits')}"
            )
        sinks = tuple(float(x) for x in projections.sinks)
    if sinks is not None and len(sinks) not in (1, layout.heads):
        raise AttnError.usage(
            f"{setting('sink_logits', ','.join(f'{x:g}' for x in sinks))} gives {len(sinks)} "
            f"logits for {layout.heads} heads; give one for every head, or one each"
        )
    return Modifiers(
        softcap=params.softcap,
        alibi=tuple(alibi_slopes(layout.heads)) if params.alibi else None,
        sinks=None if sinks is None else tuple(sinks) * (layout.heads // len(sinks)),
    )


def positions(
    params: AttentionParams, n_queries: int, n_keys: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The positions of the queries and of the keys: the keys at 0 .. T_k - 1 (plus
    --position-offset), fewer queries aligned as the causal mask aligns them."""
    offset = params.position_offset
    key_positions = np.arange(n_keys) + offset
    shift = n_keys - n_queries if params.causal_align == "bottom-right" else 0
    return np.arange(n_queries) + shift + offset, key_positions


Pair = tuple[NDArray[Any], NDArray[Any]]


def _positioned(
    queries: NDArray[Any],
    keys: NDArray[Any],
    layout: HeadLayout,
    params: AttentionParams,
    norms: Pair | None = None,
) -> tuple[NDArray[Any], NDArray[Any], Pair | None, Pair | None]:
    """The qk_norm and positions stages: the queries and keys after them, and (for
    explain) before each, or None for a stage not asked for. `norms`: q_norm's and
    k_norm's weights from a weights file (which asks for QK-norm by holding them)."""
    unnormed = unrotated = None
    if params.qk_norm or norms is not None:
        unnormed = (queries, keys)
        queries, keys = normed(queries, keys, layout, norms)
    if params.rope is not None:
        unrotated = (queries, keys)
        queries, keys = rotated(queries, keys, layout, params)
    return queries, keys, unnormed, unrotated


def normed(
    queries: NDArray[Any], keys: NDArray[Any], layout: HeadLayout, norms: Pair | None = None
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Qwen3's QK-norm: RMSNorm (eps 1e-6) on each head's queries and keys, with unit
    weights or `norms` (q_norm's and k_norm's, (head_dim,) each, shared by the heads)."""
    d = layout.head_dim
    q_weight, k_weight = norms if norms is not None else (None, None)
    q = stages.rms_norm(queries.reshape(queries.shape[0], -1, d), q_weight).reshape(queries.shape)
    k = stages.rms_norm(keys.reshape(keys.shape[0], -1, d), k_weight).reshape(keys.shape)
    return q, k  # (T, H * d) -> (T, H, d) -> normed -> (T, H * d)


def rotated(
    queries: NDArray[Any], keys: NDArray[Any], layout: HeadLayout, params: AttentionParams
) -> tuple[NDArray[Any], NDArray[Any]]:
    """The queries (T_q, H * d) and keys (T_k, G * d), each head's block rotated by RoPE
    at its tokens' positions: the `positions` stage."""
    rope = params.rope
    assert rope is not None
    d = layout.head_dim
    if rope.rotary_dim(d) < 2 or (rope.partial == 1 and d % 2):
        raise AttnError.usage(
            f"RoPE turns pairs of dimensions, and a head here has {d}"
            + (f" (rotating {rope.partial:g} of them)" if rope.partial != 1 else "")
            + f"; pick a {setting('d_out')} that gives each head an even number of them"
        )
    q_positions, k_positions = positions(params, queries.shape[0], keys.shape[0])
    queries, keys = queries.copy(), keys.copy()
    for h in range(layout.heads):
        part = layout.columns(h)
        queries[:, part] = rope.rotate(queries[:, part], q_positions)
    for g in range(layout.kv_heads):
        part = slice(g * d, (g + 1) * d)
        keys[:, part] = rope.rotate(keys[:, part], k_positions)
    return queries, keys


def _rope_settings(rope: Rope) -> dict[str, Any]:
    scaling = rope.scaling
    return {
        "theta": rope.theta,
        "layout": rope.layout,
        "scaling": None if scaling is None else {"type": "llama3", **scaling._asdict()},
        "partial": rope.partial,
    }


def prepare_qkv(
    qkv: QKV, params: AttentionParams | None = None, mask_file: MaskArray | None = None
) -> Prepared:
    """Attention on queries, keys and values given as they are (--qkv, a model's dump):
    no projections, scaled by 1/sqrt(head_dim) unless `params.scale` says otherwise,
    masked as `params` and `mask_file` say; what torch's
    `scaled_dot_product_attention(q, k, v, attn_mask, is_causal, scale, enable_gqa=True)`
    computes."""
    params = params or AttentionParams()
    check_params(params, from_file=True)
    if qkv.value_dim != qkv.head_dim:
        raise AttnError(
            f"{qkv.source}: v has {qkv.value_dim} dimensions a head and q and k {qkv.head_dim}; "
            "attn needs them equal (torch allows them to differ): give v of the same width"
        )
    dtype = np.dtype(params.dtype.value)
    layout = HeadLayout(qkv.heads, qkv.head_dim, key_value_heads=qkv.kv_heads)
    with np.errstate(over="ignore"):
        queries = layout.join(qkv.q.astype(dtype))  # (H, T_q, d) -> (T_q, H * d)
        keys = layout.join(qkv.k.astype(dtype))  # (G, T_k, d) -> (T_k, G * d)
        values = layout.join(qkv.v.astype(dtype))  # (G, T_k, d) -> (T_k, G * d)
    for name, matrix in (("q", queries), ("k", keys), ("v", values)):
        if not np.isfinite(matrix).all():
            raise AttnError(
                f"{qkv.source}: {name} holds numbers beyond {dtype.name}'s range; use "
                f"{setting('dtype', 'float64')}"
            )
    query_tokens, key_tokens = qkv_tokens(qkv)
    embeddings = Embeddings(query_tokens, queries, qkv.source)
    kv = None
    if key_tokens != query_tokens:  # cross-attention: the keys are other tokens
        kv = Embeddings(key_tokens, keys, qkv.source)
    scale = qkv.head_dim**-0.5 if params.scale is None else params.scale
    mask = _mask(params, mask_file, layout, qkv.n_queries, qkv.n_keys)
    queries, keys, unnormed, unrotated = _positioned(queries, keys, layout, params)
    return Prepared(
        embeddings,
        params,
        None,
        layout,
        mask,
        scale,
        queries,
        keys,
        values,
        None,
        None,
        kv,
        qkv.source,
        unrotated,
        _modifiers(params, layout),
        unnormed,
    )


def qkv_tokens(qkv: QKV) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names for the positions of a --qkv file's queries and keys: t1, t2, ... when they
    are the same tokens; q1, ... and k1, ... when there are fewer queries than keys."""
    if qkv.n_queries == qkv.n_keys:
        tokens = tuple(f"t{i + 1}" for i in range(qkv.n_queries))
        return tokens, tokens
    return (
        tuple(f"q{i + 1}" for i in range(qkv.n_queries)),
        tuple(f"k{j + 1}" for j in range(qkv.n_keys)),
    )


def _mask(
    params: AttentionParams,
    mask_file: MaskArray | None,
    layout: HeadLayout,
    n_queries: int,
    n_keys: int,
) -> Mask:
    """The settings' mask for n_queries queries and n_keys keys (a causal one aligned to
    the last keys unless the settings say otherwise), joined by a mask file's."""
    mask = params.mask_for(n_queries, n_keys)
    if mask_file is None:
        return mask
    shape = mask_file.allowed.shape
    if shape[1:] != (n_queries, n_keys) or shape[0] not in (1, layout.heads):
        per_head = f" or ({layout.heads}, {n_queries}, {n_keys})" if layout.heads > 1 else ""
        raise AttnError(
            f"{mask_file.source}: a mask of shape {shape}, but attention here needs "
            f"({n_queries}, {n_keys}){per_head}: one row per query token, one column per key"
        )
    return mask.with_file(mask_file.allowed, mask_file.bias, mask_file.source)


def _check_batch(params: AttentionParams, heads: int, wrapper: bool) -> None:
    """--batch changes the numbers shown (batch item 0) only where the other items'
    dropout masks are drawn before some of item 0's: between a wrapper's heads."""
    if params.batch == 1 or (wrapper and heads > 1 and 0.0 < params.dropout < 1.0):
        return
    raise AttnError.usage(
        f"{setting('batch', number_text(params.batch))} has no effect here: attn shows batch "
        f"item 0, and only MultiHeadAttentionWrapper ({setting('heads', 'H')} "
        f"{setting('wrapper')}) with {setting('dropout', 'P')} (0 < P < 1) draws another "
        f"item's dropout masks before item 0's later heads; drop {setting('batch')}"
    )


@dataclass(frozen=True)
class AttentionResult:
    """Every intermediate of one attention pass, for the query rows asked for.

    `rows` are the positions of the queries computed: every token, the `query_index`,
    or the rows a table shows; n = len(rows), T tokens, H heads, D = H * head_dim.
    Masked scores are -inf. `attn_weights` are the weights actually used (after
    dropout, if any); `softmax_weights` the ones before it. The settings, projections,
    keys and values are those of the Prepared attention it came from.
    """

    prepared: Prepared
    query_index: int | None  # the `--query` row, or None
    rows: NDArray[np.intp]  # (n,) the positions of the query rows computed
    queries: NDArray[np.floating[Any]]  # (n, D)
    attn_scores: NDArray[np.floating[Any]]  # (H, n, T), unscaled
    softmax_weights: NDArray[np.floating[Any]]  # (H, n, T)
    dropout_keep: NDArray[np.bool_] | None  # (H, n, T), None without dropout
    attn_weights: NDArray[np.floating[Any]]  # (H, n, T)
    heads_context: NDArray[np.floating[Any]]  # (n, D): the heads' context vectors, side by side
    context_vecs: NDArray[np.floating[Any]]  # (n, D): after out_proj, when there is one

    @property
    def embeddings(self) -> Embeddings:
        return self.prepared.embeddings

    @property
    def params(self) -> AttentionParams:
        return self.prepared.params

    @property
    def projections(self) -> Projections | None:
        return self.prepared.projections

    @property
    def layout(self) -> HeadLayout:
        return self.prepared.layout

    @property
    def mask(self) -> Mask:
        return self.prepared.mask

    @property
    def scale(self) -> float:
        return self.prepared.scale

    @property
    def keys(self) -> NDArray[np.floating[Any]]:
        return self.prepared.keys  # (T, D)

    @property
    def values(self) -> NDArray[np.floating[Any]]:
        return self.prepared.values  # (T, D)

    @property
    def tokens(self) -> tuple[str, ...]:
        """The query tokens (rows)."""
        return self.prepared.embeddings.tokens

    @property
    def key_tokens(self) -> tuple[str, ...]:
        """The key tokens (columns of scores and weights): the query tokens, or --kv's."""
        return self.prepared.key_tokens

    @property
    def heads(self) -> int:
        return self.layout.heads

    @property
    def head_dim(self) -> int:
        return self.layout.head_dim


def compute(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    query: int | None = None,
    projections: Projections | None = None,
    rows: NDArray[np.intp] | None = None,
    memory: int | None = None,
    mask_file: MaskArray | None = None,
    kv: Embeddings | None = None,
) -> AttentionResult:
    """Run one attention pass over `embeddings`, for every token, just `query`, or the
    (sorted) `rows`, keeping every intermediate. `projections` replaces the seeded
    draws; `memory` is how many bytes are free (None: not checked); `mask_file` is a
    mask read from a file; `kv` other tokens for the keys and values."""
    prepared = prepare(embeddings, params, projections, memory, mask_file, kv)
    return compute_prepared(prepared, query, rows, memory)


def compute_prepared(
    prepared: Prepared,
    query: int | None = None,
    rows: NDArray[np.intp] | None = None,
    memory: int | None = None,
) -> AttentionResult:
    """compute() from attention already prepared (a fresh Prepared: dropout draws from
    its stream)."""
    n_keys = prepared.n_keys
    rows = _rows(prepared.n_queries, query, rows)
    check_memory(n_keys, len(rows), prepared.heads, COMPUTE_BYTES_PER_SCORE, "attention", memory)
    shape = (prepared.heads, len(rows), n_keys)
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
        if limits.overflowed(attn_scores, rows, prepared.mask):
            raise _scores_error(prepared, rows)
        heads_context = prepared.layout.join(
            [np.concatenate(blocks) for blocks in contexts]
        )  # H x (n, head_dim) -> (n, D)
        context_vecs = _output(heads_context, prepared, rows)
    return AttentionResult(
        prepared=prepared,
        query_index=query,
        rows=rows,
        queries=prepared.queries[rows],
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
    rows = _rows(prepared.n_queries, query, rows)
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
                    Q if len(rows) == prepared.n_queries else Q[rows],  # no copy for all rows
                    K,
                    V,
                    prepared.scale,
                    rows,
                    prepared.mask,
                    prepared.keep_fn(h),
                    prepared.keep_scale,
                    report,
                    head=h,
                    modifiers=prepared.modifiers,
                )
            )
        heads_context = prepared.layout.join(contexts)  # H x (n, head_dim) -> (n, D)
        if not np.isfinite(heads_context).all():
            # The fast kernel does not keep the scores: a context vector that is not
            # finite comes from a score that overflowed, or else from the values.
            check_scores_fit(prepared, rows)
        result = _output(heads_context, prepared, rows)
    return result


def iter_rows(
    prepared: Prepared,
    kind: str,
    query: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[NDArray[np.floating[Any]]]:
    """The attention scores (kind "scores": unscaled, -inf where masked) or weights
    ("weights": after dropout) of every token or `query`, as blocks of rows, head
    after head: for output streamed without holding the T x T matrix.

    A score that overflows is found here, before the first block is handed out, so
    that an error never follows part of an output."""
    rows = _rows(prepared.n_queries, query, None)
    check_scores_fit(prepared, rows)
    return _blocks_of(prepared, kind, rows, progress)


def _blocks_of(
    prepared: Prepared,
    kind: str,
    rows: NDArray[np.intp],
    progress: Callable[[int, int], None] | None,
) -> Iterator[NDArray[np.floating[Any]]]:
    total = prepared.heads * len(rows)
    for h, span, _, (scores, _, used, _) in _exact_blocks(prepared, rows, kind == "weights"):
        if limits.overflowed(scores, rows[span], prepared.mask, h):  # ruled out up front
            raise _scores_error(prepared, rows)
        if progress is not None:
            progress(h * len(rows) + span.stop, total)
        yield scores if kind == "scores" else used


def check_scores_fit(prepared: Prepared, rows: NDArray[np.intp]) -> None:
    """Raise the overflow error if a score of these query rows (an unmasked one) does
    not fit the dtype. Cheap for every ordinary input: by Cauchy-Schwarz no score
    exceeds score_bound, and only a head whose bound comes near the dtype's largest
    number has its scores computed (and only checked, block by block)."""
    limit = limits.safe_limit(prepared.keys.dtype, prepared.head_dim)
    for h in range(prepared.heads):
        if score_bound(prepared, h, rows) < limit:
            continue
        Q, K, _ = prepared.head(h)
        if limits.scores_overflow(Q, K, rows, prepared.mask, h):
            raise _scores_error(prepared, rows)


def score_bound(prepared: Prepared, h: int, rows: NDArray[np.intp]) -> float:
    """limits.score_bound of head h's queries of `rows` and all its keys."""
    layout = prepared.layout
    queries = prepared.queries[:, layout.columns(h)]
    if len(rows) < prepared.n_queries:
        queries = queries[rows]
    return limits.score_bound(queries, prepared.keys[:, layout.kv_columns(h)])


def _scores_error(prepared: Prepared, rows: NDArray[np.intp]) -> AttnError:
    bounds = [score_bound(prepared, h, rows) for h in range(prepared.heads)]
    return limits.scores_error(
        prepared.embeddings, prepared.projections, prepared.keys.dtype, bounds, prepared.head_dim
    )


def _exact_blocks(
    prepared: Prepared, rows: NDArray[np.intp], with_dropout: bool
) -> Iterator[tuple[int, slice, NDArray[np.bool_] | None, tuple[NDArray[Any], ...]]]:
    """engine.exact_rows over `rows` in blocks, head after head (nn.Dropout's order):
    (head, the block's slice of rows, its dropout mask, (scores, softmax weights,
    weights used, context))."""
    keep_scale = prepared.keep_scale
    # exact_rows holds scores, weights and their temporaries: about four matrices' worth
    block = engine.block_rows(
        prepared.n_keys, 4 * prepared.keys.dtype.itemsize, dropout=prepared.dropout is not None
    )
    for h in range(prepared.heads):
        Q, K, V = prepared.head(h)
        keep_fn = prepared.keep_fn(h) if with_dropout else None
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            keep = keep_fn(part) if keep_fn is not None else None
            with np.errstate(over="ignore", invalid="ignore"):
                results = engine.exact_rows(
                    Q[part],
                    K,
                    V,
                    prepared.scale,
                    part,
                    prepared.mask,
                    keep,
                    keep_scale,
                    h,
                    prepared.modifiers,
                )
            yield h, slice(start, start + len(part)), keep, results


def _rows(n_queries: int, query: int | None, rows: NDArray[np.intp] | None) -> NDArray[np.intp]:
    if query is not None:
        if not 0 <= query < n_queries:
            raise AttnError.usage(f"query index {query} is out of range 0..{n_queries - 1}")
        return np.array([query])
    if rows is not None:
        return np.asarray(rows, dtype=np.intp)
    return np.arange(n_queries)


def _output(
    heads_context: NDArray[Any], prepared: Prepared, rows: NDArray[np.intp]
) -> NDArray[Any]:
    """A check that the heads' context vectors are finite (the scores being finite,
    the weights sum to 1, so only values times dropout's 1 / (1 - p) can overflow);
    then the gate and out_proj when the module has them, and the same check of its
    output."""
    if not np.isfinite(heads_context).all():
        raise limits.context_error(
            prepared.values, prepared.keep_scale, prepared.embeddings, prepared.projections
        )
    projections = prepared.projections
    if prepared.gate_logits is not None:
        with np.errstate(over="ignore"):  # exp(-x) of a very negative x: a gate of 0
            heads_context = stages.gate(heads_context, prepared.gate_logits[rows])  # (n, D)
    if projections is None or projections.W_out is None:
        return heads_context
    with np.errstate(over="ignore", invalid="ignore"):
        result = stages.out_proj(heads_context, projections.W_out, projections.b_out)  # (n, D)
    if not np.isfinite(result).all():
        raise limits.out_proj_error(heads_context, prepared.embeddings, projections)
    return result


def _heads_for(projections: Projections, params: AttentionParams, embeddings: Embeddings) -> int:
    """The head count for weights from a file, checked against the input and flags."""
    source = projections.file or "the weights"
    if projections.d_in != embeddings.d_in:
        raise AttnError(
            f"{source}: W_query expects d_in = {projections.d_in}, but "
            f"{embeddings.source} has {embeddings.d_in}-dimensional embeddings; use "
            "weights made for these inputs"
        )
    if projections.d_out < 1:
        raise AttnError(
            f"{source}: W_query has no output dimensions (d_out = 0); give weights with "
            "at least one"
        )
    heads = params.heads
    if projections.heads is not None:
        if heads not in (1, projections.heads):
            raise AttnError.usage(
                f"{setting('heads', number_text(heads))} contradicts {source}, which holds "
                f"{projections.heads} heads; drop {setting('heads')}"
            )
        heads = projections.heads
    if projections.d_out % heads:
        raise AttnError.usage(
            f"{setting('heads', number_text(heads))} does not divide the {projections.d_out} "
            f"output dimensions of {source}; pick a head count that divides {projections.d_out}"
        )
    head_dim = projections.d_out // heads
    kv_width = int(projections.W_key.shape[1])
    kv_heads, rest = divmod(kv_width, head_dim)
    if rest or not kv_heads or heads % kv_heads:
        raise AttnError.usage(
            f"{source}: W_key has {kv_width} output dimensions, W_query {projections.d_out}: with "
            f"{setting('heads', number_text(heads))} (head_dim {head_dim}) that is not a whole "
            f"number of key/value heads dividing {heads}; give the module's {setting('heads')}"
        )
    if params.kv_groups is not None and params.kv_groups != kv_heads:
        raise AttnError.usage(
            f"{setting('kv_groups', number_text(params.kv_groups))} contradicts {source}, whose "
            f"W_key holds {kv_heads} key/value heads of {head_dim}; drop {setting('kv_groups')}"
        )
    return heads

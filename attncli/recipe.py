"""The right computation of every stage, as small swappable pieces: a Recipe, run on
a Setup (prepared attention, its weights and dropout masks) into every stage's numbers
(Stages), in each form a reader may give them. mistakes.py changes one piece at a time;
checking.py compares a reader's numbers with the stages.

The pieces follow stages.STAGES:

    settings -> projections -> split -> positions -> expand -> scores -> mask -> scale
    -> softmax -> dropout -> context -> join -> out_proj

`positions` applies QK-norm and rotary embeddings to q and k as the setup's settings say
(nothing without them).

Everything here works on whole matrices, (H, T_q, T_k) at once: a check is for inputs
a person reads. RIGHT gives attention.compute's numbers (the tests hold them to 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import stages
from .attention import Prepared, compute_prepared, positions
from .params import AttentionParams, Projections

Array = NDArray[Any]


@dataclass(frozen=True)
class Setup:
    """What every recipe starts from: the prepared attention (settings, weights, mask,
    head layout), its inputs in the dtype computed, and nn.Dropout's masks."""

    prepared: Prepared
    projections: Projections | None  # as applied (X @ W + b); None: no projections
    keep: NDArray[np.bool_] | None  # (H, T_q, T_k): the weights dropout keeps
    dtype: np.dtype[Any]

    @classmethod
    def of(cls, prepared: Prepared) -> Setup:
        """The setup of prepared attention (its dropout masks drawn here)."""
        keep = None
        if prepared.dropout is not None:
            keep = compute_prepared(prepared).dropout_keep  # (H, T_q, T_k)
        return cls(prepared, prepared.projections, keep, prepared.keys.dtype)

    @property
    def params(self) -> AttentionParams:
        return self.prepared.params

    @property
    def heads(self) -> int:
        return self.prepared.layout.heads

    @property
    def kv_heads(self) -> int:
        return self.prepared.layout.kv_heads

    @property
    def head_dim(self) -> int:
        return self.prepared.layout.head_dim

    @property
    def seeded(self) -> bool:
        """Whether the weights were drawn from the seed (not read from a file)."""
        return self.projections is not None and self.projections.file is None

    @property
    def fused_heads(self) -> bool:
        """Whether heads > 1 come from splitting one projection (MultiHeadAttention and
        the later modules), rather than from separate modules (the wrapper)."""
        projections = self.projections
        separate = self.params.wrapper or (projections is not None and projections.heads)
        return projections is not None and self.heads > 1 and not separate

    def hidden(self) -> NDArray[np.bool_]:
        """(H or 1, T_q, T_k): True where the mask hides the key from the query."""
        p = self.prepared
        return p.mask.hidden_heads(np.arange(p.n_queries), 0, p.n_keys, self.heads)

    def bias(self) -> Array | None:
        """(H or 1, T_q, T_k): what a float mask file adds to the scaled scores, or None."""
        p = self.prepared
        rows = np.arange(p.n_queries)
        if p.mask.bias is None:
            return None
        count = self.heads if p.mask.per_head else 1
        biases = [p.mask.bias_for(rows, 0, p.n_keys, h) for h in range(count)]
        return np.stack([bias for bias in biases if bias is not None])

    def inputs(self) -> tuple[Array, Array]:
        """The queries' and the keys' tokens, (T_q, d_in) and (T_k, d_in), in the dtype."""
        p = self.prepared
        with np.errstate(over="ignore"):
            X = np.asarray(p.embeddings.matrix, dtype=self.dtype)
            X_kv = X if p.kv is None else np.asarray(p.kv.matrix, dtype=self.dtype)
        return X, X_kv


class Stages(NamedTuple):
    """Every stage of one computation, in each form a reader may give it. T_q queries,
    T_k keys, H query heads and G key/value heads of head_dim d; D = H * d."""

    queries: Array  # (T_q, D): X @ W_query (+ b)
    keys: Array  # (T_k, G * d)
    values: Array  # (T_k, G * d)
    queries_heads: Array  # (H, T_q, d): split into heads
    keys_heads: Array  # (G, T_k, d)
    values_heads: Array  # (G, T_k, d)
    keys_expanded: Array  # (H, T_k, d): each query head's keys (repeat_interleave)
    values_expanded: Array  # (H, T_k, d)
    scores: Array  # (H, T_q, T_k): before scaling, -inf where masked
    weights: Array  # (H, T_q, T_k): after the softmax and dropout
    context_heads: Array  # (H, T_q, d): each head's context vectors
    context: Array  # (T_q, D_out): the heads joined, after out_proj if any


Heads = tuple[Array, Array, Array]  # one computation's q, k, v, each split into heads


def _right_settings(setup: Setup) -> Setup:
    return setup


def _project(X: Array, W: Array, b: Array | None) -> Array:
    return stages.projections(X, W, b)  # (T, d_in) @ (d_in, D) -> (T, D)


def _split(Y: Array, heads: int, head_dim: int) -> Array:
    """`view(b, T, heads, head_dim).transpose(1, 2)`: head h owns columns h*d..(h+1)*d."""
    split: Array = Y.reshape(Y.shape[0], heads, head_dim).transpose(1, 0, 2)  # -> (H, T, d)
    return split


def _no_positions(setup: Setup, heads: Heads) -> Heads:
    return heads


def rotate_heads(
    setup: Setup, x: Array, positions: NDArray[np.intp], layout: str | None = None
) -> Array:
    """Each head of x (heads, T, d) turned by RoPE at `positions` (`layout`: another than
    the settings', as a reader's mistake may)."""
    rope = setup.params.rope
    if rope is None:
        return x
    if layout is not None:
        rope = rope._replace(layout=layout)
    return np.stack([rope.rotate(head, positions) for head in x])  # (H, T, d)


def right_positions(
    setup: Setup, heads: Heads, layout: str | None = None, turned: str = "qk"
) -> Heads:
    """QK-norm, then RoPE on q and k (not v), at the positions attention gives them. A
    reader's RoPE mistakes are the same with another `layout`, or other vectors `turned`
    ("qkv": the values too; "q": not the keys)."""
    q, k, v = heads
    params = setup.params
    if params.qk_norm:
        q, k = stages.rms_norm(q), stages.rms_norm(k)
    if params.rope is None:
        return q, k, v
    q_positions, k_positions = positions(params, q.shape[1], k.shape[1])

    def turn(name: str, x: Array, at: NDArray[np.intp]) -> Array:
        return rotate_heads(setup, x, at, layout) if name in turned else x

    return turn("q", q, q_positions), turn("k", k, k_positions), turn("v", v, k_positions)


def _repeat_interleave(kv: Array, group: int) -> Array:
    """[K1, K2] -> [K1, K1, K2, K2]: consecutive query heads share a key/value head."""
    expanded: Array = np.repeat(kv, group, axis=0)  # (G, T, d) -> (H, T, d)
    return expanded


def _scores(q: Array, k: Array) -> Array:
    return stages.scores(q, k)  # (H, T_q, d) @ (H, d, T_k) -> (H, T_q, T_k)


def _no_score_dropout(scores: Array, keep: NDArray[np.bool_] | None, keep_scale: float) -> Array:
    return scores


def _masked(scores: Array, hidden: NDArray[np.bool_]) -> Array:
    return stages.mask(scores, hidden)  # masked_fill(mask, -inf)


def _right_hidden(setup: Setup) -> NDArray[np.bool_]:
    return setup.hidden()


def _right_scale(setup: Setup) -> float:
    return setup.prepared.scale


def _as_computed(masked: Array, factor: float) -> Array:
    return masked


def _softmax(x: Array) -> Array:
    return stages.softmax(x)  # over the keys; a row of every key masked: zeros (SDPA)


def _nothing_after_softmax(weights: Array, hidden: NDArray[np.bool_]) -> Array:
    return weights


def _dropout(weights: Array, keep: NDArray[np.bool_] | None, keep_scale: float) -> Array:
    return stages.dropout(weights, keep, keep_scale)


def _join(context: Array) -> Array:
    """`transpose(1, 2).contiguous().view(b, T, d_out)`: the heads side by side."""
    H, T, d = context.shape
    joined: Array = context.transpose(1, 0, 2).reshape(T, H * d)  # (H, T, d) -> (T, H * d)
    return joined


@dataclass(frozen=True)
class Recipe:
    """The computation, one piece per step, each a small function; the defaults are the
    book's. A mistake replaces one piece."""

    settings: Callable[[Setup], Setup] = _right_settings  # the weights and dropout masks
    project: Callable[[Array, Array, Array | None], Array] = _project  # X @ W + b
    split: Callable[[Array, int, int], Array] = _split  # (T, D) -> (H, T, d)
    positions: Callable[[Setup, Heads], Heads] = right_positions  # QK-norm, RoPE
    expand: Callable[[Array, int], Array] = _repeat_interleave  # (G, T, d) -> (H, T, d)
    scores: Callable[[Array, Array], Array] = _scores  # q @ k.T
    score_dropout: Callable[[Array, NDArray[np.bool_] | None, float], Array] = _no_score_dropout
    hidden: Callable[[Setup], NDArray[np.bool_]] = _right_hidden  # which keys are masked
    mask: Callable[[Array, NDArray[np.bool_]], Array] = _masked  # masked_fill(mask, -inf)
    scale: Callable[[Setup], float] = _right_scale  # 1/sqrt(d_k)
    shown_scores: Callable[[Array, float], Array] = _as_computed  # what "scores" shows
    softmax: Callable[[Array], Array] = _softmax  # over the keys
    after_softmax: Callable[[Array, NDArray[np.bool_]], Array] = _nothing_after_softmax
    dropout: Callable[[Array, NDArray[np.bool_] | None, float], Array] = _dropout
    join: Callable[[Array], Array] = _join  # (H, T, d) -> (T, H * d)


RIGHT = Recipe()

# A reader's numbers put in place of a stage's (attn check's "does this follow?"): the
# stage's array as computed -> the array to carry on with.
Override = Callable[[Array], Array]


def run(recipe: Recipe, setup: Setup, given: dict[str, Override] | None = None) -> Stages:
    """Every stage of `recipe` on `setup`. `given`: a stage's numbers to carry on from
    instead of the computed ones (queries, keys, values, scores, weights, context)."""
    given = given or {}

    def carry(stage: str, array: Array) -> Array:
        return given[stage](array) if stage in given else array

    setup = recipe.settings(setup)
    p = setup.prepared
    H, G, d = setup.heads, setup.kv_heads, setup.head_dim
    projections = setup.projections
    with np.errstate(all="ignore"):
        if projections is None:  # plain attention, or a model's queries, keys and values
            Q, K, V = (np.asarray(a, dtype=setup.dtype) for a in (p.queries, p.keys, p.values))
        else:
            X, source = setup.inputs()
            Q = recipe.project(X, projections.W_query, projections.b_query)  # (T_q, D)
            if projections.W_DKV is not None:  # latent attention: K and V from c_kv
                source = recipe.project(source, projections.W_DKV, projections.b_DKV)
            K = recipe.project(source, projections.W_key, projections.b_key)  # (T_k, G * d)
            V = recipe.project(source, projections.W_value, projections.b_value)
        Q, K, V = carry("queries", Q), carry("keys", K), carry("values", V)
        q, k, v = recipe.split(Q, H, d), recipe.split(K, G, d), recipe.split(V, G, d)
        q_pos, k_pos, v_pos = recipe.positions(setup, (q, k, v))
        k_all, v_all = recipe.expand(k_pos, H // G), recipe.expand(v_pos, H // G)  # (H, T_k, d)
        hidden = recipe.hidden(setup)  # (H or 1, T_q, T_k)
        raw = recipe.score_dropout(recipe.scores(q_pos, k_all), setup.keep, p.keep_scale)
        factor = recipe.scale(setup)
        masked = carry("scores", recipe.mask(raw, hidden))  # (H, T_q, T_k)
        scaled = stages.scale(masked, factor)
        bias = setup.bias()
        if bias is not None:
            scaled = stages.add_mask(scaled, bias)
        weights = recipe.after_softmax(recipe.softmax(scaled), hidden)
        weights = carry("weights", recipe.dropout(weights, setup.keep, p.keep_scale))
        context_heads = stages.context(weights, v_all)  # (H, T_q, T_k) @ (H, T_k, d)
        context = recipe.join(context_heads)  # (T_q, D)
        if projections is not None and projections.W_out is not None:
            context = stages.out_proj(context, projections.W_out, projections.b_out)
        context = carry("context", context)
    return Stages(
        queries=Q,
        keys=K,
        values=V,
        queries_heads=q,
        keys_heads=k,
        values_heads=v,
        keys_expanded=k_all,
        values_expanded=v_all,
        scores=recipe.shown_scores(masked, factor),
        weights=weights,
        context_heads=context_heads,
        context=context,
    )

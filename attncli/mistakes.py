"""The catalogue of mistakes readers make, each a small, named change to one piece of
the right computation (recipe.py), with its fix and the book's section.

`attn check` runs the right recipe and each mistake that can happen with the settings on
the same inputs, weights and dropout masks; a mistake whose numbers are the reader's is
named. A new mistake is one entry of MISTAKES: the piece it changes and how
(`dataclasses.replace(recipe, softmax=...)`). Rotary embeddings' mistakes (split halves
vs interleaved, applied to the values, not applied to the keys) will be an entry each,
replacing the `positions` piece with the mistaken rotation.

Where a mistake empties a row of every key, its softmax gives NaN, as torch's does in
the reader's code.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import stages
from .attention import prepare
from .params import DType, Init, WeightLayout, draw_order, draw_projections
from .recipe import RIGHT, Heads, Recipe, Setup, right_positions

Array = NDArray[Any]


# ---------------------------------------------------------------- the catalogue


class Mistake(NamedTuple):
    """One mistake: a small change to the right recipe, and what to say about it."""

    code: str  # its name in JSON: softmax_dim0
    name: str  # what the reader did, in a phrase
    stage: str  # the stage it changes (a name of stages.STAGES)
    fix: str  # one sentence: what to write instead
    book: str  # the section of the book that shows it right
    applies: Callable[[Setup], bool]  # whether it can happen (and differ) here
    change: Callable[[Recipe], Recipe]
    benign: bool = False  # the numbers are right all the same (rounding, naming)

    def recipe(self, base: Recipe = RIGHT) -> Recipe:
        return self.change(base)

    def pieces(self) -> frozenset[str]:
        """The pieces of the recipe it changes (two mistakes combine if they share none)."""
        changed = self.change(RIGHT)
        return frozenset(
            f.name
            for f in dataclasses.fields(Recipe)
            if getattr(changed, f.name) is not getattr(RIGHT, f.name)
        )


def _rope_other_layout(setup: Setup, heads: Heads) -> Heads:
    rope = setup.params.rope
    assert rope is not None  # applies only with RoPE
    other = "interleaved" if rope.layout == "split" else "split"
    return right_positions(setup, heads, layout=other)


def _rope_on_values(setup: Setup, heads: Heads) -> Heads:
    return right_positions(setup, heads, turned="qkv")


def _rope_not_on_keys(setup: Setup, heads: Heads) -> Heads:
    return right_positions(setup, heads, turned="q")


def _torch_softmax(x: Array, axis: int = -1) -> Array:
    """torch.softmax: a slice of -inf only gives NaN (attn's own softmax gives zeros)."""
    with np.errstate(all="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        exps = np.exp(shifted)
        weights: Array = exps / np.sum(exps, axis=axis, keepdims=True)
    return weights


def _softmax_over_queries(x: Array) -> Array:
    return _torch_softmax(x, axis=-2)  # (H, T_q, T_k): each column sums to 1


def _diagonal_too(setup: Setup) -> NDArray[np.bool_]:
    """The causal mask of `torch.triu(ones, diagonal=0)`: the query's own key too."""
    p = setup.prepared
    q_pos = np.arange(p.n_queries)[:, np.newaxis] + p.mask.offset
    own = q_pos == np.arange(p.n_keys)[np.newaxis, :]  # (T_q, T_k)
    hidden: NDArray[np.bool_] = setup.hidden() | own
    return hidden


def _filled_with_zero(scores: Array, hidden: NDArray[np.bool_]) -> Array:
    filled: Array = np.where(hidden, scores.dtype.type(0), scores)  # masked_fill(mask, 0)
    return filled


def _unmasked(scores: Array, hidden: NDArray[np.bool_]) -> Array:
    return scores


def _zeroed_not_renormalised(weights: Array, hidden: NDArray[np.bool_]) -> Array:
    zeroed: Array = np.where(hidden, weights.dtype.type(0), weights)  # attn_weights * tril
    return zeroed


def _dropout_unscaled(weights: Array, keep: NDArray[np.bool_] | None, keep_scale: float) -> Array:
    return stages.dropout(weights, keep, 1.0)


def _no_dropout(weights: Array, keep: NDArray[np.bool_] | None, keep_scale: float) -> Array:
    return weights


def _dropout_on_scores(scores: Array, keep: NDArray[np.bool_] | None, keep_scale: float) -> Array:
    return stages.dropout(scores, keep, keep_scale)


def _split_without_transpose(Y: Array, heads: int, head_dim: int) -> Array:
    """`view(b, heads, T, head_dim)`: the right shape, the rows of the wrong tokens."""
    split: Array = Y.reshape(heads, Y.shape[0], head_dim)  # (T, H * d) -> (H, T, d)
    return split


def _join_without_transpose(context: Array) -> Array:
    """`context.contiguous().view(b, T, d_out)` without transposing the heads back."""
    H, T, d = context.shape
    joined: Array = context.reshape(T, H * d)  # (H, T, d) -> (T, H * d), scrambled
    return joined


def _repeat(kv: Array, group: int) -> Array:
    """torch's `repeat`: [K1, K2] -> [K1, K2, K1, K2]."""
    tiled: Array = np.tile(kv, (group, 1, 1))  # (G, T, d) -> (H, T, d)
    return tiled


def _keys_at_queries(q: Array, k: Array) -> Array:
    return stages.scores(k, q)  # keys @ queries.T: (H, T_k, T_q)


def _scaled(masked: Array, factor: float) -> Array:
    return stages.scale(masked, factor)


def _scale_none(setup: Setup) -> float:
    return 1.0


def _scale_d_in(setup: Setup) -> float:
    return 1.0 / math.sqrt(setup.prepared.embeddings.d_in)


def _scale_d_out(setup: Setup) -> float:
    return 1.0 / math.sqrt(setup.prepared.layout.width)


def _scale_d(setup: Setup) -> float:
    return 1.0 / setup.head_dim


def _float32(setup: Setup) -> Setup:
    """The whole computation in float32, as torch's default dtype computes it."""
    return dataclasses.replace(setup, dtype=np.dtype(np.float32))


def _with_bias(setup: Setup, bias: bool) -> Setup:
    """The weights with qkv biases drawn, or not: nn.Linear(..., bias=bias) draws each
    bias right after its weight, so every later draw (dropout's too) moves."""
    projections = setup.projections
    assert projections is not None
    if not setup.seeded:  # a weights file: its biases left out
        return dataclasses.replace(
            setup,
            projections=dataclasses.replace(projections, b_query=None, b_key=None, b_value=None),
        )
    p = setup.prepared
    params = dataclasses.replace(p.params, qkv_bias=bias)
    again = Setup.of(prepare(p.embeddings, params, kv=p.kv))
    return dataclasses.replace(setup, projections=again.projections, keep=again.keep)


def _drawn_in_order(order: tuple[str, ...]) -> Callable[[Setup], Setup]:
    def settings(setup: Setup) -> Setup:
        # the same draws, so the dropout masks after them are the same too
        projections, _ = draw_projections(setup.prepared.embeddings.d_in, setup.params, order)
        return dataclasses.replace(setup, projections=projections)

    return settings


def _as_applied_transposed(setup: Setup) -> Setup:
    """W_query, W_key, W_value applied transposed. torch.rand(d_out, d_in) draws the same
    numbers as torch.rand(d_in, d_out), row by row: x @ W.T of the one is x @ (the
    other's numbers read in the other shape)."""
    projections = setup.projections
    assert projections is not None
    d_out = setup.params.d_out if setup.seeded else projections.d_out
    changed = {}
    for name in ("W_query", "W_key", "W_value"):
        W = getattr(projections, name)  # (fan_in, width), modules side by side
        if setup.seeded and projections.layout is WeightLayout.XW:
            blocks = np.split(W, W.shape[1] // min(d_out, W.shape[1]), axis=1)
            changed[name] = np.concatenate(
                [block.reshape(-1).reshape(block.shape[::-1]).T for block in blocks], axis=1
            )
        else:
            changed[name] = W.T
    transposed = dataclasses.replace(
        projections, W_query=changed["W_query"], W_key=changed["W_key"], W_value=changed["W_value"]
    )
    return dataclasses.replace(setup, projections=transposed)


def _square(setup: Setup) -> bool:
    projections = setup.projections
    return projections is not None and all(
        getattr(projections, name).shape[0] == getattr(projections, name).shape[1]
        for name in ("W_query", "W_key", "W_value")
    )


def _layout(setup: Setup) -> WeightLayout | None:
    return setup.projections.layout if setup.projections is not None else None


def _masks_keys(setup: Setup) -> bool:
    return setup.prepared.mask.hides_any


def _drops(setup: Setup) -> bool:
    return setup.keep is not None and 0.0 < setup.params.dropout < 1.0


def _scaled_by_default(setup: Setup) -> bool:
    """Whether the scale is the module's own 1/sqrt(head_dim) (not given by --scale)."""
    return setup.prepared.projected and setup.params.scale is None


_BOOK_ORDER = ("W_query", "W_key", "W_value")
_ORDER_FIX = (
    "create W_query, W_key and W_value in the module's order (the book's: W_query, W_key, "
    "W_value; GroupedQueryAttention's: W_key, W_value, W_query): the seed fixes the "
    "sequence of numbers, the order of creation which matrix gets which"
)


def _order_mistake(order: tuple[str, ...]) -> Mistake:
    short = "".join(name[2] for name in order)  # W_query -> q
    shown = ", ".join(order)

    def applies(setup: Setup) -> bool:
        if not setup.seeded or setup.params.latent:
            return False
        return _module_names(setup) != order

    return Mistake(
        f"order_{short}",
        f"W_query, W_key, W_value created in the order {shown}",
        "projections",
        _ORDER_FIX,
        "3.4.1",
        applies,
        lambda r: dataclasses.replace(r, settings=_drawn_in_order(order)),
    )


def _module_names(setup: Setup) -> tuple[str, ...]:
    """The names of one module's projections in the order it draws them."""
    return tuple(
        name for name, _, _ in draw_order(setup.prepared.embeddings.d_in, setup.params)[:3]
    )


MISTAKES: tuple[Mistake, ...] = (
    *(_order_mistake(order) for order in itertools.permutations(_BOOK_ORDER)),
    Mistake(
        "x_at_W_T",
        "x @ W.T where x @ W was meant (W drawn as torch.rand(d_out, d_in))",
        "projections",
        "draw W_query = torch.nn.Parameter(torch.rand(d_in, d_out)) and compute x @ W_query, "
        "as section 3.4.1 does",
        "3.4.1",
        lambda s: (
            _layout(s) is WeightLayout.XW
            and not s.params.latent
            and ((s.seeded and s.params.init is Init.RAND) or _square(s))
        ),
        lambda r: dataclasses.replace(r, settings=_as_applied_transposed),
    ),
    Mistake(
        "x_at_W",
        "x @ W where x @ W.T was meant (nn.Linear's weight is (d_out, d_in))",
        "projections",
        "apply the layer, W_query(x), which computes x @ W_query.weight.T (+ bias), as "
        "section 3.4.2 does",
        "3.4.2",
        lambda s: _layout(s) is WeightLayout.LINEAR and not s.params.latent and _square(s),
        lambda r: dataclasses.replace(r, settings=_as_applied_transposed),
    ),
    Mistake(
        "bias_missing",
        "W_query, W_key, W_value without their biases",
        "projections",
        "give the layers their biases: nn.Linear(d_in, d_out, bias=qkv_bias) with qkv_bias=True",
        "3.4.2",
        lambda s: s.projections is not None and s.projections.b_query is not None,
        lambda r: dataclasses.replace(r, settings=lambda s: _with_bias(s, False)),
    ),
    Mistake(
        "bias_extra",
        "W_query, W_key, W_value with biases (nn.Linear's default bias=True)",
        "projections",
        "write nn.Linear(d_in, d_out, bias=qkv_bias) with the book's qkv_bias=False: "
        "nn.Linear has a bias unless told otherwise, and drawing it moves every later draw",
        "3.4.2",
        lambda s: (
            s.seeded
            and s.params.init is Init.LINEAR
            and not s.params.qkv_bias
            and not s.params.latent
        ),
        lambda r: dataclasses.replace(r, settings=lambda s: _with_bias(s, True)),
    ),
    Mistake(
        "split_without_transpose",
        "heads split with view(b, num_heads, num_tokens, head_dim), without transpose(1, 2)",
        "projections",
        "split as view(b, num_tokens, num_heads, head_dim), then .transpose(1, 2): a view "
        "straight to (b, num_heads, num_tokens, head_dim) gives each head other tokens' numbers",
        "3.6.2",
        lambda s: s.fused_heads,
        lambda r: dataclasses.replace(r, split=_split_without_transpose),
    ),
    Mistake(
        "join_without_transpose",
        "heads joined with context_vec.contiguous().view(b, num_tokens, d_out), without "
        "transpose(1, 2)",
        "out_proj",
        "transpose the heads back first: context_vec.transpose(1, 2).contiguous().view(b, "
        "num_tokens, d_out)",
        "3.6.2",
        lambda s: s.fused_heads,
        lambda r: dataclasses.replace(r, join=_join_without_transpose),
    ),
    Mistake(
        "repeat_not_interleave",
        "key/value heads shared with repeat where repeat_interleave was meant",
        "scores",
        "keys.repeat_interleave(group_size, dim=1): consecutive query heads share a key/value "
        "head ([K1, K1, K2, K2]); repeat gives [K1, K2, K1, K2]",
        "ch04/04_gqa",
        lambda s: s.kv_heads > 1 and s.heads > s.kv_heads,
        lambda r: dataclasses.replace(r, expand=_repeat),
    ),
    Mistake(
        "keys_at_queries",
        "keys @ queries.T where queries @ keys.T was meant",
        "scores",
        "attn_scores = queries @ keys.T: row i holds query i's dot product with every key",
        "3.4.1",
        lambda s: s.prepared.n_queries == s.prepared.n_keys,
        lambda r: dataclasses.replace(r, scores=_keys_at_queries),
    ),
    Mistake(
        "no_scaling",
        "scores not scaled",
        "scale",
        "divide the scores by keys.shape[-1] ** 0.5 before the softmax",
        "3.4.1",
        lambda s: _scaled_by_default(s) and s.prepared.scale != 1.0,
        lambda r: dataclasses.replace(r, scale=_scale_none),
    ),
    Mistake(
        "scaled_by_d_in",
        "scores scaled by 1/√d_in (the inputs' size) instead of 1/√d_k (the keys')",
        "scale",
        "divide by keys.shape[-1] ** 0.5, the keys' size d_k, not the inputs'",
        "3.4.1",
        lambda s: _scaled_by_default(s) and s.projections is not None,
        lambda r: dataclasses.replace(r, scale=_scale_d_in),
    ),
    Mistake(
        "scaled_in_plain",
        "scores scaled by 1/√d_in, which plain attention does not do",
        "scale",
        "leave the scores of section 3.3 unscaled: the scaling comes with the trainable "
        "weights of section 3.4",
        "3.3.1",
        lambda s: not s.prepared.projected and s.params.scale is None,
        lambda r: dataclasses.replace(r, scale=_scale_d_in),
    ),
    Mistake(
        "scaled_by_d_out",
        "scores scaled by 1/√d_out instead of 1/√head_dim",
        "scale",
        "divide by keys.shape[-1] ** 0.5 after splitting the heads: head_dim = d_out / num_heads",
        "3.6.2",
        lambda s: _scaled_by_default(s) and s.fused_heads,
        lambda r: dataclasses.replace(r, scale=_scale_d_out),
    ),
    Mistake(
        "scaled_by_d",
        "scores divided by d_k instead of √d_k",
        "scale",
        "divide by the square root: attn_scores / keys.shape[-1] ** 0.5",
        "3.4.1",
        lambda s: _scaled_by_default(s) and s.head_dim != 1,
        lambda r: dataclasses.replace(r, scale=_scale_d),
    ),
    Mistake(
        "scores_scaled",
        "scores given after scaling (attn_scores / √d_k)",
        "scale",
        "nothing to fix: attn scores, like the book's attn_scores, are the scores before scaling",
        "3.4.1",
        lambda s: s.prepared.scale != 1.0,
        lambda r: dataclasses.replace(r, shown_scores=_scaled),
        benign=True,
    ),
    Mistake(
        "diagonal_masked",
        "the diagonal masked too: torch.triu(ones, diagonal=0)",
        "mask",
        "mask with torch.triu(torch.ones(T, T), diagonal=1): a token may attend to itself",
        "3.5.1",
        lambda s: s.prepared.mask.causal,
        lambda r: dataclasses.replace(r, hidden=_diagonal_too, softmax=_torch_softmax),
    ),
    Mistake(
        "mask_missing",
        "no mask: every key attended to",
        "mask",
        "mask the future keys: attn_scores.masked_fill(mask.bool(), -torch.inf)",
        "3.5.1",
        _masks_keys,
        lambda r: dataclasses.replace(r, mask=_unmasked),
    ),
    Mistake(
        "masked_with_zero",
        "masked with 0 instead of -inf: masked_fill(mask, 0)",
        "mask",
        "fill with -torch.inf, whose exp is 0, so the softmax gives the masked keys no weight "
        "(a 0 score still gets some)",
        "3.5.1",
        _masks_keys,
        lambda r: dataclasses.replace(r, mask=_filled_with_zero),
    ),
    Mistake(
        "mask_after_softmax",
        "the softmax before the mask, its rows not renormalised",
        "mask",
        "mask the scores with -inf before the softmax, or divide each masked row by its sum "
        "(masked_simple_norm)",
        "3.5.1",
        _masks_keys,
        lambda r: dataclasses.replace(r, mask=_unmasked, after_softmax=_zeroed_not_renormalised),
    ),
    Mistake(
        "softmax_dim0",
        "softmax over dim 0, the queries (dim=1 of a batch): each column sums to 1, not each row",
        "softmax",
        "normalise over the keys: torch.softmax(attn_scores, dim=-1)",
        "3.3.1",
        lambda s: True,
        lambda r: dataclasses.replace(r, softmax=_softmax_over_queries),
    ),
    Mistake(
        "dropout_not_rescaled",
        "dropout without its 1/(1 - p) rescaling",
        "dropout",
        "use nn.Dropout(p), which scales the weights it keeps by 1/(1 - p); a mask alone "
        "leaves every row summing to less than 1",
        "3.5.2",
        _drops,
        lambda r: dataclasses.replace(r, dropout=_dropout_unscaled),
    ),
    Mistake(
        "dropout_on_scores",
        "dropout applied to the scores instead of the weights",
        "dropout",
        "apply self.dropout to attn_weights, after the softmax",
        "3.5.2",
        _drops,
        lambda r: dataclasses.replace(r, score_dropout=_dropout_on_scores, dropout=_no_dropout),
    ),
    Mistake(
        "rope_other_layout",
        "RoPE's other layout: interleaved pairs where split halves were meant, or the reverse",
        "positions",
        "turn the dimension pairs the weights were trained with: split halves "
        "[x1, x2] (Hugging Face, the book's llama3.py) or interleaved (x_2k, x_2k+1) "
        "(Meta's original); --rope-layout says which attn used",
        "ch05/07_gpt_to_llama",
        lambda s: s.params.rope is not None,
        lambda r: dataclasses.replace(r, positions=_rope_other_layout),
    ),
    Mistake(
        "rope_on_values",
        "RoPE applied to the values too",
        "positions",
        "rotate the queries and keys only: apply_rope(queries, ...) and apply_rope(keys, ...)",
        "ch05/07_gpt_to_llama",
        lambda s: s.params.rope is not None,
        lambda r: dataclasses.replace(r, positions=_rope_on_values),
    ),
    Mistake(
        "rope_not_on_keys",
        "RoPE applied to the queries but not to the keys",
        "positions",
        "rotate the keys as well as the queries, at their own positions",
        "ch05/07_gpt_to_llama",
        lambda s: s.params.rope is not None,
        lambda r: dataclasses.replace(r, positions=_rope_not_on_keys),
    ),
    Mistake(
        "float32",
        "computed in float32 (torch's default dtype)",
        "projections",
        "nothing to fix: the numbers are right to float32's precision (--dtype float32 "
        "computes as torch does)",
        "3.3",
        lambda s: s.dtype == np.dtype(np.float64) and s.params.dtype is DType.FLOAT64,
        lambda r: dataclasses.replace(r, settings=_float32),
        benign=True,
    ),
)


def applicable(setup: Setup) -> list[Mistake]:
    """The mistakes that can happen with these settings."""
    return [mistake for mistake in MISTAKES if mistake.applies(setup)]


def combined(first: Mistake, second: Mistake) -> Recipe:
    """Both mistakes at once (they change different pieces)."""
    return second.change(first.change(RIGHT))

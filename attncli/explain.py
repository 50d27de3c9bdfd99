"""`attn explain`: one query's attention, step by step, in the book's order.

`walkthrough(result)` gathers every intermediate of a one-query AttentionResult:
the projections, each dot product, the scaling, the mask, the softmax's exp and sum,
the dropout, the weighted sum of values and (several heads) the output projection.
`to_json` gives them to scripts; render_explain.py draws them for people.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import stages
from .attention import AttentionResult, positions
from .params import Projections, WeightLayout
from .rng import dropout_scale


@dataclass(frozen=True)
class HeadSteps:
    """One head's path from the query to its context vector (T keys, d = head_dim)."""

    query: NDArray[np.floating[Any]]  # (d,)
    keys: NDArray[np.floating[Any]]  # (T, d)
    values: NDArray[np.floating[Any]]  # (T, d)
    scores: NDArray[np.floating[Any]]  # (T,) q · k_j, unscaled, before the mask
    scaled: NDArray[np.floating[Any]]  # (T,) scores * scale, -inf where masked
    masked: NDArray[np.bool_]  # (T,)
    added: NDArray[np.floating[Any]] | None  # (T,) what a float mask file adds, or None
    modified: NDArray[np.floating[Any]] | None  # (T,) scaled, soft-capped, ALiBi'd; or None
    shifted: NDArray[np.floating[Any]]  # (T,) scaled - max: what exp() sees
    exps: NDArray[np.floating[Any]]  # (T,)
    total: float  # sum of exps (and the sink's, with a sink)
    sink_share: float | None  # the share of the softmax that went to the sink, or None
    weights: NDArray[np.floating[Any]]  # (T,) softmax
    keep: NDArray[np.bool_] | None  # (T,) dropout's keep mask
    used: NDArray[np.floating[Any]]  # (T,) the weights after dropout: what multiplies the values
    context: NDArray[np.floating[Any]]  # (d,)


@dataclass(frozen=True)
class Walkthrough:
    result: AttentionResult
    query_index: int
    heads: list[HeadSteps]

    @property
    def token(self) -> str:
        return self.result.tokens[self.query_index]

    @property
    def key_index(self) -> int:
        """The key lists' row to show the query beside: its own key, or with other
        tokens' keys (cross-attention) the last one a bottom-right causal mask lets it see."""
        n_queries, n_keys = len(self.result.tokens), len(self.result.key_tokens)
        return min(max(self.query_index + n_keys - n_queries, 0), n_keys - 1)


def walkthrough(result: AttentionResult) -> Walkthrough:
    """The steps of a result computed for one query (compute(..., query=i)): the
    stages of stages.py run again for that query, keeping what each gives."""
    if result.query_index is None:
        raise ValueError("explain needs a result computed for one query")
    query_index = result.query_index
    layout = result.layout
    queries = layout.split(result.queries)  # (1, D) -> (H, 1, d)
    keys = layout.split(result.keys)  # (T, D) -> (H_kv, T, d)
    values = layout.split(result.values)  # (T, D) -> (H_kv, T, d)
    contexts = layout.split(result.heads_context)[:, 0]  # (1, D) -> (H, d)
    row, n_keys = np.array([query_index]), keys.shape[1]
    heads = []
    for h in range(layout.heads):
        g = layout.kv_head(h)
        hidden = result.mask.hidden(row, 0, n_keys, h)[0]  # (T,)
        bias = result.mask.bias_for(row, 0, n_keys, h)  # (1, T) or None
        attn_scores = stages.scores(queries[h], keys[g])[0]  # (1, d) @ (d, T) -> (T,)
        scaled = stages.scale(attn_scores, result.scale)
        modifiers, modified = result.prepared.modifiers, None
        if modifiers.any:  # as the engine: positions aligned as the mask aligns them
            key_positions = np.arange(n_keys)
            modified = modifiers.apply(
                scaled[np.newaxis], row + result.mask.offset, key_positions, h
            )[0]
            scaled = modified
        if bias is not None:
            scaled = stages.add_mask(scaled, bias[0])
        masked = stages.mask(scaled, hidden)
        sink = modifiers.sink(h)
        top = masked.max() if sink is None else max(masked.max(), sink)
        shifted = masked - (top if np.isfinite(top) else 0)  # every key masked: exps all 0
        exps = np.exp(shifted)
        total = float(exps.sum())
        sink_share = None
        if sink is not None:
            sink_exp = float(np.exp(sink - top))
            total += sink_exp
            sink_share = sink_exp / total
        keep = None if result.dropout_keep is None else result.dropout_keep[h, 0]
        heads.append(
            HeadSteps(
                query=queries[h, 0],
                keys=keys[g],
                values=values[g],
                scores=attn_scores,
                scaled=masked,
                masked=hidden,
                added=None if bias is None else bias[0],
                modified=modified,
                shifted=shifted,
                exps=exps,
                total=total,
                sink_share=sink_share,
                weights=result.softmax_weights[h, 0],
                keep=keep,
                used=result.attn_weights[h, 0],
                context=contexts[h],
            )
        )
    return Walkthrough(result, query_index, heads)


def _numbers(values: NDArray[Any]) -> Any:
    """Nested lists for JSON: -inf (a masked score) becomes null, booleans stay."""
    if values.dtype == np.bool_:
        return values.tolist()
    listed = values.tolist()

    def clean(item: Any) -> Any:
        if isinstance(item, list):
            return [clean(i) for i in item]
        return item if np.isfinite(item) else None

    return clean(listed)


def steps_dict(walk: Walkthrough) -> dict[str, Any]:
    """Every step as plain data, named as in the book, stage by stage (stages.STAGES);
    one entry per head in the per-head steps when there are several heads."""
    matrix = walk.result.embeddings.matrix
    steps: dict[str, Any] = {
        "inputs": _numbers(matrix),
        "x_query": _numbers(matrix[walk.query_index]),
    }
    for stage in stages.STAGES:
        steps.update(STEP_DATA[stage.name](walk))
    return steps


def _one_or_all(values: list[Any]) -> Any:
    """A value per head: a list with several heads, the value itself with one."""
    return values if len(values) > 1 else values[0]


def _per_head(walk: Walkthrough, pick: Callable[[HeadSteps], Any]) -> Any:
    picked = [pick(head) for head in walk.heads]
    return picked if len(picked) > 1 else picked[0]


def _projections(walk: Walkthrough) -> dict[str, Any]:
    result = walk.result
    data: dict[str, Any] = {}
    projections = result.projections
    if projections is not None:
        names = weight_names(projections)
        data["trainable_weights"] = {
            "layout": projections.layout.value,
            **{
                shown: _numbers(_as_written(getattr(projections, name), projections.layout))
                for name, shown in names.items()
            },
            **{
                "b" + shown[1:]: _numbers(getattr(projections, "b" + name[1:]))
                for name, shown in names.items()
                if getattr(projections, "b" + name[1:]) is not None
            },
        }
    if result.prepared.latent is not None:  # c_kv: what the keys and values come from
        data["latent"] = _numbers(result.prepared.latent)
    data["query"] = _numbers(result.queries[0])
    data["keys"] = _numbers(result.keys)
    data["values"] = _numbers(result.values)
    return data


def weight_names(projections: Projections) -> dict[str, str]:
    """The projections' fields and the names their module gives them: W_key is W_UK in
    a latent module (it acts on the latent, not the input).

    Ordered as the module draws them."""
    if projections.W_DKV is not None:
        return {"W_query": "W_query", "W_DKV": "W_DKV", "W_key": "W_UK", "W_value": "W_UV"}
    if projections.W_gate is not None:  # GatedMultiHeadAttention's order
        return {"W_query": "W_query", "W_gate": "W_gate", "W_key": "W_key", "W_value": "W_value"}
    return {"W_query": "W_query", "W_key": "W_key", "W_value": "W_value"}


def _scores(walk: Walkthrough) -> dict[str, Any]:
    return {"scores": _per_head(walk, lambda head: _numbers(head.scores))}


def _scale(walk: Walkthrough) -> dict[str, Any]:
    # the scaled scores the mask keeps (the ones it hides are null)
    kept = _per_head(walk, lambda head: _numbers(np.where(head.masked, np.nan, head.scaled)))
    return {"scale": walk.result.scale, "scaled": kept}


def _mask(walk: Walkthrough) -> dict[str, Any]:
    mask = walk.result.mask
    if not mask.hides_any:
        return {}
    step: dict[str, Any] = {
        "masked": _per_head(walk, lambda head: _numbers(head.masked))
        if mask.per_head
        else _numbers(walk.heads[0].masked)
    }
    if mask.bias is not None:  # a float mask file: added before the masking
        step["added"] = _per_head(walk, lambda head: _numbers(_required(head.added)))
    return step


def _required(values: NDArray[Any] | None) -> NDArray[Any]:
    assert values is not None  # a float mask gives every head its addition
    return values


def _softmax(walk: Walkthrough) -> dict[str, Any]:
    softmax: dict[str, Any] = {
        "max": _per_head(walk, lambda head: _numbers(np.max(head.scaled))),
        "exp": _per_head(walk, lambda head: _numbers(head.exps)),
        "sum": _per_head(walk, lambda head: head.total),
    }
    sinks = walk.result.prepared.modifiers.sinks
    if sinks is not None:  # the sink's logit joined the sum; its share went nowhere
        logits = [x if np.isfinite(x) else None for x in sinks[: len(walk.heads)]]
        softmax["sink_logit"] = _one_or_all(logits)  # null: -inf, no sink
        softmax["sink_share"] = _per_head(walk, lambda head: head.sink_share)
    return {"softmax": softmax, "weights": _per_head(walk, lambda head: _numbers(head.weights))}


def _modifiers(walk: Walkthrough) -> dict[str, Any]:
    """Soft-capping and ALiBi: the scaled scores as they go on to the mask."""
    modifiers = walk.result.prepared.modifiers
    if modifiers.softcap is None and modifiers.alibi is None:
        return {}
    step: dict[str, Any] = {"softcap": modifiers.softcap}
    if modifiers.alibi is not None:
        step["alibi_slope"] = _one_or_all(list(modifiers.alibi[: len(walk.heads)]))
    step["modified"] = _per_head(walk, lambda head: _numbers(_required(head.modified)))
    return step


def _dropout(walk: Walkthrough) -> dict[str, Any]:
    result = walk.result
    if result.dropout_keep is None:
        return {}
    return {
        "dropout": {
            "p": result.params.dropout,
            "scale": dropout_scale(result.params.dropout),
            "keep": _per_head(walk, lambda head: None if head.keep is None else head.keep.tolist()),
            "weights": _per_head(walk, lambda head: _numbers(head.used)),
        }
    }


def _context(walk: Walkthrough) -> dict[str, Any]:
    data = {"context": _per_head(walk, lambda head: _numbers(head.context))}
    if len(walk.heads) > 1:
        data["heads_context"] = _numbers(walk.result.heads_context[0])
    return data


def _out_proj(walk: Walkthrough) -> dict[str, Any]:
    result = walk.result
    data: dict[str, Any] = {}
    projections = result.projections
    if projections is not None and projections.W_out is not None:
        data["out_proj"] = {
            "weight": _numbers(_as_written(projections.W_out, projections.layout)),
            "bias": _numbers(projections.b_out) if projections.b_out is not None else None,
        }
    data["output"] = _numbers(result.context_vecs[0])
    return data


def _qk_norm(walk: Walkthrough) -> dict[str, Any]:
    """QK-norm: the query and keys before and after each head's RMSNorm."""
    result = walk.result
    unnormed = result.prepared.unnormed
    if unnormed is None:
        return {}
    queries_before, keys_before = unnormed
    queries_after, keys_after = result.prepared.before_rotation
    i = walk.query_index
    return {
        "query_before_norm": _numbers(queries_before[i]),
        "keys_before_norm": _numbers(keys_before),
        "query_after_norm": _numbers(queries_after[i]),
        "keys_after_norm": _numbers(keys_after),
    }


def _positions(walk: Walkthrough) -> dict[str, Any]:
    """RoPE: the positions, and the query and keys before and after their rotation."""
    result = walk.result
    prepared = result.prepared
    rope = result.params.rope
    if prepared.unrotated is None or rope is None:
        return {}
    queries_before, keys_before = prepared.unrotated
    query_positions, key_positions = positions(result.params, prepared.n_queries, prepared.n_keys)
    i = walk.query_index
    return {
        "rope": prepared.settings()["rope"],
        "query_position": int(query_positions[i]),
        "key_positions": key_positions.tolist(),
        "query_before_rope": _numbers(queries_before[i]),
        "keys_before_rope": _numbers(keys_before),
        "query_after_rope": _numbers(result.queries[0]),
        "keys_after_rope": _numbers(result.keys),
    }


def _gate(walk: Walkthrough) -> dict[str, Any]:
    """GatedMultiHeadAttention: the heads' context vectors times sigmoid(x @ W_gate)."""
    result = walk.result
    logits = result.prepared.gate_logits
    if logits is None:
        return {}
    row = logits[walk.query_index]  # (D,)
    return {
        "gate_logits": _numbers(row),
        "gate": _numbers(stages.gate(np.ones_like(row), row)),
        "gated": _numbers(stages.gate(result.heads_context[0], row)),
    }


def _nothing_yet(walk: Walkthrough) -> dict[str, Any]:
    return {}


# What each stage adds to `steps`, in the order of stages.STAGES.
STEP_DATA: dict[str, Callable[[Walkthrough], dict[str, Any]]] = {
    "projections": _projections,
    "qk_norm": _qk_norm,
    "positions": _positions,
    "scores": _scores,
    "scale": _scale,
    "modifiers": _modifiers,
    "mask": _mask,
    "softmax": _softmax,
    "dropout": _dropout,
    "context": _context,
    "gate": _gate,
    "out_proj": _out_proj,
}


def _as_written(
    applied: NDArray[np.floating[Any]], layout: WeightLayout
) -> NDArray[np.floating[Any]]:
    """A weight as the book (or its file) writes it: nn.Linear's (d_out, d_in)."""
    return applied.T if layout is WeightLayout.LINEAR else applied


def to_json(walk: Walkthrough) -> str:
    result = walk.result
    document = {
        "command": "explain",
        "mode": result.params.mode.value,
        "tokens": list(result.tokens),
        **({"key_tokens": list(result.key_tokens)} if result.prepared.kv is not None else {}),
        "query": {"index": walk.query_index, "token": walk.token},
        "params": result.prepared.settings(),
        "steps": steps_dict(walk),
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"

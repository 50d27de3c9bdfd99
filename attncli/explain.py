"""`attn explain`: one query's attention, step by step, in the book's order.

`walkthrough(result)` gathers every intermediate of a one-query AttentionResult:
the projections, each dot product, the scaling, the mask, the softmax's exp and sum,
the dropout, the weighted sum of values and (several heads) the output projection.
`to_json` gives them to scripts; render_explain.py draws them for people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .modes import AttentionResult, Layout
from .render import params_dict
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
    shifted: NDArray[np.floating[Any]]  # (T,) scaled - max: what exp() sees
    exps: NDArray[np.floating[Any]]  # (T,)
    total: float  # sum of exps
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


def walkthrough(result: AttentionResult) -> Walkthrough:
    """The steps of a result computed for one query (compute(..., query=i))."""
    if result.query_index is None:
        raise ValueError("explain needs a result computed for one query")
    query_index = result.query_index
    layout = result.layout
    queries = layout.split(result.queries)[:, 0]  # (1, D) -> (H, d)
    keys = layout.split(result.keys)  # (H_kv, T, d)
    values = layout.split(result.values)  # (H_kv, T, d)
    contexts = layout.split(result.heads_context)[:, 0]  # (1, D) -> (H, d)
    masked = result.mask.hidden(np.array([query_index]), 0, len(result.tokens))[0]  # (T,)
    heads = []
    for h in range(layout.heads):
        g = layout.kv_head(h)
        scores = keys[g] @ queries[h]  # (T, d) @ (d,) -> (T,)
        scaled = np.where(masked, -np.inf, scores * result.scale)
        shifted = scaled - scaled.max()
        exps = np.exp(shifted)
        keep = None if result.dropout_keep is None else result.dropout_keep[h, 0]
        heads.append(
            HeadSteps(
                query=queries[h],
                keys=keys[g],
                values=values[g],
                scores=scores,
                scaled=scaled,
                masked=masked,
                shifted=shifted,
                exps=exps,
                total=float(exps.sum()),
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
    """Every step as plain data, named as in the book; one entry per head in the
    per-head steps when there are several heads."""
    result = walk.result
    many = len(walk.heads) > 1

    def per_head(pick: Any) -> Any:
        picked = [pick(head) for head in walk.heads]
        return picked if many else picked[0]

    steps: dict[str, Any] = {
        "inputs": _numbers(result.embeddings.matrix),
        "x_query": _numbers(result.embeddings.matrix[walk.query_index]),
    }
    weights = result.weights
    if weights is not None:
        steps["trainable_weights"] = {
            "layout": weights.layout.value,
            **{
                name: _numbers(_as_written(getattr(weights, name), weights.layout))
                for name in ("W_query", "W_key", "W_value")
            },
            **{
                name: _numbers(getattr(weights, name))
                for name in ("b_query", "b_key", "b_value")
                if getattr(weights, name) is not None
            },
        }
    steps["query"] = _numbers(result.queries[0])
    steps["keys"] = _numbers(result.keys)
    steps["values"] = _numbers(result.values)
    steps["scores"] = per_head(lambda head: _numbers(head.scores))
    steps["scale"] = result.scale
    steps["scaled"] = per_head(lambda head: _numbers(np.where(head.masked, np.nan, head.scaled)))
    if result.mask.hides_any:
        steps["masked"] = _numbers(walk.heads[0].masked)
    steps["softmax"] = {
        "max": per_head(lambda head: float(np.max(head.scaled))),
        "exp": per_head(lambda head: _numbers(head.exps)),
        "sum": per_head(lambda head: head.total),
    }
    steps["weights"] = per_head(lambda head: _numbers(head.weights))
    if result.dropout_keep is not None:
        steps["dropout"] = {
            "p": result.params.dropout,
            "scale": dropout_scale(result.params.dropout),
            "keep": per_head(lambda head: _numbers(head.keep)),
            "weights": per_head(lambda head: _numbers(head.used)),
        }
    steps["context"] = per_head(lambda head: _numbers(head.context))
    if many:
        steps["heads_context"] = _numbers(result.heads_context[0])
    if weights is not None and weights.W_out is not None:
        steps["out_proj"] = {
            "weight": _numbers(_as_written(weights.W_out, weights.layout)),
            "bias": _numbers(weights.b_out) if weights.b_out is not None else None,
        }
    steps["output"] = _numbers(result.context_vecs[0])
    return steps


def _as_written(applied: NDArray[np.floating[Any]], layout: Layout) -> NDArray[np.floating[Any]]:
    """A weight as the book (or its file) writes it: nn.Linear's (d_out, d_in)."""
    return applied.T if layout is Layout.LINEAR else applied


def to_json(walk: Walkthrough) -> str:
    result = walk.result
    document = {
        "command": "explain",
        "mode": result.params.mode.value,
        "tokens": list(result.tokens),
        "query": {"index": walk.query_index, "token": walk.token},
        "params": params_dict(result),
        "steps": steps_dict(walk),
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"

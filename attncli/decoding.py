"""KV-cache decoding, step by step, as the book's cached attention classes run it
(ch04/03_kv-cache MultiHeadAttention, ch04/04_gqa, ch04/05_mla, ch04/06_swa, each
called with `use_cache=True`).

The tokens go in a few at a time: `schedule` says which tokens [start, stop) each step
feeds (the first `prefill` at once, then `chunk` a step). A step's new queries attend
to the keys the cache held before it and to the step's own keys; the cache then keeps:

- every key and value so far (MultiHeadAttention; GroupedQueryAttention caches only
  its G key/value heads): 2 x kv_heads x head_dim numbers a token;
- the latent c_kv alone (MultiHeadLatentAttention), its keys and values re-projected
  from the cached latents at every step: latent_dim numbers a token;
- with a sliding window of W, the last W tokens only; a step of n tokens attends to
  the W - 1 newest cached keys and its own n (up to W + n - 1 keys), so each query of
  a chunk still sees its whole window (the recorded `keys_attended` of ch04/06_swa).

Every step's context vectors are compared with the full causal computation of the
same Prepared (attention.context): decoding with a cache changes the work, never the
numbers. Decoding is causal, in eval mode (no dropout), on the tokens' own keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from . import attention, engine, stages
from .attention import Prepared
from .errors import AttnError, number_text, setting, size_text

# Bytes kept per attention weight of every step (float64 at most), and the bytes per
# (query, key) cell of the largest step's temporaries (engine.exact_rows: the scores,
# their scaled and masked copies, the mask, exp and the weights).
_BYTES_PER_WEIGHT = 8
_BYTES_PER_CELL = 48


class Cache(NamedTuple):
    """What the cache holds after a step: the tokens [start, stop) whose keys and
    values (or latent) it keeps, `per_token` numbers each of `itemsize` bytes."""

    start: int
    stop: int
    per_token: int  # 2 x kv_heads x head_dim, or latent_dim
    itemsize: int  # bytes a number: 8 in float64, 4 in float32

    @property
    def tokens(self) -> int:
        return self.stop - self.start

    @property
    def numbers(self) -> int:
        return self.tokens * self.per_token

    @property
    def bytes(self) -> int:
        return self.numbers * self.itemsize


class Step(NamedTuple):
    """One call of the cached module: the new tokens [start, stop) (n of them), the keys
    [keys_start, stop) it attends to (k of them: cached, then new), and what it gives."""

    start: int
    stop: int
    keys_start: int
    hidden: NDArray[np.bool_]  # (n, k): True where a new query may not see an attended key
    weights: NDArray[np.floating[Any]]  # (H, n, k): the attention weights, 0 where hidden
    context: NDArray[np.floating[Any]]  # (n, D): the module's output rows
    cache: Cache  # after the step
    max_abs_diff: float  # largest |context - the full causal computation's rows|

    @property
    def fed(self) -> range:
        """The positions of the tokens fed."""
        return range(self.start, self.stop)

    @property
    def keys(self) -> range:
        """The positions of the keys attended to: the weights' columns."""
        return range(self.keys_start, self.stop)

    @property
    def cached_keys(self) -> int:
        """Keys the step took from the cache (the rest are its own)."""
        return self.start - self.keys_start

    def seen(self, i: int) -> list[int]:
        """The positions of the keys new query i sees.

        >>> from attncli import AttentionParams, book_example, prepare
        >>> prepared = prepare(book_example(), AttentionParams(mode="causal", window=3))
        >>> step = decode(prepared, chunk=3).steps[1]  # tokens 3-5, a window of 3
        >>> step.fed, step.keys, step.seen(0), step.seen(2)
        (range(3, 6), range(1, 6), [1, 2, 3], [3, 4, 5])
        """
        return [self.keys_start + int(j) for j in np.flatnonzero(~self.hidden[i])]


class Decoding(NamedTuple):
    """Every step of one decoding run, and the full causal computation it equals."""

    prepared: Prepared
    prefill: int | None  # the tokens fed at once first, or None (a first chunk)
    chunk: int  # the tokens fed a step after it
    steps: tuple[Step, ...]
    full_context: NDArray[np.floating[Any]]  # (T, D): attention.context of the same Prepared

    @property
    def latent(self) -> bool:
        """Whether the cache holds the latent c_kv (multi-head latent attention)."""
        return self.prepared.latent is not None

    @property
    def max_abs_diff(self) -> float:
        """The largest difference of any step's rows from the full computation."""
        return max(step.max_abs_diff for step in self.steps)


def schedule(
    n_tokens: int, prefill: int | None = None, chunk: int | None = None
) -> list[tuple[int, int]]:
    """The tokens [start, stop) each step feeds: the first `prefill` at once (without
    it, a first chunk), then `chunk` a step (1 by default), the last step what is left.

    >>> schedule(12, prefill=5)[:3], schedule(7, chunk=3)
    ([(0, 5), (5, 6), (6, 7)], [(0, 3), (3, 6), (6, 7)])
    """
    if prefill is not None and not 1 <= prefill <= n_tokens:
        raise AttnError.usage(
            f"{setting('prefill', number_text(prefill))} is out of range: the prefill is the "
            f"first 1 to {n_tokens} tokens of the input, fed at once"
        )
    if chunk is not None and not 1 <= chunk <= n_tokens:
        raise AttnError.usage(
            f"{setting('chunk', number_text(chunk))} is out of range: a step feeds 1 to "
            f"{n_tokens} tokens (the input has {n_tokens})"
        )
    if chunk is not None and prefill == n_tokens:
        raise AttnError.usage(
            f"{setting('chunk', number_text(chunk))} has no effect: "
            f"{setting('prefill', n_tokens)} feeds every token at once; drop one"
        )
    step = 1 if chunk is None else chunk
    first = step if prefill is None else prefill
    starts = [0, *range(first, n_tokens, step)]
    return list(zip(starts, [*starts[1:], n_tokens], strict=True))


def keys_start(start: int, window: int | None) -> int:
    """The first key a step feeding tokens from `start` attends to: the first of all
    (every key is cached), or with a window of W the W - 1 before `start`.

    >>> keys_start(6, None), keys_start(6, 4), keys_start(2, 4)
    (0, 3, 0)
    """
    return 0 if window is None else max(0, start - window + 1)


def cache_tokens(stop: int, window: int | None) -> tuple[int, int]:
    """The tokens [start, stop) the cache holds once `stop` tokens went in: all, or the
    last W of a sliding window's.

    >>> cache_tokens(9, None), cache_tokens(9, 4), cache_tokens(3, 4)
    ((0, 9), (5, 9), (0, 3))
    """
    return (0 if window is None else max(0, stop - window)), stop


def numbers_per_token(prepared: Prepared) -> int:
    """The numbers the cache keeps for each token: the latent's latent_dim, or a key and
    a value for each key/value head."""
    if prepared.latent is not None:
        return int(prepared.latent.shape[1])
    return 2 * prepared.layout.kv_heads * prepared.head_dim


def decode(
    prepared: Prepared,
    prefill: int | None = None,
    chunk: int | None = None,
    memory: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Decoding:
    """Feed the tokens of `prepared` to its cached module step by step (`schedule`) and
    compare each step's rows with the full causal computation; `memory` is how many
    bytes are free (None: not checked), `progress` hears (tokens done, tokens)."""
    _check_decodable(prepared)
    spans = schedule(prepared.n_queries, prefill, chunk)
    window = prepared.mask.window
    cells = [(b - a) * (b - keys_start(a, window)) for a, b in spans]  # n x k a step
    needed = prepared.heads * sum(cells) * _BYTES_PER_WEIGHT + max(cells) * _BYTES_PER_CELL
    _check_memory(needed, prepared.n_queries, memory)
    attention.check_scores_fit(prepared, np.arange(prepared.n_queries))
    full = attention.context(prepared)  # (T, D), in bounded memory
    steps = []
    for start, stop in spans:
        steps.append(_step(prepared, start, stop, full))
        if progress is not None:
            progress(stop, prepared.n_queries)
    return Decoding(prepared, prefill, 1 if chunk is None else chunk, tuple(steps), full)


def _check_decodable(prepared: Prepared) -> None:
    """The book's cached classes are causal, in eval mode, on their own tokens' keys."""
    if not prepared.mask.causal:
        raise AttnError.usage(
            f"decoding with a KV cache is causal attention (the book's cached classes "
            f"are); use {setting('mode', 'causal')}"
        )
    if not prepared.mask.banded:
        raise AttnError.usage(
            f"a {setting('mask')} file has no meaning in decoding: each step's mask follows "
            "from the positions (causal, and a sliding window's); drop it"
        )
    if prepared.kv is not None:
        raise AttnError.usage(
            f"decoding feeds the input's own tokens, so their keys fill the cache; drop "
            f"{setting('kv')}"
        )
    if prepared.dropout is not None:
        raise AttnError.usage(
            f"the book decodes in eval mode, without dropout; drop {setting('dropout')}"
        )


def _check_memory(needed: int, n_tokens: int, available: int | None) -> None:
    """Refuse up front a run whose every step's weights cannot fit in memory."""
    if available is None or needed <= 0.8 * available:
        return
    raise AttnError.usage(
        f"decoding {n_tokens} tokens keeps every step's attention weights, about "
        f"{size_text(needed)}, but about {size_text(available)} of memory is free; a "
        "shorter input shrinks them quadratically (attn context gives the output in "
        "bounded memory)"
    )


def _step(prepared: Prepared, start: int, stop: int, full: NDArray[Any]) -> Step:
    """One cached call: the new queries [start, stop) against the keys [first, stop)."""
    window = prepared.mask.window
    first = keys_start(start, window)
    n, k = stop - start, stop - first
    keys, values = _keys_values(prepared, first, stop)  # (k, D_kv) each
    queries = prepared.queries[start:stop]  # (n, D)
    # new query i is at position start + i, attended key j at first + j
    mask = prepared.mask._replace(offset=start - first)
    rows = np.arange(n)
    layout = prepared.layout
    weights = np.empty((prepared.heads, n, k), dtype=queries.dtype)
    contexts = []
    with np.errstate(over="ignore", invalid="ignore"):
        for h in range(prepared.heads):
            q = np.ascontiguousarray(queries[:, layout.columns(h)])  # (n, d)
            K = np.ascontiguousarray(keys[:, layout.kv_columns(h)])  # (k, d)
            V = np.ascontiguousarray(values[:, layout.kv_columns(h)])  # (k, d)
            _, _, weights[h], context = engine.exact_rows(
                q, K, V, prepared.scale, rows, mask, head=h, modifiers=prepared.modifiers
            )
            contexts.append(context)
        output = layout.join(contexts)  # H x (n, d) -> (n, D)
        if prepared.gate_logits is not None:  # GatedMultiHeadAttention's gate
            output = stages.gate(output, prepared.gate_logits[start:stop])
        projections = prepared.projections
        if projections is not None and projections.W_out is not None:
            output = stages.out_proj(output, projections.W_out, projections.b_out)  # (n, D)
        diff = float(np.max(np.abs(output - full[start:stop])))
    cache = Cache(*cache_tokens(stop, window), numbers_per_token(prepared), queries.dtype.itemsize)
    return Step(start, stop, first, mask.hidden(rows, 0, k), weights, output, cache, diff)


def _keys_values(
    prepared: Prepared, start: int, stop: int
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
    """The keys and values of tokens [start, stop) as the module has them at a step:
    cached (or just projected), or, from a latent cache, re-projected from c_kv."""
    projections = prepared.projections
    if prepared.latent is None or projections is None:
        return prepared.keys[start:stop], prepared.values[start:stop]
    latent = prepared.latent[start:stop]  # (k, L): the cached c_kv
    with np.errstate(over="ignore", invalid="ignore"):
        keys = stages.projections(latent, projections.W_key, projections.b_key)  # (k, D)
        values = stages.projections(latent, projections.W_value, projections.b_value)
    return keys, values


def to_json(decoding: Decoding) -> str:
    """Every step as one JSON object (`attn decode -f json`)."""
    return "".join(json_chunks(decoding))


def json_chunks(decoding: Decoding) -> Iterator[str]:
    """to_json's text a step at a time: a long run's text is never held whole."""
    prepared = decoding.prepared
    per_token = numbers_per_token(prepared)
    head = {
        "command": "decode",
        "mode": prepared.params.mode.value,
        "tokens": list(prepared.embeddings.tokens),
        "params": prepared.settings(),
        "schedule": {
            "prefill": decoding.prefill,
            "chunk": decoding.chunk,
            "steps": len(decoding.steps),
        },
        "cache": {
            "holds": "latent" if decoding.latent else "keys and values",
            "numbers_per_token": per_token,
            "bytes_per_token": per_token * prepared.keys.dtype.itemsize,
            "keeps": prepared.mask.window,  # the last W tokens; null: every token
        },
    }
    yield _dumps(head)[: -len("\n}")] + ',\n  "steps": [\n'
    last = len(decoding.steps)
    for number, step in enumerate(decoding.steps, start=1):
        text = _dumps(_step_dict(prepared, number, step), "    ")
        yield f"    {text}{',' if number < last else ''}\n"
    yield f'  ],\n  "max_abs_diff_vs_full": {json.dumps(decoding.max_abs_diff)}\n}}\n'


def _dumps(value: Any, indent: str = "") -> str:
    """Strict JSON, an object's entries and a list of lists one to a line, a list of
    numbers on one line: a step's rows read as rows."""
    inner = indent + "  "
    if isinstance(value, dict):
        entries = (f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(entries) + f"\n{indent}}}"
    if isinstance(value, list) and value and isinstance(value[0], (list, dict)):
        return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, allow_nan=False)


def _step_dict(prepared: Prepared, number: int, step: Step) -> dict[str, Any]:
    cache = step.cache
    weights = step.weights if prepared.heads > 1 else step.weights[0]  # (H, n, k) or (n, k)
    return {
        "step": number,
        "fed": list(step.fed),
        "keys": list(step.keys),
        "seen": [step.seen(i) for i in range(len(step.fed))],
        "cache": {
            "positions": list(range(cache.start, cache.stop)),
            "tokens": cache.tokens,
            "numbers": cache.numbers,
            "bytes": cache.bytes,
        },
        "weights": weights.tolist(),
        "context": step.context.tolist(),
        "max_abs_diff_vs_full": step.max_abs_diff,
    }

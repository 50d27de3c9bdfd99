"""`attn decode` for people: what the cache keeps, then one panel per step (the tokens
fed, the keys attended, the new rows' weights and context vectors, the cache after the
step and the difference from the full computation). Returns renderables; never prints.

Long runs stay readable: beyond MAX_STEPS steps the middle ones are left out, beyond
MAX_ROWS new tokens a step's middle rows; `-f json` has everything. Tokens are shown
escaped (errors.shown_text), as Text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from ..decoding import Decoding, Step, numbers_per_token
from ..errors import shown_text, size_text
from . import fit
from .explain import READING_WIDTH
from .table import Trimmed
from .view import format_number, settings_text, vector_labels

MAX_STEPS = 12  # steps drawn in full; more: the first and last few
MAX_ROWS = 12  # new tokens of a step drawn in full; more: the first and last few


def render(decoding: Decoding, precision: int = 4) -> RenderableType:
    """The whole run: a title, what the cache keeps, the steps, the settings."""
    prepared = decoding.prepared
    tokens = [shown_text(t) for t in prepared.embeddings.tokens]
    steps = decoding.steps
    parts: list[RenderableType] = [
        Text(
            f"attn decode · {prepared.params.mode.value} · {len(tokens)} tokens fed "
            f"{schedule_text(decoding)} · {len(steps)} step{'s' if len(steps) > 1 else ''}",
            style="bold",
        ),
        Text(cache_text(decoding)),
    ]
    for index in _shown(len(steps), MAX_STEPS):
        if index is None:
            left_out = len(steps) - 2 * (MAX_STEPS // 2)
            parts.append(Text(f"⋮ {left_out} more steps (-f json gives every step)"))
            continue
        parts.append(_step_panel(decoding, index, tokens, precision))
    notes = [
        "largest |difference| of any step from the full causal computation: "
        + _difference(decoding.max_abs_diff),
    ]
    caption = prepared.mask.caption()
    if caption is not None:
        notes.append(caption)
    notes.append(settings_text(prepared))
    parts.append(Text("\n".join(notes), style="dim"))
    return Trimmed(Group(*parts), widest=READING_WIDTH)


def schedule_text(decoding: Decoding) -> str:
    """How the tokens went in: 'one at a time', '5 at once, then 3 at a time', ..."""
    n_tokens = decoding.prepared.n_queries
    chunk = decoding.chunk
    then = "one at a time" if chunk == 1 else f"{chunk} at a time"
    if decoding.prefill is None:
        return then
    if decoding.prefill == n_tokens:
        return "all at once"
    return f"{decoding.prefill} at once, then {then}"


def cache_text(decoding: Decoding) -> str:
    """What the cache keeps of each token, and for how long."""
    prepared = decoding.prepared
    per_token = numbers_per_token(prepared)
    dtype = prepared.keys.dtype
    size = f"{per_token * dtype.itemsize} bytes in {dtype.name}"
    if decoding.latent:
        text = (
            f"The cache keeps each token's latent c_kv: {per_token} numbers ({size}); every "
            "step re-projects the cached latents to keys and values (W_UK, W_UV)."
        )
    else:
        layout = prepared.layout
        kv = "key/value head" if layout.kv_heads != layout.heads else "head"
        plural = "s" if layout.kv_heads > 1 else ""
        text = (
            f"The cache keeps each token's keys and values: 2 × {layout.kv_heads} {kv}{plural} "
            f"× {layout.head_dim} = {per_token} numbers ({size})."
        )
    window = prepared.mask.window
    if window is not None:
        text += (
            f" With a window of {window} it keeps the last {window} tokens; a step of n tokens "
            f"attends to the {window - 1} newest cached and its own n, so every query sees "
            "its whole window."
        )
    return text


def _step_panel(decoding: Decoding, index: int, tokens: Sequence[str], precision: int) -> Any:
    step = decoding.steps[index]
    n = step.stop - step.start
    fed = (
        f"token #{step.start} '{tokens[step.start]}'"
        if n == 1
        else f"tokens #{step.start}-{step.stop - 1}"
    )
    body: list[RenderableType] = [Text(_attends_text(step))]
    body.append(Text("attention weights of the new queries over the keys attended:"))
    body.append(_weights_grid(decoding, step, tokens, precision))
    body.append(Text("context vectors (the module's output):"))
    body.append(_context_grid(step, tokens, precision))
    dropped = decoding.steps[index - 1].cache.start if index else 0  # the cache's first before
    body.append(Text(_cache_line(step, dropped)))
    body.append(
        Text(f"largest |difference| from the full computation: {_difference(step.max_abs_diff)}")
    )
    title = f"step {index + 1} of {len(decoding.steps)}: {fed}"
    return fit.panel(title, "", Group(*body))


def _attends_text(step: Step) -> str:
    k = step.stop - step.keys_start
    keys = f"key #{step.keys_start}" if k == 1 else f"{k} keys, #{step.keys_start}-{step.stop - 1}"
    cached = step.cached_keys
    new = step.stop - step.start
    return f"attends to {keys}: {cached} from the cache and {new} new"


def _difference(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def _cache_line(step: Step, first_before: int) -> str:
    """The cache after a step: the tokens it holds (and those a window dropped)."""
    cache = step.cache
    held = _positions(cache.start, cache.stop)
    if cache.start > first_before:
        held += f" (dropped {_positions(first_before, cache.start)})"
    size = f"{cache.bytes} bytes"
    if cache.bytes >= 1024:
        size += f" ({size_text(cache.bytes)})"
    plural = "s" if cache.tokens > 1 else ""
    return (
        f"cache after: {held}, {cache.tokens} token{plural} × {cache.per_token} = "
        f"{cache.numbers} numbers, {size}"
    )


def _weights_grid(
    decoding: Decoding, step: Step, tokens: Sequence[str], precision: int
) -> fit.Fitted:
    heads = decoding.prepared.heads
    headers = [tokens[j] for j in step.keys]
    if heads > 1:
        headers = ["head", *headers]
    labels: list[Text] = []
    rows: list[list[str]] = []
    n = step.stop - step.start
    for i in _shown(n, MAX_ROWS):
        if i is None:
            labels.append(Text(f"⋮ {n - 2 * (MAX_ROWS // 2)} more"))
            rows.append([""] * len(headers))
            continue
        for h in range(heads):
            cells = [
                "0" if hidden else format_number(value, precision)
                for value, hidden in zip(
                    step.weights[h, i].tolist(), step.hidden[i].tolist(), strict=True
                )
            ]
            labels.append(Text(tokens[step.start + i]))
            rows.append([str(h), *cells] if heads > 1 else cells)
    return fit.grid(rows, headers, labels)


def _context_grid(step: Step, tokens: Sequence[str], precision: int) -> fit.Fitted:
    labels: list[Text] = []
    rows: list[list[str]] = []
    width = step.context.shape[1]
    n = step.stop - step.start
    for i in _shown(n, MAX_ROWS):
        if i is None:
            labels.append(Text(f"⋮ {n - 2 * (MAX_ROWS // 2)} more"))
            rows.append([""] * width)
            continue
        labels.append(Text(tokens[step.start + i]))
        rows.append([format_number(v, precision) for v in step.context[i].tolist()])
    return fit.grid(rows, list(vector_labels(width)), labels)


def _positions(start: int, stop: int) -> str:
    """Positions [start, stop) as '#3' or '#3-5'."""
    return f"#{start}" if stop - start == 1 else f"#{start}-{stop - 1}"


def _shown(count: int, most: int) -> list[int | None]:
    """Indices to draw: all, or the first and last most // 2 with None between.

    >>> _shown(3, 12), _shown(5, 4)
    ([0, 1, 2], [0, 1, None, 3, 4])
    """
    if count <= most:
        return list(range(count))
    edge = most // 2
    return [*range(edge), None, *range(count - edge, count)]

"""W_query, W_key, W_value (and biases, out_proj) from a JSON or .npz file.

Names: `W_query` / `b_query` (and key, value), `W_out` / `b_out`, MultiHeadLatentAttention's
`W_DKV`, `W_UK`, `W_UV` (its keys and values come from the latent X @ W_DKV), or a module's
`state_dict()` names: `W_query.weight`, `W_query.bias`, `out_proj.weight`,
`out_proj.bias`, and for MultiHeadAttentionWrapper `heads.0.W_query.weight` and so on.
Buffers named `mask` are ignored.

Layout: nn.Linear stores a weight as (d_out, d_in) and applies X @ W.T; the book's
torch.rand matrices are (d_in, d_out), applied as X @ W. A `layout` entry ("linear" or
"xw") says which; `state_dict` names (`.weight`) mean "linear"; otherwise the shape of
W_query decides, when the input's d_in tells the two apart.

Export from torch (three lines):

    import json
    state = {k: v.tolist() for k, v in module.state_dict().items() if not k.endswith("mask")}
    json.dump(state, open("weights.json", "w"))
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError
from ..params import Projections, WeightLayout
from .json_text import parse_json
from .reading import NUMPY_MAGICS, decode_text, open_input, refuse_binary
from .text import describe

_ROLES = ("query", "key", "value")
_NAMES = (
    "W_query, W_key, W_value (optional b_query, b_key, b_value, W_out, b_out; a latent "
    'module W_DKV, W_UK, W_UV), or state_dict names such as "W_query.weight", "out_proj.bias"'
)
_HEAD_KEY = re.compile(r"heads\.([0-9]+)\.(.+)", re.DOTALL)


def load_weights(path: str, d_in: int) -> Projections:
    """The projections stored in `path` (.json or .npz), for inputs of `d_in` dimensions."""
    entries, explicit_layout = _read_entries(path)
    by_head: dict[int, dict[str, Any]] = {}
    plain: dict[str, Any] = {}
    for key, value in entries.items():
        if key == "mask" or key.endswith(".mask"):
            continue  # CausalAttention's buffer, not a weight
        match = _HEAD_KEY.fullmatch(key)
        if match:
            number, name = match.groups()
            if number != str(int(number)):  # heads.00 would silently be heads.0
                raise AttnError(
                    f"{path}: {key!r} numbers its head {number}; write heads.{int(number)}.{name} "
                    "(state_dict numbers heads 0, 1, ... without leading zeros)"
                )
            by_head.setdefault(int(number), {})[name] = value
        else:
            plain[key] = value
    if by_head:
        if plain:
            raise AttnError(
                f"{path}: mixes per-head entries (heads.0....) with {sorted(plain)[0]!r}; "
                "give one module's weights"
            )
        if sorted(by_head) != list(range(len(by_head))):
            raise AttnError(f"{path}: the heads are numbered {sorted(by_head)}; expected 0, 1, ...")
        heads = [
            _module(by_head[h], path, d_in, explicit_layout, f"heads.{h}.")
            for h in range(len(by_head))
        ]
        layout = heads[0][1]
        if any(head[0].W_out is not None for head in heads):
            raise AttnError(f"{path}: a MultiHeadAttentionWrapper head has no out_proj")
        first = heads[0][0]
        for h, (head, _) in enumerate(heads):
            if head.W_query.shape != first.W_query.shape:
                raise AttnError(
                    f"{path}: heads.{h} has W_query of shape {head.W_query.shape} (as applied), "
                    f"heads.0 has {first.W_query.shape}; the heads must match"
                )

        def side_by_side(name: str) -> NDArray[np.float64]:
            return np.concatenate([getattr(h, name) for h, _ in heads], axis=1)  # (d_in, H*d)

        def biases(name: str) -> NDArray[np.float64] | None:
            return _concat_biases([getattr(h, name) for h, _ in heads], path)

        return Projections(
            W_query=side_by_side("W_query"),
            W_key=side_by_side("W_key"),
            W_value=side_by_side("W_value"),
            b_query=biases("b_query"),
            b_key=biases("b_key"),
            b_value=biases("b_value"),
            layout=layout,
            heads=len(heads),
            file=path,
        )
    projections, _ = _module(plain, path, d_in, explicit_layout, "")
    return projections


def _read_entries(path: str) -> tuple[dict[str, Any], WeightLayout | None]:
    wanted = "a .json or .npz file of weights"
    with open_input(path, wanted) as opened:  # read once: `<(...)` works too
        if opened.head.startswith(NUMPY_MAGICS):  # whatever its name, JSON is text
            from .numpy_files import read_npz

            entries: dict[str, Any] = read_npz(opened, path)
            data = None
        else:
            refuse_binary(opened.head, path, wanted)
            data = opened.read_all()
    if data is not None:
        text = decode_text(data, path, wanted)
        hint = "; give weights as a JSON object or a .npz archive"
        obj = parse_json(text, path, f"expected an object of {_NAMES}", hint, token_objects=False)
        if not isinstance(obj, dict):
            raise AttnError(f"{path}: the JSON is {describe(obj)}; expected an object of {_NAMES}")
        entries = obj
    layout = entries.pop("layout", None)
    if isinstance(layout, np.ndarray):
        layout = str(layout)
    if layout is None:
        return entries, None
    try:
        return entries, WeightLayout(layout)
    except ValueError:
        raise AttnError(
            f'{path}: "layout" is {describe(layout)}; use "linear" (nn.Linear weights, '
            '(d_out, d_in)) or "xw" ((d_in, d_out), applied as X @ W)'
        ) from None


def _module(
    entries: dict[str, Any], path: str, d_in: int, explicit: WeightLayout | None, prefix: str
) -> tuple[Projections, WeightLayout]:
    """One attention module's projections from its entries (names without `prefix`)."""
    found: dict[str, NDArray[np.float64]] = {}
    state_dict_names = False
    for key, value in entries.items():
        name = _canonical(key)
        if name is None:
            raise AttnError(f"{path}: unknown entry {prefix + key!r}; expected {_NAMES}")
        state_dict_names |= key.endswith((".weight", ".bias"))
        found[name] = _array(value, path, prefix + key)
    latent = "W_DKV" in found  # MultiHeadLatentAttention: W_UK, W_UV act on its latent
    if latent:
        for role, up in (("key", "UK"), ("value", "UV")):
            if f"W_{role}" in found:
                raise AttnError(
                    f"{path}: {prefix}W_DKV (a latent attention's) and {prefix}W_{role} "
                    f"(a direct projection's) do not go together; a latent module has W_{up}"
                )
            for kind in ("W", "b"):
                if f"{kind}_{up}" in found:
                    found[f"{kind}_{role}"] = found.pop(f"{kind}_{up}")
    elif any(name in found for name in ("W_UK", "W_UV", "b_UK", "b_UV", "b_DKV")):
        raise AttnError(f"{path}: has W_UK or W_UV but no {prefix}W_DKV, the latent they act on")
    missing = [f"{prefix}W_{role}" for role in _ROLES if f"W_{role}" not in found]
    if missing:
        if latent:
            missing = [m.replace("W_key", "W_UK").replace("W_value", "W_UV") for m in missing]
        raise AttnError(f"{path}: no {', '.join(missing)}; expected {_NAMES}")
    layout = explicit or (WeightLayout.LINEAR if state_dict_names else None)
    W_query = found["W_query"]
    if W_query.ndim != 2:
        raise AttnError(f"{path}: {prefix}W_query has shape {W_query.shape}; a weight is a matrix")
    if layout is None:
        layout = _layout_by_shape(W_query.shape, d_in, path, prefix)
    d_out = W_query.shape[0] if layout is WeightLayout.LINEAR else W_query.shape[1]
    stored_shape = (d_out, d_in) if layout is WeightLayout.LINEAR else (d_in, d_out)
    if W_query.shape != stored_shape:
        raise AttnError(
            f"{path}: {prefix}W_query has shape {W_query.shape}, but the inputs have d_in = "
            f"{d_in}, so a {layout.value}-layout weight needs {stored_shape}"
        )

    def applied(name: str, shape: tuple[int, ...]) -> NDArray[np.float64] | None:
        if name not in found:
            return None
        array = found[name]
        if array.shape != shape:
            grouped = f", key/value width {kv_width}" if kv_width != d_out else ""
            raise AttnError(
                f"{path}: {prefix}{name} has shape {array.shape}; expected {shape} "
                f"({layout.value} layout, d_in = {d_in}, d_out = {d_out}{grouped})"
            )
        is_weight = name.startswith("W_")
        return array.T if is_weight and layout is WeightLayout.LINEAR else array

    # Grouped-query attention's W_key and W_value are narrower than W_query: their
    # width (kv_width) is the key/value heads' columns; attention.prepare checks it
    # against the head count.
    W_key = found["W_key"]
    kv_width = d_out
    kv_in = d_in  # what W_key and W_value act on: the inputs, or the latent
    W_DKV = b_DKV = None
    if latent:
        kv_in = _latent_width(found["W_DKV"], layout, d_in, path, prefix)
        W_DKV = applied("W_DKV", (kv_in, d_in) if layout is WeightLayout.LINEAR else (d_in, kv_in))
        b_DKV = applied("b_DKV", (kv_in,))
    elif W_key.ndim == 2 and W_key.shape != stored_shape:
        kv_width = W_key.shape[0] if layout is WeightLayout.LINEAR else W_key.shape[1]
    kv_shape = (kv_width, kv_in) if layout is WeightLayout.LINEAR else (kv_in, kv_width)
    widths = {"query": d_out, "key": kv_width, "value": kv_width}
    weights = {
        f"W_{r}": applied(f"W_{r}", stored_shape if r == "query" else kv_shape) for r in _ROLES
    }
    biases = {f"b_{r}": applied(f"b_{r}", (widths[r],)) for r in _ROLES}
    W_out = applied("W_out", (d_out, d_out))
    b_out = applied("b_out", (d_out,))
    if b_out is not None and W_out is None:
        raise AttnError(f"{path}: has out_proj's bias but not its weight")
    projections = Projections(
        _present(weights["W_query"]),
        _present(weights["W_key"]),
        _present(weights["W_value"]),
        biases["b_query"],
        biases["b_key"],
        biases["b_value"],
        W_out,
        b_out,
        layout=layout,
        file=path,
        W_DKV=W_DKV,
        b_DKV=b_DKV,
        W_gate=applied("W_gate", stored_shape),
        b_gate=applied("b_gate", (d_out,)),
        q_norm=_vector(found, "q_norm", path, prefix),
        k_norm=_vector(found, "k_norm", path, prefix),
        sinks=_vector(found, "sinks", path, prefix),
    )
    if projections.b_gate is not None and projections.W_gate is None:
        raise AttnError(f"{path}: has W_gate's bias but not its weight")
    return projections, layout


def _vector(
    found: dict[str, NDArray[np.float64]], name: str, path: str, prefix: str
) -> NDArray[np.float64] | None:
    """A norm's weights or the sink logits: one list of numbers (checked against the
    heads when attention is prepared)."""
    if name not in found:
        return None
    array = found[name]
    if array.ndim != 1 or not array.size:
        raise AttnError(
            f"{path}: {prefix}{name} has shape {array.shape}; it is one list of numbers "
            + ("(head_dim of them)" if name != "sinks" else "(one per head)")
        )
    return array


def _latent_width(
    W_DKV: NDArray[np.float64], layout: WeightLayout, d_in: int, path: str, prefix: str
) -> int:
    """The latent's width L from W_DKV, (L, d_in) in nn.Linear's layout, else (d_in, L)."""
    linear = layout is WeightLayout.LINEAR
    if W_DKV.ndim != 2 or W_DKV.shape[1 if linear else 0] != d_in:
        needed = "(L, d_in)" if linear else "(d_in, L)"
        raise AttnError(
            f"{path}: {prefix}W_DKV has shape {W_DKV.shape}; a {layout.value}-layout W_DKV is "
            f"{needed} with d_in = {d_in}"
        )
    return int(W_DKV.shape[0] if linear else W_DKV.shape[1])


def _canonical(key: str) -> str | None:
    """`W_query.weight` -> `W_query`, `W_query.bias` -> `b_query`, `out_proj.weight` ->
    `W_out`; None for a name attn does not know."""
    aliases = {
        "out_proj.weight": "W_out",
        "out_proj.bias": "b_out",
        "W_out": "W_out",
        "b_out": "b_out",
    }
    for norm in ("q_norm", "k_norm"):  # Qwen3's QK-norm weights (the book's RMSNorm.scale)
        aliases |= {norm: norm, f"{norm}.scale": norm, f"{norm}.weight": norm}
    aliases |= {"sinks": "sinks", "W_gate": "W_gate", "W_gate.weight": "W_gate"}
    aliases |= {"b_gate": "b_gate", "W_gate.bias": "b_gate"}
    for latent in ("DKV", "UK", "UV"):  # MultiHeadLatentAttention's projections
        aliases |= {f"W_{latent}": f"W_{latent}", f"W_{latent}.weight": f"W_{latent}"}
        aliases |= {f"b_{latent}": f"b_{latent}", f"W_{latent}.bias": f"b_{latent}"}
    if key in aliases:
        return aliases[key]
    for role in _ROLES:
        if key in (f"W_{role}", f"W_{role}.weight"):
            return f"W_{role}"
        if key in (f"b_{role}", f"W_{role}.bias"):
            return f"b_{role}"
    return None


def _layout_by_shape(shape: tuple[int, ...], d_in: int, path: str, prefix: str) -> WeightLayout:
    rows, cols = shape
    if rows == d_in and cols != d_in:
        return WeightLayout.XW
    if cols == d_in and rows != d_in:
        return WeightLayout.LINEAR
    if rows == cols == d_in:
        raise AttnError(
            f"{path}: {prefix}W_query is {rows}x{cols} with d_in = {d_in}, so its layout is "
            'ambiguous; add "layout": "linear" (nn.Linear, (d_out, d_in), X @ W.T) or '
            '"layout": "xw" ((d_in, d_out), X @ W) to the file'
        )
    raise AttnError(
        f"{path}: {prefix}W_query has shape {shape}, but the inputs have d_in = {d_in}: "
        f"expected ({d_in}, d_out) or nn.Linear's (d_out, {d_in})"
    )


def _array(value: Any, path: str, key: str) -> NDArray[np.float64]:
    if isinstance(value, np.ndarray) and value.dtype.kind not in "fiu":
        raise AttnError(
            f"{path}: {key} holds {value.dtype} values; weights must be real numbers "
            "(floats or integers)"
        )
    try:
        try:
            array = np.asarray(value, dtype=np.float64)
        except OverflowError:  # a JSON integer beyond float64: infinity, named below
            array = np.asarray(_floats(value), dtype=np.float64)
    except (TypeError, ValueError, RecursionError):
        raise AttnError(
            f"{path}: {key} is not a matrix of numbers (ragged rows or non-numbers); "
            "give a list of equal-length lists of numbers"
        ) from None
    if isinstance(value, list) and not _all_numbers(value):
        raise AttnError(f"{path}: {key} holds something other than numbers")
    if not np.isfinite(array).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        what = "a number too large for float64 (beyond ±1.8e308)"  # JSON has no inf or nan
        if isinstance(value, np.ndarray):
            what = f"{array[first]}, not a finite number"
        raise AttnError(f"{path}: {key}{list(first)} is {what}; weights must be finite")
    return array


def _floats(value: Any) -> Any:
    """`value` with every integer as a float, infinity for those beyond float64."""
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _all_numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return type(value) is float or type(value) is int


def _present(array: NDArray[np.float64] | None) -> NDArray[np.float64]:
    assert array is not None  # checked by the `missing` test above
    return array


def _concat_biases(
    biases: list[NDArray[np.float64] | None], path: str
) -> NDArray[np.float64] | None:
    if all(b is None for b in biases):
        return None
    if any(b is None for b in biases):
        raise AttnError(
            f"{path}: some heads have biases and others not; give every head the same entries"
        )
    return np.concatenate([b for b in biases if b is not None])

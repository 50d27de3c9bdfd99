"""Queries, keys and values from a file (`--qkv FILE`): a .npz archive or a JSON object
of `q`, `k` and `v`, shaped as torch's `scaled_dot_product_attention` takes them:
(T, d) or (heads, T, d), a leading batch of 1 dropped. Read as arrays.py says."""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError
from .arrays import file_name, index_text, json_numbers, nested, read_arrays_or_text, widened
from .json_text import parse_json
from .numpy_files import NPY_MAGIC, HeaderCheck, read_npz_members
from .reading import Opened
from .text import describe

__all__ = ["QKV", "load_qkv"]

_QKV_FILE = "queries, keys and values as a .npz archive or a JSON object of q, k and v"
_QKV_NAMES = ("q", "k", "v")
_SAVE_QKV = "numpy.savez(path, q=q, k=k, v=v)"


class QKV(NamedTuple):
    """Queries, keys and values from a file, as torch's `scaled_dot_product_attention`
    takes them (without the batch): float64, C-contiguous.

    - `q`: (heads, n_queries, d); `k`: (kv_heads, n_keys, d); `v`: (kv_heads, n_keys,
      d_v). kv_heads divides heads (grouped-query attention: each key/value head serves
      heads / kv_heads consecutive query heads, torch's `repeat_interleave` order).
      n_queries may differ from n_keys (cross-attention), d_v from d (as torch allows).
    - `source`: the file.
    - `dtype`: what the file held: the widest of the three dtypes when all are floats
      (float16, float32 or float64), else float64 (integers, JSON). The arrays are
      float64 whatever it is; float32 and float16 values convert back exactly.
    """

    q: NDArray[np.float64]
    k: NDArray[np.float64]
    v: NDArray[np.float64]
    source: str
    dtype: np.dtype[Any]

    @property
    def heads(self) -> int:
        return int(self.q.shape[0])

    @property
    def kv_heads(self) -> int:
        return int(self.k.shape[0])

    @property
    def head_dim(self) -> int:
        """d: the last dimension of the queries and keys."""
        return int(self.q.shape[2])

    @property
    def value_dim(self) -> int:
        """d_v: the last dimension of the values (and of the context vectors)."""
        return int(self.v.shape[2])

    @property
    def n_queries(self) -> int:
        return int(self.q.shape[1])

    @property
    def n_keys(self) -> int:
        return int(self.k.shape[1])


def load_qkv(path: str | os.PathLike[str]) -> QKV:
    """The queries, keys and values in `path`: a .npz archive of arrays `q`, `k` and
    `v`, or a JSON object of them, each (T, d), (heads, T, d) or (1, heads, T, d).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "qkv.npz")
    ...     q, kv = np.ones((4, 6, 8), np.float32), np.ones((1, 2, 6, 8), np.float32)
    ...     np.savez(path, q=q, k=kv, v=kv)
    ...     qkv = load_qkv(path)
    >>> qkv.q.shape, qkv.k.shape, qkv.q.dtype, qkv.dtype
    ((4, 6, 8), (2, 6, 8), dtype('float64'), dtype('float32'))
    """
    name = file_name(path, "queries, keys and values")
    content = read_arrays_or_text(name, _QKV_FILE, _qkv_arrays)
    if isinstance(content, str):
        held = _qkv_from_json(content, name)
        dtype = np.dtype(np.float64)
    else:
        held = content
        dtypes = [array.dtype for array in held.values()]
        floats = all(dt.kind == "f" for dt in dtypes)
        dtype = np.result_type(*dtypes) if floats else np.dtype(np.float64)
    arrays = {}
    for label in _QKV_NAMES:
        array = held[label]  # as the file holds it: (T, d), (H, T, d) or (1, H, T, d)
        where = f"{name}: {label}"
        _check_finite(array, name, label)
        array = widened(array, where)
        arrays[label] = array.reshape(-1, *array.shape[-2:])  # (H, T, d)
    _check_qkv_together(arrays, {label: held[label].shape for label in _QKV_NAMES}, name)
    return QKV(arrays["q"], arrays["k"], arrays["v"], name, dtype)


def _qkv_arrays(opened: Opened) -> dict[str, NDArray[Any]]:
    if opened.head.startswith(NPY_MAGIC):
        raise AttnError(
            f"{opened.name}: a .npy file holds one array; queries, keys and values are "
            f"three: save them with {_SAVE_QKV}"
        )

    def pick(names: list[str]) -> dict[str, HeaderCheck | None]:
        _check_qkv_names(names, opened.name, "archive")
        return dict.fromkeys(_QKV_NAMES, _check_qkv_header)

    return read_npz_members(opened, pick)


def _check_qkv_names(names: list[str], source: str, kind: str) -> None:
    """Refuse any names but q, k and v: name the missing and the unknown ones."""
    missing = [n for n in _QKV_NAMES if n not in names]
    unknown = [n for n in names if n not in _QKV_NAMES]
    save = _SAVE_QKV if kind == "archive" else '{"q": [...], "k": [...], "v": [...]}'
    if missing:
        held = ", ".join(map(repr, names)) or "nothing"
        absent = " or ".join(missing) if len(missing) < 3 else "q, k or v"
        raise AttnError(
            f"{source}: no {absent}; attn reads queries, keys and values named q, k and v "
            f"({save}), and the {kind} holds {held}"
        )
    if unknown:
        raise AttnError(
            f"{source}: unknown {'entries' if len(unknown) > 1 else 'entry'} "
            f"{', '.join(map(repr, unknown))}; the {kind} holds queries, keys and values "
            "named q, k and v, and nothing else"
        )


def _check_qkv_header(where: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """Refuse, from the header alone, a q, k or v attn cannot use."""
    if len(shape) == 4 and shape[0] != 1 and 0 not in shape:
        label = where.rsplit(": ", 1)[-1]
        raise AttnError(
            f"{where}: shape {shape} is a batch of {shape[0]} sequences, and attn computes "
            f"one; save one of them, e.g. {label}[0], of shape {shape[1:]}"
        )
    if not 2 <= len(shape) <= 4 or (len(shape) == 4 and shape[0] != 1):
        raise AttnError(
            f"{where}: shape {shape}; give (T, d) or (heads, T, d), as torch's "
            "scaled_dot_product_attention takes them (a leading batch of 1 may stay)"
        )
    if 0 in shape:
        raise AttnError(
            f"{where}: shape {shape} holds no numbers; give at least one token and one dimension"
        )
    if dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return
    hint = "give real numbers (floats or integers)"
    if dtype.kind == "c":
        hint = "give real numbers: save array.real"
    elif dtype.kind == "V" and dtype.itemsize == 2:
        hint = "give floats (bfloat16? save tensor.float().numpy())"
    elif dtype.kind == "f":
        hint = "save it as float64"
    raise AttnError(f"{where}: the array holds {dtype} values; {hint}")


def _qkv_from_json(text: str, source: str) -> dict[str, NDArray[np.float64]]:
    forms = 'expected {"q": [...], "k": [...], "v": [...]}'
    obj = parse_json(
        text,
        source,
        forms,
        "; give q, k and v as a JSON object or a .npz archive",
        token_objects=False,
    )
    if not isinstance(obj, dict):
        raise AttnError(f"{source}: the JSON is {describe(obj)}; {forms}")
    _check_qkv_names(list(obj), source, "JSON object")
    arrays = {}
    for label in _QKV_NAMES:
        value = obj[label]
        if not isinstance(value, list):
            raise AttnError(
                f"{source}: {label} is {describe(value)}; give a list of rows of numbers, "
                "(T, d) or (heads, T, d)"
            )
        shape, flat = nested(value, source, label)
        _check_qkv_header(f"{source}: {label}", shape, np.dtype(np.float64))
        arrays[label] = json_numbers(flat, shape, source, label)
    return arrays


def _check_qkv_together(
    arrays: dict[str, NDArray[np.float64]], shapes: dict[str, tuple[int, ...]], source: str
) -> None:
    """q (H, T_q, d), k (H_kv, T_k, d), v (H_kv, T_k, d_v), with H_kv dividing H;
    `shapes` are the file's, which the messages show."""
    (hq, _, dq), (hk, tk, dk), (hv, tv, _) = (arrays[n].shape for n in _QKV_NAMES)
    shown = f"(q {shapes['q']}, k {shapes['k']}, v {shapes['v']})"
    if (hk, tk) != (hv, tv):
        what = f"{_count(hk, 'head')}, v {hv}" if hk != hv else f"{_count(tk, 'token')}, v {tv}"
        raise AttnError(
            f"{source}: k has {what} {shown}; every key needs its value: give k and v the "
            "same heads and tokens (their last dimensions may differ)"
        )
    if dq != dk:
        raise AttnError(
            f"{source}: q has head_dim {dq}, k {dk} {shown}; a score is a dot product of "
            "a query and a key: give q and k the same last dimension"
        )
    if hq % hk:
        raise AttnError(
            f"{source}: q has {_count(hq, 'head')}, k and v {hk} {shown}; in grouped-query "
            "attention each key/value head serves the same number of query heads: give a "
            "number of query heads that is a multiple of the key/value heads"
        )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _check_finite(array: NDArray[Any], source: str, label: str) -> None:
    """Refuse a value that is not a finite number, by its index in the file's shape."""
    if array.dtype.kind != "f":
        return
    if math.isfinite(np.max(array)) and math.isfinite(np.min(array)):
        return  # NaN propagates to both: two passes without a temporary
    first = int(np.argmax(~np.isfinite(array)))  # the first in C order, as index_text counts
    value = array.reshape(-1)[first]
    raise AttnError(
        f"{source}: {label}{index_text(first, array.shape)} is {value}, not a finite number; "
        "queries, keys and values must be finite"
    )

"""Arrays attention takes from files instead of computing them: a mask (`--mask FILE`)
and a model's queries, keys and values (`--qkv FILE`).

A mask is a .npy array, a .npz archive of one array, or JSON; queries, keys and values
are a .npz archive or a JSON object of `q`, `k` and `v`. The content decides the
format, whatever the name. Files are read as every input is (reading.py,
numpy_files.py): once, bounded by free memory, binary data refused from its first bytes,
a .npy header and a .npz directory checked before any data is read, never
memory-mapped; JSON by the one strict parser (json_text.parse_json). Stdin (`-`) is
refused: it may carry the input already.

Shapes follow torch's `scaled_dot_product_attention`: queries (heads, T_q, d), keys
(kv_heads, T_k, d), values (kv_heads, T_k, d_v), a mask (heads or 1, T_q, T_k); a
leading batch dimension of 1 is dropped, a larger batch refused.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError, size_text
from . import reading
from .json_text import parse_json
from .numpy_files import NPY_MAGIC, HeaderCheck, read_npy_file, read_npz_members
from .reading import NUMPY_MAGICS, Opened, decode_text, open_input, refuse_binary
from .text import describe, is_numeric_text

__all__ = ["QKV", "MaskArray", "load_mask", "load_qkv"]

_MASK_FILE = "a mask as .npy, .npz (one array) or JSON"
_QKV_FILE = "queries, keys and values as a .npz archive or a JSON object of q, k and v"
_QKV_NAMES = ("q", "k", "v")
_SAVE_QKV = "numpy.savez(path, q=q, k=k, v=v)"
_MASK_FORMS = 'expected a list of rows of booleans or numbers, or {"mask": [...]}'
# What a float mask holds, said after a value it may not hold (in JSON, in NumPy files)
_FLOAT_MASK_JSON = (
    'a float mask holds finite numbers, and -Infinity, "-inf" or null where a key is hidden'
)
_FLOAT_MASK_NUMPY = "a float mask holds finite numbers, and -inf where a key is hidden"


class MaskArray(NamedTuple):
    """A mask from a file, for `heads` query heads (or one matrix for all of them), each
    of n_queries rows (one per query token) and n_keys columns (one per key token).

    - `allowed`: (H, n_queries, n_keys) bool, H the heads or 1 (shared by every head):
      True where the query may attend to the key, as torch's boolean `attn_mask`. It
      is the one answer to "is this cell hidden?" (`~allowed`), for either kind of mask.
    - `bias`: None for a boolean mask; for a float mask (H, n_queries, n_keys) float64,
      added to the scaled scores as torch adds a float `attn_mask`: -inf exactly where
      `allowed` is False, a finite number elsewhere (0 leaves the score as it is).
    - `source`: the file.

    A row may hide every key; what its weights are is the engine's to say (zeros, as
    torch's SDPA with a boolean mask and ONNX).
    """

    allowed: NDArray[np.bool_]
    bias: NDArray[np.float64] | None
    source: str

    @property
    def heads(self) -> int:
        """The heads the mask has a matrix for: the query heads, or 1 for all."""
        return int(self.allowed.shape[0])


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


# ---------------------------------------------------------------- the mask


def load_mask(
    path: str | os.PathLike[str], n_queries: int, n_keys: int, heads: int = 1
) -> MaskArray:
    """The mask in `path` (.npy, a .npz of one array, or JSON) for attention of
    `heads` query heads, `n_queries` query tokens and `n_keys` key tokens.

    Its shape is (n_queries, n_keys), (heads or 1, n_queries, n_keys), or either with a
    leading batch of 1. Booleans (JSON true/false) say where a query may attend; floats
    (float16, float32, float64; JSON numbers) are added to the scaled scores, -inf
    hiding a key (in JSON -Infinity, "-inf" or null). Integers, and floats that are all
    0s and 1s, are refused as ambiguous; NaN and +inf are refused.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "mask.json")
    ...     with open(path, "w") as file:
    ...         _ = file.write("[[true, false], [true, true]]")
    ...     mask = load_mask(path, n_queries=2, n_keys=2)
    >>> mask.allowed.shape, mask.bias
    ((1, 2, 2), None)
    """
    for name, value in (("n_queries", n_queries), ("n_keys", n_keys), ("heads", heads)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
    name = _file_name(path, "mask")
    check = _mask_header_check(n_queries, n_keys, heads)
    content = _read(name, _MASK_FILE, lambda opened: _mask_arrays(opened, check))
    is_json = isinstance(content, str)
    if isinstance(content, str):
        label, mask = "mask", _mask_from_json(content, name, n_queries, n_keys, heads)
    else:
        ((label, mask),) = content.items()
    if mask.dtype == np.bool_:
        allowed = np.ascontiguousarray(mask).reshape(-1, n_queries, n_keys)
        return MaskArray(allowed, None, name)
    bias = _widened(mask, _where(name, label, is_json), bool_too=True)
    _check_float_mask(bias, name, label, is_json)
    bias = bias.reshape(-1, n_queries, n_keys)
    return MaskArray(bias != -np.inf, bias, name)


def _mask_arrays(opened: Opened, check: HeaderCheck) -> dict[str, NDArray[Any]]:
    """{name: the mask} from a .npy file (named "mask") or a .npz archive of one array."""
    if opened.head.startswith(NPY_MAGIC):
        return {"mask": read_npy_file(opened, check)}

    def pick(names: list[str]) -> dict[str, HeaderCheck | None]:
        if len(names) != 1:
            held = ", ".join(map(repr, names)) or "nothing"
            raise AttnError(
                f"{opened.name}: a mask archive holds one array, this one holds {held}; "
                "save the mask alone: numpy.save(path, mask) or numpy.savez(path, mask=mask)"
            )
        return {names[0]: check}

    return read_npz_members(opened, pick)


def _mask_header_check(n_queries: int, n_keys: int, heads: int) -> HeaderCheck:
    def check(where: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        _check_mask_shape(where, shape, n_queries, n_keys, heads)
        _check_mask_dtype(where, dtype)

    return check


def _check_mask_shape(
    where: str, shape: tuple[int, ...], n_queries: int, n_keys: int, heads: int
) -> None:
    """Refuse a mask shape other than (n_queries, n_keys), (heads or 1, n_queries,
    n_keys) or either with a leading batch of 1."""
    rows = (n_queries, n_keys)
    if len(shape) == 4 and shape[0] != 1 and shape[1] in (1, heads) and shape[2:] == rows:
        raise AttnError(
            f"{where}: shape {shape} is a batch of {shape[0]} masks, and attn computes one "
            f"sequence; save one of them, e.g. mask[0], of shape {shape[1:]}"
        )
    unbatched = shape[1:] if len(shape) == 4 and shape[0] == 1 else shape
    if unbatched == rows or (
        len(unbatched) == 3 and unbatched[0] in (1, heads) and unbatched[1:] == rows
    ):
        return
    needed = f"{rows}" if heads == 1 else f"{rows} or {(heads, *rows)}"
    each_head = "" if heads == 1 else " (and one matrix per head, or one for every head)"
    raise AttnError(
        f"{where}: shape {shape}, but attention here needs {needed}: one row per query "
        f"token, one column per key token{each_head}"
    )


def _check_mask_dtype(where: str, dtype: np.dtype[Any]) -> None:
    if dtype.kind == "b" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return
    kinds = (
        "booleans (True where a query may attend: mask.astype(bool)) or floats added "
        "to the scores (-inf where a key is hidden)"
    )
    if dtype.kind in "iu":
        raise AttnError(
            f"{where}: the mask holds {dtype} values, which could mean either kind of "
            f"mask; save {kinds}"
        )
    if dtype.kind == "f":
        raise AttnError(f"{where}: the mask holds {dtype} values; save it as float64")
    raise AttnError(f"{where}: the mask holds {dtype} values; save {kinds}")


def _mask_from_json(
    text: str, source: str, n_queries: int, n_keys: int, heads: int
) -> NDArray[Any]:
    """The mask of a JSON list of rows (or {"mask": rows}), in the shape it has there:
    bool, or float64 with -inf where a key is hidden."""
    obj = parse_json(
        text,
        source,
        _MASK_FORMS,
        "; give the mask as JSON, .npy or .npz",
        constants={"-Infinity": None},  # Python's json.dumps writes -inf so; null = hidden
        constant_hint=f"is not a value a mask may hold; {_FLOAT_MASK_JSON}",
        token_objects=False,
    )
    if isinstance(obj, dict):
        if set(obj) != {"mask"}:
            held = ", ".join(map(repr, obj)) or "nothing"
            raise AttnError(
                f'{source}: a JSON object holding a mask has one key, "mask"; this one holds {held}'
            )
        obj = obj["mask"]
    if not isinstance(obj, list):
        raise AttnError(f"{source}: the mask is {describe(obj)}; {_MASK_FORMS}")
    shape, flat = _nested(obj, source, "mask")
    _check_mask_shape(source, shape, n_queries, n_keys, heads)
    kinds = set(map(type, flat))
    if kinds == {bool}:
        return np.array(flat, dtype=np.bool_).reshape(shape)
    if bool in kinds:
        first_bool = next(i for i, x in enumerate(flat) if type(x) is bool)
        other = next(i for i, x in enumerate(flat) if type(x) is not bool)
        raise AttnError(
            f"{source}: mask{_index(first_bool, shape)} is {describe(flat[first_bool])} "
            f"but mask{_index(other, shape)} is {describe(flat[other])}; a mask is all "
            "booleans (true where a query may attend) or all numbers (added to the scores)"
        )
    return _json_numbers(flat, shape, source, "mask", hidden=True)


def _check_float_mask(bias: NDArray[np.float64], source: str, label: str, is_json: bool) -> None:
    """Refuse NaN and +inf (by index, in the file's shape), and a mask of only 0s and
    1s, which as a float mask hides nothing though it looks like a boolean one."""
    top = float(np.max(bias))  # NaN if any is: one pass, no temporary
    if math.isnan(top) or top == math.inf:
        bad = np.isnan(bias) | (bias == np.inf)
        first = int(np.argmax(bad))  # the first in C order, as _index counts
        holds = _FLOAT_MASK_JSON if is_json else _FLOAT_MASK_NUMPY
        value = float(bias.reshape(-1)[first])
        raise AttnError(f"{source}: {label}{_index(first, bias.shape)} is {value}; {holds}")
    if top != 1.0 or float(np.min(bias)) != 0.0:
        return  # not both 0 and 1 as its extremes, so not only 0s and 1s of both kinds
    if ((bias == 0.0) | (bias == 1.0)).all():
        fix = "write true and false" if is_json else "save it as booleans: mask.astype(bool)"
        raise AttnError(
            f"{source}: the mask holds only 0s and 1s as numbers, which a float mask adds "
            "to the scores (as torch does), hiding no key; if 1 means a query may attend, "
            f"{fix}; a float mask hides a key with -inf"
        )


# ---------------------------------------------------------------- queries, keys, values


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
    name = _file_name(path, "queries, keys and values")
    content = _read(name, _QKV_FILE, _qkv_arrays)
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
        array = _widened(array, where)
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
        shape, flat = _nested(value, source, label)
        _check_qkv_header(f"{source}: {label}", shape, np.dtype(np.float64))
        arrays[label] = _json_numbers(flat, shape, source, label, hidden=False)
    return arrays


def _check_qkv_together(
    arrays: dict[str, NDArray[np.float64]], shapes: dict[str, tuple[int, ...]], source: str
) -> None:
    """q (H, T_q, d), k (H_kv, T_k, d), v (H_kv, T_k, d_v), with H_kv dividing H;
    `shapes` are the file's, which the messages show."""
    (hq, _, dq), (hk, tk, dk), (hv, tv, _) = (arrays[n].shape for n in _QKV_NAMES)
    shown = f"(q {shapes['q']}, k {shapes['k']}, v {shapes['v']})"
    if (hk, tk) != (hv, tv):
        what = f"{hk} heads, v {hv}" if hk != hv else f"{tk} tokens, v {tv}"
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
            f"{source}: q has {hq} heads, k and v {hk} {shown}; in grouped-query attention "
            "each key/value head serves the same number of query heads: give a number of "
            "query heads that is a multiple of the key/value heads"
        )


# ---------------------------------------------------------------- shared


def _file_name(path: str | os.PathLike[str], what: str) -> str:
    name = os.fspath(path)
    if name == "-":
        raise AttnError.usage(
            f'"-" (stdin) cannot give the {what}: stdin may carry the input already; '
            "give a file, or <(command) for a command's output"
        )
    return name


def _read(
    name: str, wanted: str, from_numpy: Callable[[Opened], dict[str, NDArray[Any]]]
) -> dict[str, NDArray[Any]] | str:
    """The arrays `from_numpy` reads from a NumPy file, or the text of anything else
    (refused if binary, not UTF-8 or empty)."""
    with open_input(name, wanted) as opened:  # read once: `<(...)` works too
        if opened.head.startswith(NUMPY_MAGICS):
            return from_numpy(opened)
        refuse_binary(opened.head, name, wanted)
        data = opened.read_all()
    text = decode_text(data, name, wanted)
    if not text.strip():
        what = "is empty" if not text else "holds only whitespace"
        raise AttnError(f"{name} {what}; give {wanted}")
    return text


def _nested(value: list[Any], source: str, label: str) -> tuple[tuple[int, ...], list[Any]]:
    """The shape of a JSON list of lists (each level's lists of one length) and its
    values, flat in C order; or an AttnError naming the first row out of line."""
    shape: list[int] = []
    level: list[Any] = [value]
    while True:
        kinds = set(map(type, level))
        if list not in kinds:
            return tuple(shape), level
        here = tuple(shape)
        if kinds != {list}:
            first = type(level[0]) is list
            i = next(i for i, x in enumerate(level) if (type(x) is list) != first)
            raise AttnError(
                f"{source}: {label}{_index(i, here)} is {describe(level[i])}, but "
                f"{label}{_index(0, here)} is {describe(level[0])}; every row needs the "
                "same depth"
            )
        width = len(level[0])
        if len(set(map(len, level))) > 1:
            i = next(i for i, x in enumerate(level) if len(x) != width)
            raise AttnError(
                f"{source}: {label}{_index(i, here)} has {_items(len(level[i]))}, but "
                f"{label}{_index(0, here)} has {width}; every row needs the same length"
            )
        shape.append(width)
        level = list(itertools.chain.from_iterable(level))


def _json_numbers(
    flat: list[Any], shape: tuple[int, ...], source: str, label: str, hidden: bool
) -> NDArray[np.float64]:
    """JSON numbers as float64 in `shape`; `hidden`: null, and strings float() reads
    as -inf, are -inf (json.loads gave -Infinity as None already)."""
    kinds = set(map(type, flat))
    if kinds <= ({int, float, type(None)} if hidden else {int, float}):
        try:
            array = np.array(flat, dtype=np.float64)  # null -> nan: JSON holds no NaN
        except OverflowError:  # an integer beyond float64
            pass
        else:
            if not np.isinf(array).any():  # inf: a number beyond float64 (1e400)
                if hidden:
                    array[np.isnan(array)] = -np.inf
                return array.reshape(shape)
    values = []
    for i, value in enumerate(flat):
        kind = type(value)
        if kind is int or kind is float:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                fix = "write -Infinity to hide a key" if hidden else "rescale the numbers"
                raise AttnError(
                    f"{source}: {label}{_index(i, shape)} is a number too large for float64 "
                    f"(beyond ±1.8e308); {fix}"
                )
            values.append(number)
        elif hidden and (value is None or (kind is str and _reads_minus_inf(value))):
            values.append(-math.inf)
        else:
            hint = ""
            if hidden:
                hint = f"; {_FLOAT_MASK_JSON}"
            elif kind is str and is_numeric_text(value):
                hint = f"; write it without quotes: {value.strip()}"
            raise AttnError(
                f"{source}: {label}{_index(i, shape)} is {describe(value)}, not a number{hint}"
            )
    return np.array(values, dtype=np.float64).reshape(shape)


def _items(n: int) -> str:
    return "1 item" if n == 1 else f"{n} items"


def _reads_minus_inf(text: str) -> bool:
    return is_numeric_text(text) and float(text) == -math.inf


def _check_finite(array: NDArray[Any], source: str, label: str) -> None:
    """Refuse a value that is not a finite number, by its index in the file's shape."""
    if array.dtype.kind != "f":
        return
    if math.isfinite(np.max(array)) and math.isfinite(np.min(array)):
        return  # NaN propagates to both: two passes without a temporary
    first = int(np.argmax(~np.isfinite(array)))  # the first in C order, as _index counts
    value = array.reshape(-1)[first]
    raise AttnError(
        f"{source}: {label}{_index(first, array.shape)} is {value}, not a finite number; "
        "queries, keys and values must be finite"
    )


def _widened(array: NDArray[Any], where: str, bool_too: bool = False) -> NDArray[np.float64]:
    """`array` as C-contiguous float64, refused if the copy (and, `bool_too`, a bool
    array beside it) cannot fit in free memory."""
    if array.dtype != np.float64:
        n_bytes = array.size * (9 if bool_too else 8)
        room = reading.available_memory()
        if room is not None and n_bytes > room:
            raise AttnError(
                f"{where}: as float64 the array takes {size_text(n_bytes)} ({array.shape} "
                f"values), more than the {size_text(room)} of memory free; give fewer tokens"
            )
    return np.ascontiguousarray(array, dtype=np.float64)


def _where(source: str, label: str, is_json: bool) -> str:
    """How a message names an array: the file, and the member of a .npz archive."""
    return source if is_json or label == "mask" else f"{source}: {label}"


def _index(position: int, shape: tuple[int, ...]) -> str:
    """The index, as numpy writes it, of the `position`-th value in C order of an array
    of `shape` ("" for the array itself).

    >>> _index(5, (2, 3)), _index(0, ())
    ('[1, 2]', '')
    """
    if not shape:
        return ""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(position, shape)) + "]"

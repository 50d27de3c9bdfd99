"""A mask from a file (`--mask FILE`): a .npy array, a .npz archive of one array, or
JSON, boolean or float as torch's `scaled_dot_product_attention` takes `attn_mask`,
shaped (T_q, T_k) or (heads or 1, T_q, T_k), a leading batch of 1 dropped. Read as
arrays.py says."""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError
from .arrays import file_name, index_text, json_numbers, nested, read_arrays_or_text, widened
from .json_text import parse_json
from .numpy_files import NPY_MAGIC, HeaderCheck, read_npy_file, read_npz_members
from .reading import Opened
from .text import describe

__all__ = ["MaskArray", "load_mask"]

_MASK_FILE = "a mask as .npy, .npz (one array) or JSON"
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

    A row may hide every key: its weights are the engine's to say (zeros, as DESIGN.md
    and the README name the convention).
    """

    allowed: NDArray[np.bool_]
    bias: NDArray[np.float64] | None
    source: str

    @property
    def heads(self) -> int:
        """The heads the mask has a matrix for: the query heads, or 1 for all."""
        return int(self.allowed.shape[0])


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
    name = file_name(path, "mask")
    check = _mask_header_check(n_queries, n_keys, heads)
    content = read_arrays_or_text(name, _MASK_FILE, lambda opened: _mask_arrays(opened, check))
    is_json = isinstance(content, str)
    if isinstance(content, str):
        label, mask = "mask", _mask_from_json(content, name, n_queries, n_keys, heads)
    else:
        ((label, mask),) = content.items()
    if mask.dtype == np.bool_:
        allowed = np.ascontiguousarray(mask).reshape(-1, n_queries, n_keys)
        return MaskArray(allowed, None, name)
    bias = widened(mask, _named(name, label, is_json), bool_too=True)
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
    shape, flat = nested(obj, source, "mask")
    _check_mask_shape(source, shape, n_queries, n_keys, heads)
    kinds = set(map(type, flat))
    if kinds == {bool}:
        return np.array(flat, dtype=np.bool_).reshape(shape)
    if bool in kinds:
        first_bool = next(i for i, x in enumerate(flat) if type(x) is bool)
        other = next(i for i, x in enumerate(flat) if type(x) is not bool)
        raise AttnError(
            f"{source}: mask{index_text(first_bool, shape)} is {describe(flat[first_bool])} "
            f"but mask{index_text(other, shape)} is {describe(flat[other])}; a mask is all "
            "booleans (true where a query may attend) or all numbers (added to the scores)"
        )
    return json_numbers(flat, shape, source, "mask", _FLOAT_MASK_JSON)


def _check_float_mask(bias: NDArray[np.float64], source: str, label: str, is_json: bool) -> None:
    """Refuse NaN and +inf (by index, in the file's shape), and a mask of only 0s and
    1s, which as a float mask hides nothing though it looks like a boolean one."""
    top = float(np.max(bias))  # NaN if any is: one pass, no temporary
    if math.isnan(top) or top == math.inf:
        bad = np.isnan(bias) | (bias == np.inf)
        first = int(np.argmax(bad))  # the first in C order, as index_text counts
        holds = _FLOAT_MASK_JSON if is_json else _FLOAT_MASK_NUMPY
        value = float(bias.reshape(-1)[first])
        raise AttnError(f"{source}: {label}{index_text(first, bias.shape)} is {value}; {holds}")
    if top != 1.0 or float(np.min(bias)) != 0.0:
        return  # not both 0 and 1 as its extremes, so not only 0s and 1s of both kinds
    if ((bias == 0.0) | (bias == 1.0)).all():
        fix = "write true and false" if is_json else "save it as booleans: mask.astype(bool)"
        raise AttnError(
            f"{source}: the mask holds only 0s and 1s as numbers, which a float mask adds "
            "to the scores (as torch does), hiding no key; if 1 means a query may attend, "
            f"{fix}; a float mask hides a key with -inf"
        )


def _named(source: str, label: str, is_json: bool) -> str:
    """How a message names an array: the file, and the member of a .npz archive."""
    return source if is_json or label == "mask" else f"{source}: {label}"

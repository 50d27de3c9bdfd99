"""What the readers of arrays given beside the input share: a mask (mask_file.py) and
queries, keys and values (qkv_file.py).

Files are read as every input is (reading.py, numpy_files.py): once, bounded by free
memory, binary data refused from its first bytes, a .npy header and a .npz directory
checked before any data is read, never memory-mapped; JSON by the one strict parser
(json_text.parse_json), its nested lists shaped here and converted at C speed, walked
one by one only to say where a problem is. The content decides the format, whatever
the name. Stdin (`-`) is refused: it may carry the input already. Messages name a value
by its index as numpy writes it, in the file's own shape: `q[0, 3, 1]`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError, size_text
from . import reading
from .reading import NUMPY_MAGICS, Opened, decode_text, open_input, refuse_binary
from .text import describe, is_numeric_text


def file_name(path: str | os.PathLike[str], what: str) -> str:
    """`path` as a name; stdin (`-`) is refused, as it may carry the input already."""
    name = os.fspath(path)
    if name == "-":
        raise AttnError.usage(
            f'"-" (stdin) cannot give the {what}: stdin may carry the input already; '
            "give a file, or <(command) for a command's output"
        )
    return name


def read_arrays_or_text(
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


def nested(value: list[Any], source: str, label: str) -> tuple[tuple[int, ...], list[Any]]:
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
                f"{source}: {label}{index_text(i, here)} is {describe(level[i])}, but "
                f"{label}{index_text(0, here)} is {describe(level[0])}; every row needs the "
                "same depth"
            )
        width = len(level[0])
        if len(set(map(len, level))) > 1:
            i = next(i for i, x in enumerate(level) if len(x) != width)
            raise AttnError(
                f"{source}: {label}{index_text(i, here)} has {_items(len(level[i]))}, but "
                f"{label}{index_text(0, here)} has {width}; every row needs the same length"
            )
        shape.append(width)
        level = list(itertools.chain.from_iterable(level))


def json_numbers(
    flat: list[Any],
    shape: tuple[int, ...],
    source: str,
    label: str,
    hidden_hint: str | None = None,
) -> NDArray[np.float64]:
    """JSON numbers (`flat`, as `nested` gives them) as float64 in `shape`, or an
    AttnError naming the first value that is not a number within float64.
    `hidden_hint`: null and strings float() reads as -inf (and -Infinity, which the
    parser gives as None) are -inf, and messages say the values may be `hidden_hint`."""
    hidden = hidden_hint is not None
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
                raise AttnError(
                    f"{source}: {label}{index_text(i, shape)} is a number too large for "
                    f"float64 (beyond ±1.8e308); {hidden_hint or 'rescale the numbers'}"
                )
            values.append(number)
        elif hidden and (value is None or (kind is str and _reads_minus_inf(value))):
            values.append(-math.inf)
        else:
            hint = f"; {hidden_hint}" if hidden else ""
            if not hidden and kind is str and is_numeric_text(value):
                hint = f"; write it without quotes: {value.strip()}"
            raise AttnError(
                f"{source}: {label}{index_text(i, shape)} is {describe(value)}, not a number{hint}"
            )
    return np.array(values, dtype=np.float64).reshape(shape)


def _items(n: int) -> str:
    return "1 item" if n == 1 else f"{n} items"


def _reads_minus_inf(text: str) -> bool:
    return is_numeric_text(text) and float(text) == -math.inf


def widened(array: NDArray[Any], where: str, bool_too: bool = False) -> NDArray[np.float64]:
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


def index_text(position: int, shape: tuple[int, ...]) -> str:
    """The index, as numpy writes it, of the `position`-th value in C order of an array
    of `shape` ("" for the array itself).

    >>> index_text(5, (2, 3)), index_text(0, ())
    ('[1, 2]', '')
    """
    if not shape:
        return ""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(position, shape)) + "]"

"""A reader's own numbers (`attn check THEIRS`): what they computed, to be checked.

THEIRS is one of:
- attn's own JSON output (`attn weights -f json`): the stage is its command;
- a JSON object of stages, `{"weights": [[...]], "context": [[...]]}` (the book's names
  `attn_scores`, `attn_weights`, `context_vecs` too), each one matrix or one per head,
  `tokens` optional; or a .npz archive of arrays so named;
- a bare matrix with `--stage`: a JSON list, CSV or TSV (attn's own CSV too, its token
  and head columns), whitespace-separated numbers (numpy.savetxt), a .npy array;
- a tensor or array as torch or numpy print it, pasted: `tensor([[0.4421, 0.5931]])`,
  `array([...])`, `[[0.4421 0.5931]]`.

Numbers may be -inf (a masked score; null in JSON, as attn writes it), NaN and inf
(what a mistake can give): they are compared, not refused. Each array's precision is
what it was written with: its dtype for .npy and .npz; for text, the decimals (or
significant digits, in scientific notation) it shows, or float32 or float64 when the
numbers are written in full. Read as every input is (reading.py): once, bounded, binary
data refused from its first bytes, a .npy header checked before its data.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError, setting
from .arrays import index_text, nested, widened
from .json_text import parse_json
from .numpy_files import NPY_MAGIC, read_npy_file, read_npz_members
from .printed import NUMBER, PRINTED_START, check_shape, printed, table
from .reading import HEAD_BYTES, NUMPY_MAGICS, Opened, decode_text, open_input, refuse_binary
from .text import describe, is_numeric_text

__all__ = ["STAGES", "Given", "Precision", "Theirs", "load_theirs", "theirs_from_bytes"]

# The stages a reader may give, in the order they are computed.
STAGES = ("queries", "keys", "values", "scores", "weights", "context")
# The book's names for them.
ALIASES = {"attn_scores": "scores", "attn_weights": "weights", "context_vecs": "context"}
_WANTED = (
    "your numbers: attn's JSON output, a JSON object of stages, a bare matrix (JSON, CSV, "
    ".npy) with --stage, or a tensor as torch prints it"
)
_OBJECT_FORMS = (
    'expected attn\'s JSON output, {"weights": [[...]], ...} with stages among '
    f"{', '.join(STAGES)}, or a bare matrix [[...], ...] with --stage"
)


class Precision(NamedTuple):
    """How precisely a reader's numbers are written.

    - "float64", "float32", "float16": in full, with that dtype's precision;
    - "decimals": printed with `digits` decimals (torch's default prints 4);
    - "significant": printed in scientific notation, `digits` decimals of the mantissa;
    - "whole": whole numbers only (torch prints `1.` when every number is whole).
    """

    kind: str
    digits: int = 0

    def describe(self) -> str:
        """In a phrase: "4 decimals", "5 significant digits", "float32", "whole numbers"."""
        if self.kind == "decimals":
            return f"{self.digits} decimal{'s' if self.digits != 1 else ''}"
        if self.kind == "significant":
            return f"{self.digits + 1} significant digits"
        if self.kind == "whole":
            return "whole numbers"
        return self.kind

    @property
    def full(self) -> bool:
        """Whether the numbers carry a dtype's full precision (not printed rounded)."""
        return self.kind in ("float64", "float32", "float16")

    def half_unit(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """How far each printed number may be from the number it rounds: half a unit of
        its last digit (0 for numbers written in full)."""
        if self.kind == "decimals":
            return np.full(values.shape, 0.5 * 10.0**-self.digits)
        if self.kind == "significant":
            with np.errstate(divide="ignore", invalid="ignore"):
                magnitude = np.where(np.isfinite(values) & (values != 0), np.abs(values), 1.0)
                exponent = np.floor(np.log10(magnitude))
            half: NDArray[np.float64] = 0.5 * 10.0 ** (exponent - self.digits)
            return half
        return np.zeros(values.shape)


class Given(NamedTuple):
    """One stage of the reader's numbers, as given (a leading batch axis included)."""

    stage: str
    array: NDArray[np.float64]
    precision: Precision
    where: str  # how messages name it: "mine.json: weights"


class Theirs(NamedTuple):
    """Everything THEIRS gives, stage by stage in the order computed."""

    source: str
    given: tuple[Given, ...]
    form: str  # what THEIRS was read as, for the report
    query: int | None = None  # attn's JSON output of one --query row: its index
    tokens: tuple[str, ...] | None = None  # the tokens attn's own output names


def load_theirs(path: str | os.PathLike[str], stage: str | None = None) -> Theirs:
    """The numbers in `path`; `stage` names the stage of a bare matrix (--stage)."""
    name = os.fspath(path)
    with open_input(name, _WANTED) as opened:
        if opened.head.startswith(NUMPY_MAGICS):
            return _from_numpy(opened, stage)
        refuse_binary(opened.head, name, _WANTED)
        data = opened.read_all()
    return _from_text(decode_text(data, name, _WANTED), name, stage)


def theirs_from_bytes(data: bytes, source: str, stage: str | None = None) -> Theirs:
    """The numbers in `data` (stdin: pasted text, or a .npy or .npz file's bytes)."""
    if data.startswith(NUMPY_MAGICS):
        opened = Opened(source, io.BytesIO(data), data[:HEAD_BYTES], len(data))
        return _from_numpy(opened, stage)
    return _from_text(decode_text(data, source, _WANTED), source, stage)


def stage_name(name: str) -> str | None:
    """The stage a name means (the book's names too), or None."""
    return name if name in STAGES else ALIASES.get(name)


# ---------------------------------------------------------------- text


def _from_text(text: str, source: str, stage: str | None) -> Theirs:
    text = text.removeprefix("\ufeff")
    stripped = text.strip()
    if not stripped:
        what = "is empty" if not text else "holds only whitespace"
        raise AttnError(f"{source} {what}; give {_WANTED}")
    if stripped.startswith("{"):
        return _from_json_object(stripped, source, stage)
    if PRINTED_START.match(stripped):
        array, literals, what = printed(stripped, source)
        return _bare(array, _precision(literals, array, printed=True), source, stage, what)
    if stripped.startswith("["):
        obj = _json_or_none(stripped, source)
        if isinstance(obj, list):
            array, literals = _json_array(obj, source, stage or "the matrix")
            precision = _precision(literals, array, printed=False)
            return _bare(array, precision, source, stage, "a JSON list")
        array, literals, what = printed(stripped, source)  # numpy's: [[0.4 0.6]]
        return _bare(array, _precision(literals, array, printed=True), source, stage, what)
    array, literals, what = table(text, source)
    return _bare(array, _precision(literals, array, printed=True), source, stage, what)


def _bare(
    array: NDArray[np.float64], precision: Precision, source: str, stage: str | None, what: str
) -> Theirs:
    """A matrix without a name: its stage is --stage's."""
    if stage is None:
        raise AttnError.usage(
            f"{source} is {what} of shape {tuple(array.shape)} and does not say which stage "
            f"it is; add --stage scores, weights, context, queries, keys or values"
            f"{_stage_hint(array)}"
        )
    stage = check_stage(stage)
    return Theirs(source, (Given(stage, array, precision, source),), what)


def _stage_hint(array: NDArray[np.float64]) -> str:
    if array.ndim >= 2 and array.shape[-1] == array.shape[-2]:
        return f" (a {array.shape[-2]}×{array.shape[-1]} matrix: --stage scores or weights?)"
    return ""


def _json_or_none(text: str, source: str) -> Any:
    """The JSON value of `text`, or None when it is not JSON (numpy's printed arrays)."""
    try:
        return parse_json(
            text,
            source,
            _OBJECT_FORMS,
            constants={"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf},
            token_objects=False,
        )
    except AttnError:
        return None


def _from_json_object(text: str, source: str, stage: str | None) -> Theirs:
    obj = parse_json(
        text,
        source,
        _OBJECT_FORMS,
        constants={"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf},
        token_objects=False,
    )
    if not isinstance(obj, dict):  # pragma: no cover (the text starts with "{")
        raise AttnError(f"{source}: the JSON is {describe(obj)}; {_OBJECT_FORMS}")
    if stage is not None:
        raise AttnError.usage(
            f"{source} names its stages itself (a JSON object); --stage is for a bare matrix: "
            "drop --stage"
        )
    if "command" in obj:
        return _from_attn_output(obj, source)
    tokens = _tokens(obj.pop("tokens"), source) if "tokens" in obj else None
    unknown = [key for key in obj if stage_name(key) is None]
    if unknown or not obj:
        named = ", ".join(repr(key) for key in unknown) if unknown else "no stage"
        raise AttnError(
            f"{source}: {named}; a JSON object of your numbers holds stages among "
            f"{', '.join(STAGES)} (or the book's {', '.join(ALIASES)}), and optionally tokens"
        )
    arrays: dict[str, Given] = {}
    for key, value in obj.items():
        name = stage_name(key)
        assert name is not None
        if name in arrays:
            raise AttnError(
                f'{source}: both "{name}" and its book name "{_alias_of(name)}"; keep one'
            )
        array, literals = _json_array(value, source, key)
        arrays[name] = Given(
            name, array, _precision(literals, array, printed=False), f"{source}: {key}"
        )
    given = tuple(arrays[name] for name in STAGES if name in arrays)
    return Theirs(source, given, "a JSON object of stages", tokens=tokens)


def _alias_of(stage: str) -> str:
    return next(alias for alias, name in ALIASES.items() if name == stage)


def _from_attn_output(obj: dict[str, Any], source: str) -> Theirs:
    """attn's own JSON output: `command` names the stage, `values` the numbers."""
    command = obj.get("command")
    if command not in STAGES:
        shown = f"`attn {command}`" if isinstance(command, str) else "attn"
        raise AttnError(
            f"{source}: the output of {shown}, which attn check cannot compare; give the "
            f"output of attn {', '.join(STAGES[:-1])} or {STAGES[-1]} (-f json)"
        )
    if "values" not in obj:
        raise AttnError(f'{source}: attn\'s JSON output without "values"; give it whole')
    query = obj.get("query")
    index = None
    if query is not None:
        index = query.get("index") if isinstance(query, dict) else None
        if type(index) is not int or index < 0:
            raise AttnError(f'{source}: "query" is {describe(query)}; give attn\'s output whole')
    tokens = _tokens(obj.get("tokens"), source) if "tokens" in obj else None
    array, literals = _json_array(obj["values"], source, "values")
    given = Given(
        command, array, _precision(literals, array, printed=False), f"{source}: {command}"
    )
    return Theirs(source, (given,), f"the output of `attn {command}`", index, tokens)


def _tokens(value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise AttnError(f'{source}: "tokens" is {describe(value)}; give a list of strings')
    return tuple(value)


def _json_array(value: Any, source: str, label: str) -> tuple[NDArray[np.float64], list[str]]:
    """A JSON list of lists of numbers (null: -inf, a masked score) as float64, with the
    numbers as written (Python's shortest repr) for their precision."""
    if not isinstance(value, list):
        raise AttnError(f"{source}: {label} is {describe(value)}; give a list of rows of numbers")
    shape, flat = nested(value, source, label)
    check_shape(shape, f"{source}: {label}")
    numbers: list[float] = []
    for i, item in enumerate(flat):
        kind = type(item)
        if item is None:
            numbers.append(-math.inf)
        elif kind is float:
            numbers.append(item)
        elif kind is int:
            try:
                numbers.append(float(item))
            except OverflowError:
                numbers.append(math.inf if item > 0 else -math.inf)
        else:
            hint = ""
            if kind is str and is_numeric_text(item):
                hint = f"; write it without quotes: {item.strip()}"
            raise AttnError(
                f"{source}: {label}{index_text(i, shape)} is {describe(item)}, not a number{hint}"
            )
    literals = [repr(x) for x in numbers]
    return np.array(numbers, dtype=np.float64).reshape(shape), literals


# ---------------------------------------------------------------- .npy and .npz


def _from_numpy(opened: Opened, stage: str | None) -> Theirs:
    source = opened.name
    if opened.head.startswith(NPY_MAGIC):
        array = read_npy_file(opened, _check_header)
        return _bare(*_numbers_of(array, source), source, stage, "a .npy array")
    if stage is not None:
        raise AttnError.usage(
            f"{source} is a .npz archive, whose arrays name their stages; --stage is for a "
            "bare matrix: drop --stage"
        )

    def pick(names: list[str]) -> dict[str, Any]:
        unknown = [name for name in names if stage_name(name) is None]
        if unknown or not names:
            held = ", ".join(map(repr, unknown)) if unknown else "nothing"
            raise AttnError(
                f"{source}: the archive holds {held}; name its arrays by stage: "
                f"numpy.savez(path, weights=..., context=...) with stages among "
                f"{', '.join(STAGES)}"
            )
        return dict.fromkeys(names, _check_header)

    arrays = read_npz_members(opened, pick)
    found: dict[str, Given] = {}
    for name, raw in arrays.items():
        stage_of = stage_name(name)
        assert stage_of is not None
        if stage_of in found:
            raise AttnError(f"{source}: both {stage_of!r} and {name!r}; keep one")
        array, precision = _numbers_of(raw, f"{source}: {name}")
        found[stage_of] = Given(stage_of, array, precision, f"{source}: {name}")
    given = tuple(found[name] for name in STAGES if name in found)
    return Theirs(source, given, "a .npz archive of stages")


def _check_header(where: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    check_shape(shape, where)
    if dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return
    hint = "save real numbers"
    if dtype.kind == "c":
        hint = "save array.real"
    elif dtype.kind == "b":
        hint = "save the numbers, not a mask"
    elif dtype.kind == "V" and dtype.itemsize == 2:
        hint = "bfloat16? save tensor.float().numpy()"
    elif dtype.kind == "f":
        hint = "save it as float64"
    raise AttnError(f"{where}: the array holds {dtype} values; {hint}")


def _numbers_of(array: NDArray[Any], where: str) -> tuple[NDArray[np.float64], Precision]:
    """An array of the file as float64, and the precision of its dtype."""
    kind = {2: "float16", 4: "float32"}.get(array.dtype.itemsize, "float64")
    if array.dtype.kind != "f":
        kind = "whole"
    widened_array = widened(array, where)
    if kind == "float64" and _float32_exact(widened_array):
        kind = "float32"  # a float32 tensor's numbers, saved as float64
    return widened_array, Precision(kind)


# ---------------------------------------------------------------- precision


def _float32_exact(values: NDArray[np.float64]) -> bool:
    finite = values[np.isfinite(values)]
    with np.errstate(over="ignore"):
        return bool((finite.astype(np.float32).astype(np.float64) == finite).all())


def _precision(literals: list[str], values: NDArray[np.float64], printed: bool) -> Precision:
    """The precision numbers were written with, from the numbers as written.

    Ten or more significant digits is a number written in full: when most numbers are,
    the numbers are float64's (float32's when every value is a float32, as torch's
    tensors' .tolist() gives them); else they were rounded, to the most decimals any
    other number shows, or in scientific notation (as torch prints small or large
    numbers) the most decimals of any mantissa. (A rounded number changed after
    rounding, 0.2555 + 0.0002, is written in full but does not make the rest full.)

    >>> _precision(["0.4421", "0.5931", "0.5790"], np.zeros(3), True)
    Precision(kind='decimals', digits=4)
    >>> _precision(["1.2345e-05", "2.0000e+00"], np.zeros(2), True)
    Precision(kind='significant', digits=4)
    >>> _precision(["0.30610021556323754"], np.array([0.30610021556323754]), False)
    Precision(kind='float64', digits=0)
    """
    decimals: list[int] = []
    significant: list[int] = []
    mantissa_decimals: list[int] = []
    exponents = False
    for literal in literals:
        match = NUMBER.fullmatch(literal.strip())
        if match is None:
            continue  # nan, inf
        whole = match.group("int") or ""
        fraction = match.group("frac") or match.group("frac2") or ""
        if not printed:  # the shortest repr: a trailing zero is only "1.0"'s
            fraction = fraction.rstrip("0")
        exponent = int(match.group("exp") or 0)
        exponents = exponents or match.group("exp") is not None
        decimals.append(len(fraction) - exponent)
        mantissa_decimals.append(len(fraction))
        significant.append(len((whole + fraction).lstrip("0")))
    # A whole number written by repr (0.0, 1.0) says nothing of the rest's precision;
    # printed, its decimals do (0.0000).
    telling = [i for i, n in enumerate(significant) if printed or decimals[i] > 0]
    full = [i for i in telling if significant[i] >= 10]
    if not telling or 2 * len(full) > len(telling):
        exact = not telling and not printed  # whole numbers from JSON or a .npy of floats
        if exact and decimals:
            return Precision("whole")
        return Precision("float32" if _float32_exact(values) else "float64")
    rounded = [i for i in telling if significant[i] < 10]
    if max(decimals[i] for i in rounded) <= 0 and not exponents:
        return Precision("whole")
    if printed and exponents:
        return Precision("significant", max(mantissa_decimals[i] for i in rounded))
    return Precision("decimals", max(0, *(decimals[i] for i in rounded)))


def check_stage(stage: str) -> str:
    """--stage's value, checked."""
    if stage_name(stage) is None:
        raise AttnError.usage(
            f"{setting('stage', stage)} is not a stage; give one of {', '.join(STAGES)}"
        )
    name = stage_name(stage)
    assert name is not None
    return name

"""JSON input: one parser for every length.

json.loads (C) reads the text; a vector of types and lengths checks the rows at once,
and numpy converts them in one call. Only when that check fails are the values walked
one by one, to say precisely where the problem is. (A fast path that handed the numbers
to np.loadtxt was about 20% faster on long inputs, but it read +1, .5, 01, trailing
commas and duplicate keys differently; checking its text strictly costs more than the
difference.)

The two forms long inputs come in, {"tokens": [...], "embeddings": [[...], ...]} and
[[...], ...], are first read a block of rows at a time by json.loads's own scanner, each
block checked as above and converted before the next is read: every number is a Python
float for a moment only, not all at once (at 100 000 x 64 those floats and their lists
were 260 MiB, twice the text; the peak is 281 MiB now, 599 before and 413 for plain
json.load, in a little less time). Anything else, any mistake, and anything the checks
would say something about is left to json.loads and the checks, which word it as ever.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from ..embeddings import Embeddings
from ..errors import AttnError, setting
from .text import VECTOR_COMMANDS, check_finite, describe, is_numeric_text, looks_like_json

_FORMS = (
    'expected {"tokens": [...], "embeddings": [[...], ...]}, '
    '{"token": [numbers], ...} or [[numbers], ...]'
)


_CSV_HINT = f"; if it is CSV or TSV, pass {setting('input_format', 'csv')} or tsv"


class _NonFiniteLiteralError(ValueError):
    pass


_NOT_FINITE = "is not a number JSON allows; every value must be a finite number"


def parse_json(
    text: str,
    source: str,
    forms: str,
    not_json_hint: str = _CSV_HINT,
    *,
    constants: Mapping[str, Any] | None = None,
    constant_hint: str = _NOT_FINITE,
    token_objects: bool = True,
) -> Any:
    """Strict JSON (no NaN or Infinity, no key twice in an object), or an AttnError
    with the line and column; `forms` says what was expected, `not_json_hint` what to do
    about text that does not even start as JSON does. An integer too long for
    Python to convert (over 4300 digits) becomes infinity, so the checks of the values
    name it as too large.

    `constants`: the literals of Python's JSON extension (NaN, Infinity, -Infinity) a
    reader accepts, and the value each becomes; any other is refused, followed by
    `constant_hint`. `token_objects`: a key twice in the top-level object is a repeated
    token of the embeddings' {"token": [numbers]} form (False: of any other object).
    """
    repeated: list[tuple[str, dict[str, Any]]] = []
    accepted = constants or {}

    def constant(literal: str) -> Any:
        if literal in accepted:
            return accepted[literal]
        raise _NonFiniteLiteralError(literal)

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs) and not repeated:
            repeated.append((_first_repeat(pairs), obj))
        return obj

    try:
        try:
            obj = json.loads(text, parse_constant=constant, object_pairs_hook=pairs_to_dict)
        except ValueError as exc:
            if isinstance(exc, (json.JSONDecodeError, _NonFiniteLiteralError)):
                raise
            # int() refused a literal of more than sys.get_int_max_str_digits() digits
            repeated.clear()
            obj = json.loads(
                text,
                parse_constant=constant,
                object_pairs_hook=pairs_to_dict,
                parse_int=_int_or_infinity,
            )
    except _NonFiniteLiteralError as exc:
        where = _locate(text, str(exc))
        raise AttnError(f"{source}: {where}{exc} {constant_hint}") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if not looks_like_json(text):
            hint = not_json_hint
        elif exc.pos >= len(text.rstrip()):
            hint = "; the text ends before the JSON does (cut short?)"
        raise AttnError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except RecursionError:
        raise AttnError(f"{source}: JSON nested too deeply; {forms}") from None
    if repeated:
        key, holder = repeated[0]
        raise _repeated_key(key, token_objects and holder is obj, obj, source)
    return obj


def _repeated_key(key: str, top_level: bool, obj: Any, source: str) -> AttnError:
    """json.loads would keep the last of two equal keys: say which, and the way out."""
    structural = {"tokens", "embeddings", "values", "command", "query"}
    if top_level and isinstance(obj, dict) and not structural & (set(obj) | {key}):
        return AttnError(
            f"{source}: token {key!r} appears twice in the object form "
            '{"token": [numbers], ...}, where JSON keeps only the last; for repeated '
            'tokens give {"tokens": [...], "embeddings": [[...], ...]}'
        )
    return AttnError(
        f"{source}: the key {json.dumps(key)} appears twice in one JSON object, where "
        "JSON keeps only the last; keep one"
    )


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no key repeats")  # pragma: no cover


def _int_or_infinity(literal: str) -> int | float:
    limit = sys.get_int_max_str_digits()
    if limit and len(literal.lstrip("-")) > limit:
        return -math.inf if literal.startswith("-") else math.inf
    return int(literal)


def from_json(text: str, source: str) -> Embeddings:
    """Token embeddings from JSON text."""
    read = _by_rows(text)
    if read is not None:
        given, matrix = read
        tokens = given if given is not None else tuple(f"x{i + 1}" for i in range(len(matrix)))
        check_finite(matrix, tokens, source)
        return Embeddings(tokens, matrix, source)
    obj = parse_json(text, source, _FORMS)
    if isinstance(obj, dict):
        if "embeddings" in obj and "values" in obj:
            raise AttnError(
                f'{source}: has both "embeddings" and "values"; keep one ("values" is what '
                "attn's own output holds)"
            )
        if "command" in obj and "values" in obj:
            return _from_attn_output(obj, source)
        if "embeddings" in obj:
            return _from_tokens_and_embeddings(obj, source)
        if "tokens" in obj:
            raise AttnError(f'{source}: has "tokens" but no "embeddings"; {_FORMS}')
        if not obj:
            raise AttnError(f"{source}: the JSON object is empty; {_FORMS}")
        tokens = tuple(obj)
        for token, vector in obj.items():
            if not isinstance(vector, list):
                raise AttnError(
                    f"{source}: token {token!r} maps to {describe(vector)}, "
                    f"not a list of numbers; {_FORMS}"
                )
        return Embeddings(tokens, _matrix(list(obj.values()), tokens, source), source)
    if isinstance(obj, list):
        if obj and all(_is_number(v) for v in obj):
            raise AttnError(
                f"{source}: a flat list of numbers is one vector, not a list of tokens; "
                "wrap each token's vector in a list: [[0.43, 0.15], [0.55, 0.87]]"
            )
        tokens = tuple(f"x{i + 1}" for i in range(len(obj)))
        return Embeddings(tokens, _matrix(obj, tokens, source), source)
    raise AttnError(f"{source}: the JSON is {describe(obj)}; {_FORMS}")


# JSON's whitespace (json.decoder's own pattern), and a comma between values.
_SPACE = re.compile(r"[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
# The text of the rows read and converted at once: some 12 000 numbers of 19 characters,
# half a MiB as Python floats and lists
_BLOCK_CHARS = 1 << 18


def _refuse_constant(literal: str) -> NoReturn:
    raise ValueError(literal)  # NaN, Infinity: parse_json says where


# json.loads's scanner with parse_json's settings, a value at a time (NaN refused)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class _NotByRowsError(ValueError):
    """Text the row-at-a-time reading does not take: parse_json and the checks read it
    and say what, if anything, is wrong."""


def _by_rows(text: str) -> tuple[tuple[str, ...] | None, NDArray[np.float64]] | None:
    """The tokens (None: not given) and matrix of {"tokens": [...], "embeddings": [[...],
    ...]} (the keys in either order, "tokens" optional) or [[...], ...], read a block of
    rows at a time; None for any other text, and for any that from_json's checks before
    check_finite would refuse.

    What this accepts, json.loads reads as the same values (its scanner reads each one,
    between JSON's own whitespace, commas, colons and brackets), and from_json's checks
    accept as the same tokens and matrix."""
    try:
        at = _after_space(text, 0)
        tokens = None
        if text.startswith("{", at):
            tokens, matrix, at = _tokens_and_rows(text, at)
            if tokens is not None and len(tokens) != len(matrix):
                return None
        else:
            matrix, at = _rows(text, at)
    except (ValueError, RecursionError):  # JSONDecodeError too: parse_json says where
        return None
    if _after_space(text, at) != len(text):
        return None
    return tokens, matrix


def _after_space(text: str, at: int) -> int:
    space = _SPACE.match(text, at)
    return at if space is None else space.end()


def _tokens_and_rows(
    text: str, start: int
) -> tuple[tuple[str, ...] | None, NDArray[np.float64], int]:
    """The tokens, the matrix and the end of {"tokens": [strings], "embeddings": [rows]}
    at `start` (a `{`)."""
    tokens = None
    matrix = None
    at = _after_space(text, start + 1)
    while text.startswith('"', at):
        key, at = _DECODER.raw_decode(text, at)
        at = _after_space(text, at)
        if not text.startswith(":", at):
            raise _NotByRowsError("no colon")
        at = _after_space(text, at + 1)
        if key == "embeddings" and matrix is None:
            matrix, at = _rows(text, at)
        elif key == "tokens" and tokens is None:
            value, at = _DECODER.raw_decode(text, at)
            if type(value) is not list or not set(map(type, value)) <= {str}:
                raise _NotByRowsError("not a list of strings")
            tokens = tuple(value)
        else:
            raise _NotByRowsError("another key, or a key twice")
        at = _after_space(text, at)
        if text.startswith("}", at) and matrix is not None:
            return tokens, matrix, at + 1
        if not text.startswith(",", at):
            break
        at = _after_space(text, at + 1)
    raise _NotByRowsError("not the object of tokens and embeddings")


def _rows(text: str, start: int) -> tuple[NDArray[np.float64], int]:
    """The matrix of the JSON list of vectors at `start` and where the list ends, read
    and converted a block of rows at a time: every row a list of the same non-zero
    length of numbers that float64 holds, what _matrix converts at once."""
    if not text.startswith("[", start):
        raise _NotByRowsError("not a list")
    blocks: list[NDArray[np.float64]] = []
    width = 0
    whole = True
    at = _after_space(text, start + 1)
    while True:
        rows, at, whole = _some_rows(text, at, whole)
        width = width or _width(rows[0])
        blocks.append(_plain_block(rows, width))
        comma = _COMMA.match(text, at)
        if comma is None:
            break
        at = comma.end()
    at = _after_space(text, at)
    if not text.startswith("]", at):
        raise _NotByRowsError("not the end of the list")
    matrix = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return matrix, at + 1


def _some_rows(text: str, at: int, whole: bool) -> tuple[list[Any], int, bool]:
    """The rows from `at` (a value's start) to where they end, that end, and whether to
    try a block next time: as many as end within _BLOCK_CHARS, read by one call of the
    scanner, else (and once that failed, or with `whole` False) the one row at `at`.

    Those rows' text, cut after a `]`, in brackets of its own, is read as a whole list
    or not at all: a list of values between commas, the very values the scanner reads
    in place (a cut inside a string or a row leaves the brackets or quotes unmatched).
    The last `]` within reach may be the one closing the list of rows: then the one
    before it ends the rows."""
    if not whole:
        row, at = _DECODER.raw_decode(text, at)  # a mistake too: parse_json says where
        return [row], at, False
    cut = text.rfind("]", at, at + _BLOCK_CHARS)
    for _ in range(2):
        if cut <= at:
            break
        piece = "[" + text[at : cut + 1] + "]"
        try:
            rows, end = _DECODER.raw_decode(piece)
        except ValueError:
            end = -1
        if end == len(piece) and rows:
            return rows, cut + 1, True
        cut = text.rfind("]", at, cut)
    # From here on a row at a time: trying a block again for every row before a mistake
    # (or before the end of the rows, when more brackets follow them) parsed the block
    # once a row, and a 1 MiB text took 8 s to be refused.
    row, at = _DECODER.raw_decode(text, at)  # a mistake too: parse_json says where
    return [row], at, False


def _width(row: Any) -> int:
    if type(row) is not list or not row:
        raise _NotByRowsError("not a vector")
    return len(row)


def _plain_block(rows: list[Any], width: int) -> NDArray[np.float64]:
    """A block of rows as float64, checked as _matrix checks all of them at once."""
    if not (
        set(map(type, rows)) == {list}
        and set(map(len, rows)) == {width}
        and set(map(type, itertools.chain.from_iterable(rows))) <= {float, int}
    ):
        raise _NotByRowsError("not plain rows")
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise _NotByRowsError("not plain rows") from None


def _from_tokens_and_embeddings(obj: dict[str, Any], source: str) -> Embeddings:
    rows = obj["embeddings"]
    if not isinstance(rows, list):
        raise AttnError(f'{source}: "embeddings" is {describe(rows)}; {_FORMS}')
    if "tokens" not in obj:
        tokens = tuple(f"x{i + 1}" for i in range(len(rows)))
    else:
        tokens = _tokens(obj["tokens"], source)
        if len(tokens) != len(rows):
            raise AttnError(
                f'{source}: {len(tokens)} "tokens" but {len(rows)} "embeddings" rows; '
                "give one vector per token"
            )
    return Embeddings(tokens, _matrix(rows, tokens, source), source)


def _from_attn_output(obj: dict[str, Any], source: str) -> Embeddings:
    command = obj.get("command")
    if command not in VECTOR_COMMANDS:
        raise AttnError(
            f"{source}: this is the output of `attn {command}`, not embeddings; pipe the "
            "output of `attn context -f json` (one vector per token) into the next layer"
        )
    if obj.get("query") is not None:
        raise AttnError(
            f"{source}: this `attn {command}` output holds one --query row only; "
            "run it without --query to pass every token on"
        )
    tokens = _tokens(obj.get("tokens"), source)
    rows = obj["values"]
    if not isinstance(rows, list) or len(rows) != len(tokens):
        raise AttnError(f'{source}: "values" must hold one vector per token ({len(tokens)})')
    return Embeddings(tokens, _matrix(rows, tokens, source), source)


def _tokens(value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise AttnError(f'{source}: "tokens" is {describe(value)}; give a list of strings')
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise AttnError(
                f"{source}: token {i} is {describe(token)}, not a string; "
                f"quote it: {json.dumps(str(token))}"
            )
    return tuple(value)


def _matrix(rows: list[Any], tokens: Sequence[str], source: str) -> NDArray[np.float64]:
    """Check a JSON list of vectors (numbers only, one length, finite) and convert it."""
    if not rows:
        raise AttnError(f"{source}: no tokens; give at least one token's vector")
    # At C speed: every row a list, all of one non-zero length, every value an int or
    # a float (bool is an int subclass, but its type is bool).
    plain = (
        set(map(type, rows)) == {list}
        and len(set(map(len, rows))) == 1
        and len(rows[0]) > 0
        and set(map(type, itertools.chain.from_iterable(rows))) <= {float, int}
    )
    if plain:
        try:
            matrix = np.array(rows, dtype=np.float64)  # (T, d_in)
        except OverflowError:  # an integer beyond float64
            plain = False
    if not plain:
        _find_problem(rows, tokens, source)
    check_finite(matrix, tokens, source)
    return matrix


def _find_problem(rows: list[Any], tokens: Sequence[str], source: str) -> NoReturn:
    """The AttnError for the first value `_matrix` cannot take, said precisely."""
    width = None
    for i, row in enumerate(rows):
        where = f"row {i + 1} (token {tokens[i]!r})"
        if not isinstance(row, list):
            raise AttnError(f"{source}: {where} is {describe(row)}, not a list of numbers")
        if width is None:
            width = len(row)
            if width == 0:
                raise AttnError(
                    f"{source}: {where} is an empty vector; give each token d_in ≥ 1 numbers"
                )
        elif len(row) != width:
            raise AttnError(
                f"{source}: {where} has {len(row)} numbers, but row 1 has {width}; "
                "every vector needs the same length"
            )
        for j, value in enumerate(row):
            if not _is_number(value):
                hint = ""
                if isinstance(value, list):
                    hint = " (a 3-d array?); give one flat vector of numbers per token"
                elif isinstance(value, str) and is_numeric_text(value):
                    hint = f"; write it without quotes: {value.strip()}"
                raise AttnError(
                    f"{source}: {where}, column {j + 1}: {describe(value)} is not a number{hint}"
                )
            if type(value) is int and not _fits_float(value):
                raise AttnError(
                    f"{source}: {where}, column {j + 1}: a number too large for float64 "
                    "(beyond ±1.8e308); rescale the embeddings"
                )
    raise AssertionError("_matrix refused rows that hold no problem")  # pragma: no cover


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # bool is an int subclass: not a number


def _locate(text: str, literal: str) -> str:
    # "Infinity" is not the end of "-Infinity" (a reader may accept the one, not the other)
    sign = "-" if literal.startswith("-") else r"(?<!-)"
    match = re.search(sign + r"\b" + re.escape(literal.lstrip("-")) + r"\b", text)
    if match is None:
        return ""
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return f"line {line}, column {column}: "

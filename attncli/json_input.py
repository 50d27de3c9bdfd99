"""JSON input: the exact parser, and a fast path for long inputs.

The exact parser (json.loads, then a check of every value) says precisely where a
problem is. For long inputs in the usual shapes (a list of vectors, or "tokens" and
"embeddings"), the fast path hands the numbers to np.loadtxt, whose C parser is several
times faster than Python objects per number; anything unusual in them sends the input
back to the exact parser, so the fast path never changes a result or a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError
from .loading import (
    VECTOR_COMMANDS,
    Embeddings,
    check_finite,
    describe,
    is_numeric_text,
    looks_like_json,
)

# Inputs shorter than this go straight to the exact parser (the fast path's set-up
# would cost more than it saves).
FAST_MIN_CHARS = 1 << 20

_FORMS = (
    'expected {"tokens": [...], "embeddings": [[...], ...]}, '
    '{"token": [numbers], ...} or [[numbers], ...]'
)


class _NonFiniteLiteralError(ValueError):
    pass


def _reject_constant(literal: str) -> Any:
    # Python's json accepts NaN and Infinity; strict JSON (and attn) does not.
    raise _NonFiniteLiteralError(literal)


def parse_json(text: str, source: str, forms: str) -> Any:
    """Strict JSON (no NaN or Infinity), or an AttnError with the line and column;
    `forms` says what was expected."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonFiniteLiteralError as exc:
        where = _locate(text, str(exc))
        raise AttnError(
            f"{source}: {where}{exc} is not a number JSON allows; every value must be a "
            "finite number"
        ) from None
    except json.JSONDecodeError as exc:
        hint = ""
        if not looks_like_json(text):
            hint = "; if it is CSV or TSV, pass --input-format csv or tsv"
        elif exc.pos >= len(text.rstrip()):
            hint = "; the text ends before the JSON does (cut short?)"
        raise AttnError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from None
    except RecursionError:
        raise AttnError(f"{source}: JSON nested too deeply; {forms}") from None


def _from_json(text: str, source: str) -> Embeddings:
    obj = parse_json(text, source, _FORMS)
    if isinstance(obj, dict):
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
    matrix = np.array(rows, dtype=np.float64)
    check_finite(matrix, tokens, source)
    return matrix


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # bool is an int subclass: not a number


def _locate(text: str, literal: str) -> str:
    match = re.search(r"-?\b" + re.escape(literal.lstrip("-")) + r"\b", text)
    if match is None:
        return ""
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return f"line {line}, column {column}: "


# ---------------------------------------------------------------- CSV / TSV


# "embeddings": [ or "values": [, as keys of the top-level object
_ROWS_KEY = re.compile(r'"(embeddings|values)"\s*:\s*\[')
_ROWS_END = re.compile(r"\]\s*\]")
_ROW_TRIM = ", \t\r\n["


def from_json(text: str, source: str) -> Embeddings:
    """Token embeddings from JSON text; long inputs take the fast path when they can."""
    if len(text) >= FAST_MIN_CHARS:
        fast = _fast(text, source)
        if fast is not None:
            return fast
    return _from_json(text, source)


def _fast(text: str, source: str) -> Embeddings | None:
    """The numbers' region, parsed by np.loadtxt, the rest by json; or None to leave
    the input to the exact parser."""
    # Indices, not slices, until the one split: each copy of a long text costs time.
    first = len(text) - len(text.lstrip())
    if text.startswith("[[", first) or text.startswith("[ ", first):
        start, end, rest = first, len(text.rstrip()) - 1, None
    else:
        key = _ROWS_KEY.search(text)
        if key is None:
            return None
        start = key.end() - 1
        end_match = _ROWS_END.search(text, start)
        if end_match is None:
            return None
        end = end_match.end() - 1
        rest = text[:start] + "[]" + text[end + 1 :]
    # the rows lie between the outer brackets at start and end
    if text.find('"', start, end) >= 0 or text.find("{", start, end) >= 0:
        return None
    open_row = text.find("[", start + 1, end)  # the first row's bracket
    close_row = text.rfind("]", start, end)  # the last row's
    if open_row < 0 or close_row < 0 or text[start + 1 : open_row].strip():
        return None
    rows = text[open_row + 1 : close_row].split("], [")  # json.dumps's own spacing
    if "]" in rows[-1] or "[" in rows[0]:  # another spacing: trim each row instead
        region = text[start + 1 : end].replace("\n", " ")
        rows = [row.lstrip(_ROW_TRIM) for row in region.split("]")]
        if rows and not rows[-1].strip(", \t\r"):
            rows.pop()  # what follows the last row's bracket
    if not rows or text.count("[", start + 1, end) != len(rows):  # one "[" a row: 2-d
        return None
    try:
        matrix = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except (ValueError, IndexError):
        return None
    if matrix.shape[0] != len(rows) or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        return None
    if rest is None:
        tokens = tuple(f"x{i + 1}" for i in range(len(rows)))
        return Embeddings(tokens, matrix, source)
    try:
        obj = json.loads(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    if "values" in obj:
        if obj.get("command") not in VECTOR_COMMANDS or obj.get("query") is not None:
            return None
        names = obj.get("tokens")
    elif set(obj) - {"tokens", "embeddings"} or obj.get("embeddings") != []:
        return None
    else:
        names = obj.get("tokens")
    if names is None:
        names = [f"x{i + 1}" for i in range(len(rows))]
    if not isinstance(names, list) or len(names) != len(rows):
        return None
    if not all(isinstance(name, str) for name in names):
        return None
    return Embeddings(tuple(names), matrix, source)

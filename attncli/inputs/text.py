"""What the readers of every input format share: the formats, how text is told apart
from JSON, how a JSON value and a non-finite number are named in a message."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

# InputFormat is defined without numpy (choices.py), for the command line's flags.
from ..choices import InputFormat as InputFormat
from ..errors import AttnError

# attn output whose `values` are one vector per token, so it can feed another layer.
VECTOR_COMMANDS = ("context", "queries", "keys", "values")
# Header names that mark the first CSV column as the token even when tokens look numeric;
# "" is the unnamed index column pandas writes.
TOKEN_HEADERS = frozenset({"", "token", "tokens", "word", "words", "text"})


# JSON opens with an object, or with a list of something JSON (so a CSV token such as
# "[bold]" in the first cell is not mistaken for JSON).
_JSON_START = re.compile(r'\s*(\{|\[\s*([\[{"\-\d.\]tfnNI]|$))')


def looks_like_json(text: str) -> bool:
    return _JSON_START.match(text) is not None


def sniff(text: str) -> InputFormat:
    if looks_like_json(text):
        return InputFormat.JSON
    stripped = text.lstrip()
    first_line = stripped.split("\n", 1)[0]
    return InputFormat.TSV if "\t" in first_line else InputFormat.CSV


def is_numeric_text(text: str) -> bool:
    """Whether float() reads `text` as a number (nan and inf included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def describe(value: Any) -> str:
    """A JSON value as a message names it: 'a string ("abc")', 'null', 'a list of 3 items'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return "an object"


def check_finite(
    matrix: NDArray[np.floating[Any]], tokens: Sequence[str], source: str, first_row: int = 0
) -> None:
    """An AttnError naming the first value that is not a finite number."""
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        value = float(matrix[i, j])
        what = "a number too large for float64 (beyond ±1.8e308); rescale the embeddings"
        if np.isnan(value) or matrix.dtype.itemsize < 8:
            what = f"{value} is not a finite number; every embedding value must be finite"
        raise AttnError(
            f"{source}: row {first_row + i + 1} (token {tokens[i]!r}), column {j + 1}: {what}"
        )

"""Numbers as text prints them: a tensor or array as torch or numpy print it
(`tensor([[0.4421, ...]], grad_fn=<...>)`, `array([...])`, `[[0.4421 0.5931]]`), and
tables of numbers (CSV, TSV, whitespace-separated columns as numpy.savetxt writes them).
Each gives its array and its numbers as written (for their precision: theirs.py); every
problem is an AttnError naming the line and column.
"""

from __future__ import annotations

import csv
import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AttnError
from .arrays import nested
from .text import TOKEN_HEADERS, is_numeric_text

# A number as torch, numpy, Python or a CSV writer prints it (nan and inf too)
NUMBER = re.compile(
    r"[+-]?(?:(?P<int>\d+)(?:\.(?P<frac>\d*))?|\.(?P<frac2>\d+))(?:[eE](?P<exp>[+-]?\d+))?"
)
PRINTED_START = re.compile(r"\s*(?:Parameter containing:\s*)?(tensor|array)\(")


def check_shape(shape: tuple[int, ...], where: str) -> None:
    if not 1 <= len(shape) <= 4:
        raise AttnError(
            f"{where}: {len(shape)} dimensions (shape {shape}); give a vector, a matrix, "
            "one matrix per head, or a batch of those (at most 4 dimensions)"
        )
    if 0 in shape:
        raise AttnError(f"{where}: shape {shape} holds no numbers; give the stage's numbers")


# ---------------------------------------------------------------- printed tensors


_PRINTED_TOKEN = re.compile(r"\s+|,|\[|\]|\.\.\.|[^\s,\[\]]+")


def printed(text: str, source: str) -> tuple[NDArray[np.float64], list[str], str]:
    """A tensor or array as torch or numpy print it: `tensor([[0.4421, ...]],
    grad_fn=<...>)`, `array([...], dtype=float32)`, or numpy's `[[0.4421 0.5931]]`."""
    start = PRINTED_START.match(text)
    what = "a printed array"
    body = text
    if start is not None:
        what = "a printed tensor" if start.group(1) == "tensor" else "a printed numpy array"
        body = text[start.end() :]
        if not body.rstrip().endswith(")"):
            raise AttnError(
                f"{source}: {start.group(1)}(...) is not closed; paste the whole {start.group(1)}"
            )
        body = body.rstrip()[:-1]
        if PRINTED_START.search(body):
            raise AttnError(
                f"{source} holds more than one {start.group(1)}; give one stage a file "
                "(or a JSON object of stages)"
            )
    values, end = _nested_numbers(body, source, text)
    rest = body[end:].strip()
    if rest and not (start is not None and rest.startswith(",")):
        raise AttnError(
            f"{source}: {_position(text, text.find(rest))}: {rest[:20]!r} after the numbers; "
            "give one tensor or array as printed"
        )
    if not isinstance(values, list):
        values = [values]  # tensor(0.5): one number
    shape, flat = nested(values, source, "the array")
    check_shape(shape, source)
    literals = [str(x) for x in flat]
    array = np.array([float(x) for x in literals], dtype=np.float64).reshape(shape)
    return array, literals, what


def _nested_numbers(body: str, source: str, text: str) -> tuple[Any, int]:
    """The nested lists of number literals at the start of `body` (separated by commas
    or spaces), and where they end."""
    offset = text.find(body) if body else 0
    stack: list[list[Any]] = []
    top: Any = None
    for match in _PRINTED_TOKEN.finditer(body):
        token = match.group()
        if token.isspace() or token == ",":
            if not stack and top is not None:
                return top, match.start()
            continue
        if token == "...":
            raise AttnError(
                f"{source}: the array was printed summarized ('...' for the numbers left "
                'out); print it whole (torch.set_printoptions(profile="full"), '
                "numpy.set_printoptions(threshold=sys.maxsize)) or save it with numpy.save"
            )
        if token == "[":
            if top is not None and not stack:
                return top, match.start()
            stack.append([])
        elif token == "]":
            if not stack:
                raise AttnError(
                    f"{source}: {_position(text, offset + match.start())}: a ']' that closes "
                    "nothing; paste the whole array"
                )
            done = stack.pop()
            if stack:
                stack[-1].append(done)
            else:
                top = done
                return top, match.end()
        else:
            if NUMBER.fullmatch(token) is None and token.lower().lstrip("+-") not in (
                "nan",
                "inf",
            ):
                raise AttnError(
                    f"{source}: {_position(text, offset + match.start())}: {token[:20]!r} is "
                    "not a number; give the numbers as torch or numpy print them"
                )
            if not stack:
                return token, match.end()
            stack[-1].append(token)
    if stack:
        raise AttnError(
            f"{source}: the text ends inside the array ({len(stack)} '[' not closed); paste "
            "the whole array (cut short?)"
        )
    raise AttnError(f"{source}: no numbers; give your numbers as torch or numpy print them")


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


# ---------------------------------------------------------------- CSV, TSV, plain text


def table(text: str, source: str) -> tuple[NDArray[np.float64], list[str], str]:
    """CSV, TSV or whitespace-separated numbers (numpy.savetxt): the array, its numbers
    as written, and what it was read as. A header row and a token column (or attn's head
    and token columns) are recognised and set aside."""
    lines = [(n + 1, line) for n, line in enumerate(text.splitlines()) if line.strip()]
    first = lines[0][1]
    if "\t" in first:
        rows = _split(lines, "\t", source)
    elif "," in first:
        rows = _split(lines, ",", source)
    else:
        rows = [(n, line.split()) for n, line in lines]
    header = None
    first_row = rows[0][1]
    if (
        any(not is_numeric_text(cell) for cell in first_row[1:])
        or (len(first_row) > 1 and not first_row[0].strip())  # pandas: ",0,1,2"
        or (len(first_row) == 1 and not is_numeric_text(first_row[0]) and len(rows) > 1)
    ):
        header = [cell.strip() for cell in rows[0][1]]
        rows = rows[1:]
    if not rows:
        raise AttnError(f"{source}: only a header row; add the rows of numbers")
    by_head = header is not None and len(header) > 2 and header[:2] == ["head", "token"]
    skip = 2 if by_head else 0
    if not by_head and (
        (header is not None and header[0].casefold() in TOKEN_HEADERS)
        or any(not is_numeric_text(cells[0]) for _, cells in rows)
    ):
        skip = 1
    width = len(header) if header is not None else len(rows[0][1])
    numbers: list[list[float]] = []
    literals: list[str] = []
    for line, cells in rows:
        if len(cells) != width:
            like = "the header" if header is not None else f"line {rows[0][0]}"
            raise AttnError(
                f"{source}: line {line} has {len(cells)} cells, but {like} has {width}; "
                "every row needs the same columns"
            )
        row = []
        for j in range(skip, width):
            cell = cells[j].strip()
            try:
                row.append(float(cell))
            except ValueError:
                raise AttnError(
                    f"{source}: line {line}, column {j + 1}: {cell[:20]!r} is not a number"
                ) from None
            literals.append(cell)
        numbers.append(row)
    if width <= skip:
        raise AttnError(f"{source}: no columns of numbers; give one row of numbers per token")
    array = np.array(numbers, dtype=np.float64)  # (rows, columns)
    if by_head:
        array = _by_head(array, rows, source)
    what = "TSV text" if "\t" in first else "CSV text" if "," in first else "numbers in columns"
    return array, literals, what


def _split(
    lines: list[tuple[int, str]], delimiter: str, source: str
) -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in lines:
        try:
            (cells,) = list(csv.reader([line], delimiter=delimiter))
        except (csv.Error, ValueError) as exc:
            raise AttnError(f"{source}: line {number}: malformed ({exc})") from None
        rows.append((number, cells))
    return rows


def _by_head(
    array: NDArray[np.float64], rows: list[tuple[int, list[str]]], source: str
) -> NDArray[np.float64]:
    """attn's CSV of several heads: a `head` column 0, 0, ..., 1, 1, ...: (H, T, m)."""
    heads = [cells[0].strip() for _, cells in rows]
    count = len(set(heads))
    if len(rows) % count or heads != [
        str(h) for h in range(count) for _ in range(len(rows) // count)
    ]:
        raise AttnError(
            f"{source}: the head column must count 0, 1, ... with the same number of rows "
            "for each head, as attn writes it"
        )
    shaped: NDArray[np.float64] = array.reshape(count, len(rows) // count, array.shape[1])
    return shaped

"""Issue 9 ("Trust"), the input side: no input makes an internal error; every input has one
meaning, however long (the fast CSV path reads what the exact parser reads, bit for bit,
error for error); nothing is read silently wrong; reading is bounded, even on endless input;
and a sweep of hostile inputs through the real CLI gets one line on stderr every time."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import AttnError, inputs, load, loads
from attncli.cli import app as cli
from attncli.cli.runner import run
from attncli.inputs import InputFormat, reading
from attncli.inputs import csv_text as csv_input
from attncli.inputs import text as input_text

from .conftest import DATA, Invoke

INVALID = DATA / "invalid"
HUGE = 10**15  # a threshold no test input reaches: the exact parsers only


def assert_error(result: Any, status: int, fragment: str) -> None:
    """One line on stderr naming the problem, nothing on stdout."""
    assert result.exit_code == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attn: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr, result.stderr


@contextlib.contextmanager
def fast_paths_from(n: int) -> Iterator[None]:
    """Inputs of `n` characters (or bytes) or more take the fast CSV paths: 0 for
    every input, HUGE for none."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_input, "FAST_MIN_CHARS", n)
        patch.setattr(inputs, "_FAST_MIN_BYTES", n)
        yield


Outcome = tuple[Any, ...]


def outcome(read: Callable[[], Any]) -> Outcome:
    """What a read gives: its tokens and its matrix's exact bytes, or its error."""
    try:
        emb = read()
    except AttnError as exc:
        return ("error", int(exc.status), exc.message)
    return ("ok", emb.tokens, emb.matrix.dtype.str, emb.matrix.shape, emb.matrix.tobytes())


def python(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """`python -m attncli ARGS` in a process of its own (the real stdin, stdout, stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "attncli", *args], capture_output=True, timeout=60, **kwargs
    )


def long_csv(rows: int = 12_500, line_end: str = "\n") -> str:
    """A CSV of about 1.1 MB: past the fast path's threshold as shipped (1 MiB)."""
    values = np.random.default_rng(rows).normal(size=(rows, 4)).tolist()
    return "".join(f"t{i}," + ",".join(map(repr, row)) + line_end for i, row in enumerate(values))


# ---------------------------------------------------------------- A: no internal error


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[[0.5, 1" + "0" * 400 + "]]", "row 1 (token 'x1'), column 2"),  # beyond float64
        ("[[0.5, " + "9" * 5000 + "]]", "row 1 (token 'x1'), column 2"),  # beyond int()'s limit
        ('{"a": [0.5], "b": [-1' + "0" * 400 + "]}", "row 2 (token 'b'), column 1"),
        ('{"tokens": ["a"], "embeddings": [[-' + "7" * 4301 + "]]}", "row 1 (token 'a'), column 1"),
    ],
)
def test_json_integers_too_large_for_float64_are_named(attn: Invoke, text: str, where: str) -> None:
    result = attn("context", input=text)
    assert_error(
        result,
        1,
        f"<stdin>: {where}: a number too large for float64 (beyond ±1.8e308); rescale",
    )


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "-" + "9" * 5000])
def test_json_integers_too_large_in_a_weights_file(
    attn: Invoke, tmp_path: Path, literal: str
) -> None:
    path = tmp_path / "w.json"
    eye = [[1, 0], [0, 1], [1, 1]]
    path.write_text(
        f'{{"W_query": [[1, 0], [0, {literal}], [1, 1]], "W_key": {eye}, "W_value": {eye}}}',
        encoding="utf-8",
    )
    result = attn("context", "-m", "trainable", "--weights", str(path), terminal=True)
    assert_error(result, 1, "W_query[1, 1] is a number too large for float64 (beyond ±1.8e308)")


@pytest.mark.parametrize(
    "variant",
    ["CR line ends", "CR LF with one CR alone", "CR after quotes"],  # (and the sweep, below)
)
def test_long_csv_with_carriage_returns_reads_as_short_csv_does(
    attn: Invoke, tmp_path: Path, variant: str
) -> None:
    """Files of 1 MiB or more once crashed (exit 70) on a CR the fast path did not expect;
    now they read exactly as the exact parser reads them, from a file or from stdin."""
    text = {
        "CR line ends": long_csv(line_end="\r"),
        "CR LF with one CR alone": long_csv(line_end="\r\n").replace("\r\n", "\r", 1),
        "CR after quotes": long_csv().replace("t7,", '"t\r7",', 1),
    }[variant]
    path = tmp_path / "long.csv"
    path.write_bytes(text.encode("utf-8"))
    for args, data in (((str(path),), None), (("-",), text)):
        shipped = attn("context", *args, "-q", "0", "-f", "json", input=data)
        with fast_paths_from(HUGE):
            exact = attn("context", *args, "-q", "0", "-f", "json", input=data)
        assert shipped.exit_code in (0, 1), shipped.stderr
        assert (shipped.exit_code, shipped.stdout, shipped.stderr) == (
            exact.exit_code,
            exact.stdout,
            exact.stderr,
        )


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for <(...)")
def test_npz_weights_through_process_substitution(attn: Invoke, tmp_path: Path) -> None:
    """`--weights <(cat w.npz)`: a pipe, which numpy.load cannot open a second time."""
    weights = np.random.default_rng(3).normal(size=(3, 3, 2))
    path = tmp_path / "w.npz"
    np.savez(path, W_query=weights[0], W_key=weights[1], W_value=weights[2])
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m attncli context -m trainable --weights <(cat "{path}")',
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,  # nothing piped in: the book's six tokens
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    from_file = attn(
        "context", "-m", "trainable", "--weights", str(path), "-f", "json", terminal=True
    )
    assert json.loads(done.stdout)["values"] == json.loads(from_file.stdout)["values"]


# ---------------------------------------------------------------- B: one meaning, long or short

CLEAN_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(-1e3, 1e3).map(lambda x: f"{x:.4f}"),
)
# What float() and np.loadtxt might read differently, or refuse.
ODD_NUMBERS = st.sampled_from(
    [
        "+1",
        ".5",
        "01",
        "1.",
        "-0",
        "1e5",
        "1E-5",
        " 1",
        "1 ",
        "\t2",
        "",
        " ",
        "nan",
        "inf",
        "-Infinity",
        "1_0",
        "\x1c1",
        "1\x1f",
        "1\x00",
        "\x0b3",
        "\x0c4",
        "\xa01",
        "\u20001",
        "1\x85",
        "１",
        "٣",
        "0x10",
        "1e400",
        "1e-400",
        '"1.5"',
        '"2"',
        '" 3"',
        '""',
        "abc",
        "1,5",
        '1"5',
        "1\t5",
        "1e",
        "-",
        ".",
    ]
)
CLEAN_TOKENS = st.text(alphabet="abcXYZé日 _-.:", min_size=1, max_size=6).filter(
    lambda t: t.strip() and not input_text.is_numeric_text(t)
)
ODD_TOKENS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "1",
            "2.5",
            "-3",
            "token",
            "word",
            "TOKEN",
            " x ",
            "[x]",
            "{a",
            "nan",
            "#c",
            "a\x00",
            "\x00b",
            "a\x1cb",
            "a\rb",
            "a\nb",
            "a\u2028b",
            "a\x85b",
            "\ufeffa",
            'a"b',
            '"a"b',
            '"a" ',
            ' "a"',
        ]
    ),
    st.text(alphabet=' ab,;\t"\n\r', max_size=5).map(lambda t: '"' + t.replace('"', '""') + '"'),
    st.text(alphabet='ab"\x00\x1c\x0b\x0c\r\n ;\t,\u2028\x85', max_size=4),
)
FIRST_HEADER_CELLS = [
    "token",
    "word",
    "",
    "TOKEN",
    " Token ",
    "tokens",
    "text",
    "x",
    "1",
    '"token"',
]
LINE_ENDS = ["\n", "\n", "\r\n", "\r", "mixed"]


@st.composite
def csv_documents(draw: st.DrawFn) -> tuple[str, str]:
    """A CSV or TSV text: mostly plain, with every quirk the fast path must not read
    differently from time to time (odd numbers and tokens, quotes across lines, CR,
    blank lines, ragged rows, headers of all kinds, a byte-order mark)."""
    delimiter = draw(st.sampled_from([",", "\t"]))
    width = draw(st.integers(1, 4))
    with_tokens = draw(st.booleans())
    token = st.one_of(CLEAN_TOKENS, CLEAN_TOKENS, ODD_TOKENS)
    number = st.one_of(CLEAN_NUMBERS, CLEAN_NUMBERS, CLEAN_NUMBERS, ODD_NUMBERS)
    lines = []
    first_header = draw(st.sampled_from([None, None, *FIRST_HEADER_CELLS]))
    if first_header is not None:
        names = draw(
            st.sampled_from(
                [
                    [f"d{k + 1}" for k in range(width)],
                    [str(k + 1) for k in range(width)],
                    [f'"d{k + 1}"' for k in range(width)],
                ]
            )
        )
        lines.append(delimiter.join([first_header, *names] if with_tokens else names))
    for _ in range(draw(st.integers(1, 6))):
        cells = ([draw(token)] if with_tokens else []) + [draw(number) for _ in range(width)]
        ragged = draw(st.integers(0, 19))
        if ragged == 0:
            cells.pop()
        elif ragged == 1:
            cells.append(draw(number))
        lines.append(delimiter.join(cells))
        blank = draw(st.integers(0, 14))
        if blank < 3:
            lines.append(["", " ", delimiter * width][blank])
    line_end = draw(st.sampled_from(LINE_ENDS))
    ends = [
        draw(st.sampled_from(["\n", "\r\n", "\r"])) if line_end == "mixed" else line_end
        for _ in lines
    ]
    text = "".join(line + end for line, end in zip(lines, ends, strict=True))
    if draw(st.booleans()):
        text = text.removesuffix(ends[-1])
    if draw(st.integers(0, 9)) == 0:
        text = "\ufeff" + text
    return text, delimiter


def read_both_ways(read: Callable[[], Any]) -> tuple[Outcome, Outcome]:
    """`read` through the fast paths (every input long enough) and the exact ones."""
    with fast_paths_from(0):
        fast = outcome(read)
    with fast_paths_from(HUGE):
        exact = outcome(read)
    return fast, exact


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_documents())
def test_the_fast_csv_paths_read_what_the_exact_parser_reads(document: tuple[str, str]) -> None:
    """Same tokens, same numbers bit for bit, same error and message: from text, from
    bytes, and from a file (np.loadtxt straight from disk is separate code)."""
    text, delimiter = document
    fmt = InputFormat.TSV if delimiter == "\t" else InputFormat.CSV
    data = text.encode("utf-8")
    for input_format in (None, fmt):
        for text_or_bytes in (text, data):
            fast, exact = read_both_ways(partial(loads, text_or_bytes, "in", input_format))
            assert fast == exact, (text_or_bytes, input_format)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in.{fmt.value}"
        path.write_bytes(data)
        fast, exact = read_both_ways(lambda: load(path))
        assert fast == exact
        with fast_paths_from(HUGE):  # and a file reads as its bytes do
            assert exact == outcome(lambda: loads(data, str(path), fmt))


PLAIN_CSV = [
    "token,d1,d2\nYour,0.43,0.15\njourney,0.55,0.87\n",
    "Your,0.43,0.15\r\njourney,0.55,0.87\r\n\r\n",
    '"a, b",1,2\n"say ""hi""",3,4\nplain,5,6\n',
    ",0,1\n0,0.43,0.15\n1,0.55,0.87\n",
    "1,2\n3,4\n\n",
    "token\td1\nhello, world\t1\nb\t2\n",
    "\ufefftoken,d1\nå,1\n日本,2\n",
]


def test_the_fast_path_reads_plain_text_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property above is not won by always stepping aside: plain CSV (quoted tokens,
    CR LF, blank lines, pandas' index) is read by the fast paths alone."""
    path = tmp_path / "in.txt"
    exact_outcomes = []
    with fast_paths_from(HUGE):
        for text in PLAIN_CSV:
            path.write_bytes(text.encode("utf-8"))
            exact_outcomes.append(outcome(partial(load, path)))
            assert exact_outcomes[-1][0] == "ok"

    def no_exact_parser(*args: Any) -> Any:
        raise AssertionError("the exact parser was asked")

    monkeypatch.setattr(csv_input, "_from_csv", no_exact_parser)
    with fast_paths_from(0):
        for text, exact in zip(PLAIN_CSV, exact_outcomes, strict=True):
            path.write_bytes(text.encode("utf-8"))
            assert outcome(partial(load, path)) == exact, text
            assert outcome(partial(loads, text, str(path))) == exact, text
            assert outcome(partial(loads, text.encode("utf-8"), str(path))) == exact, text


def test_long_csv_files_keep_quoted_newlines_crs_and_nuls_of_tokens(
    attn: Invoke, tmp_path: Path
) -> None:
    """The fast path once dropped a quoted token's newline, turned its CR into a LF and
    let a NUL through; at the size it starts at (1 MiB), tokens are now the exact
    parser's."""
    text = long_csv().replace("t1,", '"t\n1",', 1).replace("t2,", '"t\r2",', 1)
    text = text.replace("t5000,", "t\x00x,", 1)  # past the first 4 KiB: not binary data
    path = tmp_path / "long.csv"
    path.write_text(text, encoding="utf-8", newline="")
    tokens = load(path).tokens
    assert (tokens[1], tokens[2], tokens[5000]) == ("t\n1", "t\r2", "t\x00x")
    assert loads(text).tokens == tokens


# JSON: one parser now, for every length. Its property: it reads what strict JSON says.

NUMBER_LITERALS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(
        [
            "-0",
            "0",
            "1e400",
            "-1e400",
            "1e-400",
            "1" + "0" * 400,
            "-" + "9" * 5000,
            "+1",
            ".5",
            "01",
            "-01",
            "1.",
            "1.e5",
            "1e",
            "-",
            "NaN",
            "Infinity",
            "0x1",
            "1_0",
            "true",
            "null",
            '"1"',
            "[1]",
            "{}",
        ]
    ),
)


@st.composite
def json_documents(draw: st.DrawFn) -> tuple[str, Any]:
    """A JSON text of embeddings in one of attn's forms, with literals and separators
    that are sometimes not JSON (+1, .5, 01, trailing or missing commas, ,,) and keys
    that sometimes repeat; and what strict JSON makes of it: the expected tokens and
    number literals, or None where attn must refuse it."""
    n_rows, width = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    literal = st.one_of(NUMBER_LITERALS, st.floats(-10, 10).map(repr), st.floats(-10, 10).map(repr))
    rows = [[draw(literal) for _ in range(width)] for _ in range(n_rows)]
    tokens = [draw(st.sampled_from(["a", "b", "the", "x y", "é"])) + str(i) for i in range(n_rows)]
    space = st.sampled_from(["", " ", "\n", "\t", " \r\n "])
    separator = st.sampled_from([",", ",", ",", ", ", ",,", " ", ", ,"])  # " ": a comma missing
    trailing = st.sampled_from(["", "", "", ","])

    def row_text(row: list[str]) -> str:
        cells = [draw(space) + cell + draw(space) for cell in row]
        joined = cells[0] + "".join(draw(separator) + cell for cell in cells[1:])
        return "[" + joined + draw(trailing) + "]"

    def rows_text() -> str:
        texts = [row_text(row) for row in rows]
        return (
            "[" + texts[0] + "".join(draw(separator) + t for t in texts[1:]) + draw(trailing) + "]"
        )

    form = draw(st.sampled_from(["bare", "tokens", "embeddings only", "object", "attn", "both"]))
    if form == "bare":
        text = rows_text()
    elif form == "object":
        names = list(tokens)
        if draw(st.integers(0, 4)) == 0:
            names[-1] = names[0]  # a token repeated: JSON would keep one
        tokens = names
        text = (
            "{"
            + ", ".join(f"{json.dumps(t)}: {row_text(r)}" for t, r in zip(names, rows, strict=True))
            + "}"
        )
    else:
        keys = {
            "tokens": [("tokens", json.dumps(tokens)), ("embeddings", rows_text())],
            "embeddings only": [("embeddings", rows_text())],
            "attn": [
                ("command", '"context"'),
                ("tokens", json.dumps(tokens)),
                ("query", "null"),
                ("values", rows_text()),
            ],
            "both": [
                ("command", '"context"'),
                ("tokens", json.dumps(tokens)),
                ("values", rows_text()),
                ("embeddings", rows_text()),
            ],
        }[form]
        if draw(st.integers(0, 4)) == 0:
            keys.append(draw(st.sampled_from(keys)))  # a key repeated
        if form == "attn" and draw(st.integers(0, 4)) == 0:
            keys = [k for k in keys if k[0] != "tokens"]
        text = "{" + ", ".join(f'"{k}": {v}' for k, v in keys) + "}"
    if form in ("bare", "embeddings only"):
        tokens = [f"x{i + 1}" for i in range(n_rows)]
    return text, (form, tokens, rows)


def strict_json(text: str) -> Any:
    """Python's json, strict: no NaN or Infinity, no key twice; None if not JSON."""

    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a key twice")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, object_pairs_hook=no_repeats, parse_constant=no_constants)
    except ValueError:  # a syntax error, a repeat, or int()'s 4300-digit limit
        with contextlib.suppress(ValueError):
            json.loads(
                text, object_pairs_hook=no_repeats, parse_constant=no_constants, parse_int=float
            )
            return "beyond float64"
        return None


@settings(max_examples=200, deadline=None)
@given(json_documents())
def test_json_reads_what_strict_json_says(document: tuple[str, Any]) -> None:
    """What the old fast path read differently (+1, .5, 01, ,,, trailing and missing
    commas, a key twice, both "embeddings" and "values", attn output without "tokens")
    is refused, at any length; anything else gives float() of each literal, bit for bit."""
    text, (form, tokens, rows) = document
    parsed = strict_json(text)
    result = outcome(lambda: loads(text, "in.json"))
    values = [[strict_json(cell) for cell in row] for row in rows]
    numbers_only = all(type(v) in (int, float) for row in values for v in row)
    if (
        parsed is None
        or parsed == "beyond float64"
        or form == "both"
        or (form == "attn" and "tokens" not in parsed)
        or not numbers_only
    ):
        assert result[:2] == ("error", 1), (text, result)
        if parsed is None:
            assert (
                "invalid JSON" in result[2]
                or "appears twice" in result[2]
                or ("is not a number JSON allows" in result[2])
            ), result[2]
        return
    try:
        expected = np.array([[float(v) for v in row] for row in values])
    except OverflowError:
        expected = None
    if expected is None or not np.isfinite(expected).all():
        assert result[:2] == ("error", 1)
        assert "a number too large for float64" in result[2]
        return
    assert result == ("ok", tuple(tokens), "<f8", expected.shape, expected.tobytes()), text


@st.composite
def long_form_json(draw: st.DrawFn) -> str:
    """{"tokens": [...], "embeddings": [[...], ...]} and [[...], ...], mostly as attn
    reads them, with JSON's whitespace (and some that is not JSON's) anywhere between
    values, and now and then one mistake: a value of another kind, a row of another
    length, a token or a row too many, a key more or twice, a comma too many."""
    n_rows, width = draw(st.integers(1, 7)), draw(st.integers(1, 3))
    number = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(-(10**25), 10**25).map(str),
    )
    odd = st.sampled_from(
        ["NaN", "-Infinity", "true", "null", '"1.5"', "[1]", "[]", '{"a": 1}', "+1", ".5", "1,"]
    )
    rows = [[draw(number) for _ in range(width)] for _ in range(n_rows)]
    tokens = [json.dumps(f"t{i}") for i in range(n_rows)]
    space = st.sampled_from(["", "", " ", "\n  ", "\t", "\r\n"])
    mistake = draw(st.integers(0, 16))
    where = draw(st.integers(0, n_rows - 1))
    if mistake == 1:
        rows[where][draw(st.integers(0, width - 1))] = draw(odd)
    elif mistake == 10:  # a number beyond float64, or too long for int()
        rows[where][0] = draw(st.sampled_from(["1e400", "-1" + "0" * 400, "9" * 5000, "-0"]))
    elif mistake == 11:
        rows = [[] for _ in rows]
    elif mistake == 2:
        rows[where] = rows[where][:-1] if draw(st.booleans()) else [*rows[where], "1"]
    elif mistake == 3:
        tokens.append('"extra"')
    elif mistake == 4:
        rows.append(["1"] * width)
    elif mistake == 5:
        tokens[where] = draw(st.sampled_from(["1", "null", '["a"]', '{"t": 1}']))
    elif mistake == 6:
        rows[where] = draw(odd)  # a row that is not a list of numbers

    def joined(items: list[str], opening: str, closing: str) -> str:
        comma = draw(space) + "," + draw(space)
        extra = "," if draw(st.integers(0, 20)) == 0 else ""
        return opening + draw(space) + comma.join(items) + draw(space) + extra + closing

    def row_text(row: list[str] | str) -> str:
        return row if isinstance(row, str) else joined(row, "[", "]")

    rows_text = joined([row_text(row) for row in rows], "[", "]")
    if draw(st.booleans()):
        text = rows_text
    else:
        pairs = [("embeddings", rows_text)]
        if draw(st.integers(0, 3)):
            pairs.append(("tokens", joined(tokens, "[", "]")))
        if mistake == 7:
            pairs.append(draw(st.sampled_from([("tokens", "[]"), ("embeddings", "[[1]]")])))
        elif mistake == 8:
            pairs.append(("values", rows_text))
        elif mistake == 9:
            pairs.append(("command", '"context"'))
        pairs = draw(st.permutations(pairs))
        items = [f"{json.dumps(k)}{draw(space)}:{draw(space)}{v}" for k, v in pairs]
        text = joined(items, "{", "}")
    if mistake == 13:
        text += draw(st.sampled_from(["x", "]", "}", "[]", ",", '"a"']))
    if mistake == 12:  # whitespace that is not JSON's
        bad = draw(st.sampled_from(["\u00a0", "\x0c", "\v"]))
        text = text.replace(",", draw(st.sampled_from([bad + ",", "," + bad])), 1)
    return draw(space) + text + draw(space)


def assert_read_by_rows_as_whole(text: str, block_chars: int) -> None:
    """Reading `text` a block of rows at a time gives the tokens and matrix, bit for
    bit, or the error, word for word, of reading it whole with json.loads first."""
    from attncli.inputs import json_text

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_text, "_BLOCK_CHARS", block_chars)
        by_rows = outcome(lambda: loads(text, "in.json"))
        patch.setattr(json_text, "_by_rows", lambda text: None)
        assert by_rows == outcome(lambda: loads(text, "in.json")), text


@settings(max_examples=400, deadline=None)
@given(long_form_json(), st.sampled_from([1, 2, 5, 9, 17, 40, 1 << 18]))
def test_json_read_a_row_at_a_time_is_what_json_loads_and_the_checks_give(
    text: str, block_chars: int
) -> None:
    """The two long forms are read a block of rows at a time, blocks cut anywhere, as
    they are read whole."""
    assert_read_by_rows_as_whole(text, block_chars)


@pytest.mark.parametrize("block_chars", [1, 6, 11, 1 << 18])
@pytest.mark.parametrize(
    "text",
    [
        "[[1, true], [2, 3]]",
        "[[1, 2], [null, 3]]",
        '[[1, 2], ["3", 4]]',
        "[[1, 2], [[3], 4]]",
        '[[1, 2], ["]", 4], [5, 6]]',
        '[[1, 2], ["], [", 4], [5, 6]]',
        "[[1, 2], [3, 4]], [5, 6]]",
        "[[1, [2]], [3, 4]]",
        '[[1, 2], [{"a": 1}, 4]]',
        "[[1, 2], [3]]",
        "[[1, 2], [3, 4, 5]]",
        "[[1, 2], [3, 4], [5]]",
        "[[], []]",
        "[[1, 2], []]",
        "[[1, 2], 3]",
        "[]",
        "[[1, 2], [NaN, 4]]",
        "[[1, 2], [-Infinity, 4]]",
        "[[1, 2], [1e400, 4]]",
        "[[1, 2], [" + "9" * 5000 + ", 4]]",
        "[[1, 2], [1" + "0" * 400 + ", 4]]",
        "[[1, 2], [3, 4]] x",
        "[[1, 2], [3, 4]]]",
        "[[1, 2], [3, 4]] []",
        "[[1, 2], [3, 4],]",
        "[[1, 2],, [3, 4]]",
        "[[1, 2] [3, 4]]",
        "[[1, 2], [3, 4]",
        "[[1, 2],\u00a0[3, 4]]",
        "\x0c[[1, 2], [3, 4]]",
        '{"tokens": ["a", "b"], "embeddings": [[1, 2], [3, 4]]} {}',
        '{"tokens": ["a", "b", "c"], "embeddings": [[1, 2], [3, 4]]}',
        '{"tokens": ["a"], "embeddings": [[1, 2], [3, 4]]}',
        '{"tokens": ["a", 2], "embeddings": [[1, 2], [3, 4]]}',
        '{"tokens": "ab", "embeddings": [[1, 2], [3, 4]]}',
        '{"tokens": ["a", "b"], "embeddings": [[1, 2], [3, 4]], "tokens": ["c", "d"]}',
        '{"embeddings": [[1, 2]], "embeddings": [[3, 4]]}',
        '{"tokens": ["a", "b"]}',
        '{"tokens": ["a", "b"], "embeddings": [[1, 2], [3, 4]],}',
        '{"tokens": ["a", "b"] "embeddings": [[1, 2], [3, 4]]}',
        '{"tokens" ["a", "b"], "embeddings": [[1, 2], [3, 4]]}',
        '{"embeddings"x[[1, 2]]}',
        '{"embeddings": x[1, 2]]}',
        "x[1, 2]]",
        '{"tokens": ["a"]x"embeddings": [[1, 2]]}',
        '{"tokens"-["a"], "embeddings": [[1, 2]]}',
        '{"tokens": ["a", "b"], "embeddings": [[1, 2], [3, 4]], "values": [[1, 2], [3, 4]]}',
        '{"command": "context", "tokens": ["a"], "values": [[1, 2]]}',
        '{"tok\\u0065ns": ["a", "b"], "embeddings": [[1, 2], [3, 4]]}',
        '{"a": [1, 2], "b": [3, 4]}',
        '{"embeddings": "[[1, 2]]"}',
        "{}",
        '{"embeddings": [[1, 2], [3, 4]], "tokens": ["a", "b"]}',
    ],
)
def test_json_read_a_row_at_a_time_on_the_edge(text: str, block_chars: int) -> None:
    """Each way the long forms can go wrong, or nearly: as read whole."""
    assert_read_by_rows_as_whole(text, block_chars)


@pytest.mark.parametrize(
    "text",
    [
        '{"tokens": ["a", "b"], "embeddings": [[1, 2.5], [3e2, -0.0]]}',
        '{"embeddings": [[1, 2.5], [3e2, -0.0]], "tokens": ["a", "b"]}',
        ' {\n  "tokens": [\n    "a",\n    "b"\n  ],\n  "embeddings": [\n    [1,\n 2.5],\n    [3e2, -0.0]\n  ]\n}\n',
        '{"embeddings":[[1,2.5],[3e2,-0.0]]}',
        "[[1, 2.5], [3e2, -0.0]]",
        '{"tokens": ["a"], "embeddings": [[1e400]]}',  # the matrix, for check_finite to refuse
    ],
)
def test_the_long_forms_are_read_a_row_at_a_time(text: str) -> None:
    """Pretty-printed or compact, keys in either order, tokens or none: read without
    every number a Python float at once."""
    from attncli.inputs import json_text

    assert json_text._by_rows(text) is not None


JSON_PADDING = json.dumps([[0.5, 0.5]] * 90_000)[1:-1]  # 1.08 MB of plain rows


@pytest.mark.parametrize(
    ("quirk", "message"),
    [
        ("[[1, 2], [3, 4],]", "invalid JSON"),
        ("[[1, 2] [3, 4]]", "invalid JSON"),
        ("[[+1, 2], [3, 4]]", "invalid JSON"),
        ("[[.5, 2], [3, 4]]", "invalid JSON"),
        ("[[01, 2], [3, 4]]", "invalid JSON"),
        ("[[1, 2],, [3, 4]]", "invalid JSON"),
        ('{"embeddings": [[1, 2]], "embeddings": [[3, 4]]}', 'the key "embeddings" appears twice'),
        (
            '{"command": "context", "tokens": ["a"], "query": null, "values": [[1, 2]], "embeddings": [[3, 4]]}',
            'has both "embeddings" and "values"',
        ),
        ('{"command": "context", "query": null, "values": [[1, 2]]}', '"tokens" is null'),
    ],
)
def test_what_the_old_json_fast_path_let_through_is_refused_when_long(
    attn: Invoke, quirk: str, message: str
) -> None:
    """Past 1 MiB the old fast path read these; now a long text says what a short one says."""
    padding = JSON_PADDING
    if quirk.startswith("[["):  # plain rows first: the quirk stays where it is
        long_text = "[" + padding + ", " + quirk[1:]
    else:  # the rows are the first list in the object
        long_text = quirk.replace("[[1, 2]]", "[" + padding + ", [1, 2]]", 1)
    assert len(long_text) > 1 << 20
    for text in (quirk, long_text):
        assert_error(attn("context", input=text), 1, message)


# ---------------------------------------------------------------- C: nothing read silently wrong


@pytest.mark.parametrize("name", ["token", "word", " Token ", "TEXT"])
def test_a_first_cell_naming_the_token_column_makes_a_header(tmp_path: Path, name: str) -> None:
    """`token,1,2` names columns 1 and 2; it is not a token called "token"."""
    text = f"{name},1,2\na,3,4\nb,5,6\n"
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    for n in (0, HUGE):  # the fast paths and the exact parser
        with fast_paths_from(n):
            for emb in (loads(text), load(path)):
                assert emb.tokens[:2] == ("a", "b")
                np.testing.assert_array_equal(emb.matrix[:2], [[3.0, 4.0], [5.0, 6.0]])


def test_a_repeated_token_in_the_object_form_is_refused_and_the_tokens_form_allows_it(
    attn: Invoke,
) -> None:
    result = attn("context", input='{"the": [1, 2], "cat": [3, 4], "the": [5, 6]}')
    assert_error(
        result,
        1,
        "<stdin>: token 'the' appears twice in the object form {\"token\": [numbers], ...}, "
        "where JSON keeps only the last; for repeated tokens give "
        '{"tokens": [...], "embeddings": [[...], ...]}',
    )
    emb = loads('{"tokens": ["the", "cat", "the"], "embeddings": [[1, 2], [3, 4], [5, 6]]}')
    assert emb.tokens == ("the", "cat", "the")


def test_byte_tokens_in_an_npz_are_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "emb.npz"
    np.savez(path, embeddings=np.eye(2), tokens=np.array(["café".encode(), b"b"]))
    assert load(path).tokens == ("café", "b")  # not "b'caf\\xc3\\xa9'"


@pytest.mark.parametrize(
    ("W_query", "message"),
    [
        (np.ones((3, 2)) + 1j, "W_query holds complex128 values; weights must be real numbers"),
        (np.zeros((3, 2), "datetime64[D]"), "W_query holds datetime64[D] values; weights must be"),
        (np.ones((3, 2), bool), "W_query holds bool values; weights must be real numbers"),
        (np.full((3, 2), "a"), "W_query holds <U1 values; weights must be real numbers"),
        (np.full((3, 2), None), "W_query: the array holds Python objects (it needs pickle"),
        (np.full((3, 2), np.nan), "W_query[0, 0] is nan, not a finite number; weights must be"),
    ],
)
def test_weights_that_are_not_real_numbers_are_refused(
    attn: Invoke, tmp_path: Path, W_query: np.ndarray, message: str
) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, W_query=W_query, W_key=np.ones((3, 2)), W_value=np.ones((3, 2)))
    result = attn("context", "-m", "trainable", "--weights", str(path), terminal=True)
    assert_error(result, 1, message)


def test_heads_numbered_with_leading_zeros_are_refused(attn: Invoke, tmp_path: Path) -> None:
    """`heads.0` and `heads.00` would both be head 0: one would silently replace the other."""
    eye = np.eye(3).tolist()
    entries = {
        f"heads.{h}.W_{role}.weight": eye for h in ("0", "1") for role in ("query", "key", "value")
    }
    entries["heads.00.W_query.weight"] = eye
    path = tmp_path / "w.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    result = attn("context", "-m", "causal", "--weights", str(path), terminal=True)
    assert_error(result, 1, "'heads.00.W_query.weight' numbers its head 00; write heads.0.")


def test_a_weight_named_twice_in_json_is_not_called_a_token(attn: Invoke, tmp_path: Path) -> None:
    """A repeated key is a repeated token only in the embeddings' {"token": [...]} form."""
    eye = "[[1, 0], [0, 1], [1, 1]]"
    path = tmp_path / "w.json"
    path.write_text(
        f'{{"W_query": {eye}, "W_query": {eye}, "W_key": {eye}, "W_value": {eye}}}', "utf-8"
    )
    result = attn("context", "-m", "trainable", "--weights", str(path), terminal=True)
    assert_error(
        result,
        1,
        'w.json: the key "W_query" appears twice in one JSON object, where JSON keeps only the '
        "last; keep one",
    )


def test_an_npy_file_as_weights_says_what_weights_need(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "W_query.npy"
    np.save(path, np.eye(3))
    result = attn("context", "-m", "trainable", "--weights", str(path), terminal=True)
    assert_error(result, 1, "a .npy file holds one array; weights need W_query, W_key and W_value")


def test_weights_files_are_known_by_their_content(attn: Invoke, tmp_path: Path) -> None:
    """A weights file that is not JSON is not told to pass --input-format (a flag of
    INPUT); JSON weights named .npz are JSON."""
    text = tmp_path / "w.csv"
    text.write_text("W_query,1,2\n", encoding="utf-8")
    result = attn("context", "-m", "trainable", "--weights", str(text), terminal=True)
    assert_error(result, 1, "invalid JSON at line 1, column 1: Expecting value; give weights")
    assert "--input-format" not in result.stderr
    named_npz = tmp_path / "w.npz"
    ones = [[1.0, 0.5]] * 3
    named_npz.write_text(json.dumps({"W_query": ones, "W_key": ones, "W_value": ones}), "utf-8")
    result = attn("context", "-m", "trainable", "--weights", str(named_npz), terminal=True)
    assert result.exit_code == 0, result.stderr


# ---------------------------------------------------------------- D: bounded reading


class EndlessStream(io.RawIOBase):
    """/dev/zero or `yes 1,2` as stdin: `pattern` forever, counting what was read."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = len(buffer)
        buffer[:n] = (self.pattern * (n // len(self.pattern) + 1))[:n]
        self.bytes_read += n
        return n

    def readall(self) -> bytes:
        raise AssertionError("an endless stream was read to its end")


def run_on_stdin(
    stream: io.RawIOBase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setattr(cli, "stdin_is_piped", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(stream)))
    status = run(["context", "-"])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err


def test_endless_binary_stdin_is_refused_from_its_first_bytes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`attn context - < /dev/zero` once read until memory ran out."""
    zeros = EndlessStream(b"\x00")
    status, err = run_on_stdin(zeros, monkeypatch, capsys)
    assert status == 1
    assert err == (
        "attn: error: <stdin> is binary data, not text (it holds NUL bytes); give token "
        "embeddings as UTF-8 JSON or CSV\n"
    )
    assert zeros.bytes_read <= 1 << 17  # the first 64 KiB, and a buffer's worth


def test_endless_text_on_stdin_stops_at_free_memory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(reading, "available_memory", lambda: 20 << 20)
    rows = EndlessStream(b"0.5,0.25\n")
    status, err = run_on_stdin(rows, monkeypatch, capsys)
    assert status == 1
    assert err == (
        "attn: error: <stdin>: more than 20.0 MiB of input, beyond the 20.0 MiB of memory "
        "free to parse it; give a shorter input\n"
    )
    assert rows.bytes_read < 40 << 20


def test_an_npz_is_checked_before_it_is_inflated(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip bomb: 16 MiB of zeros deflate to 16 KiB. Its directory says so; attn
    refuses it before inflating a byte, when free memory is less."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, embeddings=np.zeros((1 << 18, 8)))
    assert path.stat().st_size < 1 << 16
    monkeypatch.setattr(reading, "available_memory", lambda: 8 << 20)

    def no_inflating(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_inflating)
    result = attn("context", str(path), terminal=True)
    assert_error(result, 1, "bomb.npz: its arrays would unpack to 16.0 MiB (from ")
    assert "KiB in the archive), more than the 8.0 MiB of memory free" in result.stderr


def test_an_npy_larger_than_free_memory_is_refused_before_it_is_read(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((1000, 16)))
    monkeypatch.setattr(reading, "available_memory", lambda: 100_000)
    result = attn("context", str(path), terminal=True)
    assert_error(
        result, 1, "the array takes 125.0 KiB ((1000, 16) float64 values), more than the 97.7 KiB"
    )


def test_a_truncated_npy_file_cannot_kill_attn(tmp_path: Path) -> None:
    """A memory-mapped .npy truncated while attn used it killed attn with SIGBUS; attn
    now reads a .npy into memory of its own."""
    path = tmp_path / "x.npy"
    np.save(path, np.arange(1 << 20, dtype=np.float64).reshape(-1, 8))
    code = (
        "import os, sys, numpy, attncli; emb = attncli.load(sys.argv[1]); "
        "os.truncate(sys.argv[1], 128); print(float(numpy.asarray(emb.matrix).sum()))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert float(done.stdout) == float(np.arange(1 << 20).sum())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_npy_and_npz_from_named_pipes(attn: Invoke, tmp_path: Path) -> None:
    """A .npy or .npz from a FIFO is read once (numpy.load would open it twice)."""
    embeddings = np.random.default_rng(5).normal(size=(7, 3))
    np.save(tmp_path / "x.npy", embeddings)
    np.savez(tmp_path / "x.npz", embeddings=embeddings, tokens=np.array(list("abcdefg")))
    weights = np.random.default_rng(6).normal(size=(3, 3, 2))
    np.savez(tmp_path / "w.npz", W_query=weights[0], W_key=weights[1], W_value=weights[2])
    for name in ("x.npy", "x.npz", "w.npz"):
        os.mkfifo(tmp_path / f"fifo-{name}")
    cases = [  # (arguments with files, the same with named pipes)
        (
            ["x.npy", "-m", "trainable", "--weights", "w.npz"],
            ["fifo-x.npy", "-m", "trainable", "--weights", "fifo-w.npz"],
        ),
        (["x.npz"], ["fifo-x.npz"]),
    ]
    for files, fifos in cases:
        pipes = [tmp_path / arg for arg in fifos if arg.startswith("fifo-")]
        writers = [
            threading.Thread(target=feed, args=(pipe, tmp_path / pipe.name.removeprefix("fifo-")))
            for pipe in pipes
        ]
        for writer in writers:
            writer.start()
        expected = attn("context", "-f", "json", *(in_folder(tmp_path, a) for a in files))
        done = python("context", "-f", "json", *(in_folder(tmp_path, a) for a in fifos))
        for pipe, writer in zip(pipes, writers, strict=True):
            with contextlib.suppress(OSError):  # let a writer attn never read from finish
                os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
            writer.join(timeout=10)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["values"] == json.loads(expected.stdout)["values"]


def in_folder(folder: Path, arg: str) -> str:
    return str(folder / arg) if "." in arg else arg


def feed(fifo: Path, source: Path) -> None:
    """Write a file into a named pipe (as `cat source > fifo` would)."""
    with contextlib.suppress(BrokenPipeError), fifo.open("wb") as pipe:
        pipe.write(source.read_bytes())


# ---------------------------------------------------------------- E: hostile inputs, real CLI

# Runs runner.run (what `python -m attncli` runs) once per case in one process, with the
# case's stdin, stdout and stderr on real file descriptors, and every Python warning
# shown each time it happens: what a user's terminal would get, without a process per case.
SWEEP_DRIVER = r"""
import contextlib, io, json, os, sys, threading, warnings
warnings.simplefilter("always")
from attncli.cli import runner

def feed(fifo, data):
    with contextlib.suppress(OSError), open(fifo, "wb") as pipe:
        pipe.write(data)

def run(case, folder):
    writer = None
    if case.get("fifo"):
        with open(case["fifo_data"], "rb") as source:
            data = source.read()
        writer = threading.Thread(target=feed, args=(case["fifo"], data), daemon=True)
        writer.start()
    out, err = os.path.join(folder, "out"), os.path.join(folder, "err")
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    sys.stdout.flush(); sys.stderr.flush()
    for fd, (path, flags) in enumerate(
        [(case.get("stdin") or os.devnull, os.O_RDONLY), (out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
         (err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)]
    ):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, closefd=False)))
    try:
        status = runner.run(case["argv"])
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        for fd, copy in enumerate(saved):
            os.dup2(copy, fd)
            os.close(copy)
    if writer is not None:
        with contextlib.suppress(OSError):  # a reader for a writer attn did not read
            os.close(os.open(case["fifo"], os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)
    with open(out, "rb") as out_file, open(err, "rb") as err_file:
        return {"status": int(status), "out": out_file.read().decode("utf-8", "replace"),
                "err": err_file.read().decode("utf-8", "replace")}

with open(sys.argv[1]) as cases_file:
    cases = json.load(cases_file)
results = {name: run(case, sys.argv[2]) for name, case in cases.items()}
with open(sys.argv[3], "w") as results_file:
    json.dump(results, results_file)
"""


def hostile_inputs(folder: Path) -> dict[str, dict[str, Any]]:
    """name -> {"argv", and "stdin" (a path), or "fifo" and "fifo_data"; "message"}."""
    files: dict[str, bytes] = {
        "empty.csv": b"",
        "bom_only.json": b"\xef\xbb\xbf",
        "nul_bytes.csv": b"a,1,2\x00\nb,3,4\n",
        "huge_line.csv": b'"' + b"t" * (1 << 21) + b'",0.5,0.25\nu,1,2\n',  # past csv's limit
        "nested_100000.json": b"[" * 100_000 + b"]" * 100_000,
        "nested_long.json": b"[" * 600_000 + b"]" * 600_000,
        "empty_rows_long.json": json.dumps([[]] * 300_000).encode(),
        "int_10e400.json": b"[[1" + b"0" * 400 + b"]]",
        "int_5000_digits.json": b"[[" + b"9" * 5000 + b"]]",
        "minus_zero.json": b"[[-0, 0.5]]",
        "underflow.json": b"[[1e-400, 0.5]]",
        "cr_only.csv": b"a,1,2\rb,3,4\r",
        "cr_only_long.csv": long_csv(line_end="\r").encode(),
        "stray_cr_long.csv": long_csv().replace("t7,", "t\r7,", 1).encode(),
        "mixed_line_ends.csv": b"a,1,2\r\nb,3,4\nc,5,6\rd,7,8",
        "utf16.csv": "token,d1\na,1\n".encode("utf-16"),
        "utf16_no_bom.csv": "token,d1\na,1\n".encode("utf-16-le"),
        "latin1.csv": "é,1\n".encode("latin-1"),
        "valid.json": b'{"tokens": ["a", "b"], "embeddings": [[1, 2], [3, 4]]}',
        "valid.csv": b"token,d1,d2\na,1,2\nb,3,4\n",
        "valid.tsv": b"token\td1\td2\na\t1\t2\nb\t3\t4\n",
        "json_weights_10e400.json": (
            b'{"W_query": [[1' + b"0" * 400 + b', 1], [1, 1], [1, 1]], "W_key": [[1, 1], [1, 1], '
            b'[1, 1]], "W_value": [[1, 1], [1, 1], [1, 1]]}'
        ),
    }
    arrays = {
        "valid.npy": np.eye(3),
        "strings.npy": np.array([["a", "b"]]),
        "three_d.npy": np.zeros((2, 2, 2)),
        "datetimes.npy": np.zeros((2, 2), "datetime64[s]"),
        "complex.npy": np.ones((2, 2)) + 1j,
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    for name, array in arrays.items():
        np.save(folder / name, array)
    np.savez(folder / "valid.npz", embeddings=np.eye(3), tokens=np.array(["a", "b", "c"]))
    w = np.ones((3, 2))
    np.savez(folder / "weights.npz", W_query=w, W_key=w, W_value=w)
    np.savez(folder / "complex_weights.npz", W_query=w + 1j, W_key=w, W_value=w)
    np.savez(folder / "datetime_weights.npz", W_query=w.astype("datetime64[s]"), W_key=w, W_value=w)
    np.savez(folder / "object_weights.npz", W_query=np.full((3, 2), None), W_key=w, W_value=w)

    cases: dict[str, dict[str, Any]] = {}
    for path in sorted(INVALID.glob("*.*")):  # (test_errors.py pipes these in, in-process)
        if path.name != "cases.json":
            cases[f"context {path.name}"] = {"argv": ["context", str(path), "-q", "0"]}
    for path in sorted(folder.iterdir()):
        cases[f"context {path.name}"] = {"argv": ["context", str(path), "-q", "0"]}
        if path.stat().st_size < 1 << 16:  # the long ones take the same path from stdin
            cases[f"context - < {path.name}"] = {
                "argv": ["context", "-", "-q", "0"],
                "stdin": str(path),
            }
    for name in (
        "weights.npz",
        "complex_weights.npz",
        "datetime_weights.npz",
        "object_weights.npz",
        "json_weights_10e400.json",
        "valid.npy",
        "latin1.csv",
    ):
        cases[f"--weights {name}"] = {
            "argv": ["context", "-m", "trainable", "--weights", str(folder / name)]
        }
    # the files that give masks, a model's q, k, v and cross-attention's keys: every one
    for path in sorted(folder.iterdir()):
        if path.is_file():
            cases[f"--mask {path.name}"] = {"argv": ["context", "--mask", str(path)]}
            cases[f"--qkv {path.name}"] = {"argv": ["context", "--qkv", str(path)]}
            cases[f"--kv {path.name}"] = {"argv": ["context", "-m", "causal", "--kv", str(path)]}
    binary = "is binary data, not text (it holds NUL bytes)"
    for device in ("/dev/zero", "/dev/urandom"):
        if Path(device).exists():
            cases[f"context {device}"] = {"argv": ["context", device], "message": binary}
            cases[f"context - < {device}"] = {
                "argv": ["context", "-"],
                "stdin": device,
                "message": binary,
            }
            cases[f"--weights {device}"] = {
                "argv": ["context", "-m", "trainable", "--weights", device],
                "message": binary,
            }
            for flag in ("--mask", "--qkv", "--kv"):
                cases[f"{flag} {device}"] = {"argv": ["context", "-m", "causal", flag, device]}
    if hasattr(os, "mkfifo"):
        for name in (
            "valid.json",
            "valid.csv",
            "valid.tsv",
            "valid.npy",
            "valid.npz",
            "truncated.npy",
            "declares_8_tib.npz",
            "objects.npy",
        ):
            source = folder / name if (folder / name).exists() else INVALID / name
            fifo = folder / f"fifo-{name}"
            os.mkfifo(fifo)
            cases[f"context FIFO {name}"] = {
                "argv": ["context", str(fifo), "-q", "0"],
                "fifo": str(fifo),
                "fifo_data": str(source),
            }
        fifo = folder / "fifo-weights.npz"
        os.mkfifo(fifo)
        cases["--weights FIFO weights.npz"] = {
            "argv": ["context", "-m", "trainable", "--weights", str(fifo)],
            "fifo": str(fifo),
            "fifo_data": str(folder / "weights.npz"),
        }
    return cases


def test_hostile_inputs_through_the_cli(tmp_path: Path) -> None:
    """Exit 0, 1 or 2, never 70; no traceback, no Python warning; on an error nothing on
    stdout and exactly one line on stderr."""
    inputs, scratch = tmp_path / "inputs", tmp_path / "scratch"
    inputs.mkdir()
    scratch.mkdir()
    cases = hostile_inputs(inputs)
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SWEEP_DRIVER,
            str(tmp_path / "cases.json"),
            str(scratch),
            str(tmp_path / "results.json"),
        ],
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == set(cases)
    problems = {}
    for name, result in results.items():
        status, out, err = result["status"], result["out"], result["err"]
        fine = (
            status in (0, 1, 2)
            and "Traceback" not in err
            and "Warning" not in err
            and (
                (status == 0 and err == "")
                or (
                    out == ""
                    and err.startswith("attn: error: ")
                    and err.count("\n") == 1
                    and err.endswith("\n")
                )
            )
            and cases[name].get("message", "") in err
        )
        if not fine:
            problems[name] = (status, err[:300])
    assert problems == {}


def test_a_mistake_in_a_long_json_text_is_not_read_again_for_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a block of rows does not read whole, the rest goes a row at a time: each
    character is scanned a bounded number of times (it was once per row before the
    mistake, and a 1 MiB text took 8 s to be refused)."""
    from attncli.inputs import json_text

    scanned = [0]
    decode = json_text._DECODER.raw_decode

    def counted(text: str, at: int = 0) -> tuple[Any, int]:
        value, end = decode(text, at)
        scanned[0] += end - at
        return value, end

    def failing_counted(text: str, at: int = 0) -> tuple[Any, int]:
        try:
            return counted(text, at)
        except ValueError:
            scanned[0] += len(text) - at  # as far as a failed scan may have gone
            raise

    monkeypatch.setattr(json_text._DECODER, "raw_decode", failing_counted)
    text = "[" + JSON_PADDING + ", [+1, 2]]"
    with pytest.raises(AttnError, match="invalid JSON"):
        json_text.from_json(text, "long.json")
    assert scanned[0] < 4 * len(text)

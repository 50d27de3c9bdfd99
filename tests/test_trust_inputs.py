"""Issue 9 ("Trust"), the input side: no input makes an internal error; every input has one
meaning, however long (the fast CSV path reads what the exact parser reads, bit for bit,
error for error); nothing is read silently wrong; reading is bounded, even on endless input;
and a sweep of hostile inputs through the real CLI gets one line on stderr every time."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import AttnError, csv_input, load, loading, loads
from attncli.loading import InputFormat

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
        patch.setattr(loading, "_FAST_MIN_BYTES", n)
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


def long_csv(rows: int = 20_000, line_end: str = "\n") -> str:
    """A CSV of about 1.3 MB: past the fast path's threshold as shipped (1 MiB)."""
    values = np.random.default_rng(rows).normal(size=(rows, 6)).round(6).tolist()
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
    ["CR line ends", "a CR alone inside a line", "CR LF with one CR alone", "CR after quotes"],
)
def test_long_csv_with_carriage_returns_reads_as_short_csv_does(
    attn: Invoke, tmp_path: Path, variant: str
) -> None:
    """Files of 1 MiB or more once crashed (exit 70) on a CR the fast path did not expect;
    now they read exactly as the exact parser reads them, from a file or from stdin."""
    text = {
        "CR line ends": long_csv(line_end="\r"),
        "a CR alone inside a line": long_csv().replace("t7,", "t\r7,", 1),
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
    lambda t: t.strip() and not loading.is_numeric_text(t)
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


@pytest.mark.parametrize(
    "text",
    [
        "token,d1,d2\nYour,0.43,0.15\njourney,0.55,0.87\n",
        "Your,0.43,0.15\r\njourney,0.55,0.87\r\n\r\n",
        '"a, b",1,2\n"say ""hi""",3,4\nplain,5,6\n',
        ",0,1\n0,0.43,0.15\n1,0.55,0.87\n",
        "1,2\n3,4\n\n",
        "token\td1\nhello, world\t1\nb\t2\n",
        "\ufefftoken,d1\nå,1\n日本,2\n",
    ],
)
def test_the_fast_path_reads_plain_text_itself(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property above is not won by always stepping aside: plain CSV (quoted tokens,
    CR LF, blank lines, pandas' index) is read by the fast paths alone."""
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    with fast_paths_from(HUGE):
        exact = outcome(lambda: load(path))
    assert exact[0] == "ok"

    def no_exact_parser(*args: Any) -> Any:
        raise AssertionError("the exact parser was asked")

    monkeypatch.setattr(csv_input, "_from_csv", no_exact_parser)
    with fast_paths_from(0):
        assert outcome(lambda: load(path)) == exact
        assert outcome(lambda: loads(text, str(path))) == exact
        assert outcome(lambda: loads(text.encode("utf-8"), str(path))) == exact


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


@settings(max_examples=400, deadline=None)
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


@pytest.mark.parametrize(
    ("quirk", "message"),
    [
        ("[[1, 2], [3, 4],]", "invalid JSON"),
        ("[[1, 2] [3, 4]]", "invalid JSON"),
        ("[[1, 2,], [3, 4]]", "invalid JSON"),
        ("[[+1, 2], [3, 4]]", "invalid JSON"),
        ("[[.5, 2], [3, 4]]", "invalid JSON"),
        ("[[01, 2], [3, 4]]", "invalid JSON"),
        ("[[1,, 2], [3, 4]]", "invalid JSON"),
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
    padding = json.dumps([[0.25, 0.5]] * 100_000)[1:-1]  # about 1.3 MB of plain rows
    if quirk.startswith("[["):
        long_text = quirk[:-1] + ", " + padding + "]"
    else:  # the rows are the first list in the object
        long_text = quirk.replace("[[1, 2]]", "[[1, 2], " + padding + "]", 1)
    assert len(long_text) > 1 << 20
    for text in (quirk, long_text):
        assert_error(attn("context", input=text), 1, message)

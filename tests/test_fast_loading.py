"""The fast path for long CSV inputs reads exactly what the exact parser reads, or steps
aside for it; long JSON reads as short JSON does; and NumPy files load (read into memory,
never memory-mapped)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from attncli import AttnError, load, loads
from attncli.inputs import InputFormat
from attncli.inputs import csv_text as csv_input

from .conftest import Invoke

ROWS = 3000  # enough text to pass the fast paths' size threshold with a lower one set below


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_input, "FAST_MIN_CHARS", 1000)
    monkeypatch.setattr("attncli.inputs._FAST_MIN_BYTES", 1000)


def matrix(rows: int = ROWS, dims: int = 5) -> np.ndarray:
    return np.random.default_rng(rows + dims).normal(size=(rows, dims))


def exact(text: str, fmt: InputFormat | None = None):  # type: ignore[no-untyped-def]
    """What the exact parsers make of text (the fast paths switched off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_input, "FAST_MIN_CHARS", 10**12)
        return loads(text, input_format=fmt)


def assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.tokens == b.tokens
    np.testing.assert_array_equal(a.matrix, b.matrix)


CSV_TEXTS = {
    "header and tokens": lambda m: (
        "token,"
        + ",".join(f"d{k}" for k in range(m.shape[1]))
        + "\n"
        + "".join(f"tok{i}," + ",".join(map(repr, row)) + "\n" for i, row in enumerate(m.tolist()))
    ),
    "no header": lambda m: "".join(
        f"w{i}," + ",".join(map(repr, row)) + "\n" for i, row in enumerate(m.tolist())
    ),
    "numbers only": lambda m: "".join(",".join(map(repr, row)) + "\n" for row in m.tolist()),
    "quoted tokens": lambda m: "".join(
        f'"a, {i}",' + ",".join(map(repr, row)) + "\n" for i, row in enumerate(m.tolist())
    ),
    "pandas index": lambda m: (
        ","
        + ",".join(str(k) for k in range(m.shape[1]))
        + "\n"
        + "".join(f"{i}," + ",".join(map(repr, row)) + "\n" for i, row in enumerate(m.tolist()))
    ),
    "crlf and blank lines": lambda m: "\r\n".join(
        f"t{i}," + ",".join(map(repr, row)) + ("\r\n" if i % 100 == 0 else "")
        for i, row in enumerate(m.tolist())
    ),
}


@pytest.mark.parametrize("name", CSV_TEXTS)
def test_fast_csv_equals_exact(name: str, tmp_path: Path) -> None:
    text = CSV_TEXTS[name](matrix())
    assert_same(loads(text), exact(text))
    path = tmp_path / "long.csv"
    path.write_text(text, encoding="utf-8")
    assert_same(load(path), exact(text))


def test_fast_tsv(tmp_path: Path) -> None:
    text = CSV_TEXTS["header and tokens"](matrix()).replace(",", "\t")
    path = tmp_path / "long.tsv"
    path.write_text(text, encoding="utf-8")
    assert_same(load(path), exact(text))


def replace_cell(text: str, line: int, column: int, value: str) -> str:
    lines = text.split("\n")
    cells = lines[line - 1].split(",")
    cells[column - 1] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("tok2999,", "tok2999,,", 1),
            "line 3001 has 7 cells, but the header has 6",
        ),
        (lambda t: t + "tokX,1,2,3,4,nan\n", "'nan' is not a finite number"),
        (
            lambda t: replace_cell(t, line=1502, column=2, value="abc"),
            "line 1502, column 2 ('d0'), token 'tok1500': 'abc' is not a number",
        ),
    ],
)
def test_bad_long_inputs_get_the_exact_message(change, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = change(CSV_TEXTS["header and tokens"](matrix()))
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    for attempt in (lambda: load(path), lambda: loads(text)):
        with pytest.raises(AttnError, match=re.escape(message)):
            attempt()


def test_long_tokens_are_not_cut(tmp_path: Path) -> None:
    m = matrix()
    text = "".join(
        f"{'t' * (200 if i == 2500 else 3)}{i}," + ",".join(map(repr, row)) + "\n"
        for i, row in enumerate(m.tolist())
    )
    path = tmp_path / "long.csv"
    path.write_text(text, encoding="utf-8")
    assert load(path).tokens[2500] == "t" * 200 + "2500"


JSON_TEXTS = {
    "bare list": lambda m: json.dumps(m.tolist()),
    "tokens and embeddings": lambda m: json.dumps(
        {"tokens": [f"t{i}" for i in range(len(m))], "embeddings": m.tolist()}
    ),
    "indented": lambda m: json.dumps(
        {"embeddings": m.tolist(), "tokens": [f"t{i}" for i in range(len(m))]}, indent=2
    ),
    "attn output": lambda m: json.dumps(
        {
            "command": "context",
            "mode": "plain",
            "tokens": [f"t{i}" for i in range(len(m))],
            "query": None,
            "values": m.tolist(),
            "params": {},
        }
    ),
    "tricky token": lambda m: json.dumps(
        {
            "tokens": ['"embeddings": [[1]]', *[f"t{i}" for i in range(1, len(m))]],
            "embeddings": m.tolist(),
        }
    ),
}


@pytest.mark.parametrize("name", JSON_TEXTS)
def test_fast_json_equals_exact(name: str) -> None:
    text = JSON_TEXTS[name](matrix())
    assert_same(loads(text), exact(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps([[[1.0, 2.0]]] * 2000), "a 3-d array?"),
        (json.dumps([[1.0, 2.0]] * 1999 + [[1.0]]), "row 2000 (token 'x2000') has 1 numbers"),
        (json.dumps([[1.0, 2.0]] * 1999 + [[1.0, True]]), "a boolean (true) is not a number"),
        (
            json.dumps([[1.0, 2.0]] * 1999).replace("2.0]]", "NaN]]"),
            "NaN is not a number JSON allows",
        ),
        (
            json.dumps({"tokens": ["a"] * 1999, "embeddings": [[1.0]] * 2000}),
            '1999 "tokens" but 2000 "embeddings" rows',
        ),
    ],
)
def test_bad_long_json_gets_the_exact_message(text: str, message: str) -> None:
    with pytest.raises(
        AttnError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        loads(text)


def test_npy_is_read_into_memory_and_npz_names_its_tokens(tmp_path: Path, attn: Invoke) -> None:
    m = matrix(50, 4).astype(np.float32)
    np.save(tmp_path / "x.npy", m)
    emb = load(tmp_path / "x.npy")
    assert not isinstance(emb.matrix, np.memmap)  # a file cut short later cannot SIGBUS attn
    assert emb.matrix.dtype == np.float32
    assert emb.tokens[0] == "x1"
    np.testing.assert_array_equal(emb.matrix, m)
    np.savez(tmp_path / "x.npz", embeddings=m, tokens=np.array([f"w{i}" for i in range(50)]))
    assert load(tmp_path / "x.npz").tokens[3] == "w3"
    buffer = io.BytesIO()
    np.save(buffer, m)
    piped = json.loads(
        attn("context", "-", "-q", "w0" if False else "x1", input=buffer.getvalue()).stdout
    )
    np.testing.assert_allclose(
        piped["values"],
        json.loads(attn("context", str(tmp_path / "x.npy"), "-q", "0").stdout)["values"],
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4)), "has shape (2, 3, 4); give a T x d_in matrix"),
        (np.array([[1.0, np.nan]]), "row 1 (token 'x1'), column 2: nan is not a finite number"),
        (np.array([["a", "b"]]), "holds <U1 values; give numbers"),
        (np.zeros((0, 3)), "has shape (0, 3)"),
    ],
)
def test_bad_npy(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(AttnError) as caught:
        load(tmp_path / "bad.npy")
    assert message in caught.value.message


def test_npy_named_npz_and_the_reverse(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.eye(2))
    (tmp_path / "a.npz").write_bytes((tmp_path / "a.npy").read_bytes())
    with pytest.raises(AttnError, match=r"a \.npy array, not a \.npz archive"):
        load(tmp_path / "a.npz")

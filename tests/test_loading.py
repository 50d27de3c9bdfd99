"""Every input form parses to the same tokens and matrix; bad input says where and why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from attncli import AttnError, InputFormat, book_example, load, loads

from .conftest import BOOK, SAMPLES

TOKENS = tuple(BOOK["inputs"]["tokens"])
MATRIX = np.array(BOOK["inputs"]["matrix"])


def assert_book(emb) -> None:  # type: ignore[no-untyped-def]
    assert emb.tokens == TOKENS
    np.testing.assert_array_equal(emb.matrix, MATRIX)


@pytest.mark.parametrize("name", ["your_journey.json", "your_journey.csv"])
def test_sample_files_hold_the_books_inputs(name: str) -> None:
    emb = load(SAMPLES / name)
    assert_book(emb)
    assert emb.source.endswith(name)


def test_json_object_mapping_tokens_to_vectors_keeps_order() -> None:
    text = json.dumps(dict(zip(TOKENS, MATRIX.tolist(), strict=True)))
    assert_book(loads(text))


def test_bare_list_of_vectors_names_tokens_like_the_book() -> None:
    emb = loads(json.dumps(MATRIX.tolist()))
    assert emb.tokens == ("x1", "x2", "x3", "x4", "x5", "x6")
    np.testing.assert_array_equal(emb.matrix, MATRIX)


def test_embeddings_without_tokens() -> None:
    emb = loads(json.dumps({"embeddings": [[1, 2], [3, 4]]}))
    assert emb.tokens == ("x1", "x2")
    np.testing.assert_array_equal(emb.matrix, [[1.0, 2.0], [3.0, 4.0]])


def test_attn_context_output_is_input() -> None:
    output = {
        "command": "context",
        "mode": "plain",
        "tokens": ["a", "b"],
        "query": None,
        "shape": [2, 2],
        "values": [[0.5, 0.25], [1.0, 2.0]],
        "params": {},
    }
    emb = loads(json.dumps(output))
    assert emb.tokens == ("a", "b")
    np.testing.assert_array_equal(emb.matrix, [[0.5, 0.25], [1.0, 2.0]])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"command": "weights"}, "output of `attn weights`, not embeddings"),
        ({"query": {"index": 0, "token": "a"}}, "one --query row only"),
    ],
)
def test_attn_output_that_is_not_embeddings_is_refused(change: dict, message: str) -> None:
    output = {"command": "context", "tokens": ["a"], "query": None, "values": [[1.0]], **change}
    with pytest.raises(AttnError, match=message):
        loads(json.dumps(output))


def test_csv_with_a_byte_order_mark_and_crlf_line_ends() -> None:
    text = (SAMPLES / "your_journey.csv").read_text(encoding="utf-8").replace("\n", "\r\n")
    assert_book(loads(b"\xef\xbb\xbf" + text.encode("utf-8"), input_format=InputFormat.CSV))


def test_csv_without_header() -> None:
    rows = [",".join([t, *map(str, v)]) for t, v in zip(TOKENS, MATRIX.tolist(), strict=True)]
    assert_book(loads("\n".join(rows) + "\n"))


def test_csv_of_numbers_only_names_tokens_x1_to_xn() -> None:
    emb = loads("1,2\n3,4\n")
    assert emb.tokens == ("x1", "x2")
    np.testing.assert_array_equal(emb.matrix, [[1.0, 2.0], [3.0, 4.0]])


def test_pandas_to_csv_with_its_unnamed_index_column() -> None:
    # pandas.DataFrame(MATRIX).to_csv() writes ",0,1,2" and a numeric index.
    emb = loads(",0,1,2\n0,0.43,0.15,0.89\n1,0.55,0.87,0.66\n")
    assert emb.tokens == ("0", "1")
    np.testing.assert_array_equal(emb.matrix, MATRIX[:2])


def test_numeric_tokens_under_a_token_header() -> None:
    emb = loads("token,d1\n2024,0.5\n2025,0.25\n")
    assert emb.tokens == ("2024", "2025")


def test_tsv_by_content_and_quoted_csv_tokens() -> None:
    emb = loads("token\td1\td2\nhello, world\t1\t2\n")
    assert emb.tokens == ("hello, world",)
    emb = loads('token,d1\n"a, b",1.5\n"say ""hi""",2\n')
    assert emb.tokens == ("a, b", 'say "hi"')


def test_a_token_that_looks_like_markup_or_a_list_stays_csv() -> None:
    emb = loads("[bold],1,2\n[x],3,4\n")
    assert emb.tokens == ("[bold]", "[x]")


def test_gpt2_style_tokens_keep_their_leading_space() -> None:
    emb = loads(json.dumps({"tokens": ["Hello", " world"], "embeddings": [[1], [2]]}))
    assert emb.tokens == ("Hello", " world")


def test_format_follows_the_extension_then_the_content(tmp_path: Path) -> None:
    path = tmp_path / "tokens.data"
    path.write_text(json.dumps({"tokens": ["a"], "embeddings": [[1.0]]}), encoding="utf-8")
    assert load(path).tokens == ("a",)
    csv_named_json = tmp_path / "tokens.csv"
    csv_named_json.write_text('{"tokens": ["a"], "embeddings": [[1.0]]}', encoding="utf-8")
    with pytest.raises(AttnError, match="looks like JSON but is being read as CSV"):
        load(csv_named_json)
    assert load(csv_named_json, InputFormat.JSON).tokens == ("a",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"tokens": ["a", "b"], "embeddings": [[1, 2], [3]]}',
            "row 2 (token 'b') has 1 numbers, but row 1 has 2",
        ),
        (
            '{"tokens": ["a"], "embeddings": [[1, NaN]]}',
            "line 1, column 38: NaN is not a number JSON allows",
        ),
        ("[[1, 2], [3, Infinity]]", "Infinity is not a number JSON allows"),
        ('{"tokens": ["a", "b"], "embeddings": [[1]]}', '2 "tokens" but 1 "embeddings" rows'),
        ('{"a": [1, "2"]}', "row 1 (token 'a'), column 2: a string (\"2\") is not a number"),
        ('{"a": [true]}', "a boolean (true) is not a number"),
        (
            '{"tokens": [1], "embeddings": [[1]]}',
            'token 0 is a number (1), not a string; quote it: "1"',
        ),
        ('{"tokens": ["a"], "embeddings": [[1e400]]}', "column 1: a number too large for float64"),
        ('{"a": [1], "b": 2}', "token 'b' maps to a number (2), not a list of numbers"),
        ("[1, 2, 3]", "a flat list of numbers is one vector"),
        ("[]", "no tokens"),
        ("[[]]", "is an empty vector"),
        ('{"tokens": ["a"], "embeddings": [[1]', "invalid JSON at line 1, column 37"),
        ("token,d1,d2\na,1\n", "line 2 has 2 cells, but the header has 3"),
        ("token,d1\na,\n", "line 2, column 2 ('d1'), token 'a': empty cell"),
        ("token,d1\na,abc\n", "line 2, column 2 ('d1'), token 'a': 'abc' is not a number"),
        ("a,nan\n", "'nan' is not a finite number"),
        ("token,d1\n", "only a header row"),
        ("   \n\t\n", "holds only whitespace"),
        ("", "is empty"),
    ],
)
def test_bad_input_says_where_and_what(text: str, message: str) -> None:
    with pytest.raises(AttnError) as caught:
        loads(text, source="in.txt")
    assert message in caught.value.message
    assert caught.value.message.startswith("in.txt")
    assert caught.value.status == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe{\x00}\x00", "is UTF-16 text; attn reads UTF-8"),
        (b"token,d1\na,1\n\xff,2\n", "line 3, byte 13: not UTF-8 text (byte 0xff; Latin-1"),
        (b"\x00\x01\x02\x03\xfe", "is binary data, not text (it holds NUL bytes)"),
        ("token,d1\na,1\n".encode("utf-16-le"), "looks like UTF-16 text without a byte-order mark"),
        ("token,d1\na,1\n".encode("utf-16-be"), "looks like UTF-16 text without a byte-order mark"),
    ],
)
def test_bytes_that_are_not_utf8_text(data: bytes, message: str) -> None:
    with pytest.raises(AttnError, match=re.escape(message)):
        loads(data, source="in.bin")


@pytest.mark.parametrize(
    ("text", "message"),
    [('"hello"', "the JSON is a string"), ("null", "the JSON is null"), ("42", "a number (42)")],
)
def test_json_that_is_not_a_list_or_object(text: str, message: str) -> None:
    with pytest.raises(AttnError, match=re.escape(message)):
        loads(text, input_format=InputFormat.JSON)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AttnError, match="no such file"):
        load(tmp_path / "missing.json")
    with pytest.raises(AttnError, match="is a directory"):
        load(tmp_path)


class TestQuery:
    emb = book_example()

    @pytest.mark.parametrize(
        ("query", "index"), [("journey", 1), ("JOURNEY", 1), ("your", 0), ("5", 5), ("0", 0)]
    )
    def test_token_then_case_insensitive_then_index(self, query: str, index: int) -> None:
        assert self.emb.resolve_query(query) == index

    def test_exact_match_wins_over_index(self) -> None:
        emb = loads("token,d1\n1,0.5\n0,0.25\n")
        assert emb.resolve_query("0") == 1

    def test_duplicates_are_ambiguous_and_list_the_candidates(self) -> None:
        emb = loads("the,1\ncat,2\nthe,3\n")
        with pytest.raises(AttnError) as caught:
            emb.resolve_query("the")
        assert caught.value.status == 2
        # the library names its parameter, the command line its flag
        assert (
            "matches 2 tokens (0 'the', 2 'the'); pick one by index: query=0 or query=2"
            in caught.value.message
        )
        assert (
            "matches 2 tokens (0 'the', 2 'the'); pick one by index: -q 0 or -q 2"
            in caught.value.for_command_line()
        )

    def test_case_insensitive_duplicates_are_ambiguous(self) -> None:
        emb = loads("The,1\nthe,2\n")
        with pytest.raises(AttnError, match="ambiguous"):
            emb.resolve_query("THE")

    def test_unknown_token_suggests_and_lists(self) -> None:
        with pytest.raises(AttnError) as caught:
            self.emb.resolve_query("jorney")
        message = caught.value.message
        assert "did you mean 'journey'?" in message
        assert "0 'Your', 1 'journey', 2 'starts'" in message
        assert caught.value.status == 2

    @pytest.mark.parametrize("query", ["6", "-1"])
    def test_index_out_of_range(self, query: str) -> None:
        with pytest.raises(AttnError, match="an index runs from 0 to 5"):
            self.emb.resolve_query(query)

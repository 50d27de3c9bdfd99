"""JSON, CSV and table output: the right numbers, strict JSON, readable tables."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from rich.console import Console

from attncli import AttentionParams, Embeddings, book_example, compute, loads
from attncli.render.data import to_csv, to_json
from attncli.render.table import heat_rgb, to_table, visible_columns

from .conftest import expected


def table_text(result, command: str, width: int = 80, precision: int = 4) -> str:  # type: ignore[no-untyped-def]
    console = Console(file=io.StringIO(), width=width, no_color=True, color_system=None)
    console.print(to_table(result, command, precision, width))
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def header_line(text: str) -> str:
    lines = text.splitlines()
    return lines[next(i for i, line in enumerate(lines) if "───" in line) - 1]


def body_rows(text: str) -> list[list[str]]:
    """The cells of each table row below the header rule, split on spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "───" in line) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return [line.split() for line in lines[start:end]]


def test_json_has_the_documented_keys_and_full_precision() -> None:
    result = compute(book_example())
    parsed = json.loads(to_json(result, "weights"))
    assert list(parsed) == ["command", "mode", "tokens", "query", "shape", "values", "params"]
    assert parsed["command"] == "weights"
    assert parsed["mode"] == "plain"
    assert parsed["query"] is None
    assert parsed["shape"] == [6, 6]
    assert parsed["values"] == result.attn_weights[0].tolist()  # every digit, not rounded
    assert parsed["params"] == {
        "d_in": 3,
        "d_out": None,
        "seed": None,
        "init": None,
        "scale": 1.0,
        "heads": 1,
        "head_dim": None,
        "wrapper": None,
        "qkv_bias": None,
        "dropout": None,
        "dropout_seed": None,
        "batch": None,
        "weights": None,
        "parameters": 0,
        "dtype": "float64",
        "kv_groups": None,
        "latent_dim": None,
        "softcap": None,
        "alibi_slopes": None,
        "sink_logits": None,
        "qk_norm": False,
        "gate": False,
        "rope": None,
        "position_offset": None,
        "window": None,
        "mask": None,
        "causal_align": None,
        "kv": None,
        "qkv": None,
    }


def test_json_for_a_query_is_that_row() -> None:
    result = compute(book_example(), AttentionParams(mode="trainable"), query=1)
    parsed = json.loads(to_json(result, "context"))
    assert parsed["query"] == {"index": 1, "token": "journey"}
    assert parsed["shape"] == [2]
    np.testing.assert_allclose(parsed["values"], expected("trainable_context_vec_2"), atol=1e-6)
    assert parsed["params"] == {
        "d_in": 3,
        "d_out": 2,
        "seed": 123,
        "init": "rand",
        "scale": 2**-0.5,
        "heads": 1,
        "head_dim": 2,
        "wrapper": False,
        "qkv_bias": False,
        "dropout": 0.0,
        "dropout_seed": None,
        "batch": 1,
        "weights": None,
        "parameters": 18,
        "dtype": "float64",
        "kv_groups": None,
        "latent_dim": None,
        "softcap": None,
        "alibi_slopes": None,
        "sink_logits": None,
        "qk_norm": False,
        "gate": False,
        "rope": None,
        "position_offset": None,
        "window": None,
        "mask": None,
        "causal_align": None,
        "kv": None,
        "qkv": None,
    }


def test_masked_scores_are_null_in_strict_json() -> None:
    text = to_json(compute(book_example(), AttentionParams(mode="causal")), "scores")
    assert "Infinity" not in text
    assert "NaN" not in text
    values = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict {name}"))[
        "values"
    ]
    assert values[0][1:] == [None] * 5
    assert values[5].count(None) == 0


def test_csv_header_rows_and_full_precision() -> None:
    result = compute(book_example(), AttentionParams(mode="causal"))
    rows = list(csv.reader(io.StringIO(to_csv(result, "scores"))))
    assert rows[0] == ["token", "Your", "journey", "starts", "with", "one", "step"]
    assert [row[0] for row in rows[1:]] == list(result.tokens)
    assert rows[1][2:] == ["-inf"] * 5  # as the book prints a masked score
    assert float(rows[2][1]) == result.attn_scores[0, 1, 0]
    vectors = list(csv.reader(io.StringIO(to_csv(result, "context"))))
    assert vectors[0] == ["token", "d1", "d2"]


def test_csv_quotes_tokens_with_commas() -> None:
    result = compute(loads('token,d1\n"a, b",1\nc,2\n'))
    rows = list(csv.reader(io.StringIO(to_csv(result, "weights"))))
    assert rows[0] == ["token", "a, b", "c"]
    assert rows[1][0] == "a, b"


def test_table_shows_tokens_values_title_and_caption() -> None:
    text = table_text(compute(book_example(), AttentionParams(mode="trainable")), "weights")
    assert "attn weights · trainable · 6×6" in text
    for token in ("Your", "journey", "starts", "with", "one", "step"):
        assert token in text
    assert "0.1500" in text
    assert "0.2264" in text
    assert "d_in=3 · d_out=2 · init=rand · seed=123 · scale=1/√2=0.7071" in text


def test_table_precision_and_no_negative_zero() -> None:
    emb = Embeddings(("a", "b"), np.array([[-1e-9, 1.0], [0.0, 2.0]]))
    text = table_text(compute(emb), "context", precision=2)
    assert "-0.00" not in text
    assert "0.00" in text


def test_table_marks_masked_cells_not_with_a_number() -> None:
    result = compute(book_example(), AttentionParams(mode="causal"))
    scores = table_text(result, "scores")
    assert body_rows(scores)[0] == ["Your", "0.9231", "-inf", "-inf", "-inf", "-inf", "-inf"]
    weights = table_text(result, "weights")
    assert body_rows(weights)[0] == ["Your", "1.0000", "0", "0", "0", "0", "0"]
    assert body_rows(weights)[5][0] == "step"
    assert "0" not in body_rows(weights)[5][1:]  # the last token sees every token
    assert "causal: keys after the query (j > i) are masked" in weights


def test_tokens_are_printed_literally_not_as_markup() -> None:
    emb = Embeddings(("[bold]", "[/]", "[red]x"), np.eye(3))
    text = table_text(compute(emb), "weights")
    assert "[bold]" in text
    assert "[/]" in text
    assert "[red]x" in text


def test_wide_matrices_elide_middle_columns_and_say_how_to_see_all() -> None:
    emb = Embeddings(
        tuple(f"token{i}" for i in range(40)), np.random.default_rng(0).normal(size=(40, 3))
    )
    text = table_text(compute(emb), "weights", width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    header = header_line(text)
    assert "token0" in header
    assert "token39" in header
    assert "…" in header
    assert "token20" not in header
    assert "34 columns not shown; -f csv or -f json shows all" in text
    for cell in body_rows(text)[0][1:]:
        assert cell == "…" or len(cell) == 6  # whole numbers, never wrapped


def test_long_inputs_show_their_first_and_last_rows(attn) -> None:  # type: ignore[no-untyped-def]
    matrix = np.random.default_rng(0).normal(size=(100, 2))
    text = attn("values", "-", "-f", "table", input=json.dumps(matrix.tolist())).stdout
    labels = [row[0] for row in body_rows(text)]
    assert labels[:20] == [f"x{i}" for i in range(1, 21)]
    assert labels[20:22] == ["⋮", "x81"]  # "⋮ 60 more", then the last twenty
    assert labels[-1] == "x100"
    assert "⋮ 60 more" in text
    assert "60 rows not shown; -f csv or -f json shows all" in text
    assert "attn values · plain · 100×2" in text


def test_long_tokens_are_cut_with_an_ellipsis_in_labels() -> None:
    emb = Embeddings(("a" * 60, "b"), np.eye(2))
    text = table_text(compute(emb), "weights", width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "a" * 60 not in text


def test_visible_columns_keeps_first_and_last() -> None:
    assert visible_columns([6] * 5, 100) == [0, 1, 2, 3, 4]
    # 40 characters: 4 for the "…" column, then 9 (6 + padding + border) per column
    assert visible_columns([6] * 10, 40) == [0, 1, None, 8, 9]
    assert visible_columns([6] * 10, 41 + 9) == [0, 1, 2, None, 8, 9]


def test_heat_colours_run_dark_to_light() -> None:
    assert heat_rgb(0.0) == (68, 1, 84)
    assert heat_rgb(1.0) == (253, 231, 37)
    assert heat_rgb(2.0) == heat_rgb(1.0)
    assert sum(heat_rgb(0.75)) > sum(heat_rgb(0.25))

"""Results people can share: Markdown, SVG and HTML; formats by extension; completion."""

from __future__ import annotations

import html.parser
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import typer

from attncli.cli.typer_app import complete_query

from .conftest import BOOK, SAMPLES, Invoke, expected

ROOT = Path(__file__).parent.parent


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each GitHub-flavoured table in text, as rows of cells (header first, the
    alignment row left out)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].replace("\\|", "\0").split("|")]
            cells = [c.replace("\0", "|") for c in cells]
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def plain(cell: str) -> str:
    return cell.strip("*")


def test_markdown_table_holds_the_books_weights(attn: Invoke) -> None:
    text = attn("weights", "-f", "markdown", terminal=True).stdout
    [table] = markdown_tables(text)
    assert table[0] == ["token", *BOOK["inputs"]["tokens"]]
    assert [row[0] for row in table[1:]] == BOOK["inputs"]["tokens"]
    values = np.array([[float(plain(c)) for c in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(values, np.round(expected("attn_weights_all"), 4), atol=1e-12)
    assert "|---|---:|" in text


def test_markdown_marks_masked_cells_and_the_query(attn: Invoke) -> None:
    text = attn(
        "scores",
        "-m",
        "causal",
        "-q",
        "journey",
        "-f",
        "markdown",
        "--precision",
        "2",
        terminal=True,
    ).stdout
    [table] = markdown_tables(text)
    assert table[1] == ["**journey**", "1.27", "**1.85**", "*-inf*", "*-inf*", "*-inf*", "*-inf*"]
    weights = markdown_tables(
        attn("weights", "-m", "causal", "-f", "markdown", terminal=True).stdout
    )[0]
    assert weights[1][2:] == ["*0*"] * 5


def test_markdown_escapes_tokens_and_shows_one_table_per_head(attn: Invoke) -> None:
    text = attn(
        "weights",
        "-",
        "-m",
        "causal",
        "--heads",
        "2",
        "--d-out",
        "4",
        "-f",
        "markdown",
        input="a|b,1,2\nc*d,3,4\n",
    ).stdout
    tables = markdown_tables(text)
    assert len(tables) == 2
    assert tables[0][0] == ["token", "a\\|b".replace("\\|", "|"), "c\\*d"]
    assert "**weights, head 1 of 2**" in text


def test_svg_is_valid_xml_with_tokens_and_values(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "weights.svg"
    assert attn("weights", "--mode", "causal", "-o", str(path), terminal=True).exit_code == 0
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    for fragment in ("journey", "starts", "0.6014", "1.0000", "attn weights · causal · 6×6"):
        assert fragment in text


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_html_is_a_page_with_tokens_and_values(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "weights.htm"
    attn("weights", "-m", "causal", "-o", str(path), terminal=True)
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    assert {"html", "head", "body"} <= set(parser.tags)
    text = "".join(parser.parts)
    assert "journey" in text
    assert "0.6014" in text


def test_explain_as_one_html_page(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "walkthrough.html"
    assert attn("explain", "-m", "trainable", "-o", str(path), terminal=True).exit_code == 0
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    text = "".join(parser.parts).replace("\xa0", " ")
    assert "Attention scores: q · k_j" in text
    assert "= [0.3061, 0.8210]" in text


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("out.json", lambda b: json.loads(b)["shape"] == [6, 6]),
        ("out.csv", lambda b: b.startswith(b"token,Your")),
        ("out.md", lambda b: b.startswith(b"| token | Your")),
        ("out.markdown", lambda b: b.startswith(b"| token | Your")),
        ("out.svg", lambda b: b.startswith(b"<svg")),
        ("out.html", lambda b: b.startswith(b"<!DOCTYPE html>")),
        ("out.npy", lambda b: b.startswith(b"\x93NUMPY")),
        ("out.txt", lambda b: b"attn weights" in b and b"\x1b[" not in b),
    ],
)
def test_the_format_follows_the_extension(attn: Invoke, tmp_path: Path, name: str, check) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    result = attn("weights", "-o", str(path), terminal=True)
    assert result.exit_code == 0, result.stderr
    assert check(path.read_bytes())


def test_no_color_pictures(attn: Invoke) -> None:
    coloured = set(_fills(attn("weights", "-f", "svg", terminal=True).stdout))
    colourless = set(_fills(attn("weights", "-f", "svg", "--no-color", terminal=True).stdout))
    assert len(coloured - colourless) > 20  # a heat colour for nearly every weight
    assert len(colourless) <= 5  # the window frame's own colours, nothing more


def _fills(svg: str) -> list[str]:
    return re.findall(r'fill="(#[0-9a-fA-F]{6})"', svg)


def test_completion_offers_the_inputs_tokens() -> None:
    def ctx(**params: str) -> typer.Context:
        return SimpleNamespace(params=params)  # type: ignore[return-value]

    assert complete_query(ctx(input=str(SAMPLES / "your_journey.csv")), "s") == ["starts", "step"]
    assert complete_query(ctx(input=str(SAMPLES / "your_journey.csv")), "JO") == ["journey"]
    assert complete_query(ctx(), "") == BOOK["inputs"]["tokens"]  # no INPUT: the book's
    assert complete_query(ctx(input="/nonexistent.csv"), "") == []


def test_shell_completion_end_to_end(tmp_path: Path) -> None:
    tokens = tmp_path / "t.json"  # tokens the book's six are not, so the INPUT is read
    tokens.write_text('{"start": [1], "stop": [2], "go": [3]}', encoding="utf-8")
    env = {
        **os.environ,
        "_ATTN_COMPLETE": "complete_bash",
        "COMP_WORDS": f"attn weights {tokens} -q st",
        "COMP_CWORD": "4",
    }
    done = subprocess.run(
        [sys.executable, "-m", "attncli"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["start", "stop"]


def test_the_readme_picture_is_a_real_causal_weights_table() -> None:
    svg = ROOT / "docs" / "attn_weights_causal.svg"
    text = "".join(ET.parse(svg).getroot().itertext()).replace("\xa0", " ")
    assert "attn weights · causal · 6×6" in text
    for number in ("0.3986", "0.6014", "0.2526", "0.3791", "0.3683", "0.1794"):
        assert number in text
    assert "docs/attn_weights_causal.svg" in (ROOT / "README.md").read_text(encoding="utf-8")

"""What attn shows is safe and true: user text escaped in every format but JSON, pictures
offline, well-formed and readable, no number cropped, no trailing spaces (issue 9)."""

from __future__ import annotations

import codecs
import html.parser
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from attncli import AttentionParams, Embeddings, compute, explain
from attncli.errors import shown_text
from attncli.render import explain as render_explain
from attncli.render.table import heat_rgb, heat_style

from .conftest import BOOK, SAMPLES, Invoke

# What no terminal or line-based output may hold raw: C0 controls (a newline ends a line,
# so it counts only inside a token), DEL, C1 controls, lone surrogates, and the characters
# that break or reorder a line.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
    "\ufffe\uffff]"
)
# Tokens that try it on: clear the screen, split a row, become markup, crash UTF-8,
# reorder the line, hide behind a NUL, or pass for an escape.
NASTY = ["a\x1b[2Jb", "x\ny", "[bold red]z", "\ud800", "q\u202er\x00", "t\\u"]
NASTY_SHOWN = ["a\\x1b[2Jb", "x\\ny", "[bold red]z", "\\ud800", "q\\u202er\\x00", "t\\\\u"]
SVG = "{http://www.w3.org/2000/svg}"


def nasty_input(tmp_path: Path) -> str:
    """A JSON input with NASTY tokens (JSON writes each character as an escape)."""
    path = tmp_path / "nasty.json"
    rows = np.random.default_rng(0).normal(size=(len(NASTY), 3)).round(3).tolist()
    path.write_text(json.dumps({"tokens": NASTY, "embeddings": rows}), encoding="ascii")
    return str(path)


# ---------------------------------------------------------------- shown_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("journey", "journey"),
        ("naïve 日本 🙂 ‍", "naïve 日本 🙂 ‍"),  # letters, emoji, a zero-width joiner stay
        ("[bold red]x", "[bold red]x"),
        ("a\x1b[2Jb", r"a\x1b[2Jb"),
        ("\x1b]0;title\x07", r"\x1b]0;title\x07"),
        ("x\ny\r\tz", r"x\ny\r\tz"),
        ("\x00\x7f\x85\x9f", r"\x00\x7f\x85\x9f"),
        ("\ud800\udfff", r"\ud800\udfff"),
        ("\u2028\u2029", r"\u2028\u2029"),
        (
            "\u202a\u202e\u2066\u2069\u200e\u200f\u061c",
            r"\u202a\u202e\u2066\u2069\u200e\u200f\u061c",
        ),
        ("\ufffe\uffff", r"\ufffe\uffff"),
        ("a\\x1b", r"a\\x1b"),  # a backslash is doubled: never mistaken for an escape
    ],
)
def test_shown_text_escapes_what_a_terminal_would_obey(text: str, shown: str) -> None:
    assert shown_text(text) == shown


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=())))
def test_shown_text_is_safe_and_reads_back_exactly(text: str) -> None:
    shown = shown_text(text)
    assert not FORBIDDEN.search(shown.replace("\n", "\x01").replace("\t", "\x01"))
    assert not set(shown) & {"\n", "\t", "\r"}
    shown.encode("utf-8")  # no lone surrogate left
    # unambiguous: the escapes read back (as Python reads them) to the exact text
    raw = shown.encode("latin-1", "backslashreplace")
    assert codecs.decode(raw, "unicode_escape") == text


# ---------------------------------------------------------------- every format


def _visible_text(output: str, output_format: str) -> str:
    """The text a reader sees in an output: SVG and HTML parsed, Markdown unescaped."""
    if output_format == "svg":
        return "".join(ET.fromstring(output).itertext()).replace("\xa0", " ")
    if output_format == "html":
        parser = _HtmlText()
        parser.feed(output)
        return "".join(parser.parts).replace("\xa0", " ")
    if output_format == "markdown":
        return re.sub(r"\\(.)", r"\1", output)
    return output


class _HtmlText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "file"])
@pytest.mark.parametrize("output_format", ["table", "csv", "markdown", "svg", "html"])
def test_every_format_shows_tokens_escaped(
    attn: Invoke, tmp_path: Path, output_format: str, to_file: bool
) -> None:
    source = nasty_input(tmp_path)
    suffix = {"table": "txt", "markdown": "md"}.get(output_format, output_format)
    path = tmp_path / f"out.{suffix}"
    where = ["-o", str(path)] if to_file else ["-f", output_format]
    result = attn("weights", source, "-m", "causal", *where)
    assert (result.exit_code, result.stderr) == (0, "")
    raw = path.read_bytes() if to_file else result.stdout_bytes
    output = raw.decode("utf-8")  # strict: a lone surrogate would not decode
    assert not FORBIDDEN.search(output)
    seen = _visible_text(output, output_format)
    for token in NASTY_SHOWN:
        assert token in seen
    if output_format == "svg":
        assert ET.fromstring(output).tag == SVG + "svg"  # well-formed XML


def test_json_keeps_the_exact_tokens_the_other_formats_escape(attn: Invoke, tmp_path: Path) -> None:
    source = nasty_input(tmp_path)
    result = attn("weights", source, "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["tokens"] == NASTY
    table = attn("weights", source, "-f", "csv")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0] == "token," + ",".join(NASTY_SHOWN)


@pytest.mark.parametrize("output_format", ["table", "svg", "html"])
def test_explain_shows_tokens_escaped(attn: Invoke, tmp_path: Path, output_format: str) -> None:
    source = nasty_input(tmp_path)
    result = attn("explain", source, "-m", "causal", "--heads", "2", "-f", output_format)
    assert (result.exit_code, result.stderr) == (0, "")
    output = result.stdout_bytes.decode("utf-8")
    assert not FORBIDDEN.search(output)
    seen = _visible_text(output, output_format)
    assert "query 'x\\ny' (#1)" in seen
    for token in NASTY_SHOWN:
        assert token in seen
    if output_format == "svg":
        ET.fromstring(output)


def test_colour_escapes_are_attns_own(attn: Invoke, tmp_path: Path) -> None:
    text = attn("weights", nasty_input(tmp_path), "-f", "table", "--color").stdout
    assert "\x1b[" in text  # coloured
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", text)  # and nothing else


def test_a_weights_file_name_is_shown_escaped(attn: Invoke, tmp_path: Path) -> None:
    weights = dict(BOOK["weights"]["trainable_seed123_torch_rand"])
    weights.pop("how")
    path = tmp_path / "w\x1b[2J\n.json"
    path.write_text(json.dumps(weights), encoding="utf-8")
    for command in ("context", "explain"):
        args = ["-m", "trainable", "--weights", str(path), "-f", "table"]
        result = attn(command, *args, terminal=True)  # the book's tokens, not stdin
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout
        shown = "".join(line.strip(" │") for line in result.stdout.splitlines())
        assert "w\\x1b[2J\\n.json" in shown


# ---------------------------------------------------------------- pictures


def _external_references(picture: str) -> list[str]:
    """What a viewer could fetch: web addresses (the SVG namespace is a name, not a
    fetch) and CSS url() other than a reference inside the document."""
    addresses = re.findall(r"https?://[^\s\"')]+", picture)
    urls = re.findall(r"url\(\s*['\"]?([^)'\"]*)", picture)
    return [a for a in addresses if a != "http://www.w3.org/2000/svg"] + [
        u for u in urls if not u.startswith("#")
    ]


@pytest.mark.parametrize("command", ["weights", "explain"])
def test_pictures_fetch_nothing(attn: Invoke, command: str) -> None:
    for output_format in ("svg", "html"):
        picture = attn(command, "-m", "causal", "-f", output_format, terminal=True).stdout
        assert _external_references(picture) == [], output_format
        for fetching in ("@import", "<script", "<link", "<img", "@font-face"):
            assert fetching not in picture, output_format


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def wcag_contrast(first: str | tuple[int, ...], second: str | tuple[int, ...]) -> float:
    """WCAG 2.x contrast ratio, from the definition (written apart from attn's)."""

    def luminance(colour: str | tuple[int, ...]) -> float:
        if isinstance(colour, str):
            colour = tuple(int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
        red, green, blue = (_linear(c) for c in colour)
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_every_heat_colour_has_readable_text() -> None:
    for fraction in np.linspace(0.0, 1.0, 1001):
        style = heat_style(float(fraction))
        assert style.color is not None
        assert style.bgcolor is not None
        background = style.bgcolor.get_truecolor()
        assert tuple(background) == heat_rgb(float(fraction))
        assert wcag_contrast(tuple(style.color.get_truecolor()), tuple(background)) >= 4.5


def svg_text_colours(svg: str) -> list[tuple[str, str, str]]:
    """(text, its colour, the colour behind it) for every text in an SVG from rich."""
    root = ET.fromstring(svg)
    css = "".join(style.text or "" for style in root.iter(SVG + "style"))
    fills = dict(re.findall(r"\.([\w-]+) \{ fill: (#[0-9a-fA-F]{6})", css))
    page = next(r.get("fill") for r in root.iter(SVG + "rect") if r.get("rx"))
    cells = [r for r in root.iter(SVG + "rect") if r.get("shape-rendering") == "crispEdges"]
    found = []
    for text in root.iter(SVG + "text"):
        colour = text.get("fill") or fills[text.get("class", "")]
        x, top = float(text.get("x", 0)), float(text.get("y", 0)) - 20 + 1.5  # rich's layout
        behind = page
        for rect in cells:
            left, y, width = (float(rect.get(k, 0)) for k in ("x", "y", "width"))
            if abs(y - top) < 0.5 and left <= x + 0.1 < left + width:
                behind = rect.get("fill")
        found.append(("".join(text.itertext()), str(colour), str(behind)))
    return found


@pytest.mark.parametrize(
    "args",
    [
        # heat colours, bold, dim masked cells, dim italic dropped ones
        ["weights", "-m", "causal", "--dropout", "0.5"],
        ["scores", "-m", "causal", "--no-color"],
        ["explain", "-m", "causal", "--dropout", "0.5"],
    ],
)
def test_svg_text_is_readable_on_its_background(attn: Invoke, args: list[str]) -> None:
    svg = attn(*args, "-f", "svg", terminal=True).stdout
    texts = svg_text_colours(svg)
    assert len(texts) > 20
    low = [(t, fg, bg) for t, fg, bg in texts if wcag_contrast(fg, bg) < 4.5]
    assert low == []


@pytest.mark.parametrize(
    "args", [["weights", "-m", "causal", "--dropout", "0.5"], ["explain", "-m", "causal"]]
)
def test_html_text_is_readable_on_its_background(attn: Invoke, args: list[str]) -> None:
    page = attn(*args, "-f", "html", terminal=True).stdout
    body = re.search(r"body \{\s*color: (#\w{6});\s*background-color: (#\w{6})", page)
    assert body is not None
    foreground, background = body.groups()
    assert wcag_contrast(foreground, background) >= 4.5
    spans = re.findall(r'<span style="([^"]*)">([^<]*)</span>', page)
    assert len(spans) > 10
    for style, text in spans:
        if not text.strip():
            continue
        colour = re.search(r"(?:^|; )color: (#\w{6})", style)
        behind = re.search(r"background-color: (#\w{6})", style)
        fg = colour.group(1) if colour else foreground
        bg = behind.group(1) if behind else background
        assert wcag_contrast(fg, bg) >= 4.5, (text, style)


def _tokens_input(n: int) -> str:
    tokens = [f"t{i:02d}" for i in range(n)]
    rows = np.random.default_rng(1).normal(size=(n, 2)).round(3).tolist()
    return json.dumps({"tokens": tokens, "embeddings": rows})


def svg_lines(svg: str) -> list[str]:
    """The lines of text in an SVG from rich: its texts by row, left to right."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for text in ET.fromstring(svg).iter(SVG + "text"):
        rows.setdefault(float(text.get("y", 0)), []).append(
            (float(text.get("x", 0)), "".join(text.itertext()).replace("\xa0", " "))
        )
    return [" ".join(t for _, t in sorted(rows[y])) for y in sorted(rows)]


def test_a_picture_of_40_tokens_shows_all_40_columns(attn: Invoke) -> None:
    svg = attn("weights", "-", "-f", "svg", input=_tokens_input(40)).stdout
    lines = svg_lines(svg)
    header = next(line for line in lines if len(re.findall(r"t\d\d", line)) > 1)
    assert re.findall(r"t\d\d", header) == [f"t{i:02d}" for i in range(40)]
    assert not any("not shown" in line for line in lines)


def test_a_picture_too_wide_says_how_many_columns_it_leaves_out(attn: Invoke) -> None:
    page = attn("weights", "-", "-q", "t00", "-f", "html", input=_tokens_input(100)).stdout
    parser = _HtmlText()
    parser.feed(page)
    text = "".join(parser.parts).replace("\xa0", " ")
    header = next(line for line in text.splitlines() if "t01" in line)
    shown = set(re.findall(r"t\d\d", header))
    assert 40 <= len(shown) < 100  # as wide as the limit allows, then elided
    assert "…" in header
    assert f"{100 - len(shown)} columns not shown" in text


# ---------------------------------------------------------------- explain: whole numbers

NUMBER = re.compile(r"-?\d+\.\d+")
# numbers that are not the walkthrough's values at --precision
NOT_VALUES = re.compile(r"book\s+\d+(\.\d+)*|Dropout\([\d.]+\)|probability [\d.]+|scaled by [\d.]+")


def _numbers(data: Any) -> list[float]:
    if isinstance(data, dict):
        return [v for value in data.values() for v in _numbers(value)]
    if isinstance(data, list):
        return [v for value in data for v in _numbers(value)]
    if isinstance(data, float | int) and not isinstance(data, bool):
        return [float(data)]
    return []


def walkthrough_values(walk: explain.Walkthrough) -> np.ndarray:
    """Every number of the walkthrough: its JSON steps, and the two the panels derive
    (score × scale before the mask, score − max)."""
    values = _numbers(explain.steps_dict(walk))
    for head in walk.heads:
        values += (head.scores * walk.result.scale).tolist()
        values += (head.scaled - head.scaled.max())[np.isfinite(head.scaled)].tolist()
    return np.array(values)


def assert_whole_numbers(text: str, walk: explain.Walkthrough, precision: int) -> None:
    """Every number shown has `precision` decimals and is one of the walkthrough's
    (rounded): a number cut short or split over two lines is neither."""
    # below the last panel, the settings show the scale to 4 digits (scale=1/√2=0.7071)
    lines = text.splitlines()
    lines = lines[: max(i for i, line in enumerate(lines) if line.startswith("╰")) + 1]
    body = NOT_VALUES.sub("", " ".join(line.strip("│ ") for line in lines))
    values = walkthrough_values(walk)
    shown = NUMBER.findall(body)
    assert shown
    for number in shown:
        assert len(number.split(".")[1]) == precision, number
        assert np.min(np.abs(values - float(number))) <= 0.5 * 10**-precision + 1e-9, number


TOKENS = ("Your", "journey", "a_rather_long_token_name", "withal", "onefold", "stepwise")
INPUTS = np.array(BOOK["inputs"]["matrix"])


@pytest.mark.parametrize(
    ("mode", "d_out", "heads", "dropout", "width", "precision"),
    [
        ("plain", None, 1, 0.0, 40, 6),
        ("causal", 4, 2, 0.0, 72, 4),
        ("causal", 4, 2, 0.0, 40, 4),
        ("causal", 6, 1, 0.5, 61, 4),
        ("trainable", 8, 2, 0.0, 47, 2),
        ("causal", 16, 2, 0.0, 100, 6),
        ("causal", 64, 4, 0.5, 40, 4),
        ("trainable", 32, 1, 0.0, 200, 8),
    ],
)
def test_explain_never_crops_a_number(
    mode: str, d_out: int | None, heads: int, dropout: float, width: int, precision: int
) -> None:
    settings = {} if mode == "plain" else {"d_out": d_out, "heads": heads, "init": "linear"}
    params = AttentionParams(mode=mode, dropout=dropout, **settings)  # type: ignore[arg-type]
    walk = explain.walkthrough(compute(Embeddings(TOKENS, INPUTS), params, query=1))
    console = Console(file=io.StringIO(), width=width, no_color=True, color_system=None)
    console.print(render_explain.render(walk, precision))
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in text.splitlines()) <= width
    assert_whole_numbers(text, walk, precision)
    # the token column stays: each token starts a row of every per-token table
    tables = 1 + (mode != "plain") + heads * (3 + (mode != "plain") + (dropout > 0))
    for token in ("Your", "journey", "withal", "onefold", "stepwise", "a_rath"):
        rows = re.findall(rf"^│ +{token}", text, flags=re.MULTILINE)
        assert len(rows) == tables, token


@pytest.mark.parametrize(("where", "d_out"), [("terminal", 4), ("out.txt", 8), ("out.html", 8)])
def test_the_reported_explain_shows_whole_numbers(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, d_out: int
) -> None:
    """`COLUMNS=80 attn explain --mode causal --d-out 4 --heads 2 --init linear` showed
    0.565 for 0.5659; in .txt (100 columns) and .html (120) a wider --d-out did."""
    monkeypatch.setenv("COLUMNS", "80")
    args = ["explain", "--mode", "causal", "--d-out", str(d_out), "--heads", "2"]
    output = [] if where == "terminal" else ["-o", str(tmp_path / where)]
    result = attn(*args, "--init", "linear", *output, terminal=True)
    assert result.exit_code == 0, result.stderr
    text = result.stdout if where == "terminal" else (tmp_path / where).read_text("utf-8")
    if where.endswith(".html"):
        text = _visible_text(text, "html")
    params = AttentionParams(mode="causal", d_out=d_out, heads=2, init="linear")  # type: ignore[arg-type]
    book = Embeddings(tuple(BOOK["inputs"]["tokens"]), INPUTS)
    assert_whole_numbers(text, explain.walkthrough(compute(book, params, query=1)), 4)
    assert d_out != 4 or "0.5659" in text  # the number that was cut to 0.565
    # the token column stays: in the inputs, the keys and values, and each head's softmax
    assert len(re.findall(r"^│  journey ", text, flags=re.MULTILINE)) == 4


# ---------------------------------------------------------------- trailing spaces


@pytest.mark.parametrize(
    "args",
    [
        ["weights", "-f", "table"],
        ["context", "-m", "causal", "-q", "journey", "-f", "table"],
        ["explain", "-m", "causal", "--heads", "2", "--d-out", "4", "-f", "table"],
        ["weights", "-m", "causal", "-o", "out.txt"],
        [
            "explain",
            "-m",
            "causal",
            "--d-out",
            "8",
            "--heads",
            "2",
            "--init",
            "linear",
            "-o",
            "x.txt",
        ],
    ],
)
def test_no_line_ends_in_a_space(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = attn(*args[:1], str(SAMPLES / "your_journey.json"), *args[1:])  # stdout: a pipe
    assert result.exit_code == 0, result.stderr
    text = Path(args[-1]).read_text("utf-8") if "-o" in args else result.stdout
    assert len(text.splitlines()) > 5
    assert [line for line in text.splitlines() if line.endswith(" ")] == []


# ---------------------------------------------------------------- messages, huge numbers, p = 1


def test_a_message_never_carries_control_characters(attn: Invoke, tmp_path: Path) -> None:
    """A file name is the user's text too: an error naming it stays one harmless line."""
    name = tmp_path / "evil\x1b]0;pwned\x07\x1b[2J\nname.csv"
    name.write_text("token,a\nx,1\ny,oops\n", encoding="utf-8")
    result = attn("context", str(name), terminal=True)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert not FORBIDDEN.search(result.stderr[:-1].replace("\n", "\x00"))
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\nname.csv: line 3" in result.stderr


@pytest.mark.parametrize(
    ("rows", "args"),
    [
        ([[1e19, 1e19], [1, 2], [-1e19, 1e19]], ["--dtype", "float32"]),
        ([[1e154, 1e154], [1, 1], [-1e154, 1e154]], ["-m", "trainable"]),
    ],
)
@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_huge_scores_show_whole_in_scientific_notation(
    attn: Invoke, rows: list[list[float]], args: list[str], fmt: str
) -> None:
    """Scores near the dtype's limit are shown, each whole and readable, not cropped to
    "1…" (nor, before, an exit 70 from an overflowing width computation)."""
    source = json.dumps(rows)
    result = attn("scores", "-", *args, "-f", fmt, input=source)
    assert (result.exit_code, result.stderr) == (0, "")
    shown = json.loads(attn("scores", "-", *args, "-f", "json", input=source).stdout)["values"]
    for value in np.ravel(shown):
        text = f"{value:.4e}" if abs(value) >= 1e15 else f"{value:.4f}"
        assert text in result.stdout
    assert "…" not in result.stdout


def test_dropout_one_says_every_weight_is_dropped(attn: Invoke) -> None:
    table = attn("weights", "-m", "causal", "--dropout", "1", "-f", "table", terminal=True)
    assert "dropout p=1: every weight dropped" in table.stdout
    assert "×0" not in table.stdout
    walk = attn("explain", "-m", "causal", "--dropout", "1", "-f", "table", terminal=True)
    assert "drops every weight" in walk.stdout
    assert "scaled by 0" not in walk.stdout

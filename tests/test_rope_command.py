"""`attn rope`: the rotation by itself, through the CLI, against torch running the book's
`compute_rope_params` (tests/data/torch_rope.json, recorded by record_torch_rope.py) and
Hugging Face's inv_freq snapshots.

The book computes inv_freq in float32 whatever its dtype, and its default tables are
float32: attn's float64 numbers hold to 1e-6 of them, its --dtype float32 ones closer."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
from typer.core import TyperGroup

from attncli.cli import options
from attncli.cli.typer_app import build_app
from attncli.errors import AttnError
from attncli.params import DType
from attncli.rope import Rope
from attncli.rotation import LARGEST_TABLE, rope_table

from .conftest import DATA, Invoke

ROPE = json.loads((DATA / "torch_rope.json").read_text(encoding="utf-8"))
PARAMS = {case["name"]: case for case in ROPE["rope_params"]}
FLOAT32_TABLES = 1e-6
BANDS = {
    "high (unchanged)": "kept",
    "medium (smoothed)": "smoothed",
    "low (inv_freq / factor)": "divided",
}


def rope_json(attn: Invoke, *args: str) -> dict[str, Any]:
    result = attn("rope", *args, "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def call_flags(call: dict[str, Any]) -> list[str]:
    """The flags of attn rope that make the book's compute_rope_params(**call)."""
    flags = [
        "--head-dim",
        str(call["head_dim"]),
        "--positions",
        str(call["context_length"]),
        "--rope-theta",
        str(call["theta_base"]),
    ]
    config = call.get("freq_config")
    if config:
        flags += [
            "--rope-scaling",
            "llama3",
            "--rope-factor",
            str(config["factor"]),
            "--rope-low-freq-factor",
            str(config["low_freq_factor"]),
            "--rope-high-freq-factor",
            str(config["high_freq_factor"]),
            "--rope-original-context",
            str(config["original_context_length"]),
        ]
    return flags


def close(actual: Any, expected: Any, tolerance: float) -> None:
    a, e = np.array(actual, dtype=float), np.array(expected, dtype=float)
    assert a.shape == e.shape
    np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)


# ---------------------------------------------------------------- against torch


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_the_books_tables(attn: Invoke, name: str) -> None:
    """inv_freq, the angles (a column a pair), cos and sin (a column a dimension) of the book's
    compute_rope_params for head_dim 4/8/16, theta 10 000 / 500 000, and Llama 3.1 / 3.2
    scaling at 64 and 128."""
    case = PARAMS[name]
    data = rope_json(attn, *call_flags(case["call"]))
    close(data["inv_freq"], case["inv_freq"], FLOAT32_TABLES)
    close(data["angles"], case["angles"], FLOAT32_TABLES)  # (positions, head_dim / 2)
    close(data["cos"], case["cos"], FLOAT32_TABLES)
    close(data["sin"], case["sin"], FLOAT32_TABLES)
    assert data["positions"] == list(range(case["call"]["context_length"]))
    assert data["rotary_dim"] == data["head_dim"] == case["call"]["head_dim"]
    if "band" in case:
        assert data["band"] == [BANDS[band] for band in case["band"]]
        # the bands are decided by the unscaled wavelength, which torch's where calls saw
        unscaled = 2 * math.pi / np.array(data["inv_freq_unscaled"])
        close(unscaled, case["wavelen"], FLOAT32_TABLES)
        close(data["inv_freq_unscaled"], case["inv_freq_without_freq_config"], FLOAT32_TABLES)
    else:
        assert data["band"] is None
        assert data["inv_freq_unscaled"] is None


@pytest.mark.parametrize("name", sorted(n for n in PARAMS if n.endswith("float32")))
def test_float32_is_the_books_arithmetic(attn: Invoke, name: str) -> None:
    """--dtype float32 computes as the book's default: inv_freq equal to the last bit or
    two, the angles and tables as close as float32's cos and sin allow."""
    case = PARAMS[name]
    data = rope_json(attn, *call_flags(case["call"]), "--dtype", "float32")
    assert data["params"]["dtype"] == "float32"
    np.testing.assert_allclose(data["inv_freq"], case["inv_freq"], rtol=3e-7, atol=0)
    close(data["cos"], case["cos"], 3e-7)
    close(data["sin"], case["sin"], 3e-7)
    # float32 numbers: each survives a round trip through float32
    assert all(float(np.float32(x)) == x for x in data["inv_freq"])


@pytest.mark.parametrize("snapshot", ROPE["hf_inv_freq_snapshots"], ids=lambda s: s["test"])
def test_hugging_faces_inv_freq_snapshots(attn: Invoke, snapshot: dict[str, Any]) -> None:
    """transformers' test_default_rope_numerically and test_llama3_rope_numerically
    (head_dim 128, theta 10000; llama3 factor 10, original context 2048, low 1, high 4):
    the expected inv_freq is written to 5 significant digits."""
    call = snapshot["book_call"] | {"context_length": 1}
    data = rope_json(attn, *call_flags(call))
    expected = np.array(snapshot["expected_inv_freq_as_written"])
    np.testing.assert_allclose(data["inv_freq"], expected, rtol=5e-5)
    if call["freq_config"] is not None:
        plain = rope_json(attn, *call_flags(call | {"freq_config": None}))
        assert np.abs(np.array(plain["inv_freq"]) - expected).max() > 1e-3  # the scaling's doing
        assert set(data["band"]) == {"kept", "smoothed", "divided"}


@pytest.mark.parametrize("case", ROPE["partial_rotation"], ids=lambda c: c["name"])
def test_partial_rotation_is_qwen35s(attn: Invoke, case: dict[str, Any]) -> None:
    """Qwen3.5's partial rotation: the first rotary_dim dimensions, their frequencies
    counted over those, cos and sin rotary_dim wide."""
    split = case["qwen35_split"]
    data = rope_json(
        attn,
        "--head-dim",
        str(case["head_dim"]),
        "--rope-partial",
        str(case["partial_rotary_factor"]),
        "--rope-theta",
        str(case["theta_base"]),
        "--positions",
        str(len(split["cos"])),
    )
    assert data["rotary_dim"] == split["rotary_dim"]
    close(data["inv_freq"], split["inv_freq"], FLOAT32_TABLES)
    close(data["cos"], split["cos"], FLOAT32_TABLES)
    close(data["sin"], split["sin"], FLOAT32_TABLES)


def test_the_angles_far_out_and_with_an_offset(attn: Invoke) -> None:
    """--position-offset P starts the positions at P: the same rows as a longer run's."""
    whole = rope_json(attn, "--head-dim", "16", "--positions", "12")
    later = rope_json(attn, "--head-dim", "16", "--positions", "7", "--position-offset", "5")
    assert later["positions"] == list(range(5, 12))
    assert later["params"]["position_offset"] == 5
    assert later["cos"] == whole["cos"][5:]
    assert later["angles"] == whole["angles"][5:]


# ---------------------------------------------------------------- the layouts


def test_the_layouts_lay_out_cos_and_sin(attn: Invoke) -> None:
    """split: [a, a] concatenated; interleaved: each angle twice, pair by pair; the JSON
    says which."""
    split = rope_json(attn, "--head-dim", "6", "--positions", "3")
    pairs = rope_json(attn, "--head-dim", "6", "--positions", "3", "--rope-layout", "interleaved")
    assert split["angles"] == pairs["angles"]
    cos = np.cos(np.array(split["angles"]))
    np.testing.assert_array_equal(split["cos"], np.concatenate([cos, cos], axis=1))
    np.testing.assert_array_equal(pairs["cos"], np.repeat(cos, 2, axis=1))
    assert split["layout"] == "split"
    assert "[a, a] concatenated" in split["cos_sin_layout"]
    assert pairs["layout"] == "interleaved"
    assert "pair by pair" in pairs["cos_sin_layout"]


def test_the_cos_and_sin_turn_queries_as_attention_does() -> None:
    """The tables applied as the book's apply_rope applies them give Rope.rotate's
    numbers, which the attention commands use."""
    rng = np.random.default_rng(0)
    for layout in ("split", "interleaved"):
        rope = Rope(layout=layout)
        table = rope_table(8, 5, 0, rope)
        x = rng.normal(size=(5, 8))
        if layout == "split":
            rotated_half = np.concatenate([-x[:, 4:], x[:, :4]], axis=1)
        else:
            rotated_half = np.stack([-x[:, 1::2], x[:, 0::2]], axis=2).reshape(5, 8)
        applied = x * table.cos + rotated_half * table.sin
        np.testing.assert_allclose(applied, rope.rotate(x, np.arange(5)), atol=1e-15)


# ---------------------------------------------------------------- the outputs


def test_the_default_table(attn: Invoke) -> None:
    result = attn("rope", terminal=True)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "attn rope · head_dim 8 · positions 0–7" in text
    for part in ("inv_freq", "wavelength", "angles p·inv_freq_k", "cos", "sin", "k=3"):
        assert part in text
    assert " 7    0.7539 " in text  # cos(7) at pair 0
    assert "band" not in text.split("\n")[1]


def test_long_and_wide_tables_are_elided(attn: Invoke) -> None:
    result = attn("rope", "--head-dim", "128", "--positions", "100", terminal=True)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "⋮ 24 more" in text  # 64 pairs: the first and last 20
    assert "⋮ 60 more" in text  # 100 positions
    assert "…" in text  # the pairs' columns
    assert "24 pairs and 60 positions and" in text
    assert "-f csv or -f json shows all" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_llama3_table_names_the_bands(attn: Invoke) -> None:
    args = ["--head-dim", "8", "--positions", "3", "--rope-theta", "500000"]
    result = attn("rope", *args, "--rope-scaling", "llama3", terminal=True)
    assert result.exit_code == 0, result.stderr
    for band in ("kept", "smoothed", "divided"):
        assert band in result.stdout
    assert "kept below 2048 tokens, divided by 8 above" in result.stdout


def test_csv_has_a_row_per_position_and_pair(attn: Invoke) -> None:
    result = attn("rope", "--head-dim", "4", "--positions", "3", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    assert rows[3] == rows[3] | {"position": "1", "k": "1", "dim_a": "1", "dim_b": "3"}
    assert float(rows[2]["cos"]) == math.cos(1.0)
    assert float(rows[3]["inv_freq"]) == 0.01


def test_markdown_and_pictures(attn: Invoke, tmp_path: Path) -> None:
    markdown = attn("rope", "--head-dim", "4", "--positions", "2", "-f", "markdown").stdout
    assert markdown.startswith("| k | dims | inv_freq | wavelength |")
    assert "| 1 | 0.5403 | 1.0000 |" in markdown
    for extension in ("svg", "html"):
        target = tmp_path / f"rope.{extension}"
        result = attn("rope", "-o", str(target))
        assert result.exit_code == 0, result.stderr
        assert "angles p·inv_freq_k" in target.read_text(encoding="utf-8").replace("&#160;", " ")
    assert attn("rope", "-o", str(tmp_path / "rope.json")).exit_code == 0
    assert json.loads((tmp_path / "rope.json").read_text())["command"] == "rope"


def test_json_keys(attn: Invoke) -> None:
    data = rope_json(attn)
    assert list(data) == [
        "command",
        "params",
        "head_dim",
        "rotary_dim",
        "layout",
        "cos_sin_layout",
        "positions",
        "inv_freq",
        "inv_freq_unscaled",
        "wavelength",
        "band",
        "angles",
        "cos",
        "sin",
    ]
    assert data["params"] == {
        "head_dim": 8,
        "positions": 8,
        "position_offset": 0,
        "dtype": "float64",
        "rope": {"theta": 10000.0, "layout": "split", "scaling": None, "partial": 1.0},
    }
    assert data["wavelength"][0] == 2 * math.pi


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--head-dim", "1"], "--head-dim 1 is too small"),
        (["--head-dim", "7"], "--head-dim 7 is odd"),
        (["--head-dim", "8", "--rope-partial", "0.1"], "rotates no pair of dimensions"),
        (["--head-dim", "8", "--rope-partial", "1.5"], "not a fraction"),
        (["--positions", "0"], "--positions 0 is too few"),
        (["--position-offset", "-3"], "--position-offset -3 is negative"),
        (["--head-dim", "1024", "--positions", "2048"], "attn rope shows at most 1,048,576"),
        (["--positions", str(10**40)], "beyond 2^53"),
        (["--rope-factor", "32"], "--rope-factor has no effect without --rope-scaling llama3"),
        (["--rope-scaling", "yarn"], "not a scaling attn knows"),
        (["--rope-scaling", "llama3", "--rope-factor", "inf"], "needs finite numbers"),
        (["--rope-layout", "halves"], "is not a layout"),
        (["--rope-theta", "0.5"], "is not a RoPE base"),
        (["--rope-theta", "1e39", "--dtype", "float32"], "beyond what float32 holds"),
        (["-f", "npy"], "attn rope writes tables"),
        (["-f", "json", "--precision", "2"], "--precision only rounds tables"),
        (["-f", "csv", "--no-color"], "--no-color has no effect on csv output"),
        (["--rope"], "No such option: --rope"),
        (["tokens.csv"], "unexpected extra argument"),
        (["--head-dim", "x"], "'x' is not a whole number"),
        (["--dtype", "bf16"], "Invalid value for '--dtype'"),
    ],
)
def test_bad_usage(
    attn: Invoke, flags: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line on stderr naming the flag, exit 2, nothing on stdout (nor in a file)."""
    monkeypatch.chdir(tmp_path)
    result = attn("rope", *flags, terminal=True)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attn: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_limit_is_checked_before_allocating() -> None:
    """The largest table passes; one number more is refused without a byte allocated."""
    assert rope_table(8, LARGEST_TABLE // 8).cos.shape == (LARGEST_TABLE // 8, 8)
    with pytest.raises(AttnError, match="head_dim=8 at positions=131073"):
        rope_table(8, LARGEST_TABLE // 8 + 1, dtype=DType.FLOAT32)


# ---------------------------------------------------------------- flags, help and parsers


def test_the_rope_flags_are_the_attention_commands_own() -> None:
    """One declaration: the very Flag objects of the attention commands' --rope-*."""
    attention = {flag.name: flag for flag in options.FLAGS}
    rope = {flag.name: flag for flag in options.rope_flags()}
    for name in options.ROPE_FLAG_NAMES:
        assert rope[name] is attention[name]
    assert "rope" not in rope  # implied


def test_help(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = attn("rope", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "the book computes inv_freq in float32: --dtype float32" in text
    assert "--rope-scaling" in text
    assert "--head-dim" in text
    assert "attn rope --head-dim 64" in text  # the examples
    shown = next(flag for flag in options.rope_flags() if flag.name == "format")
    assert shown.metavar == "<table|json|csv|markdown|svg|html>"
    assert "csv: a row per position and pair" in text
    assert "rope" in attn("--help").stdout


@pytest.mark.parametrize(
    "rest",
    [
        [],
        ["--head-dim", "16", "--positions=4", "--rope-scaling", "llama3", "--rope-factor", "32"],
        ["--rope-layout", "interleaved", "--position-offset", "5", "-f", "json", "-o", "r.json"],
        ["--rope-partial", "0.5", "--dtype", "float32", "--no-color", "--precision", "2"],
    ],
)
def test_fast_parser_agrees_with_typer(rest: list[str]) -> None:
    argv = ["rope", *rest]
    fast = options.parse(argv)
    assert fast is not None
    captured: list[options.Parsed] = []
    command = typer.main.get_command(build_app(captured.append))
    TyperGroup.main(command, args=argv, prog_name="attn", standalone_mode=False)
    assert captured[0].values == fast.values
    assert captured[0].explicit == fast.explicit


def test_every_typer_option_is_in_the_table() -> None:
    command: Any = typer.main.get_command(build_app(lambda parsed: None)).commands["rope"]  # type: ignore[attr-defined]
    declared = {decl for flag in options.rope_flags() for decl in flag.decls}
    typer_side = set()
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            names = [*param.opts, *param.secondary_opts]
            typer_side.add("/".join(names) if param.secondary_opts else names[0])
            typer_side.update(names[1:] if not param.secondary_opts else [])
    assert typer_side == declared
    assert not [p for p in command.params if p.param_type_name == "argument"]  # no INPUT

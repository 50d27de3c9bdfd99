"""`attn kv-memory`: the KV cache of a model configuration, as the book's memory
estimators (ch04/04_gqa, 05_mla, 06_swa) compute and print it."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.core import TyperGroup

from attncli.cli import options
from attncli.cli.typer_app import build_app
from attncli.errors import AttnError, ExitStatus
from attncli.kv_memory import (
    KVConfig,
    KVDType,
    distribute_layers,
    estimate,
    gb_text,
    head_dim,
    kv_bytes_per_layer,
    mla_bytes_per_layer,
    parse_ratio,
    percent_text,
    ratio_text,
)

from .conftest import DATA, Invoke

RECORD: dict[str, Any] = json.loads(
    (DATA / "book_kv_memory_scripts.json").read_text(encoding="utf-8")
)
SCRIPT_CASES: list[dict[str, Any]] = RECORD["cases"]
QUOTED = {"emb_dim": 4096, "heads": 32, "layers": 32, "context_length": 32768, "dtype": "bf16"}


def script_args(case: dict[str, Any]) -> dict[str, str]:
    """A recorded command line as argparse read it: the last of a repeated option wins,
    the rest at the scripts' defaults (context 1024, batch 1, fp16)."""
    args = case["args"]
    given_args = dict(zip(args[::2], args[1::2], strict=True))
    return {"--context_length": "1024", "--batch_size": "1", "--dtype": "fp16"} | given_args


# ---------------------------------------------------------------- the pure functions


def test_the_quoted_figures() -> None:
    """The READMEs' own numbers (ch04/04_gqa, 05_mla, 06_swa)."""
    gqa = estimate(KVConfig(**QUOTED, kv_groups=8))  # the scripts' --n_kv_groups 4
    assert [gb_text(v.bytes) for v in gqa.variants] == ["17.18 GB", "4.29 GB"]
    swa = estimate(KVConfig(**QUOTED, kv_groups=8, window=1024, swa_ratio="5:1"))
    assert [(v.name, gb_text(v.bytes)) for v in swa.variants] == [
        ("MHA", "17.18 GB"),
        ("GQA", "4.29 GB"),
        ("MHA+SWA", "3.14 GB"),
        ("GQA+SWA", "0.78 GB"),
    ]
    mla = estimate(
        KVConfig(
            emb_dim=2048,
            heads=24,
            layers=48,
            context_length=8192,
            dtype="bf16",
            kv_groups=6,
            latent_dim=1024,
        )
    )
    assert [gb_text(v.bytes) for v in mla.variants] == ["3.25 GB", "0.81 GB", "0.81 GB"]
    assert ratio_text(mla.ratio(mla.variants[2])) == "4.03x"
    assert percent_text(mla.savings(mla.variants[2])) == "75.19%"


def test_exact_bytes() -> None:
    report = estimate(KVConfig(**QUOTED, kv_groups=8, window=1024, swa_ratio="5:1"))
    mha, gqa, mha_swa, gqa_swa = report.variants
    assert mha.bytes == 32768 * 128 * 32 * 2 * 2 * 32 == 17_179_869_184
    assert gqa.bytes == mha.bytes // 4
    assert mha_swa.bytes == 27 * 1024 * 128 * 32 * 2 * 2 + 5 * 32768 * 128 * 32 * 2 * 2
    assert gqa_swa.bytes == mha_swa.bytes // 4
    assert (mha.bytes_per_token, gqa.bytes_per_token) == (16384, 4096)  # K and V, one layer
    assert (report.head_dim, report.bytes_per_element) == (128, 2)
    assert (report.swa_layers, report.full_layers, report.effective_window) == (27, 5, 1024)


def test_defaults_are_the_books_gpt2_at_the_scripts_defaults() -> None:
    config = KVConfig()
    assert (config.emb_dim, config.heads, config.layers) == (768, 12, 12)  # GPT_CONFIG_124M
    assert (config.context_length, config.batch, config.dtype) == (1024, 1, KVDType.FP16)
    report = estimate(config)
    assert [v.name for v in report.variants] == ["MHA"]
    assert report.mha.bytes == 1024 * 64 * 12 * 2 * 2 * 12


@given(st.integers(1, 10**6), st.integers(1, 10**4))
def test_head_dim_rounds_up_as_the_scripts(emb_dim: int, heads: int) -> None:
    assert head_dim(emb_dim, heads) == math.ceil(emb_dim / heads)


def test_head_dim_is_exact_where_a_float_would_round() -> None:
    assert head_dim(2**60 + 1, 2**7) == 2**53 + 1


@given(st.integers(1, 500), st.integers(0, 12), st.integers(0, 12))
def test_layers_are_distributed_block_by_block(layers: int, swa: int, full: int) -> None:
    """A:B means A sliding-window layers, then B full ones, over and over; a last partial
    block starts with its sliding-window layers."""
    if swa + full == 0:
        return
    pattern = (["swa"] * swa + ["full"] * full) * layers
    kinds = pattern[:layers]
    assert distribute_layers(layers, swa, full) == (kinds.count("swa"), kinds.count("full"))


@pytest.mark.parametrize(
    ("text", "parsed"), [("5:1", (5, 1)), ("1:0", (1, 0)), ("0:1", (0, 1)), (" 3 : 2 ", (3, 2))]
)
def test_ratios(text: str, parsed: tuple[int, int]) -> None:
    assert parse_ratio(text) == parsed


@pytest.mark.parametrize("text", ["5", "5-1", "5:1:1", "a:b", "-1:2", "1.5:1", "", ":", "٥:1"])
def test_bad_ratios(text: str) -> None:
    with pytest.raises(AttnError, match="is not A:B") as caught:
        parse_ratio(text)
    assert caught.value.status == ExitStatus.BAD_USAGE


def test_a_ratio_without_layers() -> None:
    with pytest.raises(AttnError, match="has no layers in a block"):
        parse_ratio("0:0")


def test_per_layer_formulas() -> None:
    assert kv_bytes_per_layer(2, 10, 64, 3, 4) == 2 * 10 * 64 * 3 * 2 * 4
    assert mla_bytes_per_layer(2, 10, 512, 2) == 2 * 10 * 512 * 2


def test_printing_as_the_scripts() -> None:
    assert gb_text(1_234_567_890_123) == "1,234.57 GB"
    assert gb_text(4_999_999) == "0.00 GB"
    assert gb_text(5_000_001) == "0.01 GB"
    assert ratio_text(12.0) == "12.00x"
    assert percent_text(1 - 1 / 32) == "96.88%"


def test_dtypes_and_their_torch_names() -> None:
    sizes = {d.value: d.bytes for d in KVDType}
    assert sizes == {
        "fp32": 4,
        "bf16": 2,
        "fp16": 2,
        "fp8": 1,
        "int8": 1,
        "float32": 4,
        "bfloat16": 2,
        "float16": 2,
    }
    assert KVConfig(dtype="bfloat16").dtype is KVDType.BF16  # kept by the scripts' name
    with pytest.raises(AttnError, match=r"dtype='fp64' is not a KV-cache element type"):
        KVConfig(dtype="fp64")


def test_mla_and_swa_combine() -> None:
    """attn's own row, which none of the scripts prints: MLA's latent cached over the
    window in the sliding-window layers, as MHA and GQA are."""
    report = estimate(KVConfig(latent_dim=256, window=128, swa_ratio="5:1"))
    mla_swa = report.variants[-1]
    assert mla_swa.name == "MLA+SWA"
    assert mla_swa.bytes == 10 * 128 * 256 * 2 + 2 * 1024 * 256 * 2


def test_a_window_beyond_the_context_caches_the_context() -> None:
    report = estimate(KVConfig(window=5000))
    assert report.effective_window == 1024
    assert report.variants[1].bytes == report.mha.bytes


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"emb_dim": 0},
            "emb_dim=0 is too small: a token's embedding has at least one dimension; give emb_dim=1 or more",
        ),
        ({"heads": -3}, "heads=-3 is too small: attention needs a head; give heads=1 or more"),
        ({"layers": 0}, "layers=0 is too small"),
        ({"context_length": 0}, "context_length=0 is too small"),
        ({"batch": 0}, "batch=0 is too small"),
        ({"kv_groups": 0}, "kv_groups=0 is too small"),
        ({"latent_dim": 0}, "latent_dim=0 is too small"),
        (
            {"window": 0},
            "window=0 is too small: a sliding window holds at least the query's own token",
        ),
        (
            {"context_length": 2**63},
            "context_length=9223372036854775808 is too large: sizes go up to 2**63 - 1",
        ),
        ({"emb_dim": 10**400}, "emb_dim=≈10^400 is too large"),
        (
            {"heads": 32, "kv_groups": 5},
            "kv_groups=5 does not divide heads=32: kv_groups counts the key/value heads, each "
            "shared by the same number of query heads; give one of 1, 2, 4, 8, 16, 32 (the "
            "book's memory_estimator scripts' --n_kv_groups is that group size instead: their "
            "--n_kv_groups G is kv_groups=32/G here)",
        ),
        ({"heads": 8, "kv_groups": 16}, "kv_groups=16 does not divide heads=8"),
        ({"window": 8, "swa_ratio": "5/1"}, "swa_ratio='5/1' is not A:B"),
    ],
)
def test_settings_no_model_has(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(AttnError) as caught:
        estimate(KVConfig(**settings))
    assert caught.value.message.startswith(message)
    assert caught.value.status == ExitStatus.BAD_USAGE


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[c["id"] for c in SCRIPT_CASES])
def test_the_library_gives_each_recorded_total(case: dict[str, Any]) -> None:
    """Each "... GB" the scripts printed, from estimate() (the CLI tests below check every
    line of their output)."""
    args = script_args(case)
    heads = int(args["--n_heads"])
    config = KVConfig(
        emb_dim=int(args["--emb_dim"]),
        heads=heads,
        layers=int(args["--n_layers"]),
        context_length=int(args["--context_length"]),
        batch=int(args["--batch_size"]),
        dtype=args["--dtype"],
        kv_groups=heads // int(args["--n_kv_groups"]),  # their group size: our KV heads
        latent_dim=int(args["--latent_dim"]) if "--latent_dim" in args else None,
        window=int(args["--sliding_window_size"]) if "--sliding_window_size" in args else None,
        swa_ratio=args.get("--swa_ratio", "1:0"),
    )
    printed = [line.rsplit(": ", 1)[1] for line in case["stdout"].splitlines() if "GB" in line]
    assert [gb_text(v.bytes) for v in estimate(config).variants] == printed


# ---------------------------------------------------------------- through the command line


def attn_flags(case: dict[str, Any]) -> list[str]:
    """A recorded script's command line as attn kv-memory's flags: the same model, with
    the scripts' group size turned into attn's number of key/value heads."""
    args = script_args(case)
    heads = int(args["--n_heads"])
    flags = ["--emb-dim", args["--emb_dim"], "--heads", args["--n_heads"]]
    flags += ["--layers", args["--n_layers"], "--context-length", args["--context_length"]]
    flags += ["--batch", args["--batch_size"], "--dtype", args["--dtype"]]
    flags += ["--kv-groups", str(heads // int(args["--n_kv_groups"]))]
    if "--latent_dim" in args:
        flags += ["--latent-dim", args["--latent_dim"]]
    if "--sliding_window_size" in args:
        flags += ["--window", args["--sliding_window_size"]]
    if "--swa_ratio" in args:
        flags += ["--swa-ratio", args["--swa_ratio"]]
    return flags


def as_the_script_prints(script: str, data: dict[str, Any]) -> str:
    """What memory_estimator_{gqa,mla,swa}.py print, written from attn's JSON alone: its
    layout is the scripts', every number in it comes from attn."""
    c = data["config"]
    by_name = {v["name"]: v for v in data["variants"]}
    mha, gqa = by_name["MHA"], by_name["GQA"]

    def gb(variant: dict[str, Any]) -> str:
        return f"{variant['gb']:,.2f} GB"

    config = [
        ("context_length", c["context_length"]),
        *([("sliding_window_size", c["window"])] if script == "swa" else []),
        ("emb_dim", c["emb_dim"]),
        ("n_heads", c["heads"]),
        ("n_layers", c["layers"]),
        ("n_kv_groups", c["heads"] // gqa["kv_heads"]),  # their group size
        *([("latent_dim", c["latent_dim"])] if script == "mla" else []),
    ]
    width = 23 if script == "swa" else 17
    lines = ["==== Config ===="]
    lines += [f"{key:{width}}: {value}" for key, value in config]
    lines += [
        f"{'batch_size':{width}}: {c['batch']}",
        f"{'dtype':{width}}: {c['dtype']} ({data['bytes_per_element']} Bytes/elem)",
        f"{'head_dim':{width}}: {data['head_dim']}",
        f"{'GQA n_kv_heads':{width}}: {gqa['kv_heads']}",
    ]
    if script == "swa":
        ratio = c["swa_ratio"]
        lines += [
            f"Effective SWA window W : {data['effective_window']}",
            f"Layer ratio (SWA:Full) : {ratio} -> {data['swa_layers']} SWA, "
            f"{data['full_layers']} Full",
            "",
            "==== KV-cache totals across all layers ====",
            f"MHA KV total           : {gb(mha)}",
            f"GQA KV total           : {gb(gqa)}",
            f"MHA + SWA (ratio {ratio})  : {gb(by_name['MHA+SWA'])}",
            f"GQA + SWA (ratio {ratio})  : {gb(by_name['GQA+SWA'])}",
            "",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "==== KV-cache totals across all layers ====",
        f"MHA total KV cache  : {gb(mha)}",
        f"GQA total KV cache  : {gb(gqa)}",
    ]
    if script == "mla":
        lines.append(f"MLA total KV cache  : {gb(by_name['MLA'])}")
    lines += [
        f"Ratio (MHA / GQA)   : {gqa['ratio']:,.2f}x",
        f"Savings (GQA vs MHA): {gqa['savings'] * 100:,.2f}%",
    ]
    if script == "mla":
        mla = by_name["MLA"]
        lines += [
            f"Ratio (MHA / MLA)   : {mla['ratio']:,.2f}x",
            f"Savings (MLA vs MHA): {mla['savings'] * 100:,.2f}%",
        ]
    return "\n".join(lines) + "\n"


def kv_json(attn: Invoke, *flags: str) -> dict[str, Any]:
    result = attn("kv-memory", *flags, "-f", "json")
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[c["id"] for c in SCRIPT_CASES])
def test_every_line_the_scripts_print(attn: Invoke, case: dict[str, Any]) -> None:
    """Every figure of every recorded run (config, head_dim, KV heads, window, layers,
    each total, ratio and saving), from `attn kv-memory -f json`."""
    data = kv_json(attn, *attn_flags(case))
    assert as_the_script_prints(case["script"], data) == case["stdout"]


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[c["id"] for c in SCRIPT_CASES])
def test_the_table_shows_the_scripts_figures(
    attn: Invoke, case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = attn("kv-memory", *attn_flags(case), terminal=True)
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[3:] if line.strip()}
    data = kv_json(attn, *attn_flags(case))
    for variant in data["variants"]:
        row = rows[variant["name"]].split()
        assert f"{row[-4]} {row[-3]}" == f"{variant['gb']:,.2f} GB"
        assert row[-2:] == [f"{variant['ratio']:,.2f}x", f"{variant['savings'] * 100:,.2f}%"]
        assert row[-5] == f"{variant['bytes']:,}"
    for line in case["stdout"].splitlines():  # each GB figure the script printed
        if " GB" in line:
            assert line.rsplit(": ", 1)[1] in result.stdout


def test_the_quoted_table(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = attn(
        "kv-memory",
        *("--emb-dim", "4096", "--heads", "32", "--layers", "32", "--context-length", "32768"),
        *("--dtype", "bf16", "--kv-groups", "8", "--window", "1024", "--swa-ratio", "5:1"),
        terminal=True,
    )
    assert result.exit_code == 0, result.stderr
    shown = [line.split() for line in result.stdout.splitlines()]
    rows = {
        line[0]: line for line in shown if line and line[0] in ("MHA", "GQA", "MHA+SWA", "GQA+SWA")
    }
    assert {name: " ".join(row[-4:-2]) for name, row in rows.items()} == {
        "MHA": "17.18 GB",
        "GQA": "4.29 GB",
        "MHA+SWA": "3.14 GB",
        "GQA+SWA": "0.78 GB",
    }
    assert "(scripts: --n_kv_groups 4)" in result.stdout
    assert "27 layers keep the last 1024 tokens, 5 the whole context" in result.stdout


def test_defaults_are_the_scripts_defaults_for_the_books_gpt2(attn: Invoke) -> None:
    """`attn kv-memory --kv-groups 3` is the GQA script with GPT-2 124M's sizes and
    nothing else given (context 1024, batch 1, fp16)."""
    case = next(c for c in SCRIPT_CASES if c["id"] == "gqa-defaults")
    data = kv_json(attn, "--kv-groups", "3")
    assert as_the_script_prints("gqa", data) == case["stdout"]
    assert data == kv_json(attn, *attn_flags(case))


def test_the_json_is_for_scripts(attn: Invoke) -> None:
    data = kv_json(attn, "--kv-groups", "4", "--latent-dim", "256", "--window", "256")
    assert data["command"] == "kv-memory"
    assert data["config"] == {
        "emb_dim": 768,
        "heads": 12,
        "layers": 12,
        "context_length": 1024,
        "batch": 1,
        "dtype": "fp16",
        "kv_groups": 4,
        "latent_dim": 256,
        "window": 256,
        "swa_ratio": "1:0",
    }
    assert [v["name"] for v in data["variants"]] == [
        "MHA",
        "GQA",
        "MLA",
        "MHA+SWA",
        "GQA+SWA",
        "MLA+SWA",
    ]
    mha, gqa, mla = data["variants"][:3]
    assert mha == {
        "name": "MHA",
        "attention": "MHA",
        "sliding_window": False,
        "kv_heads": 12,
        "bytes_per_token": 64 * 12 * 2 * 2,
        "bytes": 1024 * 64 * 12 * 2 * 2 * 12,
        "gb": 1024 * 64 * 12 * 2 * 2 * 12 / 1e9,
        "ratio": 1.0,
        "savings": 0.0,
    }
    assert (gqa["kv_heads"], mla["kv_heads"]) == (4, None)
    assert mla["bytes"] == 1024 * 256 * 2 * 12
    assert all(isinstance(v["bytes"], int) for v in data["variants"])
    assert (data["swa_layers"], data["full_layers"], data["effective_window"]) == (12, 0, 256)


def test_without_a_window_there_is_no_ratio(attn: Invoke) -> None:
    data = kv_json(attn)
    assert data["config"]["swa_ratio"] is None
    assert (data["swa_layers"], data["full_layers"], data["effective_window"]) == (0, 12, None)
    assert [v["name"] for v in data["variants"]] == ["MHA"]


def test_torch_dtype_names(attn: Invoke) -> None:
    assert kv_json(attn, "--dtype", "bfloat16") == kv_json(attn, "--dtype", "bf16")
    assert kv_json(attn, "--dtype", "float32")["config"]["dtype"] == "fp32"


def test_csv_and_markdown(attn: Invoke) -> None:
    flags = ("--kv-groups", "4", "--window", "128", "--swa-ratio", "5:1")
    csv_text = attn("kv-memory", *flags, "-f", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    data = kv_json(attn, *flags)
    assert [r["name"] for r in rows] == [v["name"] for v in data["variants"]]
    for row, variant in zip(rows, data["variants"], strict=True):
        assert int(row["bytes"]) == variant["bytes"]
        assert float(row["savings"]) == variant["savings"]  # full precision
        assert row["sliding_window"] == ("true" if variant["sliding_window"] else "false")
    markdown = attn("kv-memory", *flags, "-f", "markdown").stdout
    assert markdown.startswith("| variant | KV heads | per token and layer | bytes | GB |")
    # 10 layers of 128 tokens and 2 of 1024, 4 KV heads of 64, K and V, 2 bytes each
    assert "| GQA+SWA | 4 | 1,024 B | 3,407,872 | 0.00 GB | 11.08x | 90.97% |" in markdown
    assert markdown.rstrip().endswith("</sub>")


def test_written_to_files(attn: Invoke, tmp_path: Path) -> None:
    for name in ("kv.json", "kv.csv", "kv.md", "kv.txt", "kv.svg", "kv.html"):
        result = attn("kv-memory", "--kv-groups", "4", "-o", str(tmp_path / name))
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", ""), name
    files = {path.suffix: path.read_text(encoding="utf-8") for path in tmp_path.iterdir()}
    assert len(files) == 6  # and no temporary file left beside them
    assert json.loads(files[".json"])["variants"][1]["bytes"] == 12_582_912
    assert files[".csv"].splitlines()[2].startswith("GQA,GQA,false,4,1024,12582912,")
    assert "| GQA | 4 | 1,024 B | 12,582,912 | 0.01 GB | 3.00x | 66.67% |" in files[".md"]
    assert ["GQA", "4", "1,024", "B", "12,582,912", "0.01", "GB", "3.00x", "66.67%"] in [
        line.split() for line in files[".txt"].splitlines()
    ]
    for picture in (files[".svg"], files[".html"]):
        assert "12,582,912" in picture
    assert files[".svg"].rstrip().endswith("</svg>")


def test_a_narrow_terminal_keeps_the_gb(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    result = attn("kv-memory", "--kv-groups", "4", terminal=True)
    assert result.exit_code == 0
    assert "0.04 GB" in result.stdout
    assert "-f json or -f csv shows everything" in " ".join(result.stdout.split())
    assert max(len(line) for line in result.stdout.splitlines()) <= 40


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--heads", "32", "--kv-groups", "5"],
            "--kv-groups 5 does not divide --heads 32: --kv-groups counts the key/value heads, "
            "each shared by the same number of query heads; give one of 1, 2, 4, 8, 16, 32 (the "
            "book's memory_estimator scripts' --n_kv_groups is that group size instead: their "
            "--n_kv_groups G is --kv-groups 32/G here)",
        ),
        (["--emb-dim", "0"], "--emb-dim 0 is too small"),
        (
            ["--heads", "0"],
            "--heads 0 is too small: attention needs a head; give --heads 1 or more",
        ),
        (["--layers", "-1"], "--layers -1 is too small"),
        (["--context-length", "0"], "--context-length 0 is too small"),
        (["--batch", "0"], "--batch 0 is too small"),
        (["--kv-groups", "0"], "--kv-groups 0 is too small"),
        (["--latent-dim", "0"], "--latent-dim 0 is too small"),
        (["--window", "0"], "--window 0 is too small"),
        (["--context-length", str(2**63)], "--context-length 9223372036854775808 is too large"),
        (["--window", "8", "--swa-ratio", "5/1"], "--swa-ratio '5/1' is not A:B"),
        (["--window", "8", "--swa-ratio", "0:0"], "--swa-ratio '0:0' has no layers in a block"),
        (["--swa-ratio", "5:1"], "--swa-ratio has no effect without --window"),
        (
            ["-f", "npy"],
            "attn kv-memory writes a table (-f table, svg or html) or data (-f json, csv or markdown), not npy",
        ),
        (["-o", "kv.npy"], "not npy"),
        (
            ["-o", "kv.dat"],
            "cannot tell the format of -o kv.dat from its extension; add -f table, json, csv, "
            "markdown, svg or html (or name it .txt, .json, .csv, .md, .markdown, .svg, .html "
            "or .htm)",
        ),
        (["--color", "-f", "json"], "--color has no effect on json output"),
        (["--dtype", "fp64"], "Invalid value for '--dtype': 'fp64' is not one of"),
        (["--dtype", "float64"], "Invalid value for '--dtype'"),
        (["my_tokens.csv"], "Got unexpected extra argument"),
        (["--precision", "2"], "No such option: --precision"),
        (["--mode", "causal"], "No such option: --mode"),
        (["--heads", "x"], "'x' is not a whole number"),
        (["--kv_groups", "4"], "No such option: --kv_groups"),
    ],
)
def test_bad_usage(
    attn: Invoke, flags: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line on stderr naming the flag, exit 2, nothing on stdout (nor in a file)."""
    monkeypatch.chdir(tmp_path)
    result = attn("kv-memory", *flags, terminal=True)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attn: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_says_what_kv_groups_counts(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = attn("kv-memory", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert (
        "G is the NUMBER of KV heads, as num_kv_groups of the book's GroupedQueryAttention" in text
    )
    assert "the memory_estimator scripts' --n_kv_groups is the group SIZE instead" in text
    assert "their --n_heads 32 --n_kv_groups 4 is --heads 32 --kv-groups 8" in text
    assert "attn kv-memory --emb-dim 4096" in text  # the examples
    assert "INPUT" not in text.replace("Takes no INPUT", "")
    assert "[default: fp16]" in text
    assert "csv: a header and one row per variant" in text
    assert "npy" not in text
    shown = next(flag for flag in options.kv_memory_flags() if flag.name == "format")
    assert shown.metavar == "<table|json|csv|markdown|svg|html>"


def test_the_attention_commands_keep_their_flags(attn: Invoke) -> None:
    """--heads, --batch and --dtype mean other things there: nothing of kv-memory's leaks."""
    text = attn("context", "--help").stdout
    assert "--emb-dim" not in text
    assert "--swa-ratio" not in text  # (--kv-groups there is grouped-query attention)
    assert "float64" in text
    assert run_json_context(attn, "--dtype", "float32")["params"]["dtype"] == "float32"
    bad = attn("context", "--dtype", "bf16")
    assert bad.exit_code == 2
    assert "Invalid value for '--dtype'" in bad.stderr


def run_json_context(attn: Invoke, *flags: str) -> dict[str, Any]:
    result = attn("context", *flags, "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# ---------------------------------------------------------------- the fast parser and Typer

KV_TOKENS = [
    "--emb-dim",
    "4096",
    "--heads",
    "32",
    "--layers",
    "-3",
    "--context-length=8192",
    "--batch",
    "2",
    "--dtype",
    "bf16",
    "float16",
    "fp64",
    "--kv-groups",
    "8",
    "--latent-dim",
    "512",
    "--window",
    "1024",
    "--swa-ratio",
    "5:1",
    "--swa-ratio=1:0",
    "-f",
    "json",
    "-fcsv",
    "-o",
    "kv.md",
    "--color",
    "--no-color",
    "--debug",
    "--precision",
    "x.csv",
    "--",
    "--help",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(KV_TOKENS), max_size=7))
def test_fast_parser_agrees_with_typer(rest: list[str]) -> None:
    argv = ["kv-memory", *rest]
    fast = options.parse(argv)
    if fast is None:
        return  # Typer's alone
    captured: list[options.Parsed] = []

    def capture(parsed: options.Parsed) -> None:
        captured.append(parsed)

    command = typer.main.get_command(build_app(capture))
    try:
        TyperGroup.main(command, args=argv, prog_name="attn", standalone_mode=False)
    except Exception as exc:  # Typer refused what the fast parser took
        raise AssertionError(f"{argv}: {exc}") from exc
    assert captured, argv
    assert captured[0].values == fast.values, argv
    assert captured[0].explicit == fast.explicit, argv


def test_every_typer_option_is_in_the_table() -> None:
    command: Any = typer.main.get_command(build_app(lambda parsed: None)).commands["kv-memory"]  # type: ignore[attr-defined]
    declared = {decl for flag in options.kv_memory_flags() for decl in flag.decls}
    typer_side = set()
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            names = [*param.opts, *param.secondary_opts]
            typer_side.add("/".join(names) if param.secondary_opts else names[0])
            typer_side.update(names[1:] if not param.secondary_opts else [])
    assert typer_side == declared
    assert not [p for p in command.params if p.param_type_name == "argument"]  # no INPUT
    for flag in options.kv_memory_flags():
        param = next(p for p in command.params if p.name == flag.name)
        assert param.default == flag.default
        assert param.help == flag.help


def test_everyday_calls_take_the_fast_path() -> None:
    parsed = options.parse(["kv-memory", "--kv-groups", "8", "--dtype", "bf16", "-f", "json"])
    assert parsed is not None
    assert parsed.values["kv_groups"] == 8
    assert parsed.values["dtype"] is KVDType.BF16
    assert "input" not in parsed.values
    assert parsed.explicit == {"kv_groups", "dtype", "format"}


def test_the_attention_commands_do_not_load_it() -> None:
    """kv-memory's module and flags cost the other commands nothing at start-up."""
    code = (
        "import sys; from attncli.cli.runner import run; run(['context', '-f', 'json']); "
        "print(sorted(m for m in sys.modules if 'kv_memory' in m), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,  # no INPUT and nothing piped in: the book's tokens
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["command"] == "context"
    assert result.stderr.strip() == "[]"


def test_a_ratio_is_shown_as_read(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spaces around A:B are read as the scripts' int() reads them, and shown as A:B
    (a newline in it never breaks a line of the table)."""
    assert kv_json(attn, "--window", "64", "--swa-ratio", " 5 :1\n")["config"]["swa_ratio"] == "5:1"
    monkeypatch.setenv("COLUMNS", "80")
    table = attn("kv-memory", "--window", "64", "--swa-ratio", "1\n:0", terminal=True).stdout
    assert "SWA 1:0: all 12 layers keep the last 64 tokens" in table
    one = attn("kv-memory", "--layers", "1", "--window", "64", terminal=True).stdout
    assert "SWA 1:0: all 1 layer keeps the last 64 tokens" in one

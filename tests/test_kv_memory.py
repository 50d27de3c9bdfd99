"""`attn kv-memory`: the KV cache of a model configuration, as the book's memory
estimators (ch04/04_gqa, 05_mla, 06_swa) compute and print it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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

from .conftest import DATA

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

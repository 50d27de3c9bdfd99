"""`attn decode`: KV-cache decoding step by step, against what torch gave for the book's
cached classes fed the same tokens (tests/data/torch_beyond.json, `kv_cache_decoding`,
recorded by tests/data/record_torch_beyond.py with torch 2.13.0+cpu), through the CLI:
every step's new rows, the cache's length and size, and the keys each query saw."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attncli import AttentionParams, AttnError, book_example, prepare
from attncli.decoding import decode, schedule
from tests.conftest import DATA, Invoke

TORCH = json.loads((DATA / "torch_beyond.json").read_text(encoding="utf-8"))
DECODING = {case["name"]: case for case in TORCH["kv_cache_decoding"]}
TOLERANCE = 1e-12  # float64 throughout
# The recorded schedules as attn's flags.
SCHEDULES = {"1x12": [], "5+1x7": ["--prefill", "5"], "3x4": ["--chunk", "3"]}
FLOAT64_CASES = ["kv_mha", "gqa_h4_g2", "mla_h4_l6", "swa_h4_w4", "swa_h4_none"]


def _t12(tmp_path: Path) -> str:
    """The recorded 12 x 8 input as a JSON file attn reads."""
    path = tmp_path / "t12.json"
    matrix = TORCH["inputs"]["t12"]
    tokens = [f"t{i}" for i in range(len(matrix))]
    path.write_text(json.dumps({"tokens": tokens, "embeddings": matrix}), encoding="utf-8")
    return str(path)


def _flags(case: dict[str, Any]) -> list[str]:
    """The attn flags that build the case's module (the modes are implied: causal)."""
    args = case["args"]
    flags = ["--init", "linear", "--seed", str(case["seed"])]
    flags += ["--d-out", str(args["d_out"]), "--heads", str(args["num_heads"])]
    if "num_kv_groups" in args:
        flags += ["--kv-groups", str(args["num_kv_groups"])]
    if "latent_dim" in args:
        flags += ["--latent-dim", str(args["latent_dim"])]
    window = args.get("sliding_window_size") or args.get("window_size")
    if window is not None:
        flags += ["--window", str(window)]
    return flags


def _decode(attn: Invoke, *args: str) -> dict[str, Any]:
    result = attn("decode", *args, "-f", "json", terminal=True)  # no INPUT: the book's
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _run(case: dict[str, Any], schedule: str) -> dict[str, Any]:
    run: dict[str, Any] = next(r for r in case["runs"] if r["schedule"] == schedule)
    return run


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("name", FLOAT64_CASES)
def test_every_step_equals_the_books_cached_class(
    attn: Invoke, tmp_path: Path, name: str, schedule: str
) -> None:
    case = DECODING[name]
    run = _run(case, schedule)
    decoded = _decode(attn, _t12(tmp_path), *_flags(case), *SCHEDULES[schedule])
    steps = decoded["steps"]
    assert len(steps) == len(run["steps"])
    latent = case["class"] == "MultiHeadLatentAttention"
    assert decoded["cache"]["holds"] == ("latent" if latent else "keys and values")
    rows = []
    for step, torch_step in zip(steps, run["steps"], strict=True):
        start, stop = torch_step["tokens"]
        assert step["fed"] == list(range(start, stop))
        # the keys the step attended to, and those each new query saw
        assert len(step["keys"]) == torch_step["keys_attended"]
        assert step["keys"][-1] == stop - 1
        assert step["seen"] == torch_step["visible_keys"]
        # the cache after the step: its length, and its numbers (keys and values, or c_kv)
        cache = step["cache"]
        assert cache["tokens"] == torch_step["cache_len"]
        assert cache["positions"] == list(range(stop - cache["tokens"], stop))
        tensors = 1 if latent else 2  # cache_k and cache_v, or cache_c_kv
        assert cache["numbers"] == tensors * math.prod(torch_step["cache_shape"])
        assert cache["bytes"] == 8 * cache["numbers"]  # torch.float64
        assert torch_step["cache_dtype"] == "torch.float64"
        np.testing.assert_allclose(
            step["context"], torch_step["context_rows"], rtol=0, atol=TOLERANCE
        )
        assert step["max_abs_diff_vs_full"] < TOLERANCE
        rows += step["context"]
    np.testing.assert_allclose(rows, case["full_context_vecs"], rtol=0, atol=TOLERANCE)
    assert decoded["max_abs_diff_vs_full"] < TOLERANCE
    assert run["max_abs_diff_vs_full"] < TOLERANCE  # torch's own cached rows vs its full pass


def test_a_window_keeps_the_last_w_keys_and_attends_to_w_plus_n_minus_1() -> None:
    """What the recording found in ch04/06_swa, and attn's schedule says."""
    run = _run(DECODING["swa_h4_w4"], "3x4")
    assert [s["cache_len"] for s in run["steps"]] == [3, 4, 4, 4]
    assert [s["keys_attended"] for s in run["steps"]] == [3, 6, 6, 6]  # W + n - 1 = 6


def test_the_optimized_class_in_float32(attn: Invoke, tmp_path: Path) -> None:
    """ch04/03's optimized MultiHeadAttention runs only in float32 (its cache is
    allocated in the default dtype): attn --dtype float32 gives its rows to float32's
    rounding, and its cache lengths. Fed one token at a time with window_size=4 it is
    SWA with a window of 4; in chunks its rolling buffer drops keys the earlier queries
    of a chunk need (attn follows ch04/06_swa there, tested above)."""
    for name in ("kv_mha_optimized_float32", "kv_mha_optimized_w4_float32"):
        case = DECODING[name]
        assert case["dtype"].startswith("float32")
        for name_of_run, extra in SCHEDULES.items():
            run = _run(case, name_of_run)
            if "error" in run:  # a chunk longer than the window: the class refuses it
                assert "exceeds KV cache window size" in run["error"]
                continue
            if name.endswith("w4_float32") and name_of_run != "1x12":
                continue
            decoded = _decode(attn, _t12(tmp_path), *_flags(case), *extra, "--dtype", "float32")
            for step, torch_step in zip(decoded["steps"], run["steps"], strict=True):
                assert step["cache"]["tokens"] == torch_step["cache_len"]
                assert step["cache"]["bytes"] == 4 * step["cache"]["numbers"]
                assert step["seen"] == torch_step["visible_keys"]
                np.testing.assert_allclose(
                    step["context"], torch_step["context_rows"], rtol=0, atol=1e-6
                )


def test_the_table_shows_each_step_its_cache_and_the_difference(attn: Invoke) -> None:
    result = attn("decode", "--init", "linear", "--prefill", "4", "--window", "3", terminal=True)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "attn decode · causal · 6 tokens fed 4 at once, then one at a time · 3 steps" in text
    assert "step 1 of 3: tokens #0-3" in text
    assert "step 3 of 3: token #5 'step'" in text
    assert "attends to 3 keys, #2-4: 2 from the cache and 1 new" in text
    assert "cache after: #1-3 (dropped #0), 3 tokens × 4 = 12 numbers, 96 bytes" in text
    assert "sliding window 3" in text
    # the book's CausalAttention rows (section 3.5.3), from the prefill
    assert "-0.4519    0.2216" in text


def test_latent_and_grouped_caches_are_counted_as_the_classes_keep_them(attn: Invoke) -> None:
    common = ["--init", "linear", "--heads", "4", "--d-out", "8", "--prefill", "6"]
    mla = _decode(attn, *common, "--latent-dim", "3")
    assert mla["cache"] == {
        "holds": "latent",
        "numbers_per_token": 3,
        "bytes_per_token": 24,
        "keeps": None,
    }
    assert mla["steps"][0]["cache"]["numbers"] == 6 * 3
    gqa = _decode(attn, *common, "--kv-groups", "2", "--dtype", "float32")
    assert gqa["cache"]["numbers_per_token"] == 2 * 2 * 2  # K and V, 2 KV heads of 2
    assert gqa["steps"][0]["cache"]["bytes"] == 6 * 8 * 4
    table = attn("decode", *common, "--latent-dim", "3", terminal=True).stdout
    assert "latent c_kv: 3 numbers (24 bytes in float64)" in table


@pytest.mark.parametrize(
    ("module", "steps"),
    [
        (["--init", "linear", "--heads", "2", "--wrapper"], ["--chunk", "4"]),
        (["--heads", "2", "--d-out", "4", "--qkv-bias", "--init", "linear", "--window", "1"], []),
        (["--scale", "0.3"], ["--prefill", "2", "--chunk", "3"]),
        (["--d-out", "3", "--dtype", "float32", "--window", "2"], ["--chunk", "2"]),
    ],
)
def test_decoding_equals_the_full_causal_computation(
    attn: Invoke, module: list[str], steps: list[str]
) -> None:
    decoded = _decode(attn, *module, *steps)
    full = attn("context", "-m", "causal", *module, "-f", "json", terminal=True)
    assert full.exit_code == 0, full.stderr
    rows = [row for step in decoded["steps"] for row in step["context"]]
    tolerance = 1e-6 if "float32" in module else TOLERANCE
    np.testing.assert_allclose(rows, json.loads(full.stdout)["values"], rtol=0, atol=tolerance)
    assert decoded["max_abs_diff_vs_full"] <= tolerance
    assert [i for step in decoded["steps"] for i in step["fed"]] == list(range(6))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--prefill", "0"], "--prefill 0 is out of range"),
        (["--prefill", "7"], "--prefill 7 is out of range"),
        (["--chunk", "0"], "--chunk 0 is out of range"),
        (["--chunk", "7"], "--chunk 7 is out of range"),
        (["--prefill", "6", "--chunk", "2"], "--chunk 2 has no effect"),
        (["-q", "1"], "--query has no meaning in attn decode"),
        (["--dropout", "0.1"], "the book decodes in eval mode"),
        (["--dropout", "0"], "the book decodes in eval mode"),
        (["--qkv", "qkv.npz"], "--qkv has no meaning in attn decode"),
        (["--kv", "kv.json"], "--kv has no meaning in attn decode"),
        (["--mask", "mask.npy"], "--mask has no meaning in attn decode"),
        (["--batch", "2"], "--batch has no meaning in attn decode"),
        (["-m", "trainable"], "attn decode is causal attention"),
        (["-m", "plain"], "drop --mode (causal is implied)"),
        (["-f", "csv"], "attn decode writes panels (-f table, svg or html) or one JSON object"),
        (["-f", "npy", "-o", "x.npy"], "not npy"),
        (["-f", "markdown"], "not markdown"),
    ],
)
def test_bad_flags_are_usage_errors(attn: Invoke, args: list[str], fragment: str) -> None:
    result = attn("decode", *args, terminal=True)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", [["--prefill", "2"], ["--chunk", "2"]])
def test_other_commands_refuse_the_decoding_flags(attn: Invoke, flag: list[str]) -> None:
    result = attn("context", "-m", "causal", *flag, "-f", "json", terminal=True)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{flag[0]} has no effect on `attn context`" in result.stderr


def test_mode_causal_may_be_said() -> None:
    """--mode causal is implied, and accepted when given."""
    from attncli.cli import options
    from attncli.cli.app import request_from

    for argv in (["decode"], ["decode", "-m", "causal"]):
        parsed = options.parse(argv)
        assert parsed is not None
        assert request_from(parsed).params.mode.value == "causal"


def test_the_library_names_its_parameters() -> None:
    assert schedule(12, prefill=5, chunk=3) == [(0, 5), (5, 8), (8, 11), (11, 12)]
    with pytest.raises(AttnError, match="prefill=13 is out of range"):
        schedule(12, prefill=13)
    with pytest.raises(AttnError, match="use mode=causal"):
        decode(prepare(book_example(), AttentionParams(mode="trainable")))
    causal = prepare(book_example(), AttentionParams(mode="causal"))
    with pytest.raises(AttnError, match="keeps every step's attention weights"):
        decode(causal, memory=100)
    done = []
    result = decode(causal, chunk=4, progress=lambda d, t: done.append((d, t)))
    assert done == [(4, 6), (6, 6)]
    assert [step.cache.numbers for step in result.steps] == [4 * 4, 6 * 4]


def test_tokens_are_shown_escaped_and_json_keeps_them(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    tokens = ["a\x1b[2Jb", "c\nd", "e\u202ef"]
    path.write_text(json.dumps({"tokens": tokens, "embeddings": [[1.0], [2.0], [3.0]]}))
    for fmt in ("table", "svg", "html"):
        result = attn("decode", str(path), "-f", fmt, "--chunk", "2", terminal=True)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout, fmt
        assert "\u202e" not in result.stdout, fmt
        assert "a\\x1b[2Jb" in result.stdout, fmt
    assert _decode(attn, str(path))["tokens"] == tokens


def test_a_long_run_draws_its_first_and_last_steps_and_rows(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "t30.npy"
    np.save(path, np.random.default_rng(1).standard_normal((30, 4)))
    steps = attn("decode", str(path), "-f", "table", terminal=True).stdout
    assert "step 6 of 30" in steps
    assert "⋮ 18 more steps (-f json gives every step)" in steps
    assert "step 7 of 30" not in steps
    assert "step 25 of 30" in steps
    rows = attn("decode", str(path), "--prefill", "20", "-f", "table", terminal=True).stdout
    assert rows.count("⋮ 8 more") == 2  # the weights' rows and the context vectors'
    assert "x20 " in rows
    assert "x10 " not in rows

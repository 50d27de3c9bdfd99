"""Beyond chapter 3: grouped-query heads, sliding windows, masks and scales, against
the numbers torch gave for the book's own classes (tests/data/torch_beyond.json,
recorded by tests/data/record_torch_beyond.py with torch 2.13.0+cpu), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import DATA, Invoke

TORCH = json.loads((DATA / "torch_beyond.json").read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in TORCH["cases"]}
SIX_TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
TOLERANCE = 1e-12  # float64 throughout, torch's float32 draws widened as attn widens them


def _input_file(tmp_path: Path, name: str) -> Path:
    """The recorded input as a JSON file attn reads."""
    matrix = TORCH["inputs"][name]
    tokens = SIX_TOKENS if name == "six_tokens" else [f"t{i}" for i in range(len(matrix))]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"tokens": tokens, "embeddings": matrix}), encoding="utf-8")
    return path


def _flags(case: dict[str, Any]) -> list[str]:
    """The attn flags that build the case's module."""
    args = case["args"]
    flags = ["--mode", "causal", "--init", "linear", "--seed", str(case["seed"])]
    flags += ["--d-out", str(args["d_out"]), "--heads", str(args["num_heads"])]
    if args.get("qkv_bias"):
        flags.append("--qkv-bias")
    if case["class"] == "GroupedQueryAttention":
        flags += ["--kv-groups", str(args["num_kv_groups"])]
    if case["class"] == "MultiHeadLatentAttention":
        # the class's default latent_dim: max(16, d_out // 8)
        latent = args["latent_dim"] or max(16, args["d_out"] // 8)
        flags += ["--latent-dim", str(latent)]
    if args.get("sliding_window_size") is not None:
        flags += ["--window", str(args["sliding_window_size"])]
    return flags


def _values(attn: Invoke, *args: str) -> Any:
    result = attn(*args, "-f", "json", terminal=True)  # no INPUT: the book's six tokens
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)["values"]


def _close(actual: Any, expected: Any) -> None:
    """Equal to TOLERANCE, null (a masked score) exactly where torch's is."""
    a = np.array(actual, dtype=float)  # null -> nan
    e = np.array(expected, dtype=float)
    assert a.shape == e.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(e), rtol=0, atol=TOLERANCE)


MODULE_CASES = [
    name
    for name, case in CASES.items()
    if case["class"]
    in ("GroupedQueryAttention", "MultiHeadAttentionWithSWA", "MultiHeadLatentAttention")
]


@pytest.mark.parametrize("name", MODULE_CASES)
def test_every_stage_equals_the_books_class(attn: Invoke, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    source = str(_input_file(tmp_path, case["input"]))
    flags = _flags(case)
    for command, key in (
        ("queries", "queries"),
        ("keys", "keys"),
        ("values", "values"),
        ("scores", "attn_scores"),
        ("weights", "attn_weights"),
        ("context", "context_vecs"),
    ):
        _close(_values(attn, command, source, *flags), case[key])


@pytest.mark.parametrize("name", ["gqa_h4_g2", "swa_h2_w2", "gqa_t12_h4_g2", "mla_t12_h4_l6"])
def test_explain_walks_each_head_with_its_key_value_head(
    attn: Invoke, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    source = str(_input_file(tmp_path, case["input"]))
    query = 3
    result = attn("explain", source, *_flags(case), "-q", str(query), "-f", "json")
    assert result.exit_code == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    weights = [head[query] for head in case["attn_weights"]]
    _close(steps["weights"], weights)
    _close(steps["output"], case["context_vecs"][query])
    masked = np.isnan(np.array(case["attn_scores"][0][query], dtype=float))
    assert steps["masked"] == masked.tolist()
    if "latent" in case:  # the latent c_kv the keys and values come from
        _close(steps["latent"], case["latent"])
        assert list(steps["trainable_weights"])[1:5] == ["W_query", "W_DKV", "W_UK", "W_UV"]


def test_the_window_convention_is_i_minus_w_below_j_up_to_i() -> None:
    """What the recorded class let each query see: i - W < j <= i."""
    for name in ("swa_h2_w1", "swa_h2_w2", "swa_h2_w3", "swa_t12_h4_w4"):
        case = CASES[name]
        W = case["args"]["sliding_window_size"]
        for i, seen in enumerate(case["visible_keys"]):
            assert seen == [j for j in range(i + 1) if i - W < j], (name, i)


def test_a_window_as_long_as_the_input_is_plain_causal(attn: Invoke, tmp_path: Path) -> None:
    case = CASES["swa_h2_w6"]
    source = str(_input_file(tmp_path, "six_tokens"))
    flags = [f for f in _flags(case) if f not in ("--window", "6")]
    _close(_values(attn, "context", source, *flags), case["context_vecs"])
    _close(_values(attn, "context", source, *flags), CASES["swa_h2_none"]["context_vecs"])


def test_tables_say_which_query_heads_share_each_key_value_head(attn: Invoke) -> None:
    result = attn(
        "keys",
        "--mode",
        "causal",
        "--heads",
        "4",
        "--d-out",
        "4",
        "--kv-groups",
        "2",
        "-f",
        "markdown",
        terminal=True,
    )
    assert result.exit_code == 0, result.stderr
    assert "grouped-query: 2 key/value heads, for query heads 0-1, 2-3" in result.stdout
    mqa = attn("weights", "-m", "causal", "--heads", "2", "--d-out", "4", "--kv-groups", "1",
               terminal=True)  # fmt: skip
    assert mqa.exit_code == 0, mqa.stderr


def test_the_window_is_in_the_caption_and_every_masked_cell_shows(attn: Invoke) -> None:
    result = attn(
        "weights", "-m", "causal", "--window", "2", "-f", "markdown", "--precision", "2",
        terminal=True,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "sliding window 2: query i sees keys i-2 < j ≤ i" in result.stdout
    step = next(line for line in result.stdout.splitlines() if line.startswith("| step |"))
    # 'step' (#5) sees 'one' and itself; the four before are masked (italic 0)
    assert step.count("*0*") == 4, step


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--kv-groups", "2"], "--kv-groups has no effect in plain mode"),
        (["-m", "causal", "--heads", "4", "--d-out", "4", "--kv-groups", "3"], "does not divide"),
        (["-m", "causal", "--heads", "2", "--kv-groups", "1", "--wrapper"], "different modules"),
        (["-m", "trainable", "--window", "2"], "add --mode causal"),
        (["-m", "causal", "--window", "0"], "--window 0 is too small"),
        (["--scale", "-1"], "is not a scale"),
        (["--scale", "nan"], "is not a scale"),
    ],
)
def test_bad_settings_are_usage_errors(attn: Invoke, args: list[str], fragment: str) -> None:
    result = attn("context", *args, "-f", "json", terminal=True)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_scale_replaces_one_over_root_head_dim(attn: Invoke) -> None:
    """--scale S: softmax(S * scores), in every mode, plain included."""
    for mode in ("plain", "causal"):
        scores = np.array(_values(attn, "scores", "-m", mode), dtype=float)
        weights = np.array(_values(attn, "weights", "-m", mode, "--scale", "0.5"))
        expected = np.exp(0.5 * np.nan_to_num(scores, nan=-np.inf))
        expected /= expected.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-15)


def test_grouped_weights_files_give_the_same_numbers(attn: Invoke, tmp_path: Path) -> None:
    """A GroupedQueryAttention state_dict (narrower W_key, W_value) read from a file:
    the numbers of the same seeded module."""
    case = CASES["gqa_h4_g2"]
    flags = _flags(case)
    drawn = attn("explain", *flags, "-f", "json", terminal=True)
    assert drawn.exit_code == 0, drawn.stderr
    steps = json.loads(drawn.stdout)["steps"]
    state = {
        f"{name}.weight": steps["trainable_weights"][name]
        for name in ("W_query", "W_key", "W_value")
    }
    path = tmp_path / "gqa.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    # without out_proj: the heads' context vectors side by side
    result = _values(attn, "context", "-m", "causal", "--weights", str(path), "--heads", "4")
    _close(result, case["heads_context"])
    wrong = attn("context", "-m", "causal", "--weights", str(path), "--heads", "4",
                 "--kv-groups", "1", "-f", "json", terminal=True)  # fmt: skip
    assert wrong.exit_code == 2
    assert "contradicts" in wrong.stderr
    assert "2 key/value heads" in wrong.stderr


# ------------------------------------------------------------- --qkv, --mask, cross-attention

SDPA = TORCH["sdpa"]
SDPA_CASES = {case["name"]: case for case in SDPA["cases"]}


def _sdpa_files(tmp_path: Path, case: dict[str, Any]) -> list[str]:
    """The flags (and files) that give attn the case's q, k, v and mask."""
    kv = str(case["kv_heads"])
    q = np.array(SDPA["q"])
    if "cross" in case["name"]:
        q = q[:, :3]  # T_q = 3 queries, T_k = 6 keys
    path = tmp_path / "qkv.npz"
    np.savez(path, q=q, k=np.array(SDPA["k" + kv]), v=np.array(SDPA["v" + kv]))
    flags = ["--qkv", str(path)]
    call = case["call"]
    if call.get("is_causal"):
        flags += ["--mode", "causal"]
        if "cross" in case["name"]:
            flags += ["--causal-align", "top-left"]  # torch's is_causal
    if "scale" in call:
        flags += ["--scale", str(call["scale"])]
    mask = case["mask"].split(" ")[0]
    if "attn_mask=custom" in case["mask"]:
        mask = "custom"
    if "causal_lower_right" in case["mask"]:
        flags += ["--mode", "causal"]  # attn's own alignment for fewer queries than keys
    elif mask == "causal_and_custom":
        flags += ["--mode", "causal"]
        mask = "custom"
    if mask in SDPA["masks"]:
        values = np.array(SDPA["masks"][mask], dtype=float)  # null (JSON's -inf) -> nan
        array = values.astype(bool) if mask.startswith(("bool", "custom", "row_false")) else values
        if array.dtype != bool:
            array = np.where(np.isnan(array), -np.inf, array)
        np.save(tmp_path / "mask.npy", array)
        flags += ["--mask", str(tmp_path / "mask.npy")]
    return flags


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_qkv_gives_what_scaled_dot_product_attention_gives(
    attn: Invoke, tmp_path: Path, name: str
) -> None:
    case = SDPA_CASES[name]
    flags = _sdpa_files(tmp_path, case)
    weights = np.nan_to_num(np.array(case["attn_weights"], dtype=float))  # an empty row: 0
    _close(_values(attn, "weights", *flags), weights)
    output = np.array(case["output"])  # (H, T_q, d) -> (T_q, H * d), the heads side by side
    _close(_values(attn, "context", *flags), np.concatenate(list(output), axis=1))


def test_the_recorded_masks_are_what_the_test_says() -> None:
    """The bool masks are stored as booleans, the float ones with null for -inf."""
    assert {type(v) for row in SDPA["masks"]["bool_tt"] for v in row} == {bool}
    assert None in SDPA["masks"]["float_mask"][0]


def test_an_all_masked_row_is_zero_and_marked(attn: Invoke, tmp_path: Path) -> None:
    case = SDPA_CASES["mha_bool_row2_all_false"]
    flags = _sdpa_files(tmp_path, case)
    context = np.array(_values(attn, "context", *flags))
    assert (context[2] == 0).all()
    table = attn("weights", *flags, "-f", "table", terminal=True)
    assert table.exit_code == 0, table.stderr
    assert "every key masked for 't3' (#2): weights 0 and a zero context vector" in table.stdout


CROSS = TORCH["cross_attention"]


@pytest.mark.parametrize(
    ("mask", "flags"),
    [
        ("no_mask", ["--mode", "trainable"]),
        ("causal_lower_right", ["--mode", "causal"]),
        ("is_causal_top_left", ["--mode", "causal", "--causal-align", "top-left"]),
    ],
)
def test_kv_is_cross_attention_through_the_modules_weights(
    attn: Invoke, tmp_path: Path, mask: str, flags: list[str]
) -> None:
    case = next(c for c in CROSS["cases"] if c["mask"] == mask)
    queries = tmp_path / "queries.json"
    rows = TORCH["inputs"]["six_tokens"][:3]
    queries.write_text(json.dumps({"tokens": SIX_TOKENS[:3], "embeddings": rows}))
    keys = _input_file(tmp_path, "six_tokens")
    module = ["--init", "linear", "--heads", "2", "--d-out", "4", "--seed", "123"]
    common = [str(queries), "--kv", str(keys), *module, *flags]
    _close(_values(attn, "scores", *common), case["attn_scores"])
    _close(_values(attn, "weights", *common), case["attn_weights"])
    _close(_values(attn, "context", *common), case["context_vecs"])
    _close(_values(attn, "keys", *common), CROSS["keys"])
    result = attn("weights", *common, "-f", "json")
    parsed = json.loads(result.stdout)
    assert parsed["tokens"] == SIX_TOKENS[:3]
    assert parsed["key_tokens"] == SIX_TOKENS
    expected_align = (
        None if mask == "no_mask" else flags[-1] if "top-left" in flags else "bottom-right"
    )
    assert parsed["params"]["causal_align"] == expected_align


@pytest.mark.parametrize(
    ("args", "status", "fragment"),
    [
        (["--qkv", "QKV", "--d-out", "4"], 2, "--d-out has no effect with --qkv"),
        (["--qkv", "QKV", "-m", "trainable"], 2, "--mode trainable has no effect with --qkv"),
        (["--qkv", "QKV", "--kv", "QKV"], 2, "--kv and --qkv both give"),
        (["--qkv", "QKV", "--causal-align", "top-left"], 2, "--causal-align has no effect"),
        (["--qkv", "QKV", "--mask", "BADMASK"], 1, "attention here needs"),
        (["-m", "causal", "--kv", "SHORT"], 1, "d_in"),
    ],
)
def test_bad_sources_say_what_is_wrong(
    attn: Invoke, tmp_path: Path, args: list[str], status: int, fragment: str
) -> None:
    qkv = tmp_path / "qkv.npz"
    np.savez(qkv, q=np.array(SDPA["q"]), k=np.array(SDPA["k2"]), v=np.array(SDPA["v2"]))
    np.save(tmp_path / "bad.npy", np.ones((5, 6), dtype=bool))
    short = tmp_path / "short.json"
    short.write_text(json.dumps([[1.0, 2.0], [3.0, 4.0]]))
    names = {"QKV": str(qkv), "BADMASK": str(tmp_path / "bad.npy"), "SHORT": str(short)}
    result = attn("context", *[names.get(a, a) for a in args], "-f", "json", terminal=True)
    assert result.exit_code == status, result.stderr
    assert result.stdout == ""
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_latent_weights_files_give_the_same_numbers(attn: Invoke, tmp_path: Path) -> None:
    """A MultiHeadLatentAttention state_dict (W_DKV, W_UK, W_UV, out_proj) read from a
    file gives the numbers of the same seeded module."""
    case = CASES["mla_h2_l3"]
    drawn = attn("explain", *_flags(case), "-f", "json", terminal=True)
    assert drawn.exit_code == 0, drawn.stderr
    weights = json.loads(drawn.stdout)["steps"]["trainable_weights"]
    state = {f"{name}.weight": weights[name] for name in ("W_query", "W_DKV", "W_UK", "W_UV")}
    path = tmp_path / "mla.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    result = _values(attn, "context", "-m", "causal", "--weights", str(path), "--heads", "2")
    _close(result, case["heads_context"])  # no out_proj in the file: the heads side by side
    state["W_key.weight"] = state["W_UK.weight"]
    path.write_text(json.dumps(state), encoding="utf-8")
    both = attn("context", "-m", "causal", "--weights", str(path), "--heads", "2", "-f", "json",
                terminal=True)  # fmt: skip
    assert both.exit_code == 1
    assert "do not go together" in both.stderr


def test_qkv_tokens_are_positions_and_query_picks_one(attn: Invoke, tmp_path: Path) -> None:
    case = SDPA_CASES["gqa_causal"]
    flags = _sdpa_files(tmp_path, case)
    row = _values(attn, "context", *flags, "--query", "t4")
    output = np.array(case["output"])[:, 3]  # (H, d): query 4's heads
    _close(row, np.concatenate(list(output)))
    explained = attn("explain", *flags, "-q", "t4", "-f", "json", terminal=True)
    assert explained.exit_code == 0, explained.stderr
    parsed = json.loads(explained.stdout)
    assert parsed["params"]["qkv"] == flags[1]
    assert parsed["params"]["heads"] == 4
    assert parsed["params"]["kv_groups"] == 2
    _close(parsed["steps"]["weights"], [head[3] for head in case["attn_weights"]])

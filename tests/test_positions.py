"""RoPE, QK-norm and the score modifiers against torch (tests/data/torch_rope.json,
recorded by tests/data/record_torch_rope.py with torch 2.13.0+cpu running the book's
llama3.py and qwen3.py classes, and Hugging Face's formulas), through the CLI.

The book computes RoPE's tables (and Qwen3's RMSNorm) in float32 even on a float64 run;
attn computes them in the arithmetic's dtype, so those comparisons hold to 1e-6, the
float64 ones to 1e-12."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attncli.rope import Llama3Scaling, Rope
from tests.conftest import DATA, Invoke

ROPE = json.loads((DATA / "torch_rope.json").read_text(encoding="utf-8"))
MODULES = {case["name"]: case for case in ROPE["attention_with_rope"]}
SCORES = {case["name"]: case for case in ROPE["score_modifiers"]["cases"]}
SCORE_INPUTS = ROPE["score_modifiers"]["inputs"]
SIX_TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
FLOAT32_TABLES = 1e-6  # torch's float32 cos/sin (and RMSNorm) against attn's float64


def _values(attn: Invoke, *args: str) -> Any:
    result = attn(*args, "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["values"]


def _close(actual: Any, expected: Any, atol: float) -> None:
    a, e = np.array(actual, dtype=float), np.array(expected, dtype=float)
    assert a.shape == e.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    np.testing.assert_allclose(np.nan_to_num(a), np.nan_to_num(e), rtol=0, atol=atol)


def _input(tmp_path: Path, name: str) -> str:
    matrix = ROPE["inputs"][name]
    tokens = SIX_TOKENS if name == "six_tokens" else [f"t{i}" for i in range(len(matrix))]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"tokens": tokens, "embeddings": matrix}), encoding="utf-8")
    return str(path)


def _rope_flags(rope: dict[str, Any]) -> list[str]:
    call = rope["call"]
    flags = ["--rope", "--rope-theta", str(call["theta_base"])]
    config = call.get("freq_config")
    if config:
        flags += ["--rope-scaling", "llama3", "--rope-factor", str(config["factor"])]
        flags += ["--rope-low-freq-factor", str(config["low_freq_factor"])]
        flags += ["--rope-high-freq-factor", str(config["high_freq_factor"])]
        flags += ["--rope-original-context", str(config["original_context_length"])]
    return flags


LLAMA = [name for name, case in MODULES.items() if name.startswith("llama3")]


@pytest.mark.parametrize("name", LLAMA)
def test_llama3_grouped_query_attention_with_rope(attn: Invoke, tmp_path: Path, name: str) -> None:
    """The book's Llama 3 GroupedQueryAttention draws W_key, W_value, W_query, out_proj as
    ch04/04_gqa does: --kv-groups with --rope and seeds gives its numbers."""
    case = MODULES[name]
    args = case["args"]
    flags = [_input(tmp_path, case["input"]), "-m", "causal", "--init", "linear"]
    flags += ["--seed", str(case["seed"]), "--d-out", str(args["d_out"])]
    flags += ["--heads", str(args["num_heads"]), "--kv-groups", str(args["num_kv_groups"])]
    flags += _rope_flags(case["rope"])
    _close(_values(attn, "scores", *flags), case["attn_scores"], FLOAT32_TABLES)
    _close(_values(attn, "weights", *flags), case["attn_weights"], FLOAT32_TABLES)
    _close(_values(attn, "context", *flags), case["context_vecs"], FLOAT32_TABLES)
    explained = attn("explain", *flags, "-q", "2", "-f", "json", terminal=True)
    steps = json.loads(explained.stdout)["steps"]
    d = args["d_out"] // args["num_heads"]
    after = np.array(case["queries_heads_after_rope"])[:, 2]  # (H, d) of query 2
    _close(steps["query_after_rope"], after.reshape(-1), FLOAT32_TABLES)
    assert steps["rope"]["layout"] == "split"
    assert len(steps["query_before_rope"]) == args["num_heads"] * d


def _qkv_file(tmp_path: Path, q: Any, k: Any, v: Any) -> str:
    path = tmp_path / "qkv.npz"
    np.savez(path, q=np.array(q), k=np.array(k), v=np.array(v))
    return str(path)


def _heads(matrix: Any, heads: int) -> Any:
    """(T, H * d) -> (H, T, d), as view(...).transpose(1, 2)."""
    array = np.array(matrix)
    return array.reshape(array.shape[0], heads, -1).transpose(1, 0, 2)


QWEN = [name for name in MODULES if name.startswith("qwen3")]


@pytest.mark.parametrize("name", QWEN)
def test_qwen3_qk_norm_then_rope_on_its_projections(
    attn: Invoke, tmp_path: Path, name: str
) -> None:
    """Qwen3 draws W_query first (a seeded --kv-groups draws GroupedQueryAttention's
    order), so its projections come in by --qkv: QK-norm, then RoPE, then attention."""
    case = MODULES[name]
    args = case["args"]
    heads, groups = args["num_heads"], args["num_kv_groups"]
    qkv = _qkv_file(
        tmp_path,
        _heads(case["queries"], heads),
        _heads(case["keys"], groups),
        _heads(case["values"], groups),
    )
    flags = ["--qkv", qkv, "-m", "causal", *_rope_flags(case["rope"])]
    if args.get("qk_norm"):
        flags.append("--qk-norm")
    _close(_values(attn, "weights", *flags), case["attn_weights"], FLOAT32_TABLES)
    _close(_values(attn, "context", *flags), case["heads_context"], FLOAT32_TABLES)


def _score_flags(tmp_path: Path, case: dict[str, Any]) -> list[str]:
    """The --qkv file and flags of a score-modifier case (q, k, v: H=4, T=6, d=8)."""
    heads = case.get("num_heads", 4)
    if heads == 4:
        q, k, v = SCORE_INPUTS["q"], SCORE_INPUTS["k"], SCORE_INPUTS["v"]
    else:
        q, k, v = (np.array(SCORE_INPUTS[n])[:heads] for n in ("q12", "k12", "v12"))
    flags = ["--qkv", _qkv_file(tmp_path, q, k, v)]
    name = case["name"]
    if name != "no_mask" and not name.endswith("no_mask"):
        flags += ["-m", "causal"]
    if "softcap" in case:
        flags += ["--softcap", str(case["softcap"])]
    if name.startswith("alibi"):
        flags.append("--alibi")
    if "sinks" in case:
        logits = ["-inf" if x is None else str(float(x)) for x in case["sinks"]]
        flags += ["--sink-logits", ",".join(logits)]
    if "window" in case:
        flags += ["--window", str(case["window"])]
    if "scale" in case and name != "gemma4_like":
        flags += ["--scale", repr(case["scale"])]
    if name.startswith(("qk_norm", "qwen3")):
        flags.append("--qk-norm")
    if name.startswith("qwen3"):
        flags += ["--rope", "--rope-theta", "1000000"]
    return flags


EXACT = ["causal", "no_mask", "softcap_50", "softcap_2", "softcap_2_no_mask", "alibi_h4",
         "alibi_h8", "alibi_h6", "alibi_h12", "sinks", "sinks_window3", "sinks_minus_inf",
         "qk_norm_unit_float64", "scale_1", "scale_0.25", "scale_1_over_12"]  # fmt: skip
IN_FLOAT32 = ["qk_norm_unit", "qwen3_qk_norm_rope"]  # the book's norm and tables in float32


@pytest.mark.parametrize("name", EXACT + IN_FLOAT32)
def test_score_modifiers_give_the_references_weights(
    attn: Invoke, tmp_path: Path, name: str
) -> None:
    case = SCORES[name]
    flags = _score_flags(tmp_path, case)
    atol = 1e-12 if name in EXACT else FLOAT32_TABLES
    weights = np.nan_to_num(np.array(case["attn_weights"], dtype=float))
    _close(_values(attn, "weights", *flags), weights, atol)
    output = np.array(case["output"])  # (H, T, d) -> (T, H * d)
    _close(_values(attn, "context", *flags), np.concatenate(list(output), axis=1), atol)


def test_alibi_slopes_are_the_papers(attn: Invoke, tmp_path: Path) -> None:
    for heads in ("4", "8", "6", "12"):
        case = SCORES[f"alibi_h{heads}"]
        explained = attn("explain", *_score_flags(tmp_path, case), "-f", "json", terminal=True)
        steps = json.loads(explained.stdout)["steps"]
        paper = ROPE["score_modifiers"]["alibi_slopes"][heads]["paper_get_slopes_python_floats"]
        assert steps["alibi_slope"] == paper


def test_the_sinks_take_their_share(attn: Invoke, tmp_path: Path) -> None:
    case = SCORES["sinks"]
    flags = _score_flags(tmp_path, case)
    weights = np.array(_values(attn, "weights", *flags))
    _close(weights.sum(axis=-1), case["row_sums"], 1e-12)
    explained = attn("explain", *flags, "-q", "t3", "-f", "json", terminal=True)
    share = json.loads(explained.stdout)["steps"]["softmax"]["sink_share"]
    _close(share, np.array(case["sink_mass"])[:, 2], 1e-12)


@pytest.mark.parametrize("index", range(6))
def test_rope_layouts_rotate_and_score_as_the_references(
    attn: Invoke, tmp_path: Path, index: int
) -> None:
    """Split halves and interleaved pairs on the same q and k: each as its reference,
    and far apart from each other (the classic mix-up)."""
    case = ROPE["rope_layouts"]["cases"][index]
    d, theta = case["head_dim"], case["theta_base"]
    q = np.array(ROPE["rope_inputs"][f"q_hd{d}"])  # (2, 12, d)
    k = np.array(ROPE["rope_inputs"][f"k_hd{d}"])
    positions = np.arange(q.shape[1])
    for layout, expected, atol in (
        ("split", case["q_split"], FLOAT32_TABLES),
        ("interleaved", case["q_interleaved_float64"], FLOAT32_TABLES),
    ):
        rope = Rope(theta=theta, layout=layout)
        rotated = np.stack([rope.rotate(head, positions) for head in q])
        _close(rotated, expected, atol)
    qkv = _qkv_file(tmp_path, q, k, k)
    common = ["--qkv", qkv, "--rope", "--rope-theta", str(theta)]
    split = _values(attn, "scores", *common)
    interleaved = _values(attn, "scores", *common, "--rope-layout", "interleaved")
    _close(split, case["scores_split"], 1e-5)
    _close(interleaved, case["scores_interleaved"], 1e-5)
    assert np.abs(np.array(split) - np.array(interleaved)).max() > 0.1


def test_every_output_names_the_layout(attn: Invoke) -> None:
    flags = ["-m", "causal", "--d-out", "4", "--rope", "--rope-layout", "interleaved"]
    table = attn("weights", *flags, "-f", "table", terminal=True).stdout
    assert "RoPE interleaved" in table
    params = json.loads(attn("weights", *flags, "-f", "json", terminal=True).stdout)["params"]
    assert params["rope"]["layout"] == "interleaved"
    markdown = attn("context", *flags, "-f", "markdown", terminal=True).stdout
    assert "RoPE interleaved" in markdown


@pytest.mark.parametrize("index", range(4))
def test_partial_rotation_turns_the_first_dimensions_only(index: int) -> None:
    case = ROPE["partial_rotation"][index]
    d, factor = case["head_dim"], case["partial_rotary_factor"]
    x = np.array(ROPE["rope_inputs"][f"q_hd{d}"])
    positions = np.arange(x.shape[1])
    split = Rope(theta=case["theta_base"], partial=factor)
    _close(np.stack([split.rotate(h, positions) for h in x]), case["qwen35_split"]["out"], 1e-6)
    interleaved = split._replace(layout="interleaved")
    _close(
        np.stack([interleaved.rotate(h, positions) for h in x]),
        case["interleaved_partial_float64"]["out"],
        FLOAT32_TABLES,
    )
    assert split.rotary_dim(d) == case["qwen35_split"]["rotary_dim"]


def test_a_position_offset_continues_the_rotation(attn: Invoke, tmp_path: Path) -> None:
    """Tokens 5.. with --position-offset 5 turn as rows 5.. of the whole run, as after a
    KV cache of five tokens; without it they turn as rows 0..; the scores, which see
    only the distance between positions, are the same either way."""
    q = np.array(ROPE["rope_inputs"]["q_hd8"])
    k = np.array(ROPE["rope_inputs"]["k_hd8"])
    whole = _qkv_file(tmp_path, q, k, k)
    rotated = np.array(_values(attn, "queries", "--qkv", whole, "--rope"))  # (T, H * d)
    later = tmp_path / "later.npz"
    np.savez(later, q=q[:, 5:], k=k[:, 5:], v=k[:, 5:])
    offset = _values(attn, "queries", "--qkv", str(later), "--rope", "--position-offset", "5")
    _close(offset, rotated[5:], 1e-12)
    plain = np.array(_values(attn, "queries", "--qkv", str(later), "--rope"))
    assert np.abs(plain - rotated[5:]).max() > 1e-3
    scores = np.array(_values(attn, "scores", "--qkv", whole, "--rope"))
    shifted = _values(attn, "scores", "--qkv", str(later), "--rope", "--position-offset", "5")
    _close(shifted, scores[:, 5:, 5:], 1e-12)


def test_hugging_faces_llama3_rope_snapshot() -> None:
    """transformers' test_llama3_rope_numerically: LlamaConfig (head_dim 128, theta
    10000) with llama3 scaling factor 10, original context 2048, low 1, high 4; its
    expected inv_freq is written to 5 significant digits."""
    snapshot = next(s for s in ROPE["hf_inv_freq_snapshots"] if "llama3" in s["test"])
    expected = np.array(snapshot["expected_inv_freq_as_written"])
    config = snapshot["book_call"]["freq_config"]
    scaling = Llama3Scaling(
        config["factor"],
        config["low_freq_factor"],
        config["high_freq_factor"],
        config["original_context_length"],
    )
    inv_freq = Rope(theta=10_000.0, scaling=scaling).inv_freq(128, np.dtype(np.float64))
    np.testing.assert_allclose(inv_freq, expected, rtol=5e-5)
    plain = Rope(theta=10_000.0).inv_freq(128, np.dtype(np.float64))
    assert np.abs(plain - expected).max() > 1e-3  # the scaling is what makes them equal


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--rope-theta", "500000"], "--rope-theta has no effect without --rope"),
        (["--rope", "--rope-factor", "32"], "without --rope-scaling llama3"),
        (["--rope", "--rope-scaling", "yarn"], "not a scaling attn knows"),
        (["--rope", "--rope-layout", "halves"], "is not a layout"),
        (["--rope", "--rope-partial", "0"], "not a fraction"),
        (["--rope", "--d-out", "3"], "even number"),
        (["--alibi"], "add --mode causal"),
        (["-m", "causal", "--alibi", "--rope"], "drop one"),
        (["--softcap", "0"], "is not a cap"),
        (["-m", "causal", "--sink-logits", "1,2"], "2 logits for 1 heads"),
        (["--scale", "x"], "is not a number"),
    ],
)
def test_bad_position_and_modifier_settings(attn: Invoke, args: list[str], fragment: str) -> None:
    result = attn("context", "-m", "trainable", *args, "-f", "json", terminal=True)
    if "-m" in args:
        result = attn("context", *args, "-f", "json", terminal=True)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("index", range(2))
def test_the_gated_attention_of_the_book(attn: Invoke, tmp_path: Path, index: int) -> None:
    """GatedMultiHeadAttention (ch04/08_deltanet) draws W_query, W_gate, W_key, W_value,
    out_proj, and multiplies the heads' context by sigmoid(x @ W_gate) before out_proj."""
    case = ROPE["gated_attention"][index]
    args = case["args"]
    flags = [_input(tmp_path, case["input"]), "-m", "causal", "--init", "linear", "--gate"]
    flags += ["--seed", str(case["seed"]), "--d-out", str(args["d_out"])]
    flags += ["--heads", str(args["num_heads"])]
    _close(_values(attn, "weights", *flags), case["attn_weights"], 1e-12)
    _close(_values(attn, "context", *flags), case["context_vecs"], 1e-12)
    explained = attn("explain", *flags, "-q", "3", "-f", "json", terminal=True)
    steps = json.loads(explained.stdout)["steps"]
    _close(steps["gate"], case["gate"][3], 1e-12)
    _close(steps["gated"], case["heads_context_gated"][3], 1e-12)
    assert list(steps["trainable_weights"])[1:5] == ["W_query", "W_gate", "W_key", "W_value"]
    wrong = attn("context", "-m", "causal", "--gate", "--kv-groups", "1", terminal=True)
    assert wrong.exit_code == 2
    assert "GatedMultiHeadAttention" in wrong.stderr


def test_decoding_with_rope_as_the_books_cached_llama3(attn: Invoke, tmp_path: Path) -> None:
    """The book's cached Llama 3 (kv_cache/llama3.py) fed 5 tokens, then one at a time:
    each step's rows and cache length, RoPE at absolute positions (start_pos)."""
    case = ROPE["attention_with_rope_kv_decoding"][0]
    full = MODULES[case["same_weights_and_output_as"]]
    run = next(r for r in case["runs"] if r["schedule"] == "5+1x7")
    args = case["args"]
    flags = [_input(tmp_path, case["input"]), "--init", "linear", "--seed", str(case["seed"])]
    flags += ["--d-out", str(args["d_out"]), "--heads", str(args["num_heads"])]
    flags += ["--kv-groups", str(args["num_kv_groups"]), *_rope_flags(full["rope"])]
    result = attn("decode", *flags, "--prefill", "5", "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    assert len(steps) == len(run["steps"])
    for ours, theirs in zip(steps, run["steps"], strict=True):
        assert ours["fed"] == list(range(*theirs["tokens"]))  # [start, stop)
        assert ours["cache"]["tokens"] == theirs["cache_len"]
        _close(ours["context"], theirs["context_rows"], FLOAT32_TABLES)


def test_a_weights_files_norms_and_sinks_are_used(attn: Invoke, tmp_path: Path) -> None:
    """q_norm.scale and k_norm.scale (Qwen3's state_dict names) and `sinks` (gpt-oss's)
    from a weights file. The file's projections pick the recorded q, k, v out of the
    inputs (queries [q | 0], keys and values [k | v] by --kv), so torch's numbers for
    random norm weights and per-head sinks apply."""
    T, D = 6, 32
    q, k, v = (np.array(SCORE_INPUTS[n]).transpose(1, 0, 2).reshape(T, D) for n in "qkv")
    eye, zero = np.eye(D), np.zeros((D, D))
    tokens = [f"t{i}" for i in range(T)]
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps({"tokens": tokens, "embeddings": np.hstack([q, 0 * q]).tolist()}))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"tokens": tokens, "embeddings": np.hstack([k, v]).tolist()}))
    state: dict[str, Any] = {
        "layout": "xw",
        "W_query": np.vstack([eye, zero]).tolist(),
        "W_key": np.vstack([eye, zero]).tolist(),
        "W_value": np.vstack([zero, eye]).tolist(),
    }
    for name, case_name in (("q_norm", "qk_norm_random_float64"), ("sinks", "sinks")):
        case = SCORES[case_name]
        extra = (
            {"q_norm.scale": case["q_weight"], "k_norm.scale": case["k_weight"]}
            if name == "q_norm"
            else {"sinks": case["sinks"]}
        )
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**state, **extra}), encoding="utf-8")
        flags = [str(queries), "--kv", str(keys), "-m", "causal", "--weights", str(path)]
        flags += ["--heads", "4"]
        _close(_values(attn, "weights", *flags), case["attn_weights"], 1e-12)
        output = np.concatenate(list(np.array(case["output"])), axis=1)
        _close(_values(attn, "context", *flags), output, 1e-12)
    both = attn("context", *flags, "--sink-logits", "1", "-f", "json", terminal=True)
    assert both.exit_code == 2
    assert "contradicts" in both.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--rope", "--position-offset", "99999999999999999999"], "is too large"),
        (["--latent-dim", "1000000000000"], "(W_DKV of 3 x 1000000000000, W_UK and W_UV of"),
    ],
)
def test_absurd_sizes_are_usage_errors_not_crashes(
    attn: Invoke, args: list[str], fragment: str
) -> None:
    result = attn("context", "-m", "causal", *args, "-f", "json", terminal=True)
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr
    assert result.stdout == ""

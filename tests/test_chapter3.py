"""Every number of the book's sections 3.4.2 to 3.6 and its exercises, through `attn`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attncli.rng import TorchGenerator, dropout_scale

from .conftest import BOOK, CASES, Invoke, expected, run_json

LINEAR = ["--init", "linear"]

# case id -> (attn arguments, which part of the book's printed tensor: batch item 0)
CLI_CASES: dict[str, tuple[list[str], Any]] = {
    "SelfAttention_v2_seed789": (["context", "-m", "trainable", *LINEAR, "--seed", "789"], None),
    "derived_v2_raw_scores": (["scores", "-m", "trainable", *LINEAR, "--seed", "789"], None),
    "v2_attn_weights_unmasked": (["weights", "-m", "trainable", *LINEAR, "--seed", "789"], None),
    "masked_scores_neg_inf": (["scores", "-m", "causal", *LINEAR, "--seed", "789"], None),
    "causal_softmax_of_masked": (["weights", "-m", "causal", *LINEAR, "--seed", "789"], None),
    "masked_simple_renormalized": (["weights", "-m", "causal", *LINEAR, "--seed", "789"], None),
    "dropout_causal_weights": (
        [
            "weights",
            "-m",
            "causal",
            *LINEAR,
            "--seed",
            "789",
            "--dropout",
            "0.5",
            "--dropout-seed",
            "123",
        ],
        None,
    ),
    "CausalAttention_seed123": (["context", "-m", "causal", *LINEAR], 0),
    "derived_CausalAttention_dropout05_train_seed123": (
        ["context", "-m", "causal", *LINEAR, "--dropout", "0.5"],
        0,
    ),
    "MultiHeadAttentionWrapper_seed123": (
        ["context", "-m", "causal", *LINEAR, "--heads", "2", "--wrapper"],
        0,
    ),
    "MultiHeadAttention_seed123": (["context", "-m", "causal", *LINEAR, "--heads", "2"], 0),
    "derived_MultiHeadAttention_dout4_seed123": (
        ["context", "-m", "causal", *LINEAR, "--heads", "2", "--d-out", "4"],
        0,
    ),
    "exercise_3_1": (["context", "-m", "trainable", *LINEAR], None),
    "exercise_3_2_correct": (
        ["context", "-m", "causal", *LINEAR, "--heads", "2", "--wrapper", "--d-out", "1"],
        0,
    ),
}


def book_values(case_id: str, batch_item: int | None) -> np.ndarray:
    values = expected(case_id)
    if batch_item is not None:
        values = values[batch_item]
    return np.array([[-np.inf if v == "-inf" else v for v in row] for row in values], dtype=float)


@pytest.mark.parametrize("case_id", sorted(CLI_CASES))
def test_book_number_through_the_cli(attn: Invoke, case_id: str) -> None:
    argv, batch_item = CLI_CASES[case_id]
    values = run_json(attn, *argv)["values"]
    got = np.array([[-np.inf if v is None else v for v in row] for row in values], dtype=float)
    want = book_values(case_id, batch_item)
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], atol=1e-6)


def test_the_book_prints_both_batch_items_alike() -> None:
    """The book runs a batch of two identical inputs; attn has one: item 0."""
    for case_id in ("CausalAttention_seed123", "MultiHeadAttention_seed123"):
        first, second = expected(case_id)
        assert first == second


def test_the_second_causal_attention_without_reseeding_is_the_wrappers_second_head(
    attn: Invoke,
) -> None:
    values = np.array(
        run_json(attn, "context", "-m", "causal", *LINEAR, "--heads", "2", "--wrapper")["values"]
    )
    np.testing.assert_allclose(
        values[:, 2:], expected("buffers_second_CausalAttention_no_reseed")[0], atol=1e-6
    )


def test_dropout_mask_of_section_3_5_2_via_the_library() -> None:
    keep = TorchGenerator(123).dropout_keep(36, 0.5).reshape(6, 6)
    np.testing.assert_array_equal(keep * dropout_scale(0.5), expected("dropout_ones_6x6"))


def test_causal_weights_by_masking_after_the_softmax_equal_masking_the_scores(attn: Invoke) -> None:
    """Section 3.5.1's two routes: zero the weights above the diagonal and renormalise,
    or mask the scores with -inf before the softmax."""
    unmasked = np.array(
        run_json(attn, "weights", "-m", "trainable", *LINEAR, "--seed", "789")["values"]
    )
    np.testing.assert_allclose(np.tril(unmasked), expected("masked_simple"), atol=1e-6)
    renormalised = np.tril(unmasked) / np.tril(unmasked).sum(axis=1, keepdims=True)
    causal = run_json(attn, "weights", "-m", "causal", *LINEAR, "--seed", "789")["values"]
    np.testing.assert_allclose(causal, renormalised, rtol=1e-12)


# ---------------------------------------------------------------- the stored weights, bit for bit

WEIGHT_CASES = {
    "trainable_seed123_torch_rand": ["-m", "trainable"],
    "SelfAttention_v2_seed789": ["-m", "trainable", *LINEAR, "--seed", "789"],
    "CausalAttention_seed123": ["-m", "causal", *LINEAR],
    "Exercise3_1_SelfAttention_v2_seed123": ["-m", "trainable", *LINEAR],
    "MultiHeadAttention_seed123": ["-m", "causal", *LINEAR, "--heads", "2"],
    "derived_MultiHeadAttention_dout4_seed123": [
        "-m",
        "causal",
        *LINEAR,
        "--heads",
        "2",
        "--d-out",
        "4",
    ],
    "MultiHeadAttentionWrapper_seed123": ["-m", "causal", *LINEAR, "--heads", "2", "--wrapper"],
    "Exercise3_2_wrapper_dout1_seed123": [
        "-m",
        "causal",
        *LINEAR,
        "--heads",
        "2",
        "--wrapper",
        "--d-out",
        "1",
    ],
}


def stored(case: str) -> dict[str, list[Any]]:
    """The reference's matrices for a case, keyed as attn's explain JSON names them
    (a wrapper's heads side by side, as attn applies them)."""
    weights = {k: v for k, v in BOOK["weights"][case].items() if k != "how"}
    heads = sorted({int(k.split(".")[1]) for k in weights if k.startswith("heads.")})
    out: dict[str, list[Any]] = {}
    for role in ("W_query", "W_key", "W_value"):
        if heads:  # nn.Linear rows are output dimensions: the heads stack as rows
            out[role] = [row for h in heads for row in weights[f"heads.{h}.{role}.weight"]]
        else:
            out[role] = weights.get(role) or weights[f"{role}.weight"]
    if "out_proj.weight" in weights:
        out["out_proj"] = weights["out_proj.weight"]
        out["out_proj.bias"] = weights["out_proj.bias"]
    return out


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_drawn_weights_equal_the_books_bit_for_bit(attn: Invoke, case: str) -> None:
    steps = run_json(attn, "explain", *WEIGHT_CASES[case])["steps"]
    want = stored(case)
    for role in ("W_query", "W_key", "W_value"):
        assert steps["trainable_weights"][role] == want[role], role  # float32 values, exactly
    if "out_proj" in want:
        assert steps["out_proj"]["weight"] == want["out_proj"]
        assert steps["out_proj"]["bias"] == want["out_proj.bias"]
    else:
        assert "out_proj" not in steps


def test_qkv_bias_draws_each_bias_after_its_weight(attn: Invoke) -> None:
    """nn.Linear(bias=True) draws weight then bias; the next module starts after both."""
    gen = TorchGenerator(123)
    drawn = [gen.linear(3, 2, True) for _ in range(3)]
    steps = run_json(attn, "explain", "-m", "trainable", *LINEAR, "--qkv-bias")["steps"]
    for (weight, bias), role in zip(drawn, ("query", "key", "value"), strict=True):
        assert steps["trainable_weights"][f"W_{role}"] == weight.tolist()
        assert steps["trainable_weights"][f"b_{role}"] == bias.tolist()


# ---------------------------------------------------------------- weights files


def write_json(path: Path, entries: dict[str, Any]) -> str:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


def test_weights_file_in_nn_linear_layout_from_a_state_dict(attn: Invoke, tmp_path: Path) -> None:
    state = {k: v for k, v in BOOK["weights"]["MultiHeadAttention_seed123"].items() if k != "how"}
    state["mask"] = np.triu(np.ones((6, 6)), 1).tolist()  # a CausalAttention buffer: ignored
    path = write_json(tmp_path / "mha.json", state)
    values = run_json(attn, "context", "-m", "causal", "--weights", path, "--heads", "2")["values"]
    np.testing.assert_allclose(values, expected("MultiHeadAttention_seed123")[0], atol=1e-6)


def test_weights_file_in_x_at_w_layout_chosen_by_shape(attn: Invoke, tmp_path: Path) -> None:
    weights = {
        k: v for k, v in BOOK["weights"]["trainable_seed123_torch_rand"].items() if k != "how"
    }
    path = write_json(tmp_path / "v1.json", weights)  # (3, 2) with d_in = 3: (d_in, d_out)
    values = run_json(attn, "context", "-m", "trainable", "--weights", path)["values"]
    np.testing.assert_allclose(values, expected("SelfAttention_v1_seed123"), atol=1e-6)


def test_weights_file_as_npz(attn: Invoke, tmp_path: Path) -> None:
    weights = BOOK["weights"]["SelfAttention_v2_seed789"]
    path = tmp_path / "v2.npz"
    np.savez(path, **{k: np.array(v, dtype=np.float32) for k, v in weights.items() if k != "how"})
    values = run_json(attn, "context", "-m", "trainable", "--weights", str(path))["values"]
    np.testing.assert_allclose(values, expected("SelfAttention_v2_seed789"), atol=1e-6)


def test_weights_file_of_a_wrapper_knows_its_heads(attn: Invoke, tmp_path: Path) -> None:
    state = {
        k: v for k, v in BOOK["weights"]["MultiHeadAttentionWrapper_seed123"].items() if k != "how"
    }
    path = write_json(tmp_path / "wrapper.json", state)
    parsed = run_json(attn, "context", "-m", "causal", "--weights", path)
    np.testing.assert_allclose(
        parsed["values"], expected("MultiHeadAttentionWrapper_seed123")[0], atol=1e-6
    )
    assert parsed["params"]["heads"] == 2
    assert parsed["params"]["weights"] == path


def test_weights_file_with_dropout_draws_from_the_seed_start(attn: Invoke, tmp_path: Path) -> None:
    weights = {k: v for k, v in BOOK["weights"]["SelfAttention_v2_seed789"].items() if k != "how"}
    path = write_json(tmp_path / "v2.json", weights)
    from_file = run_json(
        attn, "weights", "-m", "causal", "--weights", path, "--dropout", "0.5", "--seed", "123"
    )
    np.testing.assert_allclose(from_file["values"], expected("dropout_causal_weights"), atol=1e-6)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            {
                "W_query": np.eye(3).tolist(),
                "W_key": np.eye(3).tolist(),
                "W_value": np.eye(3).tolist(),
            },
            'its layout is ambiguous; add "layout": "linear"',
        ),
        (
            {
                "W_query": [[1.0, 2.0]] * 3,
                "W_key": [[1.0, 2.0]] * 3,
                "W_value": [[1.0, 2.0, 3.0]] * 3,
            },
            "W_value has shape (3, 3); expected (3, 2) (xw layout, d_in = 3, d_out = 2)",
        ),
        ({"W_query": [[1.0, 2.0]] * 3, "W_key": [[1.0, 2.0]] * 3}, "no W_value"),
        ({"W_query": [[1.0, 2.0]] * 3, "W_kee": [[1.0]]}, "unknown entry 'W_kee'"),
        (
            {"W_query": [[1.0, 2.0]] * 4, "W_key": [[1.0]], "W_value": [[1.0]]},
            "expected (3, d_out) or nn.Linear's (d_out, 3)",
        ),
        ({"layout": "sideways", "W_query": [[1.0]]}, '"layout" is a string ("sideways")'),
    ],
)
def test_bad_weights_files_say_which_matrix_and_what_shape(
    attn: Invoke, tmp_path: Path, entries: dict[str, Any], message: str
) -> None:
    path = write_json(tmp_path / "w.json", entries)
    result = attn("context", "-m", "trainable", "--weights", path, terminal=True)
    assert result.exit_code == 1, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_weights_layout_key_settles_a_square_matrix(attn: Invoke, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    W = {name: rng.normal(size=(3, 3)) for name in ("W_query", "W_key", "W_value")}
    xw = run_json(
        attn,
        "context",
        "-m",
        "trainable",
        "--weights",
        write_json(tmp_path / "a.json", {"layout": "xw", **{k: v.tolist() for k, v in W.items()}}),
    )
    linear = run_json(
        attn,
        "context",
        "-m",
        "trainable",
        "--weights",
        write_json(
            tmp_path / "b.json", {"layout": "linear", **{k: v.T.tolist() for k, v in W.items()}}
        ),
    )
    np.testing.assert_allclose(xw["values"], linear["values"], rtol=1e-15)


# ---------------------------------------------------------------- explain


def test_explain_json_holds_the_books_steps(attn: Invoke) -> None:
    parsed = run_json(attn, "explain", "-m", "trainable")
    assert parsed["query"] == {"index": 1, "token": "journey"}  # the book's x^(2) by default
    steps = parsed["steps"]
    np.testing.assert_allclose(steps["x_query"], BOOK["inputs"]["matrix"][1])
    np.testing.assert_allclose(steps["query"], expected("trainable_query_2"), atol=1e-6)
    np.testing.assert_allclose(steps["keys"], expected("derived_keys"), atol=1e-6)
    np.testing.assert_allclose(steps["values"], expected("derived_values"), atol=1e-6)
    np.testing.assert_allclose(steps["scores"], expected("trainable_attn_scores_2"), atol=1e-6)
    assert steps["scale"] == 2**-0.5
    np.testing.assert_allclose(
        steps["scaled"], np.array(expected("trainable_attn_scores_2")) / 2**0.5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.array(steps["softmax"]["exp"]) / steps["softmax"]["sum"], steps["weights"], rtol=1e-15
    )
    np.testing.assert_allclose(steps["weights"], expected("trainable_attn_weights_2"), atol=1e-6)
    np.testing.assert_allclose(steps["context"], expected("trainable_context_vec_2"), atol=1e-6)
    assert steps["output"] == steps["context"]


def test_explain_causal_shows_the_mask_and_masked_scores_as_null(attn: Invoke) -> None:
    steps = run_json(attn, "explain", "-m", "causal", *LINEAR, "--seed", "789", "-q", "journey")[
        "steps"
    ]
    assert steps["masked"] == [False, False, True, True, True, True]
    assert steps["scaled"][2:] == [None] * 4
    np.testing.assert_allclose(steps["weights"], expected("causal_softmax_of_masked")[1], atol=1e-6)


def test_explain_multi_head_with_dropout_has_every_step_per_head(attn: Invoke) -> None:
    steps = run_json(
        attn,
        "explain",
        "-m",
        "causal",
        *LINEAR,
        "--heads",
        "2",
        "--d-out",
        "4",
        "--dropout",
        "0.5",
        "-q",
        "5",
    )["steps"]
    assert len(steps["scores"]) == 2
    assert len(steps["context"]) == 2
    assert len(steps["dropout"]["keep"]) == 2
    used = np.array(steps["dropout"]["weights"])
    np.testing.assert_allclose(
        used, np.array(steps["weights"]) * np.array(steps["dropout"]["keep"]) * 2.0
    )
    np.testing.assert_allclose(steps["heads_context"], np.concatenate(steps["context"]))
    out = (
        np.array(steps["heads_context"]) @ np.array(steps["out_proj"]["weight"]).T
        + steps["out_proj"]["bias"]
    )
    np.testing.assert_allclose(steps["output"], out, rtol=1e-12)
    context = run_json(
        attn, "context", "-m", "causal", *LINEAR, "--heads", "2", "--d-out", "4", "--dropout", "0.5"
    )
    np.testing.assert_allclose(steps["output"], context["values"][5], rtol=1e-12)


def test_explain_for_people_walks_through_the_numbers(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = attn("explain", "-m", "trainable", terminal=True).stdout
    for fragment in (
        "attn explain · trainable · query 'journey' (#1)",
        "0.4306×0.3669 + 1.4551×0.7646 = 1.2705",  # q · k_1, term by term
        "Scaling by 1/√d_k = 1/√2 = 0.7071",
        "= [0.3061, 0.8210]",  # the book's context_vec_2
    ):
        assert fragment in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_explain_elides_long_inputs_but_keeps_the_query(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    path = tmp_path / "long.json"
    path.write_text(
        json.dumps(np.random.default_rng(0).normal(size=(40, 16)).tolist()), encoding="utf-8"
    )
    text = attn("explain", str(path), "-m", "causal", "-q", "20", terminal=True).stdout
    inputs = text.split("2. The trainable weights")[0]
    listed = [line.split()[1] for line in inputs.splitlines() if line.startswith("│  x")]
    assert listed == ["x1", "x2", "x3", "x4", "x5", "x21", "x36", "x37", "x38", "x39", "x40"]
    assert "⋮ 15 more" in inputs
    assert "⋮ 14 more" in inputs
    assert "(-0.7179)×(-2.2097) + (-2.0354)×(-3.4365) = 8.5811" in text  # q · k_1, d_out = 2
    assert max(len(line) for line in text.splitlines()) <= 80
    assert len(text.splitlines()) < 300
    wide = attn(
        "explain", str(path), "-m", "trainable", "--d-out", "16", "-q", "3", terminal=True
    ).stdout
    assert "Σ of 16 products" in wide


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["context", "-m", "causal", "--heads", "2", "--d-out", "3"],
            "--d-out 3 does not split into --heads 2",
        ),
        (["weights", "-m", "causal", "--dropout", "1.5"], "--dropout 1.5 is not a probability"),
        (["weights", "-m", "trainable", "--qkv-bias"], "--qkv-bias needs --init linear"),
        (["weights", "--heads", "2"], "--heads has no effect in plain mode"),
        (["weights", "--dropout", "0.1"], "--dropout has no effect in plain mode"),
        (
            ["weights", "-m", "causal", "--dropout-seed", "1"],
            "--dropout-seed has no effect without --dropout",
        ),
        (
            ["scores", "-m", "causal", "--dropout", "0.5"],
            "--dropout has no effect on `attn scores`",
        ),
        (["context", "-m", "causal", "--wrapper"], "--wrapper has no effect with one head"),
        (
            ["context", "-m", "causal", "--weights", "w.json", "--d-out", "4"],
            "--d-out has no effect with --weights",
        ),
        (
            ["context", "-m", "causal", "--weights", "w.json", "--seed", "4"],
            "--seed has no effect with --weights unless it seeds --dropout",
        ),
        (
            ["explain", "-f", "csv"],
            "attn explain writes panels (-f table, svg or html) or one JSON object (-f json), not csv",
        ),
        (["context", "-m", "causal", "--heads", "0"], "--heads 0 is too small"),
    ],
)
def test_chapter3_usage_errors(attn: Invoke, argv: list[str], message: str) -> None:
    result = attn(*argv, terminal=True)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_weights_file_is_bad_data(attn: Invoke, tmp_path: Path) -> None:
    result = attn(
        "context", "-m", "causal", "--weights", str(tmp_path / "nope.json"), terminal=True
    )
    assert result.exit_code == 1
    assert "nope.json: no such file" in result.stderr


def test_cases_this_file_covers_exist() -> None:
    for case_id in CLI_CASES:
        assert case_id in CASES

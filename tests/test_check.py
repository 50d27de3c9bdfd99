"""`attn check`: each mistake of the catalogue, made the way a reader makes it (written
here in numpy, independently of attncli/mistakes.py, with torch's draws from
attncli.rng), fed through the command line; the right mistake must be named and no
other. Right numbers (full precision, float32, printed at 4 decimals, pasted as torch
prints them, the book's own printed tensors) must be reported as right."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from attncli.embeddings import BOOK_EMBEDDINGS
from attncli.rng import TorchGenerator
from tests.conftest import BOOK, Invoke

X_BOOK = np.array(BOOK_EMBEDDINGS)  # the book's six tokens, (6, 3)
Array = NDArray[Any]


# ---------------------------------------------------------------- a reader's code


def _softmax(x: Array, axis: int = -1) -> Array:
    """torch.softmax: a slice of -inf only gives NaN."""
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        result: Array = e / e.sum(axis=axis, keepdims=True)
    return result


def reader(
    X: Array = X_BOOK,
    *,
    mode: str = "plain",
    d_out: int = 2,
    seed: int = 123,
    init: str = "rand",
    qkv_bias: bool = False,
    heads: int = 1,
    kv_groups: int | None = None,
    dropout: float = 0.0,
    order: tuple[str, ...] | None = None,
    rope: bool = False,
    rope_layout: str = "split",
    mistakes: Collection[str] = (),
    dtype: type = np.float64,
) -> dict[str, Array]:
    """The book's SelfAttention_v1 / CausalAttention / MultiHeadAttention /
    GroupedQueryAttention forward pass, as a reader writes it in numpy (one batch item),
    with the mistakes named in `mistakes` made on purpose. torch.manual_seed(seed) and
    the modules' draws come from attncli.rng.TorchGenerator, as torch makes them."""
    T, d_in = X.shape
    X = X.astype(dtype)
    if "bias_missing" in mistakes or "bias_extra" in mistakes:
        qkv_bias = "bias_extra" in mistakes  # nn.Linear(d_in, d_out, bias=...)
    H = heads
    G = kv_groups or heads
    grouped = kv_groups is not None
    gen = TorchGenerator(seed)
    if mode == "plain":
        queries, keys, values = X, X, X
        H = G = 1
        hd = d_in
    else:
        hd = d_out // heads
        widths = {"W_query": d_out, "W_key": G * hd, "W_value": G * hd}
        drawn = order or (("W_key", "W_value", "W_query") if grouped else tuple(widths))
        W: dict[str, Array] = {}
        b: dict[str, Array | None] = {}
        for name in drawn:
            if init == "rand":
                if "x_at_W_T" in mistakes:  # W = torch.rand(d_out, d_in); x @ W.T
                    W[name] = gen.rand(widths[name], d_in).astype(dtype).T
                else:  # W = torch.rand(d_in, d_out); x @ W
                    W[name] = gen.rand(d_in, widths[name]).astype(dtype)
                b[name] = None
            else:  # nn.Linear(d_in, d_out, bias=...): weight (d_out, d_in), x @ weight.T
                weight, bias = gen.linear(d_in, widths[name], qkv_bias)
                W[name] = weight.astype(dtype) if "x_at_W" in mistakes else weight.astype(dtype).T
                b[name] = None if bias is None else bias.astype(dtype)
        out_proj = None
        if heads > 1 or grouped:
            weight, bias = gen.linear(d_out, d_out, not grouped)
            out_proj = (weight.astype(dtype), None if bias is None else bias.astype(dtype))

        def project(name: str) -> Array:
            y: Array = X @ W[name]
            bias = b[name]
            return y if bias is None else y + bias

        queries, keys, values = project("W_query"), project("W_key"), project("W_value")

    def split(y: Array, n: int) -> Array:
        if "split_without_transpose" in mistakes:
            return y.reshape(n, T, hd)  # view(b, num_heads, num_tokens, head_dim)
        return y.reshape(T, n, hd).transpose(1, 0, 2)  # view(...).transpose(1, 2)

    q, k, v = split(queries, H), split(keys, G), split(values, G)
    if rope:  # Llama's apply_rope, the layout the reader used
        other = {"split": "interleaved", "interleaved": "split"}[rope_layout]
        layout = other if "rope_other_layout" in mistakes else rope_layout
        q = _reader_rope(q, layout)
        if "rope_not_on_keys" not in mistakes:
            k = _reader_rope(k, layout)
        if "rope_on_values" in mistakes:
            v = _reader_rope(v, layout)
    if G < H:
        if "repeat_not_interleave" in mistakes:
            k, v = np.tile(k, (H // G, 1, 1)), np.tile(v, (H // G, 1, 1))
        else:
            k, v = np.repeat(k, H // G, axis=0), np.repeat(v, H // G, axis=0)
    scores = q @ k.transpose(0, 2, 1)  # (H, T, T)
    if "keys_at_queries" in mistakes:
        scores = k @ q.transpose(0, 2, 1)
    keep = None
    if dropout:
        keep = gen.dropout_keep(H * T * T, dropout).reshape(H, T, T)
        kept_scale = np.float32(1) / np.float32(1 - dropout)
    if "dropout_on_scores" in mistakes:
        assert keep is not None
        scores = scores * keep * dtype(kept_scale)
    if mode == "causal":
        diagonal = 0 if "diagonal_masked" in mistakes else 1
        mask = np.triu(np.ones((T, T)), k=diagonal).astype(bool)
        if "masked_with_zero" in mistakes:
            scores = np.where(mask, dtype(0), scores)
        elif "mask_missing" in mistakes or "mask_after_softmax" in mistakes:
            pass
        else:
            scores = np.where(mask, dtype(-np.inf), scores)
    if mode == "plain":
        scale = 1.0 / math.sqrt(d_in) if "scaled_in_plain" in mistakes else 1.0
    elif "no_scaling" in mistakes:
        scale = 1.0
    elif "scaled_by_d_in" in mistakes:
        scale = 1.0 / math.sqrt(d_in)
    elif "scaled_by_d_out" in mistakes:
        scale = 1.0 / math.sqrt(d_out)
    elif "scaled_by_d" in mistakes:
        scale = 1.0 / hd
    else:
        scale = 1.0 / math.sqrt(hd)
    axis = -2 if "softmax_dim0" in mistakes else -1
    weights = _softmax(scores * dtype(scale), axis=axis)
    if "mask_after_softmax" in mistakes:
        weights = weights * np.tril(np.ones((T, T)))  # masked_simple, not renormalised
    if keep is not None and "dropout_on_scores" not in mistakes:
        rescale = 1.0 if "dropout_not_rescaled" in mistakes else kept_scale
        weights = weights * keep * dtype(rescale)
    context = weights @ v  # (H, T, hd)
    if "join_without_transpose" in mistakes:
        joined = context.reshape(T, H * hd)
    else:
        joined = context.transpose(1, 0, 2).reshape(T, H * hd)
    if mode != "plain" and out_proj is not None:
        joined = joined @ out_proj[0].T + (0 if out_proj[1] is None else out_proj[1])
    shown_scores = scores * dtype(scale) if "scores_scaled" in mistakes else scores
    one = H == 1
    return {
        "queries": queries,
        "keys": keys,
        "values": values,
        "scores": shown_scores[0] if one else shown_scores,
        "weights": weights[0] if one else weights,
        "context": joined,
    }


def _reader_rope(x: Array, layout: str, theta: float = 10_000.0) -> Array:
    """RoPE as a reader writes it from the book's llama3.py: inv_freq = 1/theta^(2k/d),
    angles p * inv_freq; split halves x*cos + [-x2, x1]*sin, or interleaved pairs."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2) / d)
    angles = np.arange(x.shape[-2])[:, None] * inv_freq[None, :]  # (T, d/2)
    cos, sin = np.cos(angles), np.sin(angles)
    if layout == "split":
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        turned: Array = x * np.concatenate([cos, cos], 1) + np.concatenate([-x2, x1], -1) * (
            np.concatenate([sin, sin], 1)
        )
        return turned
    out = x.copy()
    even, odd = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def _flags(settings: dict[str, Any]) -> list[str]:
    """The attn flags of a reader's settings."""
    flags = []
    for name, value in settings.items():
        if name in ("order", "mistakes", "dtype"):
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value not in (False, None):
            flags += [flag, str(value)]
    return flags


def _json_of(stages: dict[str, Array], which: Collection[str]) -> str:
    """The stages as a JSON object, as Python's json.dumps writes them (NaN too)."""
    return json.dumps({name: np.asarray(stages[name]).tolist() for name in which})


def _check(attn: Invoke, path: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    result = attn("check", str(path), *flags, "-f", "json", terminal=True)
    assert result.stderr == "", result.stderr
    assert result.exit_code in (0, 1)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def _named(report: dict[str, Any]) -> list[list[str]]:
    return [[m["code"] for m in d["mistakes"]] for d in report["diagnoses"]]


# ---------------------------------------------------------------- every mistake, named

# (mistake, the settings the reader meant, the stages given)
MISTAKE_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("softmax_dim0", {}, ("weights", "context")),
    ("softmax_dim0", {"mode": "causal"}, ("weights",)),
    ("no_scaling", {"mode": "trainable"}, ("weights", "context")),
    ("scaled_by_d_in", {"mode": "trainable"}, ("weights", "context")),
    ("scaled_in_plain", {}, ("weights",)),
    ("scaled_by_d_out", {"mode": "causal", "init": "linear", "heads": 3, "d_out": 6}, ("weights",)),
    ("scaled_by_d", {"mode": "trainable"}, ("weights", "context")),
    ("x_at_W_T", {"mode": "trainable"}, ("queries", "keys", "values", "context")),
    ("x_at_W", {"mode": "trainable", "init": "linear", "d_out": 3}, ("context",)),
    ("bias_missing", {"mode": "causal", "init": "linear", "qkv_bias": True}, ("context",)),
    ("bias_extra", {"mode": "causal", "init": "linear"}, ("weights", "context")),
    (
        "split_without_transpose",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4},
        ("weights", "context"),
    ),
    (
        "join_without_transpose",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4},
        ("weights", "context"),
    ),
    (
        "repeat_not_interleave",
        {"mode": "causal", "init": "linear", "heads": 4, "d_out": 8, "kv_groups": 2},
        ("weights", "context"),
    ),
    (  # (with the book's heads, W_key drawn first gives the same numbers: tested below)
        "keys_at_queries",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4, "kv_groups": 1},
        ("scores", "weights"),
    ),
    ("diagonal_masked", {"mode": "causal"}, ("weights", "context")),
    ("mask_missing", {"mode": "causal", "init": "linear"}, ("weights",)),
    ("masked_with_zero", {"mode": "causal"}, ("scores", "weights", "context")),
    ("mask_after_softmax", {"mode": "causal"}, ("weights", "context")),
    (
        "dropout_not_rescaled",
        {"mode": "causal", "init": "linear", "dropout": 0.5, "heads": 2, "d_out": 4},
        ("weights", "context"),
    ),
    ("dropout_on_scores", {"mode": "causal", "init": "linear", "dropout": 0.3}, ("weights",)),
    (
        "rope_other_layout",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 8, "rope": True},
        ("weights", "context"),
    ),
    (
        "rope_other_layout",
        {
            "mode": "causal",
            "init": "linear",
            "heads": 2,
            "d_out": 8,
            "rope": True,
            "rope_layout": "interleaved",
        },
        ("weights",),
    ),
    (
        "rope_on_values",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 8, "rope": True},
        ("context",),
    ),
    (
        "rope_not_on_keys",
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 8, "rope": True},
        ("weights", "context"),
    ),
]


@pytest.mark.parametrize(
    ("mistake", "settings", "given"),
    MISTAKE_CASES,
    ids=[f"{m}-{'-'.join(_flags(s)) or 'plain'}" for m, s, _ in MISTAKE_CASES],
)
def test_each_mistake_is_named_and_no_other(
    attn: Invoke, tmp_path: Path, mistake: str, settings: dict[str, Any], given: tuple[str, ...]
) -> None:
    right = reader(**settings)
    theirs = reader(**settings, mistakes={mistake})
    differing = [s for s in given if not np.array_equal(theirs[s], right[s], equal_nan=True)]
    assert differing, f"{mistake} changes none of {given} here: a useless case"
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, given), encoding="utf-8")
    status, report = _check(attn, path, *_flags(settings))
    assert (status, report["status"]) == (1, "differs")
    assert _named(report) == [[mistake]]
    assert report["diagnoses"][0]["reproduces"] == list(given)
    assert report["first_difference"] == differing[0]


def test_the_readers_right_code_matches_attn(attn: Invoke, tmp_path: Path) -> None:
    """The reader's code without mistakes gives attn's numbers in every case above: the
    cases test the mistakes, not a difference of the code."""
    every = ("queries", "keys", "values", "scores", "weights", "context")
    for _, settings, _ in MISTAKE_CASES:
        path = tmp_path / "right.json"
        path.write_text(_json_of(reader(**settings), every), encoding="utf-8")
        status, report = _check(attn, path, *_flags(settings))
        assert (status, report["status"], report["diagnoses"]) == (0, "matches", []), settings


@pytest.mark.parametrize(
    ("order", "settings"),
    [
        (("W_query", "W_value", "W_key"), {"mode": "trainable"}),
        (("W_value", "W_key", "W_query"), {"mode": "causal", "init": "linear", "heads": 2}),
        (  # chapter 3's order where GroupedQueryAttention draws W_key, W_value first
            ("W_query", "W_key", "W_value"),
            {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4, "kv_groups": 1},
        ),
    ],
)
def test_weights_created_in_another_order(
    attn: Invoke, tmp_path: Path, order: tuple[str, ...], settings: dict[str, Any]
) -> None:
    theirs = reader(**settings, order=order)
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("weights", "context")), encoding="utf-8")
    status, report = _check(attn, path, *_flags(settings))
    code = "order_" + "".join(name[2] for name in order)
    assert status == 1
    assert _named(report) == [[code]]


def test_swapped_query_and_key_weights_are_the_transposed_scores(
    attn: Invoke, tmp_path: Path
) -> None:
    """W_key drawn before W_query makes queries @ keys.T what keys @ queries.T gives:
    both mistakes reproduce the numbers, and both are named."""
    theirs = reader(mode="trainable", order=("W_key", "W_query", "W_value"))
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("weights", "context")), encoding="utf-8")
    _, report = _check(attn, path, "--mode", "trainable")
    assert sorted(_named(report)) == [["keys_at_queries"], ["order_kqv"]]


def test_two_mistakes_together(attn: Invoke, tmp_path: Path) -> None:
    """Heads split and joined with view alone: neither mistake alone gives the numbers;
    the pair does."""
    settings = {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4}
    theirs = reader(**settings, mistakes={"split_without_transpose", "join_without_transpose"})
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("weights", "context")), encoding="utf-8")
    status, report = _check(attn, path, *_flags(settings))
    assert status == 1
    assert _named(report) == [["split_without_transpose", "join_without_transpose"]]


def test_later_stages_follow_from_the_first_difference(attn: Invoke, tmp_path: Path) -> None:
    theirs = reader(mode="causal", mistakes={"no_scaling"})
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("queries", "scores", "weights", "context")), "utf-8")
    _, report = _check(attn, path, "--mode", "causal")
    stages = {s["stage"]: s for s in report["stages"]}
    assert [stages[s]["matches"] for s in ("queries", "scores", "weights", "context")] == [
        True,
        True,
        False,
        False,
    ]
    assert report["first_difference"] == "weights"
    assert stages["context"]["follows"] is True
    # a context that is wrong on its own as well does not follow
    theirs["context"] = theirs["context"] + 0.5
    path.write_text(_json_of(theirs, ("weights", "context")), "utf-8")
    _, report = _check(attn, path, "--mode", "causal")
    assert report["stages"][1]["follows"] is False
    assert all(d["misses"] == ["context"] for d in report["diagnoses"])
    assert _named(report) == [["no_scaling"]]


def test_nothing_known_reproduces_made_up_numbers(attn: Invoke, tmp_path: Path) -> None:
    theirs = reader(mode="causal")
    theirs["weights"] = np.tril(np.full((6, 6), 0.3))
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("weights",)), "utf-8")
    status, report = _check(attn, path, "--mode", "causal")
    assert (status, report["diagnoses"]) == (1, [])
    assert report["mistakes_tried"] > 20  # pairs too
    table = attn("check", str(path), "--mode", "causal", "-f", "table", terminal=True)
    assert table.exit_code == 1
    assert "reproduces your numbers. Check the settings first" in " ".join(table.stdout.split())


# ---------------------------------------------------------------- the numbers are right


def test_benign_float32_rounding_says_the_numbers_are_right(attn: Invoke, tmp_path: Path) -> None:
    """Scores computed in float32 (torch's default), the rest in float64: the weights
    differ from float64's beyond its rounding, by float32's, and they are right."""
    scores32 = reader(mode="trainable", dtype=np.float32)["scores"].astype(np.float64)
    weights = _softmax(scores32 / math.sqrt(2))
    assert not np.allclose(weights, reader(mode="trainable")["weights"], rtol=0, atol=1e-9)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"weights": weights.tolist()}), "utf-8")
    status, report = _check(attn, path, "-m", "trainable")
    assert (status, report["status"]) == (0, "matches")
    assert _named(report) == [["float32"]]
    assert report["stages"][0]["precision"] == "float64"


def test_scaled_scores_are_right_scores(attn: Invoke, tmp_path: Path) -> None:
    theirs = reader(mode="trainable", mistakes={"scores_scaled"})
    path = tmp_path / "mine.json"
    path.write_text(_json_of(theirs, ("scores",)), "utf-8")
    status, report = _check(attn, path, "-m", "trainable")
    assert (status, _named(report)) == (0, [["scores_scaled"]])


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4},
        {"mode": "causal", "init": "linear", "heads": 4, "d_out": 8, "kv_groups": 2},
        {"mode": "causal", "init": "linear", "dropout": 0.5, "heads": 2, "d_out": 4},
    ],
)
def test_float32_numbers_match(attn: Invoke, tmp_path: Path, settings: dict[str, Any]) -> None:
    """A float32 computation, saved as float32 (.npz), as JSON numbers (torch's tolist())
    and as float64 (.double()): right, to float32's precision."""
    every = ("queries", "keys", "values", "scores", "weights", "context")
    stages = reader(**settings, dtype=np.float32)
    npz = tmp_path / "mine.npz"
    np.savez(npz, **{name: stages[name] for name in every})
    as_json = tmp_path / "mine.json"
    as_json.write_text(_json_of(stages, every), "utf-8")
    wide = tmp_path / "wide.npz"
    np.savez(wide, **{name: stages[name].astype(np.float64) for name in every})
    for path in (npz, as_json, wide):
        status, report = _check(attn, path, *_flags(settings))
        assert (status, report["status"]) == (0, "matches"), path
        assert {s["precision"] for s in report["stages"]} == {"float32"}


def test_four_decimals_match(attn: Invoke, tmp_path: Path) -> None:
    stages = reader(mode="causal", init="linear", heads=2, d_out=4)
    rounded = {name: np.round(array, 4) for name, array in stages.items()}
    path = tmp_path / "mine.json"
    path.write_text(_json_of(rounded, ("weights", "context")), "utf-8")
    status, report = _check(attn, path, "-m", "causal", "--init", "linear", "--heads", "2",
                            "--d-out", "4")  # fmt: skip
    assert (status, report["status"]) == (0, "matches")
    assert {s["precision"] for s in report["stages"]} == {"4 decimals"}
    # one number off by 2e-4 differs, and says where
    rounded["weights"][1, 3, 2] = round(rounded["weights"][1, 3, 2] + 2e-4, 4)
    path.write_text(_json_of(rounded, ("weights",)), "utf-8")
    status, report = _check(attn, path, "-m", "causal", "--init", "linear", "--heads", "2",
                            "--d-out", "4")  # fmt: skip
    assert status == 1
    where = report["stages"][0]["where"]
    assert (where["head"], where["query"]["token"], where["key"]["token"]) == (1, "with", "starts")
    assert report["stages"][0]["differing"] == 1


def _torch_repr(array: Array, decimals: int = 4) -> str:
    """An array as torch prints it: tensor([[0.4421, 0.5931], ...]), numbers aligned."""
    cells = [f"{v:.{decimals}f}" for v in array.ravel()]
    width = max(map(len, cells))
    flat = iter(c.rjust(width) for c in cells)

    def nest(shape: tuple[int, ...], depth: int) -> str:
        if len(shape) == 1:
            return "[" + ", ".join(next(flat) for _ in range(shape[0])) + "]"
        gap = ",\n" + "\n" * (len(shape) - 2) + " " * (8 + depth)
        return "[" + gap.join(nest(shape[1:], depth + 1) for _ in range(shape[0])) + "]"

    return f"tensor({nest(array.shape, 0)}, grad_fn=<SoftmaxBackward0>)"


def test_a_pasted_torch_tensor_matches(attn: Invoke, tmp_path: Path) -> None:
    weights = reader(mode="causal", init="linear", heads=2, d_out=4)["weights"]
    text = _torch_repr(weights[np.newaxis])  # (1, 2, 6, 6): a batch of one
    flags = ["-m", "causal", "--init", "linear", "--heads", "2", "--d-out", "4"]
    result = attn("check", "-", "--stage", "weights", *flags, "-f", "json", input=text)
    assert result.exit_code == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["theirs"] == {"source": "<stdin>", "form": "a printed tensor"}
    assert report["stages"][0]["batch"] == 1
    # and a mistake pasted the same way is named
    wrong = reader(mode="causal", init="linear", heads=2, d_out=4, mistakes={"softmax_dim0"})
    result = attn("check", "-", "--stage", "weights", *flags, "-f", "json",
                  input=_torch_repr(wrong["weights"]))  # fmt: skip
    assert result.exit_code == 1
    assert _named(json.loads(result.stdout)) == [["softmax_dim0"]]


def _printed(case_id: str) -> str:
    """The tensor torch printed for a case of the book (tests/data/book_ch03.json)."""
    text = next(c for c in BOOK["cases"] if c["id"] == case_id)["printed_text"]
    start = text.index("tensor(")
    depth = 0
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0 and text[end] == ")":
            return str(text[start : end + 1])
    raise AssertionError(case_id)


@pytest.mark.parametrize(
    ("case_id", "stage", "flags"),
    [
        ("attn_weights_all", "weights", []),
        ("causal_softmax_of_masked", "weights", ["-m", "causal", "--init", "linear", "--seed", "789"]),
        ("CausalAttention_seed123", "context", ["-m", "causal", "--init", "linear"]),
        ("MultiHeadAttention_seed123", "context", ["-m", "causal", "--init", "linear", "--heads", "2"]),
        ("MultiHeadAttentionWrapper_seed123", "context",
         ["-m", "causal", "--init", "linear", "--heads", "2", "--wrapper"]),
        ("masked_scores_neg_inf", "scores", ["-m", "causal", "--init", "linear", "--seed", "789"]),
        ("dropout_causal_weights", "weights",
         ["-m", "causal", "--init", "linear", "--seed", "789", "--dropout", "0.5",
          "--dropout-seed", "123"]),
        ("trainable_attn_weights_2", "weights", ["-m", "trainable", "-q", "journey"]),
        ("SelfAttention_v2_seed789", "context", ["-m", "trainable", "--init", "linear",
                                                 "--seed", "789"]),
        ("all_context_vecs", "context", []),
    ],
)  # fmt: skip
def test_the_books_printed_tensors_are_right(
    attn: Invoke, tmp_path: Path, case_id: str, stage: str, flags: list[str]
) -> None:
    path = tmp_path / "pasted.txt"
    path.write_text(_printed(case_id), "utf-8")
    status, report = _check(attn, path, "--stage", stage, *flags)
    assert (status, report["status"]) == (0, "matches"), report["stages"][0]["max_abs_diff"]


def test_the_books_old_exercise_3_2_used_the_wrong_softmax(attn: Invoke, tmp_path: Path) -> None:
    """The solution notebook's numbers for exercise 3.2, printed by torch in scientific
    notation, came from a softmax over the wrong dimension (the README says so)."""
    path = tmp_path / "pasted.txt"
    path.write_text(_printed("exercise_3_2_as_stored"), "utf-8")
    flags = ["-m", "causal", "--init", "linear", "--heads", "2", "--wrapper", "--d-out", "1"]
    status, report = _check(attn, path, "--stage", "context", *flags)
    assert status == 1
    assert _named(report) == [["softmax_dim0"]]
    assert report["stages"][0]["precision"] == "5 significant digits"
    assert report["stages"][0]["batch"] == 2


def test_one_query_row(attn: Invoke, tmp_path: Path) -> None:
    """The book's attn_weights_2 (3.4.1), typed in at 4 decimals, for --query journey."""
    path = tmp_path / "w2.json"
    path.write_text('{"attn_weights": [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820]}', "utf-8")
    status, report = _check(attn, path, "-m", "trainable", "-q", "journey")
    assert (status, report["query"]) == (0, {"index": 1, "token": "journey"})
    # unscaled, it is a mistake the row shows too
    row = reader(mode="trainable", mistakes={"no_scaling"})["weights"][1]
    path.write_text(json.dumps({"weights": row.tolist()}), "utf-8")
    status, report = _check(attn, path, "-m", "trainable", "-q", "journey")
    assert (status, _named(report)) == (1, [["no_scaling"]])


def test_attns_own_output_is_right(attn: Invoke, tmp_path: Path) -> None:
    for command in ("queries", "keys", "values", "scores", "weights", "context"):
        for extra in ([], ["-q", "starts"]):
            flags = ["-m", "causal", "--init", "linear", "--heads", "2", "--d-out", "4", *extra]
            made = attn(command, *flags, "-f", "json", terminal=True)
            path = tmp_path / f"{command}.json"
            path.write_bytes(made.stdout_bytes)
            status, report = _check(attn, path, *flags[:-2] if extra else flags)
            assert (status, report["status"]) == (0, "matches"), (command, extra)
            assert report["query"] == ({"index": 2, "token": "starts"} if extra else None)


def test_attns_own_csv_is_right(attn: Invoke, tmp_path: Path) -> None:
    for command in ("weights", "context", "scores"):
        made = attn(command, "-m", "causal", "--heads", "2", "--d-out", "4", "-f", "csv",
                    terminal=True)  # fmt: skip
        path = tmp_path / f"{command}.csv"
        path.write_bytes(made.stdout_bytes)
        status, report = _check(attn, path, "--stage", command, "-m", "causal", "--heads", "2",
                                "--d-out", "4")  # fmt: skip
        assert (status, report["status"]) == (0, "matches"), command


# ---------------------------------------------------------------- the table


def test_the_table_shows_both_numbers_and_marks_the_differing(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    theirs = reader(mistakes={"softmax_dim0"})
    path = tmp_path / "mine.json"
    path.write_text(_json_of({"weights": np.round(theirs["weights"], 4)}, ("weights",)), "utf-8")
    result = attn("check", "mine.json", "-f", "table", terminal=True)
    assert result.exit_code == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "attn check · mine.json (a JSON object of stages) · plain · 6 tokens"
    yours = next(line for line in lines if line.startswith(" journey   yours"))
    right = lines[lines.index(yours) + 1]
    assert yours.split()[2:4] == ["0.2006*", "0.2379"]  # differs, then equal
    assert right.split()[:2] == ["right", "0.1385"]
    assert "softmax over dim 0" in result.stdout
    assert "* yours differs from the right number by more than the tolerance" in result.stdout


def test_a_right_table_says_so(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(_json_of(reader(), ("weights",)), "utf-8")
    result = attn("check", str(path), terminal=True)
    assert result.exit_code == 0
    assert "✓ weights match" in result.stdout
    assert "Your numbers are right." in result.stdout
    assert "*" not in result.stdout


def test_pictures_and_files(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(_json_of(reader(mistakes={"softmax_dim0"}), ("weights",)), "utf-8")
    for name in ("report.svg", "report.html", "report.json", "report.txt"):
        target = tmp_path / name
        result = attn("check", str(path), "-o", str(target), terminal=True)
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", "")
        assert target.stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text("utf-8"))["status"] == "differs"


def test_mistakes_with_a_weights_file(attn: Invoke, tmp_path: Path) -> None:
    """The reader's own state_dict (--weights): applied untransposed, or without its
    biases."""
    gen = TorchGenerator(7)
    state = {}
    for name in ("W_query", "W_key", "W_value"):
        weight, bias = gen.linear(3, 3, True)
        state[f"{name}.weight"], state[f"{name}.bias"] = weight.tolist(), bias.tolist()
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps(state), "utf-8")
    W = {name: np.array(state[f"{name}.weight"]) for name in ("W_query", "W_key", "W_value")}
    b = {name: np.array(state[f"{name}.bias"]) for name in ("W_query", "W_key", "W_value")}

    def forward(untransposed: bool, biases: bool) -> Array:
        q, k, v = (
            X_BOOK @ (W[n] if untransposed else W[n].T) + (b[n] if biases else 0)
            for n in ("W_query", "W_key", "W_value")
        )
        mask = np.triu(np.ones((6, 6), dtype=bool), k=1)
        context: Array = _softmax(np.where(mask, -np.inf, q @ k.T) / math.sqrt(3)) @ v
        return context

    flags = ["--weights", str(weights), "-m", "causal"]
    path = tmp_path / "mine.json"
    for untransposed, biases, named in ((False, True, None), (True, True, "x_at_W"),
                                        (False, False, "bias_missing")):  # fmt: skip
        path.write_text(json.dumps({"context": forward(untransposed, biases).tolist()}), "utf-8")
        status, report = _check(attn, path, *flags)
        assert (status, _named(report)) == ((0, []) if named is None else (1, [[named]]))


def test_a_mask_file_joins_the_check(attn: Invoke, tmp_path: Path) -> None:
    mask = tmp_path / "mask.json"
    allowed = np.ones((6, 6), dtype=bool)
    allowed[3, :3] = False
    mask.write_text(json.dumps(allowed.tolist()), "utf-8")
    flags = ["-m", "causal", "--mask", str(mask)]
    path = tmp_path / "mine.json"
    path.write_bytes(attn("weights", *flags, "-f", "json", terminal=True).stdout_bytes)
    assert _check(attn, path, *flags)[0] == 0
    assert _check(attn, path, "-m", "causal")[0] == 1  # without the mask: other numbers


SETTINGS_GRID = [
    [],
    ["-m", "trainable", "--init", "linear", "--qkv-bias"],
    ["-m", "causal", "--heads", "3", "--wrapper", "--dropout", "0.2"],
    ["-m", "causal", "--init", "linear", "--heads", "2", "--d-out", "4", "--latent-dim", "3"],
    ["-m", "causal", "--init", "linear", "--heads", "4", "--d-out", "4", "--kv-groups", "2",
     "--qkv-bias", "--dropout", "0.5"],
    ["-m", "causal", "--window", "2", "--heads", "2", "--d-out", "6", "--dtype", "float32"],
    ["-m", "causal", "--scale", "0.3", "--d-out", "3", "--batch", "2", "--wrapper", "--heads",
     "2", "--dropout", "0.4"],
]  # fmt: skip


@pytest.mark.parametrize("flags", SETTINGS_GRID, ids=lambda f: " ".join(f) or "plain")
def test_every_setting_is_checked_and_diagnosed_without_a_crash(
    attn: Invoke, tmp_path: Path, flags: list[str]
) -> None:
    """Right numbers match; numbers made wrong (reversed along the keys) differ, and the
    whole catalogue runs over them, under every kind of module."""
    undropped = [f for i, f in enumerate(flags) if not {f, flags[i - 1]} & {"--dropout", "--batch"}]
    for command in ("queries", "scores", "weights", "context"):
        making = flags if command in ("weights", "context") else undropped
        made = attn(command, *making, "-f", "json", terminal=True)
        assert made.exit_code == 0, made.stderr
        path = tmp_path / f"{command}.json"
        path.write_bytes(made.stdout_bytes)
        status, report = _check(attn, path, *flags)
        assert (status, report["status"]) == (0, "matches"), command
        document = json.loads(made.stdout)
        values = np.array(document["values"], dtype=float)
        document["values"] = np.nan_to_num(values[..., ::-1], nan=-1.0).tolist()
        path.write_text(json.dumps(document), "utf-8")
        status, report = _check(attn, path, *flags)
        assert (status, report["status"]) == (1, "differs"), command
        assert report["mistakes_tried"] >= 1


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mode": "trainable"},
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4, "qkv_bias": True},
        {"mode": "causal", "init": "linear", "heads": 3, "wrapper": True, "dropout": 0.3,
         "batch": 2},
        {"mode": "causal", "init": "linear", "heads": 4, "d_out": 8, "kv_groups": 2,
         "dropout": 0.5},
        {"mode": "causal", "init": "linear", "heads": 2, "d_out": 4, "latent_dim": 3},
        {"mode": "causal", "window": 2, "heads": 2, "d_out": 4, "dtype": "float32"},
    ],
)  # fmt: skip
def test_the_right_recipe_is_attns_computation(params: dict[str, Any]) -> None:
    """mistakes.RIGHT, piece by piece, gives what attention.compute gives, to 1e-12."""
    from attncli import AttentionParams, book_example, prepare
    from attncli.attention import compute_prepared
    from attncli.recipe import RIGHT, Setup, run

    prepared = prepare(book_example(), AttentionParams(**params))
    expected = compute_prepared(prepared)
    got = run(RIGHT, Setup.of(prepared))
    tolerance = 1e-6 if params.get("dtype") == "float32" else 1e-12
    for ours, theirs in (
        (got.queries, prepared.queries),
        (got.keys, prepared.keys),
        (got.values, prepared.values),
        (got.scores, expected.attn_scores),
        (got.weights, expected.attn_weights),
        (got.context, expected.context_vecs),
    ):
        assert ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)

"""Issue 9 ("Trust"), the attention settings: sizes refused up front, overflow found
before the first byte, head counts from weights files, dropout 1, messages that name
the right cause, no warnings, and the book's batch of two."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attncli import attention, limits
from attncli.cli import app as cli
from attncli.params import AttentionParams, draw_projections

from .conftest import DATA, SAMPLES, Invoke, run_json

GiB = 2**30
LINEAR = ["--init", "linear"]
TORCH_BATCH = json.loads((DATA / "torch_batch.json").read_text(encoding="utf-8"))


def assert_usage_error(result: Any, status: int, *fragments: str) -> None:
    assert result.exit_code == status, result.stderr
    assert result.stdout_bytes == b""
    assert result.stderr.startswith("attn: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- 1. sizes refused up front


@pytest.fixture
def memory_8gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 GiB free, whatever this machine has; and drawing weights is a failure."""
    monkeypatch.setattr(cli, "available_memory", lambda: 8 * GiB)

    def no_drawing(*args: Any) -> Any:
        raise AssertionError("weights were drawn before the size was checked")

    monkeypatch.setattr(attention, "draw_projections", no_drawing)


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--d-out", str(10**30)], ["--d-out ≈10^30 needs about", "pick a smaller --d-out"]),
        (
            ["--d-out", str(10**9)],
            ["--d-out 1000000000 needs about", "W_query, W_key and W_value of 3 x 1000000000"],
        ),
        (
            [*LINEAR, "--heads", str(10**9), "--wrapper"],
            ["--heads 1000000000 --wrapper (heads of --d-out 2 each)", "pick fewer --heads"],
        ),
        (
            [*LINEAR, "--heads", "4", "--d-out", str(10**6)],
            ["out_proj of 1000000 x 1000000", "but about 8.0 GiB of memory is free"],
        ),
    ],
)
def test_sizes_that_cannot_fit_are_refused_before_drawing(
    attn: Invoke, memory_8gib: None, flags: list[str], fragments: list[str]
) -> None:
    result = attn("context", "-m", "causal", *flags, "-f", "json", terminal=True)
    assert_usage_error(result, 2, *fragments)


def test_a_long_input_suggests_a_shorter_one(
    attn: Invoke, memory_8gib: None, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "long.json", [[0.5, 0.25]] * 3000)
    result = attn("context", path, "-m", "causal", "--d-out", str(10**5))
    assert_usage_error(result, 2, "of 3000 tokens (3000 x 100000 each)", "or use a shorter input")


def test_without_a_memory_figure_only_impossible_sizes_are_refused(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "available_memory", lambda: None)
    result = attn("context", "-m", "causal", "--d-out", str(10**30), terminal=True)
    assert_usage_error(result, 2, "more than any computer holds")
    assert run_json(attn, "context", "-m", "causal", "--d-out", "64")["shape"] == [6, 64]


def test_a_query_of_thousands_of_digits_is_out_of_range(attn: Invoke) -> None:
    result = attn("context", "-q", "7" * 5000, "-f", "json", terminal=True)
    assert_usage_error(result, 2, "--query 777777777777… (5000 digits) is out of range")
    assert len(result.stderr) < 300


# ---------------------------------------------------------------- 2. overflow before output


def overflowing_input(tmp_path: Path, last: float) -> str:
    """600 small rows (more than one block of 512), then one row of size `last`."""
    rows = [[(i % 10) / 10, 0.2] for i in range(599)] + [[last, last]]
    return write_json(tmp_path / f"last_{last:g}.json", rows)


@pytest.mark.parametrize(
    ("command", "fmt"),
    [("scores", "json"), ("scores", "csv"), ("scores", "npy"), ("weights", "csv")],
)
@pytest.mark.parametrize(
    ("last", "dtype", "message"),
    [
        (1e155, "float64", "the attention scores overflow float64"),
        (1e20, "float32", "the attention scores overflow float32"),
    ],
)
def test_an_overflow_in_a_later_block_leaves_stdout_empty(
    attn: Invoke, tmp_path: Path, fmt: str, last: float, dtype: str, message: str, command: str
) -> None:
    path = overflowing_input(tmp_path, last)
    result = attn(command, path, "-f", fmt, "--dtype", dtype)
    assert_usage_error(result, 1, message)
    # the same input a little smaller streams: scores up to 2 * (last / 1e5)**2
    fits = attn(command, overflowing_input(tmp_path, last / 1e5), "-f", "npy", "--dtype", dtype)
    assert fits.exit_code == 0, fits.stderr
    assert np.load(io.BytesIO(fits.stdout_bytes)).shape == (600, 600)


def test_an_overflow_in_a_later_head_leaves_stdout_empty(attn: Invoke, tmp_path: Path) -> None:
    # head 0 sees the inputs as they are, head 1 scaled by 1e155: its scores overflow
    weights = {"layout": "xw", **{w: [[1.0, 0.0], [0.0, 1e155]] for w in ("W_query", "W_key")}}
    weights["W_value"] = np.eye(2).tolist()
    path = write_json(tmp_path / "w.json", weights)
    inputs = write_json(tmp_path / "x.json", [[0.5, 0.25]] * 6)
    for fmt in ("json", "csv", "npy"):
        argv = ["-m", "trainable", "--weights", path, "--heads", "2", "-f", fmt]
        result = attn("scores", inputs, *argv)
        assert_usage_error(result, 1, "the attention scores overflow float64")


def test_masked_scores_that_overflow_are_no_error(attn: Invoke, tmp_path: Path) -> None:
    """torch's masked_fill replaces them; only a score the mask keeps counts."""
    path = write_json(tmp_path / "x.json", [[1e160, 0.0], [0.0, 1.0]])
    weights = {"layout": "xw", "W_query": np.eye(2).tolist(), "W_value": np.eye(2).tolist()}
    weights["W_key"] = [[1e-160, 1e-160], [1e160, 0.0]]  # keys [1, 1] and [1e160, 0]
    weights_path = write_json(tmp_path / "w.json", weights)
    argv = ["scores", path, "-m", "causal", "--weights", weights_path]
    # q_0 . k_1 = 1e320 overflows, but it lies in row 0's future
    assert run_json(attn, *argv)["values"] == [[1e160, None], [1.0, 0.0]]
    assert_usage_error(attn(*argv[:3], "trainable", *argv[4:]), 1, "scores overflow float64")


def test_the_bound_settles_ordinary_inputs_without_a_pre_pass(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pre_pass(*args: Any) -> bool:
        raise AssertionError("the exact pre-pass ran")

    monkeypatch.setattr(limits, "scores_overflow", pre_pass)
    for argv in (["scores"], ["weights", "-m", "causal", *LINEAR, "--heads", "2"]):
        for dtype in ("float64", "float32"):
            assert run_json(attn, *argv, "--dtype", dtype)["shape"]


def test_a_loose_bound_runs_the_exact_pre_pass_once_per_head(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Queries and keys in orthogonal directions: huge norms, every score 0."""
    calls = []
    real = limits.scores_overflow

    def counted(*args: Any) -> bool:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(limits, "scores_overflow", counted)
    path = write_json(tmp_path / "x.json", [[1e160, 1e160], [1.0, 2.0]])
    weights = {"layout": "xw", "W_query": [[1.0, 0.0], [0.0, 0.0]]}
    weights |= {"W_key": [[0.0, 1.0], [0.0, 0.0]], "W_value": np.eye(2).tolist()}
    weights_path = write_json(tmp_path / "w.json", weights)
    scores = run_json(attn, "scores", path, "-m", "trainable", "--weights", weights_path)
    assert scores["values"] == [[0.0, 0.0], [0.0, 0.0]]
    assert len(calls) == 1


def test_score_bound_is_the_product_of_the_largest_norms() -> None:
    queries = np.array([[3.0, 4.0], [0.0, 1.0]])
    keys = np.array([[1e200, 0.0], [0.0, -2e200]])
    assert limits.score_bound(queries, keys) == 5.0 * 2e200
    assert limits.max_norm(np.array([[3e300, 4e300]])) == 5e300  # no overflow in the norm
    assert limits.max_norm(np.array([[3e-320, 4e-320]])) == pytest.approx(5e-320, rel=1e-3)
    assert limits.max_norm(np.array([[1.7e308, 1.7e308]])) == np.inf


# ---------------------------------------------------------------- 3. heads from a weights file


def mha_state_dict(heads: int, d_out: int, wrapper: bool = False) -> dict[str, Any]:
    """The state_dict of the module attn draws for these settings (seed 123)."""
    params = AttentionParams(
        mode="causal", init="linear", heads=heads, d_out=d_out, wrapper=wrapper
    )
    drawn, _ = draw_projections(3, params)
    roles = {"W_query": drawn.W_query, "W_key": drawn.W_key, "W_value": drawn.W_value}
    if wrapper:  # module h owns columns h*d_out to (h+1)*d_out
        return {
            f"heads.{h}.{name}.weight": W[:, h * d_out : (h + 1) * d_out].T.tolist()
            for h in range(heads)
            for name, W in roles.items()
        }
    state = {f"{name}.weight": W.T.tolist() for name, W in roles.items()}
    assert drawn.W_out is not None
    assert drawn.b_out is not None
    state["out_proj.weight"] = drawn.W_out.T.tolist()
    state["out_proj.bias"] = drawn.b_out.tolist()
    return state


@pytest.mark.parametrize("heads", [3, 6])
def test_multi_head_attention_from_its_state_dict(attn: Invoke, tmp_path: Path, heads: int) -> None:
    path = write_json(tmp_path / "mha.json", mha_state_dict(heads, 6))
    drawn = run_json(
        attn, "context", "-m", "causal", *LINEAR, "--heads", str(heads), "--d-out", "6"
    )
    from_file = run_json(attn, "context", "-m", "causal", "--weights", path, "--heads", str(heads))
    np.testing.assert_allclose(from_file["values"], drawn["values"], rtol=1e-12)
    assert from_file["params"]["d_out"] == 6
    assert from_file["params"]["heads"] == heads


def test_multi_head_attention_needs_heads_the_file_cannot_tell(
    attn: Invoke, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "mha.json", mha_state_dict(3, 6))
    result = attn("context", "-m", "causal", "--weights", path, terminal=True)
    assert_usage_error(
        result, 2, "holds an out_proj", "add --heads H", "divides d_out = 6: 1, 2, 3, 6"
    )
    result = attn("context", "-m", "causal", "--weights", path, "--heads", "4", terminal=True)
    assert_usage_error(result, 2, "--heads 4 does not divide the 6 output dimensions of")
    one = run_json(attn, "context", "-m", "causal", "--weights", path, "--heads", "1")
    assert one["params"]["heads"] == 1  # MultiHeadAttention(num_heads=1) is a module too


def test_out_proj_in_the_xw_naming_needs_heads_too(attn: Invoke, tmp_path: Path) -> None:
    drawn, _ = draw_projections(3, AttentionParams(mode="causal", heads=3, d_out=6))
    names = ("W_query", "W_key", "W_value", "W_out", "b_out")
    xw = {name: getattr(drawn, name).tolist() for name in names}
    path = write_json(tmp_path / "xw.json", {"layout": "xw", **xw})
    result = attn("context", "-m", "causal", "--weights", path, terminal=True)
    assert_usage_error(result, 2, "holds an out_proj")
    from_file = run_json(attn, "context", "-m", "causal", "--weights", path, "--heads", "3")
    same = run_json(attn, "context", "-m", "causal", "--heads", "3", "--d-out", "6")
    np.testing.assert_allclose(from_file["values"], same["values"], rtol=1e-12)


def test_a_wrappers_file_fixes_its_head_count(attn: Invoke, tmp_path: Path) -> None:
    path = write_json(tmp_path / "wrapper.json", mha_state_dict(3, 2, wrapper=True))
    drawn = run_json(attn, "context", "-m", "causal", *LINEAR, "--heads", "3", "--wrapper")
    from_file = run_json(attn, "context", "-m", "causal", "--weights", path)
    np.testing.assert_allclose(from_file["values"], drawn["values"], rtol=1e-12)
    again = run_json(attn, "context", "-m", "causal", "--weights", path, "--heads", "3")
    assert again["values"] == from_file["values"]
    for heads in ("1", "2"):
        result = attn("context", "-m", "causal", "--weights", path, "--heads", heads, terminal=True)
        assert_usage_error(result, 2, f"--heads {heads} contradicts", "which holds 3 heads")


def test_weights_without_output_dimensions_are_bad_data(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, **{f"W_{r}.weight": np.zeros((0, 3)) for r in ("query", "key", "value")})
    result = attn("context", "-m", "causal", "--weights", str(path), terminal=True)
    assert_usage_error(result, 1, "W_query has no output dimensions")


# ---------------------------------------------------------------- 4. dropout 1 and flags


@pytest.mark.parametrize(
    "flags",
    [
        ["-m", "causal"],
        ["-m", "trainable", *LINEAR, "--heads", "2", "--wrapper"],
    ],
)
def test_dropout_one_drops_every_weight(attn: Invoke, flags: list[str]) -> None:
    weights = run_json(attn, "weights", *flags, "--dropout", "1")["values"]
    assert np.array(weights).tolist() == np.zeros(np.shape(weights)).tolist()
    for extra in ([], ["-q", "3"]):  # the fast context kernel, and one row
        values = run_json(attn, "context", *flags, "--dropout", "1", *extra)["values"]
        assert np.all(np.array(values) == 0.0)
    csv = attn("weights", *flags, "--dropout", "1", "-f", "csv", terminal=True).stdout
    assert {cell for line in csv.splitlines()[1:] for cell in line.split(",")[-6:]} == {"0.0"}
    journey = str(SAMPLES / "your_journey.json")
    npy = attn("weights", journey, *flags, "--dropout", "1", "-f", "npy").stdout_bytes
    assert np.all(np.load(io.BytesIO(npy)) == 0.0)


def test_dropout_one_leaves_multi_head_attention_its_out_proj_bias(attn: Invoke) -> None:
    case = next(
        c
        for c in TORCH_BATCH["cases"]
        if c["module"] == "MultiHeadAttention" and c["dropout"] == 1.0
    )
    argv = ["-m", "causal", *LINEAR, "--heads", "2", "--dropout", "1"]
    context = run_json(attn, "context", *argv)["values"]
    np.testing.assert_allclose(context, case["context_vecs"][0], rtol=1e-7)
    steps = run_json(attn, "explain", *argv)["steps"]
    assert steps["dropout"]["weights"] == [[0.0] * 6] * 2
    assert steps["output"] == steps["out_proj"]["bias"]
    table = attn("context", *argv, terminal=True)
    assert table.exit_code == 0
    assert table.stderr == ""


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            ["context", "-m", "causal", "--dropout", "0", "--dropout-seed", "5"],
            ["--dropout-seed has no effect with --dropout 0"],
        ),
        (
            ["weights", "-m", "causal", "--dropout", "1", "--dropout-seed", "5"],
            ["--dropout-seed has no effect with --dropout 1", "nothing is drawn"],
        ),
        (["context", "-f", "json", "--color"], ["--color has no effect on json output"]),
        (["context", "-f", "csv", "--no-color"], ["--no-color has no effect on csv output"]),
        (["context", "-f", "npy", "--color"], ["--color has no effect on npy"]),
        (["context", "-f", "markdown", "--color"], ["--color has no effect on markdown"]),
        (["explain", "-f", "json", "--no-color"], ["--no-color has no effect on json"]),
    ],
)
def test_flags_without_effect(attn: Invoke, argv: list[str], fragments: list[str]) -> None:
    assert_usage_error(attn(*argv, terminal=True), 2, *fragments)


def test_colour_flags_stay_for_what_has_colour(attn: Invoke) -> None:
    for fmt in ("table", "svg", "html"):
        result = attn("weights", "-f", fmt, "--no-color", terminal=True)
        assert result.exit_code == 0, result.stderr
    assert_usage_error(attn("weights", "-f", "json", "--no-color", terminal=True), 2)


# ---------------------------------------------------------------- 5. the right cause


def test_float32_overflow_says_float32_and_the_fix(attn: Invoke, tmp_path: Path) -> None:
    path = write_json(tmp_path / "big.json", [[1e20, 1e20], [1.0, 2.0]])
    result = attn("context", path, "--dtype", "float32")
    assert_usage_error(
        result,
        1,
        "the attention scores overflow float32",
        "beyond 3.4e38",
        "add --dtype float64",
    )
    assert run_json(attn, "context", input=Path(path).read_bytes())["shape"] == [2, 2]


def test_an_input_beyond_float32_is_named(attn: Invoke, tmp_path: Path) -> None:
    path = write_json(tmp_path / "big.json", [[1e39, 1.0]])
    result = attn("context", path, "--dtype", "float32")
    assert_usage_error(result, 1, "big.json: the inputs overflow float32", "--dtype float64")


def test_large_weights_in_a_file_are_blamed(attn: Invoke, tmp_path: Path) -> None:
    big = (np.eye(2) * 1e160).tolist()
    weights = {"layout": "xw", "W_query": big, "W_key": big, "W_value": np.eye(2).tolist()}
    path = write_json(tmp_path / "w.json", weights)
    inputs = write_json(tmp_path / "x.json", [[1.0, 2.0], [3.0, 4.0]])
    result = attn("scores", inputs, "-m", "trainable", "--weights", path)
    assert_usage_error(
        result,
        1,
        f"error: {path}: the attention scores overflow float64",
        "weights as large as 1e+160",
        "rescale the weights",
    )


@pytest.mark.parametrize(
    ("scale", "dtype", "fragments"),
    [
        (1e38, "float32", ["overflow float32", "add --dtype float64"]),
        (1e308, "float64", ["overflow float64", "; rescale the weights"]),
    ],
)
def test_large_out_proj_weights_are_blamed(
    attn: Invoke, tmp_path: Path, scale: float, dtype: str, fragments: list[str]
) -> None:
    state = mha_state_dict(2, 2)
    state["out_proj.weight"] = (np.eye(2) * scale).tolist()
    path = write_json(tmp_path / "mha.json", state)
    inputs = write_json(tmp_path / "x.json", [[1e3, 1e3, 1e3]])
    argv = ["-m", "causal", "--weights", path, "--heads", "2", "--dtype", dtype]
    result = attn("context", inputs, *argv)
    assert_usage_error(
        result, 1, f"{path}: the context vectors (after out_proj) overflow", *fragments
    )


@pytest.mark.parametrize("fmt", ["json", "table", "markdown"])
def test_values_times_the_dropout_scale_are_blamed(attn: Invoke, tmp_path: Path, fmt: str) -> None:
    """Scores near 0, values near float64's max: only dropout's 1 / (1 - p) overflows."""
    tiny, huge = (np.eye(2) * 1e-200).tolist(), (np.eye(2) * 1e308).tolist()
    weights = {"layout": "xw", "W_query": tiny, "W_key": tiny, "W_value": huge}
    path = write_json(tmp_path / "w.json", weights)
    inputs = write_json(tmp_path / "x.json", [[1.0, 1.0]] * 3)
    argv = ["context", inputs, "-m", "causal", "--weights", path, "-f", fmt]
    result = attn(*argv, "--dropout", "0.9")
    assert_usage_error(
        result,
        1,
        f"{path}: the context vectors (values times dropout's 1 / (1 - p) = 10) overflow",
        "rescale the weights",
    )
    without = attn(*argv[:-1], "json")  # (a table of numbers near 1e308 is render's matter)
    assert without.exit_code == 0, without.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["--dropout", "0.5", "--dropout-seed", str(2**64)],
            "--dropout-seed 18446744073709551616 is out of range",
        ),
        (["--dropout", "0.5", "--seed", str(10**40)], "--seed ≈10^40 is out of range"),
        (["--heads", "0"], "--heads 0 is too small: attention needs a head; give --heads 1"),
        (["--batch", "0"], "--batch 0 is too small"),
    ],
)
def test_messages_name_the_flag_at_fault(attn: Invoke, argv: list[str], fragment: str) -> None:
    assert_usage_error(attn("weights", "-m", "causal", *argv, terminal=True), 2, fragment)


def test_seed_with_a_weights_file_and_a_dropout_seed_says_why(attn: Invoke, tmp_path: Path) -> None:
    path = write_json(tmp_path / "w.json", mha_state_dict(2, 2))
    argv = ["--weights", path, "--heads", "2", "--dropout", "0.5", "--dropout-seed", "1"]
    result = attn("weights", "-m", "causal", *argv, "--seed", "3", terminal=True)
    assert_usage_error(result, 2, "--seed has no effect with --weights and --dropout-seed")


# ---------------------------------------------------------------- 6. no warnings


HOSTILE = {
    "huge.json": [[1e300, -1e300], [1e-300, 2.0], [5.0, 1e300]],
    "f32.json": [[3e38, -3e38], [1.0, 2.0], [3.4e38, 1e38]],
    "subnormal.json": [[1e-310, 5e-324], [1e-320, 0.0]],
    "one.json": [[0.5]],
    "equal.json": [[1.0, 1.0]] * 5,
    "zeros.json": [[0.0, 0.0]] * 4,
}


def run_in_a_real_process(calls: list[list[str]]) -> list[str]:
    """Run attn on each argv in one fresh Python process (warnings as a user sees
    them: printed once to stderr); every stderr line that is not an error message,
    and the exit codes other than 0 and 1."""
    script = (
        "import sys; from attncli.cli import runner\n"
        f"for argv in {calls!r}:\n"
        "    code = runner.run(argv)\n"
        "    print('exit', code, argv, file=sys.stderr) if code not in (0, 1) else None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, stdin=subprocess.DEVNULL, check=False
    )
    return [
        line
        for line in result.stderr.decode().splitlines()
        if not line.startswith("attn: error: ") or "internal error" in line
    ]


def test_dropout_one_and_hostile_inputs_warn_nothing_in_a_real_process(tmp_path: Path) -> None:
    journey = str(SAMPLES / "your_journey.json")
    calls = [
        [command, journey, "-m", "causal", "--dropout", "1", "-f", fmt]
        for command, fmt in (("weights", "json"), ("context", "csv"), ("explain", "table"))
    ]
    for name, matrix in sorted(HOSTILE.items()):
        path = write_json(tmp_path / name, matrix)
        calls += [
            ["scores", path, "-f", "csv"],
            ["weights", path, "-m", "causal", "--dtype", "float32", "-f", "json"],
            ["context", path, "-m", "causal", *LINEAR, "--heads", "2", "--dropout", "0.999999"],
            ["context", path, "-m", "trainable", "--d-out", "1", "--dropout", "1", "-f", "npy"],
            ["explain", path, "-m", "causal", "-q", "0", "-f", "json"],
        ]
    assert run_in_a_real_process(calls) == []


# ---------------------------------------------------------------- 7. the book's batch


def batch_case(module: str, heads: int, dropout: float, batch: int) -> dict[str, Any]:
    return next(
        c
        for c in TORCH_BATCH["cases"]
        if (c["module"], c["num_heads"], c["dropout"], c["batch"])
        == (module, heads, dropout, batch)
    )


@pytest.mark.parametrize(("heads", "d_out", "dropout", "batch"), [(2, 2, 0.5, 2), (3, 1, 0.3, 3)])
def test_the_wrapper_on_a_batch_gives_the_books_first_item(
    attn: Invoke, heads: int, d_out: int, dropout: float, batch: int
) -> None:
    case = batch_case("MultiHeadAttentionWrapper", heads, dropout, batch)
    argv = ["-m", "causal", *LINEAR, "--heads", str(heads), "--wrapper", "--d-out", str(d_out)]
    argv += ["--dropout", str(dropout), "--batch", str(batch)]
    context = run_json(attn, "context", *argv)["values"]
    np.testing.assert_allclose(context, case["context_vecs"][0], atol=1e-6)
    weights = run_json(attn, "weights", *argv)["values"]
    np.testing.assert_allclose(weights, case["attn_weights"][0], atol=1e-6)
    np.testing.assert_array_equal(np.array(weights) == 0, np.array(case["attn_weights"][0]) == 0)


def test_without_batch_the_wrapper_runs_on_a_batch_of_one(attn: Invoke) -> None:
    """What the README says: on the book's batch of two the wrapper's head 1 differs."""
    argv = ["-m", "causal", *LINEAR, "--heads", "2", "--wrapper", "--dropout", "0.5"]
    weights = np.array(run_json(attn, "weights", *argv)["values"])
    of_one = batch_case("MultiHeadAttentionWrapper", 2, 0.5, 1)["attn_weights"][0]
    np.testing.assert_allclose(weights, of_one, atol=1e-6)
    of_two = np.array(batch_case("MultiHeadAttentionWrapper", 2, 0.5, 2)["attn_weights"][0])
    assert np.abs(weights[1] - of_two[1]).max() > 0.5
    batch = run_json(attn, "weights", *argv, "--batch", "2")["values"]
    np.testing.assert_allclose(batch, of_two, atol=1e-6)


@pytest.mark.parametrize(
    ("module", "heads", "d_out"),
    [("CausalAttention", 1, 2), ("MultiHeadAttention", 2, 2), ("MultiHeadAttention", 2, 4)],
)
def test_other_modules_draw_item_zero_first(
    attn: Invoke, module: str, heads: int, d_out: int
) -> None:
    case = next(
        c
        for c in TORCH_BATCH["cases"]
        if (c["module"], c["num_heads"], c["d_out"], c["dropout"]) == (module, heads, d_out, 0.5)
    )
    flags = ["-m", "causal", *LINEAR, "--heads", str(heads), "--d-out", str(d_out)]
    flags += ["--dropout", "0.5"]
    context = run_json(attn, "context", *flags)["values"]
    np.testing.assert_allclose(context, case["context_vecs"][0], atol=1e-6)
    weights = np.array(run_json(attn, "weights", *flags)["values"]).reshape(heads, 6, 6)
    np.testing.assert_allclose(weights, case["attn_weights"][0], atol=1e-6)
    result = attn("context", *flags, "--batch", "2", terminal=True)
    assert_usage_error(result, 2, "--batch 2 has no effect here", "drop --batch")


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "causal", *LINEAR, "--heads", "2", "--wrapper"],  # no dropout
        ["-m", "causal", *LINEAR, "--heads", "2", "--wrapper", "--dropout", "1"],  # no draws
        [],  # plain mode
    ],
)
def test_batch_without_effect_is_a_usage_error(attn: Invoke, argv: list[str]) -> None:
    result = attn("weights", *argv, "--batch", "2", terminal=True)
    assert_usage_error(result, 2, "--batch 2 has no effect" if argv else "--batch has no effect")


def test_a_wrapper_file_runs_on_a_batch_too(attn: Invoke, tmp_path: Path) -> None:
    path = write_json(tmp_path / "wrapper.json", mha_state_dict(2, 2, wrapper=True))
    argv = ["-m", "causal", "--dropout", "0.5", "--batch", "2"]
    from_file = run_json(attn, "context", *argv, "--weights", path, "--seed", "123")
    # nothing is drawn before a file's dropout: re-seeding the drawn module's dropout with
    # the same seed gives the same masks
    drawn = run_json(
        attn, "context", *argv, *LINEAR, "--heads", "2", "--wrapper", "--dropout-seed", "123"
    )
    np.testing.assert_allclose(from_file["values"], drawn["values"], rtol=1e-12)

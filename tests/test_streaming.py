"""Streamed output (block by block) equals the output built from one in-memory result."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from attncli import AttentionParams, Embeddings, compute, engine
from attncli.render.data import to_csv, to_json

from .conftest import Invoke

SETTINGS = [
    ["-m", "plain"],
    ["-m", "causal"],
    ["-m", "causal", "--init", "linear", "--heads", "2", "--d-out", "4"],
    ["-m", "causal", "--init", "linear", "--heads", "2", "--d-out", "4", "--dropout", "0.3"],
    [
        "-m",
        "trainable",
        "--heads",
        "3",
        "--d-out",
        "3",
        "--wrapper",
        "--dropout",
        "0.5",
        "--dropout-seed",
        "4",
    ],
]


def params_of(argv: list[str]) -> AttentionParams:
    """The AttentionParams an argv of SETTINGS stands for (read here independently of
    attn's own parser)."""
    flags = {"--wrapper"}
    values: dict[str, str] = {}
    rest = iter(argv)
    for token in rest:
        if token not in flags:
            values[token] = next(rest)
    return AttentionParams(
        mode=values["-m"],
        init=values.get("--init", "rand"),
        heads=int(values.get("--heads", 1)),
        d_out=int(values.get("--d-out", 2)),
        dropout=float(values.get("--dropout", 0.0)),
        dropout_seed=int(values["--dropout-seed"]) if "--dropout-seed" in values else None,
        wrapper="--wrapper" in argv,
    )


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, Embeddings]:
    matrix = np.random.default_rng(3).normal(size=(13, 3))
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(matrix.tolist()), encoding="utf-8")
    return path, Embeddings(tuple(f"x{i + 1}" for i in range(13)), matrix, str(path))


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_BLOCK_ROWS", 4)  # 13 rows: blocks of 4, 4, 4, 1


COMBINATIONS = [
    (command, argv)
    for argv in SETTINGS
    for command in ("scores", "weights", "context", "queries", "keys", "values")
    if "--dropout" not in argv or command in ("weights", "context")  # dropout acts on those
]


@pytest.mark.parametrize(
    ("command", "argv"), COMBINATIONS, ids=[f"{c} {' '.join(a)}" for c, a in COMBINATIONS]
)
def test_streamed_json_and_csv_equal_in_memory(
    attn: Invoke, tokens: tuple[Path, Embeddings], argv: list[str], command: str
) -> None:
    path, emb = tokens
    result = compute(emb, params_of(argv))
    streamed = json.loads(attn(command, str(path), *argv, "-f", "json").stdout)
    whole = json.loads(to_json(result, command))
    np.testing.assert_allclose(
        np.array(streamed["values"], dtype=float),
        np.array(whole["values"], dtype=float),
        rtol=1e-12,
        atol=1e-14,
    )
    assert {k: v for k, v in streamed.items() if k != "values"} == {
        k: v for k, v in whole.items() if k != "values"
    }
    streamed_csv = attn(command, str(path), *argv, "-f", "csv").stdout
    whole_csv = to_csv(result, command)
    assert streamed_csv.splitlines()[0] == whole_csv.splitlines()[0]
    got = np.loadtxt(io.StringIO(streamed_csv), delimiter=",", skiprows=1, dtype=str)
    want = np.loadtxt(io.StringIO(whole_csv), delimiter=",", skiprows=1, dtype=str)
    np.testing.assert_array_equal(
        got[:, : 2 if "head" in whole_csv[:5] else 1],
        want[:, : 2 if "head" in whole_csv[:5] else 1],
    )
    label_columns = 2 if whole_csv.startswith("head") else 1
    np.testing.assert_allclose(
        got[:, label_columns:].astype(float),
        want[:, label_columns:].astype(float),
        rtol=1e-12,
        atol=1e-14,
    )


@pytest.mark.parametrize("argv", SETTINGS, ids=lambda a: " ".join(a))
def test_npy_output_holds_the_same_numbers(
    attn: Invoke, tokens: tuple[Path, Embeddings], tmp_path: Path, argv: list[str]
) -> None:
    path, emb = tokens
    result = compute(emb, params_of(argv))
    for command, expected in (
        ("weights", result.attn_weights),
        ("scores", result.attn_scores),
        ("context", result.context_vecs),
    ):
        if command == "scores" and "--dropout" in argv:
            continue
        out = tmp_path / f"{command}.npy"
        run = attn(command, str(path), *argv, "-o", str(out))
        assert run.exit_code == 0, run.stderr
        array = np.load(out)
        want = expected[0] if command != "context" and expected.shape[0] == 1 else expected
        assert array.shape == want.shape
        np.testing.assert_allclose(array, want, rtol=1e-12, atol=1e-14)


def test_npy_to_a_pipe_and_a_query(attn: Invoke, tokens: tuple[Path, Embeddings]) -> None:
    path, emb = tokens
    run = attn("weights", str(path), "-m", "causal", "-q", "5", "-f", "npy")
    array = np.load(io.BytesIO(run.stdout_bytes))
    np.testing.assert_allclose(
        array, compute(emb, AttentionParams(mode="causal"), query=5).attn_weights[0, 0], rtol=1e-12
    )


def test_npy_to_a_terminal_is_refused(attn: Invoke) -> None:
    run = attn("weights", "-f", "npy", terminal=True)
    assert run.exit_code == 2
    assert "-f npy is binary and stdout is a terminal" in run.stderr


def test_float32_output(attn: Invoke, tokens: tuple[Path, Embeddings], tmp_path: Path) -> None:
    path, emb = tokens
    out = tmp_path / "w.npy"
    attn("weights", str(path), "-m", "causal", "--dtype", "float32", "-o", str(out))
    array = np.load(out)
    assert array.dtype == np.float32
    f64 = compute(emb, AttentionParams(mode="causal")).attn_weights[0]
    np.testing.assert_allclose(array, f64, rtol=1e-5, atol=1e-7)
    parsed = json.loads(attn("weights", str(path), "-m", "causal", "--dtype", "float32").stdout)
    assert parsed["params"]["dtype"] == "float32"


def test_progress_bar_only_for_long_work_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from attncli.cli import output

    monkeypatch.setattr(output, "stderr_is_terminal", lambda: False)
    with output.progress(10**12, "attn context") as progress:
        assert progress is None  # piped stderr: never
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    with output.progress(10, "attn context") as progress:
        assert progress is None  # short work: not worth a bar
    with output.progress(10**12, "attn context") as progress:
        assert progress is not None
        progress(5, 10)


def test_long_work_piped_prints_nothing_but_the_result(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attncli.cli import output

    monkeypatch.setattr(output, "PROGRESS_WORK", 1)  # everything counts as long work
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps(np.random.default_rng(0).normal(size=(50, 3)).tolist()), encoding="utf-8"
    )
    run = attn("context", str(path), "-f", "json")
    assert run.exit_code == 0
    assert run.stderr == ""
    assert json.loads(run.stdout)["shape"] == [50, 3]

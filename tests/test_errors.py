"""Bad input never crashes attn: one line on stderr saying what, where and how to fix it,
exit code 1 for bad data and 2 for bad usage, nothing on stdout, no output file harmed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import AttnError, Embeddings, attention, compute, loads
from attncli.cli import app as cli
from attncli.inputs import InputFormat, reading

from .conftest import DATA, Invoke

INVALID = DATA / "invalid"
MANIFEST = json.loads((INVALID / "cases.json").read_text(encoding="utf-8"))["cases"]


def assert_one_line_error(result: Any, status: int, fragment: str) -> None:
    assert result.exit_code == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attn: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_every_invalid_file_has_a_case() -> None:
    listed = {case["file"] for case in MANIFEST}
    present = {p.name for p in INVALID.iterdir() if p.name != "cases.json"}
    assert listed == present


@pytest.mark.parametrize("case", MANIFEST, ids=lambda case: case["file"])
def test_invalid_file(attn: Invoke, case: dict[str, Any]) -> None:
    path = INVALID / case["file"]
    result = attn("context", str(path), terminal=True)
    assert_one_line_error(result, case["exit"], f"{path}")
    assert case["message"] in result.stderr


@pytest.mark.parametrize(
    "case", [c for c in MANIFEST if c.get("stdin", True)], ids=lambda case: case["file"]
)
def test_invalid_input_on_stdin(attn: Invoke, case: dict[str, Any]) -> None:
    data = (INVALID / case["file"]).read_bytes()
    result = attn("context", input=data)
    if not data:
        assert_one_line_error(result, 1, "stdin is empty")
        return
    assert_one_line_error(result, case["exit"], "<stdin>")
    assert case["message"] in result.stderr


class TestFiles:
    def test_missing(self, attn: Invoke, tmp_path: Path) -> None:
        result = attn("scores", str(tmp_path / "nope.csv"), terminal=True)
        assert_one_line_error(result, 1, "nope.csv: no such file; check the path")

    def test_directory(self, attn: Invoke, tmp_path: Path) -> None:
        result = attn("scores", str(tmp_path), terminal=True)
        assert_one_line_error(result, 1, "is a directory; give a .json, .csv or .tsv file")

    def test_unreadable(
        self, attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "secret.csv"
        path.write_text("a,1\n", encoding="utf-8")

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(reading, "open", refuse, raising=False)  # root reads any file
        result = attn("scores", str(path), terminal=True)
        assert_one_line_error(result, 1, "secret.csv: permission denied; make the file readable")

    def test_a_byte_order_mark_is_accepted(self, attn: Invoke, tmp_path: Path) -> None:
        path = tmp_path / "bom.json"
        path.write_bytes(b"\xef\xbb\xbf" + b'{"tokens": ["a", "b"], "embeddings": [[1.0], [2.0]]}')
        assert json.loads(attn("scores", str(path)).stdout)["values"] == [[1.0, 2.0], [2.0, 4.0]]

    def test_very_long_lines(self, attn: Invoke, tmp_path: Path) -> None:
        """A 100 000-dimensional vector on one line and a 300 kB token (over csv's
        default field limit) load."""
        path = tmp_path / "long.csv"
        token = "t" * 300_000
        row = ",".join(["0.001"] * 100_000)
        path.write_text(f'"{token}",{row}\nb,{row}\n', encoding="utf-8")
        result = attn("scores", str(path), "-f", "csv")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines()[1].startswith(token)


class TestNumbers:
    def test_large_finite_scores_give_exact_stable_weights(
        self, attn: Invoke, tmp_path: Path
    ) -> None:
        """Scores of 1024 and 1023: exp() alone would overflow; the max-subtracted softmax
        gives exactly 1/(1 + e^-1) and e^-1/(1 + e^-1)."""
        path = tmp_path / "big.json"
        path.write_text(json.dumps([[32.0], [32.0 - 1 / 32]]), encoding="utf-8")
        parsed = json.loads(attn("weights", str(path)).stdout)
        assert parsed["values"][0] == pytest.approx(
            [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0))], rel=1e-15
        )
        scores = json.loads(attn("scores", str(path)).stdout)["values"]
        assert scores[0] == [1024.0, 1023.0]

    def test_thousands_in_every_mode_stay_finite(self, attn: Invoke, tmp_path: Path) -> None:
        path = tmp_path / "thousands.json"
        rng = np.random.default_rng(0)
        path.write_text(json.dumps((rng.normal(size=(8, 4)) * 1000).tolist()), encoding="utf-8")
        for mode in ("plain", "trainable", "causal"):
            weights = np.array(json.loads(attn("weights", str(path), "-m", mode).stdout)["values"])
            assert np.isfinite(weights).all()
            np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)

    def test_overflowing_scores_are_an_error_not_nan(self, attn: Invoke) -> None:
        result = attn("weights", str(INVALID / "overflow.json"), terminal=True)
        assert_one_line_error(result, 1, "the attention scores overflow float64")


class TestFlags:
    @pytest.mark.parametrize(
        ("argv", "status", "message"),
        [
            (["-q", "3x"], 2, "--query '3x' is not a token of the built-in example"),
            (["-q", "-7"], 2, "--query -7 is out of range: the built-in example has 6 tokens"),
            (["-m", "trainable", "--d-out", "-1"], 2, "--d-out -1 is too small"),
            (["-m", "causal", "--heads", "3"], 2, "--d-out 2 does not split into --heads 3"),
            (["-m", "causal", "--dropout", "-0.1"], 2, "--dropout -0.1 is not a probability"),
            (
                ["-m", "causal", "--seed", "twelve"],
                2,
                "Invalid value for '--seed': 'twelve' is not a whole number",
            ),
            (["-m", "sideways"], 2, "'sideways' is not one of 'plain', 'trainable', 'causal'"),
            (["-f", "yaml"], 2, "'yaml' is not one of 'table', 'json', 'csv'"),
            (["--d-out", "4"], 2, "--d-out has no effect in plain mode"),
        ],
    )
    def test_flag_errors(self, attn: Invoke, argv: list[str], status: int, message: str) -> None:
        assert_one_line_error(attn("weights", *argv, terminal=True), status, message)

    def test_ambiguous_query_lists_the_candidates(self, attn: Invoke) -> None:
        result = attn("weights", "-", "-q", "the", input="the,1\ncat,2\nthe,3\n")
        assert_one_line_error(
            result, 2, "matches 2 tokens (0 'the', 2 'the'); pick one by index: -q 0 or -q 2"
        )

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "no such file"),
            ("{not json", "invalid JSON at line 1, column 2"),
            (
                '{"W_query": [[1, 2]], "W_key": [[1, 2]], "W_value": [[1, 2]]}',
                "W_query has shape (1, 2), but the inputs have d_in = 3",
            ),
        ],
    )
    def test_weights_files(
        self, attn: Invoke, tmp_path: Path, content: str | None, message: str
    ) -> None:
        path = tmp_path / "w.json"
        if content is not None:
            path.write_text(content, encoding="utf-8")
        result = attn("context", "-m", "causal", "--weights", str(path), terminal=True)
        assert_one_line_error(result, 1, message)


def _wait_until_reading(pid: int, timeout: float = 20.0) -> None:
    """Until the process has imported numpy (tens of MiB resident) and sleeps: waiting
    for stdin, past Python's start-up, where Ctrl-C is attn's to handle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        resident_kib = int(fields.get("VmRSS", "0 kB").split()[0])
        if fields["State"].strip().startswith("S") and resident_kib > 25_000:
            time.sleep(0.2)  # and still asleep a moment later
            if Path(f"/proc/{pid}/status").read_text(encoding="ascii").count("State:\tS"):
                return
        time.sleep(0.05)
    raise AssertionError("attn did not get to reading stdin")


class TestOutput:
    def test_missing_folder(self, attn: Invoke, tmp_path: Path) -> None:
        result = attn("weights", "-o", str(tmp_path / "no" / "out.csv"), terminal=True)
        assert_one_line_error(result, 1, "does not exist; create it first")

    @pytest.mark.parametrize("failing", ["replace", "fdopen"])
    def test_a_failure_while_writing_leaves_the_old_file_and_no_new_one(
        self, attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
    ) -> None:
        """The error comes after everything was computed, while the file is written."""
        old = tmp_path / "out.json"
        old.write_text("the previous result", encoding="utf-8")

        def disk_full(*args: Any, **kwargs: Any) -> Any:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(cli.os, failing, disk_full)
        result = attn("weights", "-o", str(old), terminal=True)
        monkeypatch.undo()
        assert_one_line_error(result, 1, "No space left on device")
        assert old.read_text(encoding="utf-8") == "the previous result"
        assert [p.name for p in tmp_path.iterdir()] == ["out.json"]

    @pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
    def test_ctrl_c_exits_130_without_a_traceback(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "attncli", "context", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _wait_until_reading(process.pid)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 130
        assert b"Traceback" not in stderr

    def test_an_output_the_disk_cannot_hold_is_refused_up_front(
        self, attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`scores` for 200 000 tokens streams in bounded memory, but 4e10 numbers are
        about 745 GiB of JSON: refused before anything is written."""
        path = tmp_path / "long.json"
        path.write_text(json.dumps([[0.5]] * 200_000), encoding="utf-8")
        free = shutil.disk_usage(tmp_path).free
        if free > 200_000**2 * 20:
            pytest.skip("this disk could hold the output")
        result = attn("scores", str(path), "-o", str(tmp_path / "out.json"), terminal=True)
        assert_one_line_error(result, 1, "attn scores would write about 745.1 GiB to")
        assert "is free there; ask for less: --query TOKEN gives one row" in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json"]
        one_row = attn("scores", str(path), "-q", "7", "-f", "json")
        assert one_row.exit_code == 0
        assert len(json.loads(one_row.stdout)["values"]) == 200_000

    def test_the_library_refuses_a_full_matrix_that_cannot_fit(self) -> None:
        emb = Embeddings(tuple(f"t{i}" for i in range(200_000)), np.full((200_000, 1), 0.5))
        free = 64 * 2**30  # the library checks against the memory it is told is free
        with pytest.raises(AttnError, match=r"attention for 200000 tokens needs about 1\.7 TiB"):
            compute(emb, memory=free)
        row = compute(emb, query=3, memory=free)  # one row: fine
        assert row.attn_weights.shape == (1, 1, 200_000)

    def test_the_memory_check_uses_what_is_free(self) -> None:
        attention.check_memory(10, 10, 1, 48, "attn scores", 1000 * 1024)  # 4.7 KiB: fine
        with pytest.raises(
            AttnError, match=r"attn scores for 200 tokens needs about 1\.8 MiB .* about 1000\.0 KiB"
        ):
            attention.check_memory(200, 200, 1, 48, "attn scores", 1000 * 1024)


class TestDebug:
    def test_debug_flag_adds_the_traceback(self, attn: Invoke) -> None:
        result = attn("context", str(INVALID / "ragged.csv"), "--debug", terminal=True)
        assert result.exit_code == 1
        assert "Traceback" in result.stderr
        assert result.stderr.rstrip().splitlines()[-1].startswith("attn: error: ")

    def test_attn_debug_environment_variable(
        self, attn: Invoke, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ATTN_DEBUG", "1")
        result = attn("context", str(INVALID / "ragged.csv"), terminal=True)
        assert "Traceback" in result.stderr

    def test_a_bug_is_reported_as_one_and_exits_70(
        self, attn: Invoke, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise ZeroDivisionError("division by zero")

        monkeypatch.setattr(attention, "compute_prepared", broken)
        result = attn("context", terminal=True)
        assert_one_line_error(
            result,
            70,
            "internal error (ZeroDivisionError: division by zero); this is a bug in attn",
        )


# ---------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_load_or_raise_attn_error(data: bytes) -> None:
    with contextlib.suppress(AttnError):
        loads(data)


@settings(max_examples=300)
@given(json_values)
def test_random_json_loads_or_raises_attn_error(value: Any) -> None:
    try:
        emb = loads(json.dumps(value))
    except AttnError:
        return
    assert emb.matrix.ndim == 2
    assert np.isfinite(emb.matrix).all()
    assert len(emb.tokens) == emb.matrix.shape[0] >= 1


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.text(alphabet=string.printable, max_size=6),
    st.just(""),
)


@settings(max_examples=300)
@given(
    st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=5),
    st.sampled_from([",", "\t", ";"]),
)
def test_random_csv_loads_or_raises_attn_error(rows: list[list[str]], delimiter: str) -> None:
    text = "\n".join(delimiter.join(row) for row in rows)
    for fmt in (None, InputFormat.CSV, InputFormat.TSV):
        try:
            emb = loads(text, input_format=fmt)
        except AttnError:
            continue
        assert np.isfinite(emb.matrix).all()


FLAG_CHOICES = [
    [],
    ["-m", "plain"],
    ["-m", "trainable"],
    ["-m", "causal"],
    ["-m", "bogus"],
    ["-q", "journey"],
    ["-q", "99"],
    ["-q", ""],
    ["--d-out", "4"],
    ["--d-out", "0"],
    ["--seed", "-5"],
    ["--seed", str(2**70)],
    ["--init", "linear"],
    ["--qkv-bias"],
    ["--heads", "2"],
    ["--heads", "-1"],
    ["--wrapper"],
    ["--dropout", "0.5"],
    ["--dropout", "nan"],
    ["--dropout", "2"],
    ["--dropout-seed", "9"],
    ["--weights", "/nonexistent.json"],
    ["-f", "csv"],
    ["-f", "json"],
    ["-f", "table"],
    ["--precision", "99"],
    ["--precision", "2"],
    ["--input-format", "csv"],
    ["--color"],
    ["--no-color"],
    ["-o", "-"],
    ["--bogus"],
    ["--prefill", "2"],
    ["--chunk", "0"],
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(
        ["scores", "weights", "context", "queries", "keys", "values", "explain", "decode"]
    ),
    st.lists(st.sampled_from(FLAG_CHOICES), max_size=4),
    st.booleans(),
)
def test_random_flag_combinations_never_crash(
    attn: Invoke, command: str, flags: list[list[str]], terminal: bool
) -> None:
    argv = [command, *(part for flag in flags for part in flag)]
    result = attn(*argv, terminal=terminal)
    assert result.exit_code in (0, 1, 2), (argv, result.stderr)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    if result.exit_code:
        assert result.stderr.startswith("attn: error: ")
        assert result.stdout == ""
    assert os.path.exists("-") is False


weight_names = st.sampled_from(
    [
        "W_query",
        "W_key",
        "W_value",
        "b_query",
        "W_query.weight",
        "W_key.bias",
        "out_proj.weight",
        "out_proj.bias",
        "heads.0.W_query.weight",
        "heads.1.W_key.weight",
        "layout",
        "mask",
        "other",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(weight_names, json_values, max_size=6), st.integers(1, 4))
def test_random_weights_files_load_or_raise_attn_error(entries: dict[str, Any], d_in: int) -> None:
    from attncli.inputs.weights import load_weights

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"attn-fuzz-weights-{os.getpid()}.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    try:
        projections = load_weights(str(path), d_in)
    except AttnError:
        return
    finally:
        path.unlink()
    assert projections.W_query.shape[0] == d_in

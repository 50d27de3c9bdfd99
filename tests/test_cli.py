"""`attn` end to end: the book's numbers, every way of giving input, output and errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attncli import __version__

from .conftest import SAMPLES, Invoke, expected, run_json

JOURNEY_JSON = (SAMPLES / "your_journey.json").read_text(encoding="utf-8")

# Each number of sections 3.3.1-3.4.2 and the `attn` command that prints it (README table).
BOOK_COMMANDS: list[tuple[str, list[str], Any]] = [
    ("dot_scores_query2", ["scores", "-q", "journey"], lambda e: e),
    ("dot_x1_x2", ["scores", "-q", "Your"], lambda e: [None, e[0]]),  # x1 . x2: 2nd entry
    ("softmax_naive_query2", ["weights", "-q", "journey"], lambda e: e[0]),
    ("torch_softmax_query2", ["weights", "-q", "journey"], lambda e: e[0]),
    ("context_vec_z2_simple", ["context", "-q", "journey"], lambda e: e),
    ("attn_scores_loop", ["scores"], lambda e: e),
    ("attn_scores_matmul", ["scores"], lambda e: e),
    ("attn_weights_all", ["weights"], lambda e: e),
    ("all_context_vecs", ["context"], lambda e: e),
    ("trainable_query_2", ["queries", "-m", "trainable", "-q", "journey"], lambda e: e),
    ("derived_keys", ["keys", "-m", "trainable"], lambda e: e),
    ("derived_values", ["values", "-m", "trainable"], lambda e: e),
    ("trainable_attn_scores_2", ["scores", "-m", "trainable", "-q", "journey"], lambda e: e),
    (
        "trainable_attn_score_22",
        ["scores", "-m", "trainable", "-q", "journey"],
        lambda e: [None, e],
    ),
    ("trainable_attn_weights_2", ["weights", "-m", "trainable", "-q", "journey"], lambda e: e),
    ("trainable_context_vec_2", ["context", "-m", "trainable", "-q", "journey"], lambda e: e),
    ("SelfAttention_v1_seed123", ["context", "-m", "trainable"], lambda e: e),
]


@pytest.mark.parametrize(
    ("case_id", "argv", "pick"), BOOK_COMMANDS, ids=[c[0] for c in BOOK_COMMANDS]
)
def test_book_numbers_through_the_cli(
    attn: Invoke, case_id: str, argv: list[str], pick: Any
) -> None:
    values = run_json(attn, *argv)["values"]
    want = pick(expected(case_id))
    if isinstance(want, list) and want and want[0] is None:  # one entry of a row
        index = len(want) - 1
        assert values[index] == pytest.approx(want[index], abs=1e-6)
    else:
        np.testing.assert_allclose(values, want, atol=1e-6)


def test_naive_normalisation_from_the_scores(attn: Invoke) -> None:
    """Section 3.3.1 first divides the scores by their sum; a script does it from the JSON."""
    scores = np.array(run_json(attn, "scores", "-q", "journey")["values"])
    naive, total = expected("naive_sum_normalization")
    np.testing.assert_allclose(scores / scores.sum(), naive, atol=1e-6)
    assert (scores / scores.sum()).sum() == pytest.approx(total, abs=1e-6)


def test_row_sums_of_the_weights_are_one(attn: Invoke) -> None:
    weights = np.array(run_json(attn, "weights")["values"])
    np.testing.assert_allclose(weights.sum(axis=1), expected("attn_weights_row_sums"), atol=1e-6)


def test_causal_weights_are_the_trainable_ones_masked_and_renormalised(attn: Invoke) -> None:
    trainable = np.array(run_json(attn, "weights", "-m", "trainable")["values"])
    causal = np.array(run_json(attn, "weights", "-m", "causal")["values"])
    masked = np.tril(trainable)
    np.testing.assert_allclose(causal, masked / masked.sum(axis=1, keepdims=True), rtol=1e-12)
    scores = run_json(attn, "scores", "-m", "causal")["values"]
    assert scores[0] == [pytest.approx(0.9231473733249663, abs=0), None, None, None, None, None]


def test_the_issues_headline_example(attn: Invoke) -> None:
    """`attn context --mode trainable --query journey` prints the book's [0.3061, 0.8210]."""
    result = attn("context", "--mode", "trainable", "--query", "journey", terminal=True)
    assert result.exit_code == 0, result.stderr
    assert "0.3061" in result.stdout
    assert "0.8210" in result.stdout
    assert "attn context · trainable · query 'journey' (#1)" in result.stdout


def test_built_in_example_on_a_terminal_prints_a_table(attn: Invoke) -> None:
    result = attn("scores", "--query", "journey", terminal=True)
    assert result.exit_code == 0
    for number in ("0.9544", "1.4950", "1.4754", "0.8434", "0.7070", "1.0865"):
        assert number in result.stdout
    assert result.stderr == ""


class TestInput:
    def test_piped_stdin_is_read_when_no_input_is_given(self, attn: Invoke) -> None:
        parsed = json.loads(attn("weights", input=JOURNEY_JSON).stdout)
        np.testing.assert_allclose(parsed["values"], expected("attn_weights_all"), atol=1e-6)

    def test_dash_reads_stdin_and_csv_is_detected_by_content(self, attn: Invoke) -> None:
        text = (SAMPLES / "your_journey.csv").read_text(encoding="utf-8")
        parsed = json.loads(attn("context", "-", input=text).stdout)
        np.testing.assert_allclose(parsed["values"], expected("all_context_vecs"), atol=1e-6)

    @pytest.mark.parametrize("name", ["your_journey.json", "your_journey.csv"])
    def test_files(self, attn: Invoke, name: str) -> None:
        result = attn("context", str(SAMPLES / name))
        np.testing.assert_allclose(
            json.loads(result.stdout)["values"], expected("all_context_vecs"), atol=1e-6
        )

    def test_empty_stdin_is_an_error_not_the_example(self, attn: Invoke) -> None:
        result = attn("scores", input="")
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.startswith("attn: error: stdin is empty;")
        assert result.stderr.count("\n") == 1

    @pytest.mark.parametrize(
        ("shell", "status"),
        [
            ("{attn} context < /dev/null", 0),  # nothing is piped: the book's example
            ("printf '' | {attn} context", 1),  # a pipe with nothing in it: an error
            ("{attn} context < {csv}", 0),  # a redirected file is read
            ("{attn} context < /dev/zero", 1),  # a device is read: refused as binary
        ],
    )
    def test_what_counts_as_piped_input(self, shell: str, status: int) -> None:
        command = shell.format(
            attn=f"{sys.executable} -m attncli", csv=SAMPLES / "your_journey.csv"
        )
        result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        assert result.returncode == status, result.stderr
        if status == 0:
            np.testing.assert_allclose(
                json.loads(result.stdout)["values"], expected("all_context_vecs"), atol=1e-6
            )
        elif "zero" in shell:
            assert result.stderr.startswith("attn: error: <stdin> is binary data, not text")
        else:
            assert result.stderr.startswith("attn: error: stdin is empty;")

    def test_input_format_overrides_detection(self, attn: Invoke, tmp_path: Path) -> None:
        path = tmp_path / "tokens.txt"
        path.write_text("a,1,2\nb,3,4\n", encoding="utf-8")
        parsed = json.loads(attn("scores", str(path), "--input-format", "csv").stdout)
        assert parsed["values"] == [[5.0, 11.0], [11.0, 25.0]]

    def test_bad_data_exits_1_with_one_line_naming_the_file(
        self, attn: Invoke, tmp_path: Path
    ) -> None:
        path = tmp_path / "bad.csv"
        path.write_text("token,d1,d2\na,1,2\nb,3\n", encoding="utf-8")
        result = attn("scores", str(path))
        assert result.exit_code == 1
        assert result.stdout == ""
        assert (
            result.stderr
            == f"attn: error: {path}: line 3 has 2 cells, but the header has 3; every row needs the same columns\n"
        )


class TestChaining:
    def test_context_json_is_input_for_the_next_layer(self, attn: Invoke) -> None:
        first = attn("context", "-m", "trainable", "-f", "json", terminal=True)
        second = attn("context", "-m", "causal", "-", input=first.stdout)
        assert second.exit_code == 0, second.stderr
        parsed = json.loads(second.stdout)
        assert parsed["tokens"] == ["Your", "journey", "starts", "with", "one", "step"]
        assert parsed["params"]["d_in"] == 2  # the first layer's d_out
        # the causal first row attends only to itself: its value vector
        layer1 = np.array(json.loads(first.stdout)["values"])
        values = json.loads(attn("values", "-m", "causal", "-", input=first.stdout).stdout)[
            "values"
        ]
        np.testing.assert_allclose(parsed["values"][0], values[0], rtol=1e-15)
        assert layer1.shape == (6, 2)

    def test_weights_json_is_refused_as_input_with_the_fix(self, attn: Invoke) -> None:
        weights = attn("weights", "-f", "json", terminal=True).stdout
        result = attn("context", "-", input=weights)
        assert result.exit_code == 1
        assert "this is the output of `attn weights`, not embeddings" in result.stderr


class TestOutput:
    def test_default_is_json_when_piped_and_table_on_a_terminal(self, attn: Invoke) -> None:
        assert json.loads(attn("weights", input=JOURNEY_JSON).stdout)["command"] == "weights"
        assert "attn weights · plain · 6×6" in attn("weights", terminal=True).stdout

    def test_csv(self, attn: Invoke) -> None:
        text = attn("context", "-f", "csv", terminal=True).stdout
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["token", "d1", "d2", "d3"]
        np.testing.assert_allclose(
            [[float(v) for v in row[1:]] for row in rows[1:]],
            expected("all_context_vecs"),
            atol=1e-6,
        )

    def test_precision_rounds_tables(self, attn: Invoke) -> None:
        text = attn("weights", "-q", "journey", "--precision", "2", terminal=True).stdout
        assert "0.14" in text
        assert "0.1385" not in text

    @pytest.mark.parametrize(
        ("name", "kind"), [("out.json", "json"), ("out.csv", "csv"), ("out.txt", "table")]
    )
    def test_output_file_format_follows_the_extension(
        self, attn: Invoke, tmp_path: Path, name: str, kind: str
    ) -> None:
        path = tmp_path / name
        result = attn("weights", "-o", str(path), terminal=True)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""
        text = path.read_text(encoding="utf-8")
        if kind == "json":
            assert json.loads(text)["shape"] == [6, 6]
        elif kind == "csv":
            assert text.startswith("token,Your,journey")
        else:
            assert "attn weights · plain" in text
            assert "\x1b[" not in text
        assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode

    def test_dash_output_is_stdout(self, attn: Invoke) -> None:
        result = attn("weights", "-o", "-", "-f", "csv", terminal=True)
        assert result.stdout.startswith("token,Your,journey")
        assert not Path("-").exists()

    def test_unknown_extension_needs_a_format(self, attn: Invoke, tmp_path: Path) -> None:
        result = attn("weights", "-o", str(tmp_path / "out.dat"), terminal=True)
        assert result.exit_code == 2
        assert "cannot tell the format of -o" in result.stderr
        assert not (tmp_path / "out.dat").exists()
        assert (
            attn("weights", "-o", str(tmp_path / "out.dat"), "-f", "csv", terminal=True).exit_code
            == 0
        )

    def test_an_error_leaves_an_existing_output_untouched(
        self, attn: Invoke, tmp_path: Path
    ) -> None:
        path = tmp_path / "out.json"
        path.write_text("precious", encoding="utf-8")
        result = attn("weights", "-q", "nope", "-o", str(path), terminal=True)
        assert result.exit_code == 2
        assert path.read_text(encoding="utf-8") == "precious"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left

    def test_output_into_a_missing_folder(self, attn: Invoke, tmp_path: Path) -> None:
        result = attn("weights", "-o", str(tmp_path / "missing" / "out.json"), terminal=True)
        assert result.exit_code == 1
        assert "does not exist; create it first" in result.stderr

    def test_a_failed_write_removes_its_temporary_file(
        self, attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(src: str, dst: str) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "replace", refuse)
        result = attn("weights", "-o", str(tmp_path / "out.json"), terminal=True)
        assert result.exit_code == 1
        assert "cannot write it (Permission denied)" in result.stderr
        assert list(tmp_path.iterdir()) == []

    def test_color_flag_forces_colour_even_when_piped(self, attn: Invoke) -> None:
        coloured = attn("weights", "-f", "table", "--color", input=JOURNEY_JSON).stdout
        assert "\x1b[" in coloured
        plain = attn("weights", "-f", "table", input=JOURNEY_JSON).stdout
        assert "\x1b[" not in plain
        assert "0.2098" in plain


class TestUsage:
    @pytest.mark.parametrize("flag", [["--d-out", "3"], ["--seed", "7"], ["--init", "rand"]])
    def test_weight_flags_in_plain_mode_are_usage_errors(
        self, attn: Invoke, flag: list[str]
    ) -> None:
        result = attn("weights", *flag, terminal=True)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert f"{flag[0]} has no effect in plain mode" in result.stderr
        assert "add --mode trainable or --mode causal" in result.stderr

    def test_defaults_are_not_mistaken_for_flags(self, attn: Invoke) -> None:
        assert attn("weights", "--mode", "plain", terminal=True).exit_code == 0
        assert (
            attn(
                "weights", "--mode", "trainable", "--d-out", "2", "--seed", "123", terminal=True
            ).exit_code
            == 0
        )

    def test_precision_with_json_is_a_usage_error(self, attn: Invoke) -> None:
        result = attn("weights", "--precision", "2", input=JOURNEY_JSON)
        assert result.exit_code == 2
        assert (
            "--precision only rounds tables, and the output is json (stdout is not a terminal)"
            in result.stderr
        )

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (
                ["weights", "--mode", "fancy"],
                "Invalid value for '--mode' / '-m': 'fancy' is not one of 'plain', 'trainable', 'causal'",
            ),
            (["weights", "--format", "xml"], "'xml' is not one of 'table', 'json', 'csv'"),
            (
                ["weights", "--d-out", "0", "-m", "trainable"],
                "--d-out 0 is too small: the projections need d_out ≥ 1",
            ),
            (["weights", "--precision", "-1", "-f", "table"], "--precision -1 is out of range"),
            (
                ["weights", "--seed", "1.5", "-m", "trainable"],
                "Invalid value for '--seed': '1.5' is not a whole number",
            ),
            (["weights", "--bogus"], "No such option"),
            (["weigths"], "No such command 'weigths'"),
            (
                ["weights", "-m", "trainable", "--seed", str(2**64)],
                "--seed 18446744073709551616 is out of range",
            ),
            (["weights", "-q", "jorney"], "did you mean 'journey'?"),
            (["weights", "-q", "9"], "--query 9 is out of range"),
        ],
    )
    def test_usage_errors_exit_2_with_one_line(
        self, attn: Invoke, argv: list[str], message: str
    ) -> None:
        result = attn(*argv, terminal=True)
        assert result.exit_code == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("attn: error: ")
        assert message in result.stderr
        assert result.stderr.count("\n") == 1

    def test_click_errors_point_to_the_commands_help(self, attn: Invoke) -> None:
        assert "(see 'attn weights --help')" in attn("weights", "--bogus", terminal=True).stderr

    def test_negative_and_huge_seeds_work_like_torch(self, attn: Invoke) -> None:
        low = run_json(attn, "weights", "-m", "trainable", "--seed", "-1")
        high = run_json(attn, "weights", "-m", "trainable", "--seed", str(2**32 - 1))
        assert low["values"] == high["values"]
        assert low["params"]["seed"] == -1


class TestManners:
    def test_attn_alone_shows_help_without_an_error_line(self, attn: Invoke) -> None:
        result = attn()
        assert result.exit_code == 2
        assert "Usage: attn" in result.stdout + result.stderr
        assert "error" not in result.stderr

    def test_version(self, attn: Invoke) -> None:
        result = attn("--version")
        assert result.exit_code == 0
        assert result.stdout == f"attn {__version__}\n"

    @pytest.mark.parametrize(
        "command", ["scores", "weights", "context", "queries", "keys", "values"]
    )
    def test_help_has_examples(self, attn: Invoke, command: str) -> None:
        result = attn(command, "--help")
        assert result.exit_code == 0
        assert "Examples" in result.stdout
        assert f"attn {command}" in result.stdout

    def test_every_option_has_help_text(self) -> None:
        import typer.main

        from attncli.cli.typer_app import build_app

        app = build_app(lambda parsed: None)

        group = typer.main.get_command(app)
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            for param in command.params:
                assert getattr(param, "help", None), f"attn {name}: {param.name} has no help"

    def test_python_dash_m_runs_the_same_app(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "attncli",
                "context",
                str(SAMPLES / "your_journey.json"),
                "-q",
                "1",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        np.testing.assert_allclose(
            json.loads(result.stdout)["values"], expected("context_vec_z2_simple"), atol=1e-6
        )

    def test_a_closed_pipe_ends_quietly(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(1)
        big = tmp_path / "big.json"
        big.write_text(json.dumps(rng.normal(size=(400, 8)).tolist()), encoding="utf-8")
        # `head -c 100` closes the pipe long before 400x400 weights are written
        reader = subprocess.run(
            f"{sys.executable} -m attncli weights {big} -f csv | head -c 100; status=${{PIPESTATUS[0]}}; echo; echo $status",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            check=False,
        )
        assert reader.stderr == ""
        assert reader.stdout.splitlines()[-1] == "141"  # 128 + SIGPIPE, as if killed by it

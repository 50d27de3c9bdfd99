"""The README states attn's promises once, in "Errors, exit codes and promises", and each
is tested as it is written there: this file holds the map from each promise to the tests
that check it, fails when the README gains a promise without tests (or loses one that
has them), and runs one direct check of each across every command and output format."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from .conftest import SAMPLES, Invoke

README = Path(__file__).parent.parent / "README.md"
SECTION = "## Errors, exit codes and promises"

# Each promise's title in the README -> the tests that check it as it is written.
PROMISES: dict[str, list[str]] = {
    "One line per error.": [
        "test_errors::test_invalid_file",
        "test_errors::test_invalid_input_on_stdin",
        "test_errors::TestFlags",
        "test_errors::TestDebug",
        "test_errors::test_random_flag_combinations_never_crash",
        "test_trust_output::test_hostile_environments_never_crash_attn",
        "test_trust_output::test_hostile_locales_never_crash_attn",
        "test_trust_params::test_dropout_one_and_hostile_inputs_warn_nothing_in_a_real_process",
        "test_trust_inputs::test_hostile_inputs_through_the_cli",
        "test_promises::test_every_error_is_one_line",
    ],
    "Nothing on stdout after an error.": [
        "test_trust_params::test_an_overflow_in_a_later_block_leaves_stdout_empty",
        "test_trust_params::test_an_overflow_in_a_later_head_leaves_stdout_empty",
        "test_trust_output::test_writing_to_a_full_or_closed_stdout_is_one_line_of_error",
        "test_promises::test_every_error_is_one_line",
    ],
    "Data where you sent it.": [
        "test_trust_output::test_the_progress_bar_never_takes_the_data_off_a_redirected_stdout",
        "test_trust_output::test_the_progress_bar_never_takes_the_data_off_a_pipe",
        "test_promises::test_data_goes_to_stdout_and_only_there",
    ],
    "Atomic files.": [
        "test_errors::TestOutput",
        "test_cli::TestOutput",
        "test_trust_output::test_a_signal_during_o_removes_the_temporary_file",
        "test_trust_output::test_o_keeps_the_mode_and_owner_of_the_file_it_replaces",
        "test_trust_output::test_o_through_a_symbolic_link_replaces_its_target_and_keeps_the_link",
        "test_trust_output::test_o_refuses_a_read_only_file_whoever_runs_it",
        "test_trust_output::test_o_into_a_character_device_writes_into_it",
        "test_trust_output::test_o_into_a_named_pipe_writes_into_it",
        "test_trust_output::test_o_dev_fd_writes_into_that_descriptor",
        "test_promises::test_every_format_is_written_whole_or_not_at_all",
    ],
    "Quiet pipes.": [
        "test_trust_output::test_a_closed_pipe_exits_141_quietly",
        "test_trust_output::test_o_into_a_named_pipe_whose_reader_leaves_exits_141_quietly",
        "test_cli::TestManners::test_a_closed_pipe_ends_quietly",
    ],
    "Your text stays text.": [
        "test_trust_render::test_every_format_shows_tokens_escaped",
        "test_trust_render::test_json_keeps_the_exact_tokens_the_other_formats_escape",
        "test_trust_render::test_explain_shows_tokens_escaped",
        "test_trust_render::test_a_message_never_carries_control_characters",
        "test_trust_render::test_a_weights_file_name_is_shown_escaped",
    ],
}


def stated_promises() -> list[str]:
    """The bold titles of the promises list, in the README's order."""
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- \*\*(.+?)\*\*", section, flags=re.MULTILINE)


def test_each_promise_in_the_readme_has_its_tests() -> None:
    assert stated_promises() == list(PROMISES)


def test_the_promises_are_stated_once() -> None:
    text = README.read_text(encoding="utf-8")
    for title in PROMISES:
        assert text.count(f"**{title}**") == 1, title


@pytest.mark.parametrize("title", list(PROMISES))
def test_each_named_test_exists(title: str) -> None:
    for name in PROMISES[title]:
        module_name, *path = name.split("::")
        found: object = importlib.import_module(f"tests.{module_name}")
        for attribute in path:
            found = getattr(found, attribute)  # AttributeError: a test that is gone


# ---------------------------------------------------------------- direct checks

BOOK_INPUT = SAMPLES / "your_journey.json"
COMMANDS = ("scores", "weights", "context", "queries", "keys", "values", "explain", "decode")
FORMATS = ("table", "json", "csv", "npy", "markdown", "svg", "html")


def _allowed(command: str, fmt: str) -> bool:
    return command not in ("explain", "decode") or fmt in ("table", "json", "svg", "html")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_error_is_one_line(attn: Invoke, command: str, tmp_path: Path) -> None:
    """A data error and a usage error for each command and format: one line on stderr,
    exit 1 or 2, stdout empty, no file written."""
    bad = tmp_path / "bad.csv"
    bad.write_text("token,a\nx,1\ny,oops\n", encoding="utf-8")
    for fmt in FORMATS:
        if not _allowed(command, fmt):
            continue
        target = tmp_path / f"out.{fmt}"
        for args, status in (
            ([str(bad)], 1),
            ([str(BOOK_INPUT), "--mode", "trainable", "--d-out", "0"], 2),
        ):
            for output in ([], ["-o", str(target)]):
                result = attn(command, *args, "-f", fmt, *output)
                assert result.exit_code == status, (command, fmt, result.stderr)
                assert result.stdout == "", (command, fmt)
                assert result.stderr.startswith("attn: error: ")
                assert result.stderr.count("\n") == 1, result.stderr
                assert not target.exists()


def test_data_goes_to_stdout_and_only_there(attn: Invoke, tmp_path: Path) -> None:
    """Nothing but the data on stdout, nothing on stderr when all goes well, and with -o,
    nothing on stdout at all."""
    for command in COMMANDS:
        for fmt in ("json", "csv"):
            if not _allowed(command, fmt):
                continue
            result = attn(command, str(BOOK_INPUT), "-m", "causal", "-f", fmt)
            assert (result.exit_code, result.stderr) == (0, ""), (command, fmt)
            if fmt == "json":
                assert json.loads(result.stdout)["command"] == command
            target = str(tmp_path / f"o.{fmt}")
            written = attn(command, str(BOOK_INPUT), "-m", "causal", "-o", target)
            assert (written.exit_code, written.stdout, written.stderr) == (0, "", "")


def test_every_format_is_written_whole_or_not_at_all(attn: Invoke, tmp_path: Path) -> None:
    """For each format, -o over an existing file: either the whole new result or, on an
    error, the old file, and never a temporary file left beside it."""
    extensions = {"table": "txt", "markdown": "md"}
    names = [f"result.{extensions.get(fmt, fmt)}" for fmt in FORMATS]
    for fmt, name in zip(FORMATS, names, strict=True):
        target = tmp_path / name
        target.write_bytes(b"old")
        failed = attn(
            "weights", str(BOOK_INPUT), "-m", "trainable", "--d-out", "0", "-o", str(target)
        )
        assert failed.exit_code == 2
        assert target.read_bytes() == b"old"
        done = attn("weights", str(BOOK_INPUT), "-m", "causal", "-o", str(target))
        assert done.exit_code == 0, done.stderr
        written = target.read_bytes()
        if fmt == "npy":
            np.testing.assert_allclose(np.load(target).sum(axis=1), np.ones(6), rtol=1e-12)
        elif fmt == "json":
            assert json.loads(written)["shape"] == [6, 6]
        elif fmt == "csv":
            assert len(written.decode().splitlines()) == 7  # the header and six rows
        else:
            # each text format's last line: the page's, the picture's, the table's caption
            ending = {"html": b"</html>", "svg": b"</svg>", "markdown": b"</sub>"}
            assert written.rstrip().endswith(ending.get(fmt, b"masked")), fmt
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[: FORMATS.index(fmt) + 1])

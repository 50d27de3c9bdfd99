"""Shared fixtures: the book's reference numbers and a CLI runner."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attncli.cli import app as cli
from attncli.cli.runner import run

collect_ignore = ["data"]  # the torch recording scripts there need torch, which tests never do

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parent.parent / "sample_inputs"
BOOK_FILE = DATA / "book_ch03.json"


def load_book() -> dict[str, Any]:
    with BOOK_FILE.open(encoding="utf-8") as handle:
        book: dict[str, Any] = json.load(handle)
    return book


BOOK = load_book()
CASES = {case["id"]: case for case in BOOK["cases"]}


def expected(case_id: str) -> Any:
    """The full-precision float32 values torch printed for a case of the book."""
    return CASES[case_id]["expected_full_precision"]


@pytest.fixture
def book() -> dict[str, Any]:
    return BOOK


@dataclass
class Result:
    """What one attn run printed and returned."""

    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


Invoke = Callable[..., Result]


class _Stdin(io.TextIOWrapper):
    """A piped stdin: has bytes to read, no file descriptor (so attn reads it)."""


def run_attn(argv: list[str], input: str | bytes | None, monkeypatch: pytest.MonkeyPatch) -> Result:
    data = input.encode("utf-8") if isinstance(input, str) else (input or b"")
    stdout_bytes, stderr_bytes = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(stdout_bytes, encoding="utf-8", newline="", write_through=True)
    stderr = io.TextIOWrapper(stderr_bytes, encoding="utf-8", newline="", write_through=True)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdin", _Stdin(io.BytesIO(data), encoding="utf-8"))
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", stderr)
        status = run(argv)
    raw = stdout_bytes.getvalue()
    return Result(
        status, raw.decode("utf-8", "replace"), stderr_bytes.getvalue().decode("utf-8"), raw
    )


@pytest.fixture
def attn(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `attn ARGS...` in-process, through the same runner.run() as the console script
    (the fast parser, or Typer for help and mistakes). `terminal=True` makes stdin and
    stdout look like a terminal (no INPUT then means the built-in example, and the
    default format is a table)."""

    def invoke(*args: str, input: str | bytes | None = None, terminal: bool = False) -> Result:
        monkeypatch.setattr(cli, "stdin_is_piped", lambda: not terminal)
        monkeypatch.setattr(cli, "stdout_is_terminal", lambda: terminal)
        return run_attn(list(args), input, monkeypatch)

    return invoke


def run_json(attn: Invoke, *args: str, input: str | bytes | None = None) -> dict[str, Any]:
    """`attn ARGS -f json` on the built-in example (or `input`), parsed; must exit 0."""
    result = attn(*args, "-f", "json", input=input, terminal=input is None)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed

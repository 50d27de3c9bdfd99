"""Shared fixtures: the book's reference numbers and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from attncli import cli

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


Invoke = Callable[..., Result]


@pytest.fixture
def attn(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `attn ARGS...` in-process. `terminal=True` makes stdin and stdout look like a
    terminal (no INPUT then means the built-in example, and the default format is a table)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None, terminal: bool = False) -> Result:
        monkeypatch.setattr(cli, "stdin_is_piped", lambda: not terminal)
        monkeypatch.setattr(cli, "stdout_is_terminal", lambda: terminal)
        return runner.invoke(cli.app, list(args), input=input)

    return invoke


def run_json(attn: Invoke, *args: str, input: str | bytes | None = None) -> dict[str, Any]:
    """`attn ARGS -f json` on the built-in example (or `input`), parsed; must exit 0."""
    result = attn(*args, "-f", "json", input=input, terminal=input is None)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed

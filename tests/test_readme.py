"""The README's pasted output is what attn prints today (golden output, httpie-style)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import SAMPLES, Invoke

README = Path(__file__).parent.parent / "README.md"
DiskUsage = namedtuple("DiskUsage", "total used free")
BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    """(command, expected output) for every `$ attn ...` line in a console block that
    has output below it and reads no file the README does not create."""
    found = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            output = []
            for following in lines[i + 1 :]:
                if following.startswith("$ "):
                    break
                output.append(following)
            while output and not output[-1].strip():
                output.pop()
            found.append((line[2:], "\n".join(output)))
    return found


EXAMPLES = [(cmd, out) for cmd, out in examples() if out and cmd.startswith("attn ")]
# commands that make the files later examples read
SETUP = [cmd for cmd, _ in examples() if cmd.startswith(("printf ", "python "))]


def test_the_readme_has_pasted_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("command", "output"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_output_is_current(
    attn: Invoke, command: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setup in SETUP:
        if setup.startswith("python "):
            setup = setup.replace("python", shlex.quote(sys.executable), 1)
        subprocess.run(setup, shell=True, cwd=tmp_path, check=True)
    (tmp_path / "sample_inputs").symlink_to(SAMPLES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    # never let an example start writing a huge file on a roomy disk: 50 GiB free, always
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: DiskUsage(2**40, 2**40 - 50 * 2**30, 50 * 2**30)
    )
    result = attn(*shlex.split(command)[1:], terminal=True)
    printed = (result.stdout + result.stderr).rstrip("\n")
    actual = "\n".join(line.rstrip() for line in printed.splitlines())
    # how much memory or disk is free differs from machine to machine
    free = re.compile(r"about [\d.]+ \w+ (of memory )?is free")
    actual, output = (
        free.sub("about N is free", actual),
        free.sub("about N is free", output),
    )
    # so does the rounding a BLAS kernel leaves (attn decode's difference from the full
    # computation: 0, 5.6e-17 or 1.1e-16 on different machines); it must stay tiny
    rounding = re.compile(r"(full (?:causal )?computation: )(0|\d\.\de-(?:1[3-9]|[2-9]\d))\b")
    actual, output = (rounding.sub(r"\1ε", actual), rounding.sub(r"\1ε", output))
    if output.startswith("{"):
        # full-precision JSON: the last digit may differ between numpy/BLAS builds
        assert json.loads(actual) == approx_json(json.loads(output))
        assert actual.splitlines()[0] == "{"
    else:
        assert actual == output
    assert os.getcwd() == str(tmp_path)


def approx_json(value: Any) -> Any:
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12)
    if isinstance(value, list):
        return [approx_json(v) for v in value]
    if isinstance(value, dict):
        return {k: approx_json(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- the "Reproduce the book" table

NUMBER = re.compile(r"-inf|-?\d+(?:\.\d+)?")


def book_rows() -> list[tuple[str, str, str]]:
    """(section, what the book prints, the attn command) for each row of the table whose
    command is a plain `attn ...` (no pipe)."""
    text = README.read_text(encoding="utf-8")
    table = text.split("## Reproduce the book", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 4 or not cells[3].startswith("`attn "):
            continue
        command = cells[3].split("`")[1]
        if "|" in command:
            continue
        rows.append((cells[0], cells[2], command))
    return rows


BOOK_ROWS = book_rows()


def test_the_book_table_has_its_rows() -> None:
    assert len(BOOK_ROWS) >= 25


@pytest.mark.parametrize(
    ("section", "printed", "command"), BOOK_ROWS, ids=[r[2] for r in BOOK_ROWS]
)
def test_each_book_row_prints_the_books_numbers(
    attn: Invoke, section: str, printed: str, command: str
) -> None:
    """Every run of numbers between ellipses in the "book prints" cell appears, in order,
    in what the command prints (rounded to the book's 4 decimals)."""
    result = attn(*shlex.split(command)[1:], "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    flat = np.array(json.loads(result.stdout)["values"], dtype=object).ravel().tolist()
    printed_values = ["-inf" if v is None else f"{round(v, 4):.4f}" for v in flat]
    for segment in re.split(r"\.\.\.|…", printed):
        wanted = [n if n == "-inf" else f"{float(n):.4f}" for n in NUMBER.findall(segment)]
        if not wanted:
            continue
        windows = (printed_values[i : i + len(wanted)] for i in range(len(printed_values)))
        assert wanted in list(windows), f"{section}: {segment!r} not in {command}"


# ---------------------------------------------------------------- "Reproduce the bonus material"

TORCH = json.loads((Path(__file__).parent / "data" / "torch_beyond.json").read_text("utf-8"))


def bonus_rows() -> list[tuple[str, str, str]]:
    """(test case, what torch gives, the attn command) for each row of the table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("### Reproduce the bonus material", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 4 or not cells[3].startswith("`attn "):
            continue
        case = re.findall(r"\(`(\w+)`\)", cells[1])[-1]
        rows.append((case, cells[2], cells[3].strip("`")))
    return rows


BONUS_ROWS = bonus_rows()


def _torch_context(case: str, command: str) -> list[list[float]]:
    if case == "cross_attention":
        mask = "is_causal_top_left" if "top-left" in command else "causal_lower_right"
        cases = TORCH["cross_attention"]["cases"]
        found: list[list[float]] = next(c for c in cases if c["mask"] == mask)["context_vecs"]
        return found
    named: list[list[float]] = next(c for c in TORCH["cases"] if c["name"] == case)["context_vecs"]
    return named


def test_the_bonus_table_has_its_rows() -> None:
    assert len(BONUS_ROWS) >= 10


@pytest.mark.parametrize(("case", "printed", "command"), BONUS_ROWS, ids=[r[2] for r in BONUS_ROWS])
def test_each_bonus_row_is_torchs_and_attns(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch, case: str, printed: str, command: str
) -> None:
    """The rows the README quotes are torch's (first and last, 4 decimals), and the
    command prints them."""
    quoted = [[float(n) for n in NUMBER.findall(part)] for part in printed.split("…")]
    torch_rows = _torch_context(case, command)
    for row, expected in zip(quoted, (torch_rows[0], torch_rows[-1]), strict=True):
        assert row == [round(v, 4) for v in expected], case
    monkeypatch.chdir(README.parent)  # the command names sample_inputs/
    result = attn(*shlex.split(command)[1:], "-f", "json", terminal=True)
    assert result.exit_code == 0, result.stderr
    values = json.loads(result.stdout)["values"]
    np.testing.assert_allclose(values, torch_rows, rtol=0, atol=1e-12)

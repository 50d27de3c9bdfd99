"""The fast parser reads every command line it accepts exactly as Typer does."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.core import TyperGroup

from attncli.cli import app as cli
from attncli.cli import options
from attncli.cli.typer_app import build_app


class CapturedError(Exception):
    def __init__(self, request: cli.Request) -> None:
        self.request = request


def via_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> cli.Request | None:
    """The Request Typer's path builds for argv, or None if Typer refuses it."""

    def capture(parsed: options.Parsed) -> None:
        raise CapturedError(cli.request_from(parsed))

    command = typer.main.get_command(build_app(capture))
    try:  # Typer's own main, without attn's error handling around it
        TyperGroup.main(command, args=argv, prog_name="attn", standalone_mode=False)
    except CapturedError as caught:
        return caught.request
    except Exception:
        return None
    return None


def same(fast: cli.Request, slow: cli.Request | None) -> bool:
    """Equal requests; `--dropout nan` parses to NaN both ways, which == calls unequal."""
    return fast == slow or repr(fast) == repr(slow)


TOKENS = [
    "scores",
    "weights",
    "context",
    "explain",
    "x.csv",
    "-",
    "--",
    "-m",
    "--mode",
    "causal",
    "trainable",
    "plain",
    "Causal",
    "-mcausal",
    "--mode=causal",
    "-q",
    "--query",
    "journey",
    "3",
    "-1",
    "--query=-1",
    "-qjourney",
    "--d-out",
    "4",
    "--d-out=0",
    "1.5",
    "--seed",
    "-7",
    str(2**64),
    "--init",
    "linear",
    "--qkv-bias",
    "--qkv-bias=1",
    "--heads",
    "2",
    "--wrapper",
    "--dropout",
    "0.5",
    "nan",
    "--dropout-seed",
    "9",
    "--weights",
    "w.json",
    "--dtype",
    "float32",
    "-f",
    "json",
    "--format=csv",
    "-fnpy",
    "--precision",
    "2",
    "-o",
    "out.json",
    "-o-",
    "--prefill",
    "--chunk=3",
    "--stage",
    "weights",
    "--stage=context",
    "--color",
    "--no-color",
    "--debug",
    "--input-format",
    "tsv",
    "--help",
    "-h",
    "--bogus",
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["scores", "weights", "context", "queries", "explain", "decode", "check"]),
    st.lists(st.sampled_from(TOKENS), max_size=7),
)
def test_fast_parser_agrees_with_typer(command: str, rest: list[str]) -> None:
    argv = [command, *rest]
    fast = options.parse(argv)
    if fast is None:
        return  # Typer's alone: help, a mistake, something the fast parser leaves to it
    with pytest.MonkeyPatch.context() as monkeypatch:
        slow = via_typer(argv, monkeypatch)
    assert slow is not None, f"Typer refuses what the fast parser accepted: {argv}"
    assert same(cli.request_from(fast), slow), argv


@pytest.mark.parametrize(
    "argv",
    [
        ["context", "sample.csv", "-m", "causal", "-f", "json"],
        ["weights", "-q", "journey", "--mode=trainable", "--d-out", "4", "--seed", "-1"],
        ["scores", "--", "-weird-name.csv"],
        ["explain", "-mcausal", "--init", "linear", "--heads", "2", "--dropout", "0.1"],
        ["context", "-", "--no-color", "--dtype", "float32", "-o", "-"],
        ["decode", "x.csv", "--prefill", "5", "--chunk=2", "--window", "3", "-f", "json"],
        ["check", "mine.json", "x.csv", "-m", "causal", "--stage", "weights", "-f", "json"],
        ["check", "-", "--stage=scores", "-q", "journey"],
    ],
)
def test_everyday_calls_take_the_fast_path(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = options.parse(argv)
    assert fast is not None
    assert same(cli.request_from(fast), via_typer(argv, monkeypatch))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["scores", "--help"],
        ["scores", "-h"],
        ["scorse"],
        ["scores", "--bogus"],
        ["scores", "a.csv", "b.csv"],
        ["scores", "--seed"],
        ["scores", "--seed", "x"],
        ["scores", "-m", "sideways"],
        ["scores", "--wrapper=yes"],
        ["check"],
        ["check", "a.json", "b.csv", "c.csv"],
        ["check", "a.json", "--stage", "attn"],
        ["weights", "--stage", "weights"],
    ],
)
def test_anything_else_goes_to_typer(argv: list[str]) -> None:
    assert options.parse(argv) is None


def test_every_typer_option_is_in_the_table() -> None:
    command: Any = typer.main.get_command(build_app(lambda parsed: None)).commands["scores"]  # type: ignore[attr-defined]
    declared = {decl for flag in options.FLAGS for decl in flag.decls}
    typer_side = set()
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            names = [*param.opts, *param.secondary_opts]
            typer_side.add("/".join(names) if param.secondary_opts else names[0])
            typer_side.update(names[1:] if not param.secondary_opts else [])
    assert typer_side == declared
    for flag in options.FLAGS:
        param = next(p for p in command.params if p.name == flag.name)
        assert param.default == flag.default
        assert param.help == flag.help


def test_check_takes_theirs_input_and_the_attention_flags() -> None:
    command: Any = typer.main.get_command(build_app(lambda parsed: None)).commands["check"]  # type: ignore[attr-defined]
    arguments = [p.name for p in command.params if p.param_type_name == "argument"]
    assert arguments == ["theirs", "input"]
    flags = {p.name for p in command.params if p.param_type_name == "option"} - {"help"}
    assert flags == {flag.name for flag in options.check_flags()}
    assert flags == {flag.name for flag in options.FLAGS} | {"stage"}

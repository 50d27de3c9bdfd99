"""The Typer app: help, shell completion and usage errors, built from options' flags.

runner.run() reads ordinary command lines itself (options.parse) and hands everything
else here: `--help`, `--version`, completion, and calls with a mistake in them, which
Typer (click) words. The commands call the `execute` they are given, the one runner.run
uses.
click's errors are turned into attn's own (AttnError) here: nothing outside this module
knows click or Typer.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Collection, Sequence
from types import ModuleType
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import AttnError, ExitStatus
from ..version import __version__
from . import output
from .options import (
    COMMANDS,
    COMPLETION_VARIABLE,
    EXAMPLES,
    FLAGS,
    HELP,
    INPUT_HELP,
    THEIRS_HELP,
    Flag,
    Parsed,
    command_flags,
    positionals,
    real,
    whole,
)

Execute = Callable[[Parsed], int | None]  # the exit status (None: 0)

# click's exception base, found through Typer's public BadParameter, so this works
# with Typer releases that vendor click and with those that depend on it.
ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _without_value_labels(params: list[Any]) -> list[Any]:
    """A switch takes no value, but Typer labels it "<bool>" (--help, --wrapper,
    --install-completion), which reads as if it took one: "--qkv-bias true"."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    return params


class _Untyped:
    """Typer's coercion of one parameter, made only for a value that needs it.

    Typer releases that validate with pydantic build a pydantic adapter for every
    parameter they process, even one not on the command line, whose value (None) no
    adapter changes. `attn COMMAND --help` processes attn's own --help,
    --install-completion and --show-completion that way before the command's help:
    importing pydantic for them cost a quarter of the help's start-up."""

    def __init__(self, param: Any) -> None:
        self.param = param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:  # what Typer's coercion gives for None, whatever the type
            return () if param.multiple or param.nargs == -1 else None
        param._runtime_param = None  # the real one, from now on
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


def _typed_when_needed(params: list[Any]) -> list[Any]:
    """Each parameter's coercion deferred until a value needs it (see _Untyped); Typer
    releases without such coercion (no `_runtime_param`) are left as they are."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None:
            param._runtime_param = _Untyped(param)
    return params


class AttnGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _typed_when_needed(_without_value_labels(super().get_params(ctx)))


class AttnCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _typed_when_needed(_without_value_labels(super().get_params(ctx)))


def _asks_for_help(args: Sequence[str] | None) -> bool:
    """Whether attn is to print help (or its version) to stdout."""
    args = list(args or ())
    options = args[: args.index("--")] if "--" in args else args
    return not args or bool({"-h", "--help", "--version"} & set(options))


def click_message(exc: Exception) -> str:
    """The one-line message of a click error, with where to read the command's help."""
    message = str(exc.format_message())  # type: ignore[attr-defined]
    # Typer releases that validate with pydantic prefix enum errors with its jargon.
    message = message.replace("Value error, ", "")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _checked(convert: Callable[[Any], Any], what: str) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not {what}") from None

    return parse


def complete_query(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of --query: the tokens of the INPUT named on the command line
    (the book's six without one) that start with what was typed, case-insensitively."""
    source = ctx.params.get("input") or _input_in_command_line()
    if source == "-":
        return []  # stdin is the shell's while it completes: nothing to read
    # numpy and the readers only here: help and mistakes must not wait for them
    from ..embeddings import book_example
    from ..inputs import load

    try:
        tokens = book_example().tokens if source is None else load(source).tokens
    except AttnError:
        return []
    folded = incomplete.casefold()
    matches = [t for t in dict.fromkeys(tokens) if t.casefold().startswith(folded)]
    return matches[:200]


def _input_in_command_line() -> str | None:
    """The INPUT of the command line being completed, before or after the cursor (click
    reads only the words before it): the first word after the command that is neither
    an option nor an option's value."""
    import shlex

    try:
        words = shlex.split(os.environ.get("COMP_WORDS", ""))
        cursor = int(os.environ.get("COMP_CWORD", "-1"))
    except ValueError:
        return None
    takes_value = {d for f in FLAGS if f.kind not in ("flag", "switch") for d in f.decls}
    i = 2  # after `attn COMMAND`
    while i < len(words):
        word = words[i]
        if i != cursor and (word == "-" or not word.startswith("-")):
            return word
        i += 2 if word in takes_value else 1
    return None


def _annotation(flag: Flag) -> Any:
    """The Annotated type Typer reads a flag's option from."""
    options: dict[str, Any] = {
        "help": flag.help,
        "rich_help_panel": flag.panel,
        "show_default": flag.show_default,
    }
    if flag.name == "query":
        options["autocompletion"] = complete_query
    if flag.metavar:
        options["metavar"] = flag.metavar
    python_type: Any
    if flag.kind == "int":
        options["parser"] = _checked(whole, "a whole number")
        python_type = int if flag.default is not None else int | None
    elif flag.kind == "float":
        options["parser"] = _checked(real, "a number")
        python_type = float
    elif flag.kind == "text":
        python_type = str | None
    elif flag.kind == "flag":
        python_type = bool
    elif flag.kind == "switch":
        python_type = bool | None
    else:
        python_type = flag.choices if flag.default is not None else flag.choices | None  # type: ignore[operator]
    return Annotated[python_type, typer.Option(*flag.decls, **options)]


def _command(name: str, execute: Execute) -> Callable[..., int | None]:
    """A Typer command whose parameters are its positionals (INPUT; attn check's THEIRS
    too) and the flags options.command_flags gives it."""
    arguments = positionals(name)

    def run(ctx: typer.Context, **values: Any) -> int | None:
        explicit = frozenset(
            key
            for key in ctx.params
            if key not in arguments
            and (source := ctx.get_parameter_source(key)) is not None
            and source.name != "DEFAULT"
        )
        return execute(Parsed(name, values, explicit))

    keyword = inspect.Parameter.KEYWORD_ONLY
    input_parameter = inspect.Parameter(
        "input",
        keyword,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Argument(metavar="INPUT", help=INPUT_HELP, show_default=False),
        ],
    )
    theirs_parameter = inspect.Parameter(
        "theirs",
        keyword,
        annotation=Annotated[str, typer.Argument(metavar="THEIRS", help=THEIRS_HELP)],
    )
    parameters = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *([theirs_parameter] if "theirs" in arguments else []),
        *([input_parameter] if "input" in arguments else []),
        *(
            inspect.Parameter(
                flag.name, keyword, default=flag.default, annotation=_annotation(flag)
            )
            for flag in command_flags(name)
        ),
    ]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": int | None}
    run.__name__ = name
    return run


def _show_version(value: bool) -> None:
    if value:
        output.write_version(__version__)
        raise typer.Exit()


def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print attn's version and exit.",
        ),
    ] = False,
) -> None:
    """Self-attention, step by step, on your own vectors."""


def _listed(name: str) -> Callable[[typer.Context], None]:
    """A command `attn --help` lists, but without its flags: for a command line that
    does not name it, so cannot run it (building every command's flags for Typer cost
    `attn COMMAND --help` a fifth of its time)."""

    def run(ctx: typer.Context) -> None:
        raise AssertionError(f"attn {name} ran without its flags")

    run.__name__ = name
    return run


def build_app(execute: Execute, named: Collection[str] | None = None) -> typer.Typer:
    """The Typer app whose commands call `execute` with what they parsed. With `named`
    (the words of a command line), only the commands named there get their flags: click
    runs a command only by its exact name, and the others are only listed."""
    app = typer.Typer(
        cls=AttnGroup,
        name="attn",
        help=(
            "Self-attention, step by step, on your own vectors: the scores, weights and "
            "context vectors of chapter 3 of Build a Large Language Model (From Scratch), "
            "in pure numpy. With no INPUT (and nothing piped in) it uses the book's six tokens."
        ),
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
    )
    app.callback()(_main_options)
    for name in COMMANDS:
        epilog = "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in EXAMPLES[name])
        app.command(
            name,
            cls=AttnCommand,
            help=HELP[name],
            short_help=short_help(HELP[name]),
            epilog=epilog,
        )(_command(name, execute) if named is None or name in named else _listed(name))
    return app


def short_help(text: str) -> str:
    """A command's help up to its first full stop, for `attn --help`'s list of commands
    (each command's own --help gives all of it).

    >>> short_help("Attention scores: q @ k.T. Masked ones show as -inf.")
    'Attention scores: q @ k.T.'
    """
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


# rich modules that typer.rich_utils imports, for a class each that attn's help never
# uses: Markdown for the markup mode "markdown" (attn's is "rich"), Traceback for pretty
# exceptions (attn turns them off). With markdown-it and pygments, which they import,
# they were a quarter of `attn --help`'s time.
_UNUSED_BY_THE_HELP = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """A stand-in's type: calling the stand-in, or reading anything of it, imports the
    real module and hands over to the real class."""

    def real(cls) -> Any:
        return getattr(importlib.import_module(cls.__module__), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real(), name)


def _import_rich_utils() -> None:
    """Import typer.rich_utils, which draws the help, with a stand-in for each module of
    _UNUSED_BY_THE_HELP (a class of the same name, _Deferred) in place of the real one;
    the stand-ins are gone from sys.modules once it is imported, so anything else
    imports the real modules. The help is the same, to the byte (tests check it)."""
    if "typer.rich_utils" not in sys.modules:
        stand_ins = {
            module: ModuleType(module)
            for module in _UNUSED_BY_THE_HELP
            if module not in sys.modules
        }
        for module, stand_in in stand_ins.items():
            name = _UNUSED_BY_THE_HELP[module]
            setattr(stand_in, name, _Deferred(name, (), {"__module__": module}))
        sys.modules.update(stand_ins)
        try:
            importlib.import_module("typer.rich_utils")
        finally:
            for module, stand_in in stand_ins.items():
                if sys.modules.get(module) is stand_in:
                    del sys.modules[module]


def run_typer(argv: Sequence[str], execute: Execute) -> int:
    """Run the Typer app on `argv`, its commands calling `execute`; the exit status.
    click's errors come out as AttnError (its usage errors exit 2), help and completion
    go to stdout with the care of any output of attn."""
    args = list(argv)
    if _asks_for_help(args):
        if sys.stdout is None:
            raise AttnError("cannot write the help: stdout is closed")
        _import_rich_utils()
        from typer import rich_utils

        if getattr(rich_utils, "MAX_WIDTH", 0) is None:  # TERMINAL_WIDTH unset
            rich_utils.MAX_WIDTH = output.help_width()
    completing = COMPLETION_VARIABLE in os.environ  # the words are COMP_WORDS, not `args`
    command = typer.main.get_command(build_app(execute, None if completing else args))
    try:
        with output.writing_stdout("the help"), output.rich_reports_broken_pipes():
            status = command.main(args=args, prog_name="attn", standalone_mode=False)
    except SystemExit as done:  # shell completion answers and exits
        return int(done.code or 0) if isinstance(done.code, int) else 0
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `attn` alone: the help was shown
            return ExitStatus.BAD_USAGE
        status = int(getattr(exc, "exit_code", ExitStatus.BAD_USAGE))
        raise AttnError(click_message(exc), ExitStatus(status)) from None
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # click's word for an interrupted prompt
            raise KeyboardInterrupt from None
        raise
    return int(status) if isinstance(status, int) else 0

"""The `attn` command line: flags -> load -> compute -> render -> write.

This module is the one place that prints and the one place that turns an error into
a message and an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import os
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import AttnError, ExitStatus
from .loading import Embeddings, InputFormat, book_example, load, loads
from .modes import (
    COMPUTE_BYTES_PER_SCORE,
    AttentionParams,
    AttentionResult,
    Init,
    Mode,
    check_memory,
    compute,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

# click's exception base, found through Typer's public BadParameter, so this works
# with Typer releases that vendor click and with those that depend on it.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


_FORMAT_BY_EXTENSION = {
    ".json": OutputFormat.JSON,
    ".csv": OutputFormat.CSV,
    ".txt": OutputFormat.TABLE,
}


class AttnGroup(TyperGroup):
    """Typer's group with attn's error handling: one line on stderr, a fixed exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _debug
        _debug = os.environ.get("ATTN_DEBUG", "") not in ("", "0")
        try:
            status = super().main(
                args=args,
                prog_name=prog_name or "attn",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            status = int(status or 0) if isinstance(status, int) else 0
        except AttnError as exc:
            _traceback_if_debugging()
            status = _fail(exc.message, exc.status)
        except _ClickException as exc:
            status = int(getattr(exc, "exit_code", ExitStatus.BAD_USAGE))
            if type(exc).__name__ != "NoArgsIsHelpError":  # `attn` alone: help is shown
                _fail(_click_message(exc), status)
        except (KeyboardInterrupt, typer.Abort):
            status = _fail("interrupted", ExitStatus.INTERRUPTED)
        except MemoryError:
            _traceback_if_debugging()
            status = _fail(
                "out of memory; ask for less: --query TOKEN for one row, or attn context "
                "instead of the full scores or weights, or a shorter input",
                ExitStatus.BAD_DATA,
            )
        except Exception as exc:  # a bug in attn, not bad input: say so, briefly
            _traceback_if_debugging()
            status = _fail(
                f"internal error ({type(exc).__name__}: {exc}); this is a bug in attn "
                f"{__version__}: please report it with the output of the same command "
                "run with --debug",
                ExitStatus.INTERNAL,
            )
        if standalone_mode:
            sys.exit(status)
        return status


_debug = False  # --debug or ATTN_DEBUG=1: tracebacks with the error messages


def _traceback_if_debugging() -> None:
    if _debug:
        traceback.print_exc()


def _set_debug(value: bool) -> None:
    global _debug
    _debug = _debug or value


def _click_message(exc: Exception) -> str:
    message = exc.format_message()  # type: ignore[attr-defined]
    # Typer releases that validate with pydantic prefix enum errors with its jargon.
    message = message.replace("Value error, ", "")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return str(message)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"attn: error: {message}\n")
    sys.stderr.flush()
    return status


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


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"attn {__version__}\n")
        raise typer.Exit()


@app.callback()
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


# ---------------------------------------------------------------- options


def _whole(text: str | int) -> int:
    """An integer flag's value; Typer's own message would not show what was typed.
    (Typer passes defaults through the parser too, already as numbers.)"""
    if isinstance(text, int):
        return text
    try:
        return int(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a whole number") from None


def _real(text: str | float) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number") from None


_INPUT_PANEL = "Input"
_ATTENTION_PANEL = "Attention"
_OUTPUT_PANEL = "Output"

InputArg = Annotated[
    str | None,
    typer.Argument(
        metavar="INPUT",
        help=(
            "Token embeddings: a .json, .csv or .tsv file, or - for stdin. Without it, "
            "attn reads stdin when something is piped in, else uses the book's six tokens."
        ),
        show_default=False,
    ),
]
InputFormatOpt = Annotated[
    InputFormat | None,
    typer.Option(
        "--input-format",
        help="Parse INPUT as this format instead of guessing from its name and content.",
        rich_help_panel=_INPUT_PANEL,
        show_default=False,
    ),
]
ModeOpt = Annotated[
    Mode,
    typer.Option(
        "--mode",
        "-m",
        help=(
            "plain: inputs as queries/keys/values, no scaling (book 3.3). trainable: "
            "seeded W_query, W_key, W_value, scores scaled by 1/sqrt(d_out) (3.4). "
            "causal: trainable with future tokens masked (3.5)."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        "-q",
        metavar="TOKEN",
        help=(
            "Show only this query's row: a token's text (exact, then case-insensitive) "
            "or a 0-based index."
        ),
        rich_help_panel=_ATTENTION_PANEL,
        show_default=False,
    ),
]
DOutOpt = Annotated[
    int,
    typer.Option(
        "--d-out",
        parser=_whole,
        metavar="INT",
        help="Size of the query/key/value projections (trainable and causal modes).",
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        parser=_whole,
        metavar="INT",
        help=(
            "torch.manual_seed for the weights (and dropout): the same seed gives the "
            "book's (torch's) numbers."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
InitOpt = Annotated[
    Init,
    typer.Option(
        "--init",
        help=(
            "How the weights are drawn. rand: torch.rand(d_in, d_out), applied as X @ W "
            "(book 3.4.1). linear: nn.Linear(d_in, d_out), X @ W.T (3.4.2 onwards)."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
QkvBiasOpt = Annotated[
    bool,
    typer.Option(
        "--qkv-bias",
        help="Give W_query, W_key, W_value biases, drawn after each weight (with --init linear).",
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
HeadsOpt = Annotated[
    int,
    typer.Option(
        "--heads",
        parser=_whole,
        metavar="H",
        help=(
            "Attention heads. H > 1 is the book's MultiHeadAttention (3.6.2): d_out split "
            "into H heads, then out_proj; with --wrapper, MultiHeadAttentionWrapper (3.6.1)."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
WrapperOpt = Annotated[
    bool,
    typer.Option(
        "--wrapper",
        help=(
            "With --heads H: H separate single-head modules of d_out each, side by side, "
            "no out_proj (MultiHeadAttentionWrapper, book 3.6.1)."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
DropoutOpt = Annotated[
    float,
    typer.Option(
        "--dropout",
        parser=_real,
        metavar="P",
        help=(
            "nn.Dropout(P) on the attention weights, in training mode, with torch's draws "
            "(continuing the seed's stream after the weights)."
        ),
        rich_help_panel=_ATTENTION_PANEL,
    ),
]
DropoutSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--dropout-seed",
        parser=_whole,
        metavar="S",
        help="torch.manual_seed(S) just before the dropout draws (book 3.5.2 uses 123).",
        rich_help_panel=_ATTENTION_PANEL,
        show_default=False,
    ),
]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        metavar="FILE",
        help=(
            "Take W_query, W_key, W_value (biases, out_proj) from a .json or .npz file, "
            "e.g. a module's state_dict, instead of drawing them."
        ),
        rich_help_panel=_ATTENTION_PANEL,
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help=(
            "Output format. Default: table on a terminal, JSON when piped; with -o, "
            "from the file's extension (.json, .csv, .txt)."
        ),
        rich_help_panel=_OUTPUT_PANEL,
        show_default=False,
    ),
]
PrecisionOpt = Annotated[
    int,
    typer.Option(
        "--precision",
        parser=_whole,
        metavar="INT",
        help="Decimals shown in tables (JSON and CSV keep full precision).",
        rich_help_panel=_OUTPUT_PANEL,
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write the result to FILE (all at once: no partial file on error); - is stdout.",
        rich_help_panel=_OUTPUT_PANEL,
        show_default=False,
    ),
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        help=(
            "On an error, print the full Python traceback too (for bug reports); "
            "ATTN_DEBUG=1 does the same."
        ),
        rich_help_panel=_OUTPUT_PANEL,
    ),
]
ColorOpt = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        help=(
            "Colour the table even when piped, or never. "
            "Default: on a terminal, unless NO_COLOR is set."
        ),
        rich_help_panel=_OUTPUT_PANEL,
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Request:
    """What the user asked for, as parsed from the command line."""

    command: str
    input: str | None
    input_format: InputFormat | None
    params: AttentionParams
    weights: str | None
    query: str | None
    format: OutputFormat | None
    precision: int
    output: str | None
    color: bool | None
    explicit: frozenset[str]  # options given on the command line, not defaulted


# ---------------------------------------------------------------- commands

_EXAMPLES = {
    "scores": (
        "attn scores --query journey",
        "attn scores --mode causal",
        "attn scores my_tokens.csv -f csv -o scores.csv",
    ),
    "weights": (
        "attn weights",
        "attn weights --mode causal",
        "attn weights my_tokens.csv --mode trainable --d-out 4 --seed 42",
    ),
    "context": (
        "attn context",
        "attn context --mode trainable --query journey",
        "attn context -f json | attn context --mode causal -",
    ),
    "queries": ("attn queries --mode trainable --query journey",),
    "keys": ("attn keys --mode trainable",),
    "values": ("attn values --mode trainable",),
    "explain": (
        "attn explain",
        "attn explain --mode causal --query starts",
        "attn explain my_tokens.csv -q 3 --mode trainable --heads 2 -f json",
    ),
}

_HELP = {
    "scores": (
        "Attention scores: the dot product of each query with every key "
        "(attn_scores = queries @ keys.T), before scaling; masked scores show as -inf."
    ),
    "weights": (
        "Attention weights: the scores, scaled and (causal) masked, through a row-wise "
        "softmax; each row sums to 1."
    ),
    "context": (
        "Context vectors: each token's weighted sum of the value vectors "
        "(context_vecs = attn_weights @ values)."
    ),
    "queries": "Query vectors: queries = X @ W_query (the inputs themselves in plain mode).",
    "keys": "Key vectors: keys = X @ W_key (the inputs themselves in plain mode).",
    "values": "Value vectors: values = X @ W_value (the inputs themselves in plain mode).",
    "explain": (
        "One query's attention, step by step with the real numbers: the projections, each "
        "dot product, the scaling, the mask, the softmax, dropout and the weighted sum. "
        "Without --query, the book's query: the second token."
    ),
}


def _make_command(command: str) -> Callable[..., None]:
    def run(
        ctx: typer.Context,
        input: InputArg = None,
        input_format: InputFormatOpt = None,
        mode: ModeOpt = Mode.PLAIN,
        query: QueryOpt = None,
        d_out: DOutOpt = 2,
        seed: SeedOpt = 123,
        init: InitOpt = Init.RAND,
        qkv_bias: QkvBiasOpt = False,
        heads: HeadsOpt = 1,
        wrapper: WrapperOpt = False,
        dropout: DropoutOpt = 0.0,
        dropout_seed: DropoutSeedOpt = None,
        weights: WeightsOpt = None,
        format: FormatOpt = None,
        precision: PrecisionOpt = 4,
        output: OutputOpt = None,
        color: ColorOpt = None,
        debug: DebugOpt = False,
    ) -> None:
        _set_debug(debug)
        explicit = frozenset(
            name
            for name in ctx.params
            if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
        )
        request = Request(
            command=command,
            input=input,
            input_format=input_format,
            params=AttentionParams(
                mode=mode,
                d_out=d_out,
                seed=seed,
                init=init,
                qkv_bias=qkv_bias,
                heads=heads,
                wrapper=wrapper,
                dropout=dropout,
                dropout_seed=dropout_seed,
            ),
            weights=weights,
            query=query,
            format=format,
            precision=precision,
            output=output,
            color=color,
            explicit=explicit,
        )
        execute(request)

    run.__name__ = command
    return run


for _name, _help in _HELP.items():
    _epilog = "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in _EXAMPLES[_name])
    app.command(_name, help=_help, epilog=_epilog)(_make_command(_name))


# ---------------------------------------------------------------- the pipeline


def execute(request: Request) -> None:
    """Check the flags, load, compute, render, write: the whole of one `attn` call."""
    if request.output == "-":  # the usual spelling of "stdout"
        request = dataclasses.replace(request, output=None)
    output_format = _output_format(request)
    _check_flags(request, output_format)
    embeddings = _read_input(request)
    query = embeddings.resolve_query(request.query) if request.query is not None else None
    if request.command == "explain" and query is None:
        query = min(1, len(embeddings.tokens) - 1)  # the book's query, x^(2)
    weights = None
    if request.weights is not None:
        from .weights_file import load_weights

        weights = load_weights(request.weights, embeddings.d_in)
    if request.command in ("scores", "weights"):
        # the matrix itself is the output: its text costs more than its numbers
        per_score = COMPUTE_BYTES_PER_SCORE + _OUTPUT_BYTES_PER_SCORE
        heads = weights.heads if weights is not None and weights.heads else request.params.heads
        n_rows = 1 if query is not None else len(embeddings.tokens)
        check_memory(len(embeddings.tokens), n_rows, heads, per_score, f"attn {request.command}")
    result = compute(embeddings, request.params, query, weights)

    if output_format is OutputFormat.TABLE:
        buffer = io.StringIO() if request.output is not None else None
        console = _console(request, buffer)
        renderable = _renderable(request, result, console.width)
        if buffer is None:
            _write_stdout_table(console, renderable)
            return
        console.print(renderable)
        text = buffer.getvalue()
    else:
        text = _text(request, result, output_format)
    if request.output is None:
        _write_stdout(text)
    else:
        write_atomic(request.output, text)


def _renderable(request: Request, result: AttentionResult, width: int) -> RenderableType:
    if request.command == "explain":
        from . import explain, render_explain

        return render_explain.render(explain.walkthrough(result), request.precision)
    from . import render

    return render.to_table(result, request.command, request.precision, width)


def _text(request: Request, result: AttentionResult, output_format: OutputFormat) -> str:
    if request.command == "explain":
        from . import explain

        return explain.to_json(explain.walkthrough(result))
    from . import render

    if output_format is OutputFormat.JSON:
        return render.to_json(result, request.command)
    return render.to_csv(result, request.command)


def _output_format(request: Request) -> OutputFormat:
    if request.format is not None:
        return request.format
    if request.output is not None:
        extension = os.path.splitext(request.output)[1].lower()
        if extension not in _FORMAT_BY_EXTENSION:
            raise AttnError.usage(
                f"cannot tell the format of -o {request.output} from its extension; "
                "add -f json, -f csv or -f table (or name it .json, .csv or .txt)"
            )
        return _FORMAT_BY_EXTENSION[extension]
    return OutputFormat.TABLE if stdout_is_terminal() else OutputFormat.JSON


def _check_flags(request: Request, output_format: OutputFormat) -> None:
    """A flag that would change nothing is a mistake worth telling the user about."""
    params = request.params
    given = request.explicit
    if not params.projected:
        for name in _WEIGHT_FLAGS:
            if name in given:
                flag = _flag(name)
                raise AttnError.usage(
                    f"{flag} has no effect in plain mode (plain attention has no weights); "
                    f"add --mode trainable or --mode causal, or drop {flag}"
                )
    if request.weights is not None:
        for name in ("d_out", "init", "qkv_bias", "wrapper"):
            if name in given:
                raise AttnError.usage(
                    f"{_flag(name)} has no effect with --weights (the file fixes the "
                    f"weights); drop {_flag(name)}"
                )
        if "seed" in given and (params.dropout == 0 or params.dropout_seed is not None):
            raise AttnError.usage(
                "--seed has no effect with --weights unless it seeds --dropout; drop --seed"
            )
    if "wrapper" in given and params.heads == 1:
        raise AttnError.usage(
            "--wrapper has no effect with one head; add --heads 2 (or more), or drop --wrapper"
        )
    if "dropout_seed" in given and "dropout" not in given:
        raise AttnError.usage(
            "--dropout-seed has no effect without --dropout; add --dropout P, or drop it"
        )
    if params.dropout and request.command not in ("weights", "context", "explain"):
        raise AttnError.usage(
            f"--dropout has no effect on `attn {request.command}` (dropout acts on the "
            "weights after the softmax); use attn weights or attn context, or drop --dropout"
        )
    if request.command == "explain" and output_format is OutputFormat.CSV:
        raise AttnError.usage(
            "attn explain writes panels (-f table) or one JSON object (-f json), not CSV; "
            "for CSV use attn scores, weights or context"
        )
    if not 0 <= request.precision <= 15:
        raise AttnError.usage(
            f"--precision {request.precision} is out of range; tables show 0 to 15 decimals"
        )
    if "precision" in request.explicit and output_format is not OutputFormat.TABLE:
        why = "" if request.format or request.output else " (stdout is not a terminal)"
        raise AttnError.usage(
            f"--precision only rounds tables, and the output is {output_format.value}{why}, "
            "which keeps full precision; add -f table, or drop --precision"
        )
    if request.input is None and "input_format" in request.explicit and not stdin_is_piped():
        raise AttnError.usage(
            "--input-format has no effect on the built-in example; give INPUT (a file or -)"
        )


# Options that only mean something when there are weights (trainable and causal modes).
_WEIGHT_FLAGS = (
    "d_out",
    "seed",
    "init",
    "qkv_bias",
    "heads",
    "wrapper",
    "dropout",
    "dropout_seed",
    "weights",
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def stdin_is_piped() -> bool:
    """Whether data is being fed to stdin: a pipe, a redirected file, a socket, or a
    stream handed over in-process. A terminal, /dev/null or a closed stdin is not; then
    no INPUT means the built-in example."""
    if sys.stdin is None:
        return False
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # no file descriptor: a stream someone gave us to read
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


def stdout_is_terminal() -> bool:
    """Whether a person reads stdout (then the default format is a table)."""
    return sys.stdout is not None and sys.stdout.isatty()


def _read_input(request: Request) -> Embeddings:
    if request.input == "-" or (request.input is None and stdin_is_piped()):
        data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        if not data:
            raise AttnError(
                "stdin is empty; pipe token embeddings in (JSON or CSV), name a file, "
                "or run attn with no INPUT and nothing piped in for the built-in example"
            )
        return loads(data, source="<stdin>", input_format=request.input_format)
    if request.input is None:
        return book_example()
    return load(request.input, request.input_format)


# ---------------------------------------------------------------- writing


def _console(request: Request, buffer: io.StringIO | None) -> Console:
    """A rich console for stdout, or for a table written to a file (no colour unless
    --color, 100 columns)."""
    from rich.console import Console

    if buffer is not None:
        return Console(
            file=buffer,
            width=100,
            force_terminal=bool(request.color),
            no_color=not request.color,
            highlight=False,
        )
    return Console(
        force_terminal=True if request.color else None,
        no_color=True if request.color is False else None,
        highlight=False,
    )


_CHUNK = 1 << 16  # characters per write to stdout
# Bytes per score to print it: a Python float from tolist(), its text, the joined text.
_OUTPUT_BYTES_PER_SCORE = 96


def _write_stdout(text: str) -> None:
    # In pieces, each flushed: one huge write() into a pipe the reader has closed can
    # end as a short write that Python does not report, so `| head` would go unnoticed.
    try:
        for start in range(0, len(text), _CHUNK):
            sys.stdout.write(text[start : start + _CHUNK])
            sys.stdout.flush()
    except BrokenPipeError:
        _closed_pipe()


def _write_stdout_table(console: Console, table: RenderableType) -> None:
    try:
        console.print(table)
    except BrokenPipeError:
        _closed_pipe()


def _closed_pipe() -> NoReturn:
    # The reader (e.g. `head`) has what it wanted. Point stdout at /dev/null so the
    # interpreter's final flush does not complain, and leave quietly.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # stdout without a file descriptor
        os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(ExitStatus.CLOSED_PIPE)


def write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename,
    so a reader never sees half a file and an error leaves the old file as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise AttnError(f"-o {path} is a directory; give a file name such as {path}/result.json")
    if not os.path.isdir(folder):
        raise AttnError(f"-o {path}: the folder {folder} does not exist; create it first")
    try:
        handle, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
    except OSError as exc:
        raise AttnError(f"-o {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise AttnError(f"-o {path}: cannot write it ({exc.strerror or exc})") from None
        raise


def _file_mode(path: str) -> int:
    """Keep an existing file's permissions; give a new one the usual umask-based ones
    (mkstemp's are private to the owner)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def main() -> None:
    """The `attn` console script."""
    app()

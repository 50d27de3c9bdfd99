"""The `attn` command line: flags -> load -> compute -> render -> write.

This module is the one place that prints and the one place that turns an error into a
message and an exit code. It imports neither Typer nor rich up front: an ordinary
command line is read by options.parse, and Typer (typer_app.py) is loaded only for
help, completion and mistakes; rich only when a table or a progress bar is drawn.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__, output
from .attention import Prepared, compute, prepare
from .errors import AttnError, ExitStatus
from .loading import Embeddings, InputFormat, book_example, load, loads
from .modes import AttentionParams, AttentionResult, DType, Init, Mode
from .options import OutputFormat, Parsed, parse
from .reading import read_stream

if TYPE_CHECKING:
    from rich.console import RenderableType

_FORMAT_BY_EXTENSION = {
    ".json": OutputFormat.JSON,
    ".csv": OutputFormat.CSV,
    ".txt": OutputFormat.TABLE,
    ".npy": OutputFormat.NPY,
    ".md": OutputFormat.MARKDOWN,
    ".markdown": OutputFormat.MARKDOWN,
    ".svg": OutputFormat.SVG,
    ".html": OutputFormat.HTML,
    ".htm": OutputFormat.HTML,
}
# Formats drawn by rich (the table, or explain's panels) and formats rounded to --precision.
_DRAWN = (OutputFormat.TABLE, OutputFormat.SVG, OutputFormat.HTML)
_ROUNDED = (*_DRAWN, OutputFormat.MARKDOWN)
TABLE_MAX_ROWS = 40  # longer tables show their first and last rows


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


def request_from(parsed: Parsed) -> Request:
    values = parsed.values
    _set_debug(bool(values["debug"]))
    params = AttentionParams(
        mode=Mode(values["mode"]),
        d_out=values["d_out"],
        seed=values["seed"],
        init=Init(values["init"]),
        qkv_bias=values["qkv_bias"],
        heads=values["heads"],
        wrapper=values["wrapper"],
        dropout=values["dropout"],
        dropout_seed=values["dropout_seed"],
        dtype=DType(values["dtype"]),
    )
    return Request(
        command=parsed.command,
        input=values["input"],
        input_format=values["input_format"],
        params=params,
        weights=values["weights"],
        query=values["query"],
        format=values["format"],
        precision=values["precision"],
        output=values["output"],
        color=values["color"],
        explicit=parsed.explicit,
    )


# ---------------------------------------------------------------- running and errors


def main() -> None:
    """The `attn` console script."""
    sys.exit(run())


def run(argv: Sequence[str] | None = None) -> int:
    """Run attn on `argv` (sys.argv[1:] by default); the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = None if "_ATTN_COMPLETE" in os.environ else parse(argv)
    if parsed is None:  # help, completion, a mistake: Typer's words
        from .typer_app import run_typer

        return run_typer(argv)
    return guarded(lambda: execute(request_from(parsed)))


_debug = False  # --debug or ATTN_DEBUG=1: tracebacks with the error messages


def _set_debug(value: bool) -> None:
    global _debug
    _debug = _debug or value


def guarded(
    action: Callable[[], int | None],
    click_message: Callable[[Exception], str | None] | None = None,
) -> int:
    """Run `action`; turn whatever goes wrong into one line on stderr and an exit code.

    `click_message` words click's usage errors (from the Typer path)."""
    global _debug
    _debug = os.environ.get("ATTN_DEBUG", "") not in ("", "0")
    try:
        return action() or 0
    except AttnError as exc:
        _traceback_if_debugging()
        return _fail(exc.message, exc.status)
    except output.ClosedPipeError:
        return ExitStatus.CLOSED_PIPE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except MemoryError:
        _traceback_if_debugging()
        return _fail(
            "out of memory; ask for less: --query TOKEN for one row, or attn context "
            "instead of the full scores or weights, or a shorter input",
            ExitStatus.BAD_DATA,
        )
    except Exception as exc:
        message = click_message(exc) if click_message is not None else ""
        status = int(getattr(exc, "exit_code", ExitStatus.BAD_USAGE))
        if message is None:  # `attn` alone: the help was shown
            return status
        if message:
            return _fail(message, status)
        if type(exc).__name__ == "Abort":  # click's word for an interrupted prompt
            return ExitStatus.INTERRUPTED
        _traceback_if_debugging()  # a bug in attn, not bad input: say so, briefly
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in attn "
            f"{__version__}: please report it with the output of the same command run "
            "with --debug",
            ExitStatus.INTERNAL,
        )


def _traceback_if_debugging() -> None:
    if _debug:
        traceback.print_exc()


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"attn: error: {message}\n")
    sys.stderr.flush()
    return status


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

    if output_format in _DRAWN:
        rows = _table_rows(len(embeddings.tokens), query)
        result = compute(embeddings, request.params, query, weights, rows)
        _write_drawn(request, result, output_format)
        return
    if output_format is OutputFormat.MARKDOWN:
        from . import render

        result = compute(embeddings, request.params, query, weights)
        with output.sink(request.output, binary=False) as write:
            write(render.to_markdown(result, request.command, request.precision))
        return
    if request.command == "explain":
        from . import explain

        result = compute(embeddings, request.params, query, weights)
        with output.sink(request.output, binary=False) as write:
            write(explain.to_json(explain.walkthrough(result)))
        return
    prepared = prepare(embeddings, request.params, weights)
    _stream(request, output_format, prepared, query)


def _table_rows(n_tokens: int, query: int | None) -> np.ndarray[Any, np.dtype[np.intp]] | None:
    """The rows a table shows: all, or the first and last ones of a long input."""
    if query is not None or n_tokens <= TABLE_MAX_ROWS:
        return None
    half = TABLE_MAX_ROWS // 2
    return np.concatenate([np.arange(half), np.arange(n_tokens - half, n_tokens)])


def _stream(
    request: Request, output_format: OutputFormat, prepared: Prepared, query: int | None
) -> None:
    """JSON, CSV or .npy, written block by block: memory stays bounded however long
    the input, and so does the output's own text."""
    from . import attention, render

    command = request.command
    n_tokens = prepared.n_tokens
    n_rows = 1 if query is not None else n_tokens
    heads = prepared.heads if command in ("scores", "weights") else 1
    tokens = prepared.embeddings.tokens
    binary = output_format is OutputFormat.NPY
    dtype = np.dtype(request.params.dtype.value)
    with output.progress(prepared.heads * n_rows * n_tokens, f"attn {command}") as progress:
        if command in ("scores", "weights"):
            blocks: Iterable[Any] = attention.iter_rows(prepared, command, query, progress)
            columns = tokens
        else:
            if command == "context":
                matrix = attention.context(prepared, query, progress=progress)
            else:
                source = {
                    "queries": prepared.queries,
                    "keys": prepared.keys,
                    "values": prepared.values,
                }
                matrix = source[command][[query] if query is not None else slice(None)]
            blocks = [matrix]
            columns = tuple(f"d{k + 1}" for k in range(matrix.shape[1]))
        layout = render.Layout(
            command=command,
            heads=heads,
            rows=(tokens[query],) if query is not None else tokens,
            columns=columns,
            query=query,
        )
        if request.output is not None:
            per_value = dtype.itemsize if binary else _TEXT_BYTES
            output.check_disk(request.output, heads * n_rows * len(columns) * per_value, command)
        with output.sink(request.output, binary) as write:
            if output_format is OutputFormat.JSON:
                chunks: Iterable[str | bytes] = render.json_chunks(prepared, layout, blocks)
            elif output_format is OutputFormat.CSV:
                chunks = render.csv_chunks(layout, blocks)
            else:
                chunks = render.npy_chunks(layout, blocks, dtype)
            for chunk in chunks:
                write(chunk)


_TEXT_BYTES = 20  # a number in JSON or CSV: its digits and a separator


def _output_format(request: Request) -> OutputFormat:
    if request.format is not None:
        return request.format
    if request.output is not None:
        extension = os.path.splitext(request.output)[1].lower()
        if extension not in _FORMAT_BY_EXTENSION:
            raise AttnError.usage(
                f"cannot tell the format of -o {request.output} from its extension; add -f "
                "json, csv, npy, markdown, svg, html or table (or name it .json, .csv, .npy, "
                ".md, .svg, .html or .txt)"
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
    if request.command == "explain" and output_format not in (*_DRAWN, OutputFormat.JSON):
        raise AttnError.usage(
            f"attn explain writes panels (-f table, svg or html) or one JSON object "
            f"(-f json), not {output_format.value}; for numbers use attn scores, weights or "
            "context"
        )
    if output_format is OutputFormat.NPY and request.output is None and stdout_is_terminal():
        raise AttnError.usage(
            "-f npy is binary and stdout is a terminal; write it to a file with -o out.npy, "
            "or pipe it on"
        )
    if not 0 <= request.precision <= 15:
        raise AttnError.usage(
            f"--precision {request.precision} is out of range; tables show 0 to 15 decimals"
        )
    if "precision" in request.explicit and output_format not in _ROUNDED:
        why = "" if request.format or request.output else " (stdout is not a terminal)"
        raise AttnError.usage(
            f"--precision only rounds tables, and the output is {output_format.value}{why}, "
            "which keeps full precision; add -f table (or markdown, svg, html), or drop "
            "--precision"
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
        data = read_stream(sys.stdin.buffer, "<stdin>") if sys.stdin is not None else b""
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


def _write_drawn(request: Request, result: AttentionResult, output_format: OutputFormat) -> None:
    """A table (or explain's panels): on the terminal, into a text file, or recorded as
    an SVG picture or an HTML page."""
    if output_format is not OutputFormat.TABLE:
        from . import render_table

        renderable = _renderable(request, result, render_table.PICTURE_WIDTH)
        title = f"attn {request.command}"
        picture = render_table.export_picture(
            renderable, output_format.value, title, color=request.color is not False
        )
        with output.sink(request.output, binary=False) as write:
            write(picture)
        return
    buffer = io.StringIO() if request.output is not None else None
    console = output.console(request.color, buffer)
    renderable = _renderable(request, result, console.width)
    if buffer is None:
        try:
            console.print(renderable)
        except BrokenPipeError:
            output.closed_pipe()
        return
    console.print(renderable)
    with output.sink(request.output, binary=False) as write:
        write(buffer.getvalue())


def _renderable(request: Request, result: AttentionResult, width: int) -> RenderableType:
    if request.command == "explain":
        from . import explain, render_explain

        return render_explain.render(explain.walkthrough(result), request.precision)
    from . import render_table

    return render_table.to_table(result, request.command, request.precision, width)

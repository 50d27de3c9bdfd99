"""The `attn` pipeline: a parsed command line -> load -> compute -> render -> write.

This module is the one place that prints results. runner.py reads the command line,
hands it here once it has parsed, and turns any error into a message and an exit
code. Neither Typer nor rich is imported up front: rich only when a table or a
progress bar is drawn.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..embeddings import Embeddings, book_example
from ..errors import AttnError, number_text
from ..inputs import InputFormat, load, loads
from ..inputs.reading import available_memory, read_stream
from ..params import AttentionParams, DType, Init, Mode, Projections
from ..render import formats
from ..render.formats import OutputFormat
from ..rope import Rope
from . import output
from .options import CHECK, KV_MEMORY, ROPE, ROPE_FLAG_NAMES, Parsed, Stage
from .rotation import rope_from


@dataclass(frozen=True)
class Request:
    """What the user asked for, as parsed from the command line."""

    command: str
    input: str | None
    input_format: InputFormat | None
    params: AttentionParams
    weights: str | None
    mask: str | None
    kv: str | None
    qkv: str | None
    query: str | None
    format: OutputFormat | None
    precision: int
    output: str | None
    color: bool | None
    prefill: int | None  # decode
    chunk: int | None  # decode
    explicit: frozenset[str]  # options given on the command line, not defaulted
    theirs: str | None = None  # check: the reader's numbers
    stage: str | None = None  # check: the stage of a bare matrix of them


def request_from(parsed: Parsed) -> Request:
    values = parsed.values
    mode = Mode(values["mode"])
    if parsed.command == "decode" and "mode" not in parsed.explicit:
        mode = Mode.CAUSAL  # the book's cached classes are causal
    params = AttentionParams(
        mode=mode,
        d_out=values["d_out"],
        seed=values["seed"],
        init=Init(values["init"]),
        qkv_bias=values["qkv_bias"],
        heads=values["heads"],
        wrapper=values["wrapper"],
        dropout=values["dropout"],
        dropout_seed=values["dropout_seed"],
        batch=values["batch"],
        dtype=DType(values["dtype"]),
        kv_groups=values["kv_groups"],
        latent_dim=values["latent_dim"],
        window=values["window"],
        scale=_scale(values["scale"]),
        softcap=values["softcap"],
        alibi=values["alibi"],
        sink_logits=_sink_logits(values["sink_logits"]),
        qk_norm=values["qk_norm"],
        gate=values["gate"],
        causal_align=values["causal_align"],
        rope=_rope(values, parsed.explicit),
        position_offset=values["position_offset"],
    )
    return Request(
        command=parsed.command,
        input=values["input"],
        input_format=values["input_format"],
        params=params,
        weights=values["weights"],
        mask=values["mask"],
        kv=values["kv"],
        qkv=values["qkv"],
        query=values["query"],
        format=values["format"],
        precision=values["precision"],
        output=values["output"],
        color=values["color"],
        prefill=values["prefill"],
        chunk=values["chunk"],
        explicit=parsed.explicit,
        theirs=values.get("theirs"),
        stage=None if values.get("stage") is None else Stage(values["stage"]).value,
    )


def _sink_logits(text: str | None) -> tuple[float, ...] | None:
    """--sink-logits X or X0,X1,...: one logit for every head, or one per head."""
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise AttnError.usage(
            f"--sink-logits {text} is not a list of numbers; give X for every head, or "
            "X0,X1,... one per head (gpt-oss learns one per head)"
        ) from None


def _scale(text: str | None) -> float | None:
    """--scale S: a number, or none (no scaling: a factor of 1)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return 1.0
    try:
        return float(text)
    except ValueError:
        raise AttnError.usage(
            f"--scale {text} is not a number; give the factor on the scores (e.g. 0.125), or "
            "none for no scaling"
        ) from None


def _rope(values: dict[str, Any], explicit: frozenset[str]) -> Rope | None:
    """The RoPE settings of the command line, or None (each flag without --rope, or a
    scaling factor without --rope-scaling llama3, is a usage error)."""
    if not values["rope"]:
        for name in ROPE_FLAG_NAMES:  # the order they are declared in
            if name in explicit:
                flag = _flag(name)
                raise AttnError.usage(
                    f"{flag} has no effect without --rope (chapter 3's attention has no "
                    f"positions); add --rope, or drop {flag}"
                )
        return None
    return rope_from(values, explicit)


# ---------------------------------------------------------------- the pipeline


def dispatch(parsed: Parsed) -> int | None:
    """Run the command a parsed command line names; the exit status (None: 0)."""
    if parsed.command == KV_MEMORY:
        execute_kv_memory(parsed)
        return None
    if parsed.command == ROPE:
        execute_rope(parsed)
        return None
    return execute(request_from(parsed))


def execute(request: Request) -> int | None:
    """Check the flags, load, compute, render, write: the whole of one `attn` call; the
    exit status (None: 0)."""
    if _is_stdout(request.output):  # -o - and -o /dev/stdout are stdout, with its defaults
        request = dataclasses.replace(request, output=None)
    spec = formats.FORMATS[_output_format(request.format, request.output)]
    if request.command == CHECK:
        from .check import check_request

        check_request(request.theirs, request.input, request.explicit, spec)
    _check_flags(request, spec)
    qkv = None
    kv = None
    if request.qkv is not None:
        from ..attention import qkv_tokens
        from ..inputs.qkv_file import load_qkv

        qkv = load_qkv(request.qkv)
        # the query tokens' names, for --query
        embeddings = Embeddings(qkv_tokens(qkv)[0], qkv.q[0], qkv.source)
        n_keys, heads = qkv.n_keys, qkv.heads
    else:
        embeddings = _read_input(request)
        if request.kv is not None:
            kv = load(request.kv, request.input_format)
        n_keys, heads = len((kv or embeddings).tokens), request.params.heads
    _check_cross(request, len(embeddings.tokens), n_keys)
    query = embeddings.resolve_query(request.query) if request.query is not None else None
    if request.command == "explain" and query is None:
        query = min(1, len(embeddings.tokens) - 1)  # the book's query, x^(2)
    projections = None
    if request.weights is not None:
        from ..inputs.weights import load_weights

        projections = load_weights(request.weights, embeddings.d_in)
        check_file_heads(projections, request.params.heads, "heads" in request.explicit)
        heads = projections.heads or heads
    mask_file = None
    if request.mask is not None:
        from ..inputs.mask_file import load_mask

        mask_file = load_mask(request.mask, len(embeddings.tokens), n_keys, heads)
    if request.command == CHECK:  # the reader's numbers against the right ones
        from .check import check_job

        assert request.theirs is not None  # the parser requires it
        checked = check_job(
            request.theirs,
            request.stage,
            request.params,
            embeddings,
            query,
            projections,
            mask_file,
            kv,
            qkv,
            request.precision,
            request.color is not False,
        )
        _write(checked, spec, request.output, request.color)
        return checked.status
    job = formats.Job(
        command=request.command,
        embeddings=embeddings,
        params=request.params,
        query=query,
        projections=projections,
        memory=available_memory(),  # the library checks sizes against what it is told
        precision=request.precision,
        color=request.color is not False,
        mask_file=mask_file,
        kv=kv,
        qkv=qkv,
        prefill=request.prefill,
        chunk=request.chunk,
    )
    if spec.write is None:  # the table: drawn on a console
        _print_table(job, request.output, request.color)
        return None
    with output.progress(job.work if spec.streamed else 0, f"attn {request.command}") as bar:
        job.progress = bar
        chunks = spec.write(job)  # computed here: any error comes before the first byte
        if request.output is not None and spec.streamed:
            output.check_disk(request.output, _output_size(job, spec), request.command)
        with output.sink(request.output) as write:
            for chunk in chunks:
                write(chunk)
    return None


def _check_cross(request: Request, n_queries: int, n_keys: int) -> None:
    """Flags that only mean something when the keys are other tokens than the queries."""
    cross = n_queries != n_keys
    if "causal_align" in request.explicit and not (cross and request.params.mode is Mode.CAUSAL):
        why = "with as many queries as keys" if not cross else "without --mode causal"
        raise AttnError.usage(
            f"--causal-align has no effect {why}: it says where a causal mask puts fewer "
            f"queries than keys ({n_queries} and {n_keys} here); drop --causal-align"
        )
    if (
        request.query is not None
        and request.command in ("keys", "values")
        and (request.kv is not None or cross)
    ):
        raise AttnError.usage(
            f"--query picks a query row, and attn {request.command} shows the keys' tokens "
            f"(other tokens than the queries here); drop --query"
        )


def execute_kv_memory(parsed: Parsed) -> None:
    """`attn kv-memory`: check the flags, estimate, render, write."""
    from ..kv_memory import estimate
    from .kv_memory import check_flags, config_from

    values = parsed.values
    target = None if _is_stdout(values["output"]) else values["output"]
    spec = formats.FORMATS[_output_format(values["format"], target, lambda f: f.kv_memory)]
    check_flags(parsed, spec)
    job = formats.MemoryJob(estimate(config_from(parsed)), color=values["color"] is not False)
    _write(job, spec, target, values["color"])


def execute_rope(parsed: Parsed) -> None:
    """`attn rope`: check the flags, compute the table, render, write."""
    from ..params import DType
    from ..rotation import rope_table
    from .rotation import check_flags

    values = parsed.values
    target = None if _is_stdout(values["output"]) else values["output"]
    spec = formats.FORMATS[_output_format(values["format"], target, lambda f: f.rope)]
    check_flags(parsed, spec)
    table = rope_table(
        values["head_dim"],
        values["positions"],
        values["position_offset"],
        rope_from(values, parsed.explicit),
        DType(values["dtype"]),
    )
    job = formats.RopeJob(table, values["precision"], color=values["color"] is not False)
    _write(job, spec, target, values["color"])


def _is_stdout(path: str | None) -> bool:
    """-o - and -o /dev/stdout: stdout."""
    return path == "-" or (path is not None and output.output_target(path).kind == "stdout")


def _output_size(job: formats.Job, spec: formats.FormatSpec) -> int:
    """About how many bytes a streamed output writes."""
    prepared = job.prepared()
    n_rows = 1 if job.query is not None else prepared.n_queries
    if job.command in ("scores", "weights"):
        count = prepared.heads * n_rows * prepared.n_keys
    elif job.command == "decode":  # every step's weights, at most a triangle's
        count = prepared.heads * n_rows * (n_rows + 1) // 2 + n_rows * prepared.layout.width
    else:
        count = n_rows * prepared.layout.width
    per_value = prepared.keys.dtype.itemsize if spec.binary else formats.TEXT_BYTES_PER_VALUE
    return count * per_value


def _output_format(
    chosen: OutputFormat | None,
    path: str | None,
    written: Callable[[formats.FormatSpec], bool] = lambda spec: True,
) -> OutputFormat:
    """The format -f names, or -o's extension implies, or the terminal or pipe asks for
    (`written`: the formats the command writes, for the message)."""
    if chosen is not None:
        return chosen
    if path is not None:
        by_extension = formats.by_extension(path)
        if by_extension is not None:
            return by_extension
        if output.output_target(path).kind in ("device", "descriptor"):
            return OutputFormat.JSON  # /dev/null, a named pipe, >(cmd): as into a pipe
        extensions = [
            e for spec in formats.FORMATS.values() if written(spec) for e in spec.extensions
        ]
        raise AttnError.usage(
            f"cannot tell the format of -o {path} from its extension; add -f "
            f"{_either(formats.names(written))} (or name it {_either(extensions)})"
        )
    return OutputFormat.TABLE if stdout_is_terminal() else OutputFormat.JSON


def _either(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def _check_flags(request: Request, spec: formats.FormatSpec) -> None:
    """A flag that would change nothing is a mistake worth telling the user about."""
    params = request.params
    output_format = spec.name
    given = request.explicit
    if request.command == "decode":
        _check_decode_flags(request, spec)
    for name in ("prefill", "chunk"):
        if name in given and request.command != "decode":
            raise AttnError.usage(
                f"{_flag(name)} has no effect on `attn {request.command}`: it says how attn "
                f"decode feeds the tokens; use attn decode, or drop {_flag(name)}"
            )
    if request.qkv is not None:
        _check_qkv_flags(request)
    elif not params.projected:
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
        if "seed" in given and params.dropout == 0:
            raise AttnError.usage(
                "--seed has no effect with --weights unless it seeds --dropout; drop --seed"
            )
        if "seed" in given and params.dropout >= 1:
            raise AttnError.usage(
                "--seed has no effect with --weights and --dropout 1 (the file fixes the "
                "weights, and dropping every weight draws nothing); drop --seed"
            )
        if "seed" in given and params.dropout_seed is not None:
            raise AttnError.usage(
                "--seed has no effect with --weights and --dropout-seed (the file fixes the "
                "weights, --dropout-seed seeds the dropout); drop --seed"
            )
    if "wrapper" in given and params.heads == 1:
        raise AttnError.usage(
            "--wrapper has no effect with one head; add --heads 2 (or more), or drop --wrapper"
        )
    if "dropout_seed" in given and params.dropout == 0:
        without = "with --dropout 0" if "dropout" in given else "without --dropout"
        raise AttnError.usage(
            f"--dropout-seed has no effect {without} (nothing is dropped); add --dropout P "
            "with 0 < P < 1, or drop --dropout-seed"
        )
    if "dropout_seed" in given and params.dropout >= 1:
        raise AttnError.usage(
            "--dropout-seed has no effect with --dropout 1: every weight is dropped and, as "
            "in torch, nothing is drawn; drop --dropout-seed"
        )
    if params.dropout and request.command not in ("weights", "context", "explain", CHECK):
        raise AttnError.usage(
            f"--dropout has no effect on `attn {request.command}` (dropout acts on the "
            "weights after the softmax); use attn weights or attn context, or drop --dropout"
        )
    if request.command == "explain" and not spec.explains:
        drawn = _either(formats.names(lambda f: f.explains and f.drawn))
        written = _either(formats.names(lambda f: f.explains and not f.drawn))
        raise AttnError.usage(
            f"attn explain writes panels (-f {drawn}) or one JSON object (-f {written}), "
            f"not {output_format.value}; for numbers use attn scores, weights or context"
        )
    if "color" in given and not spec.coloured:
        flag = "--color" if request.color else "--no-color"
        coloured = _either(
            [
                name.upper() if name != "table" else "tables"
                for name in formats.names(lambda f: f.coloured)
            ]
        )
        raise AttnError.usage(
            f"{flag} has no effect on {output_format.value} output (only {coloured} "
            f"have colours); drop {flag}"
        )
    if spec.binary and request.output is None and stdout_is_terminal():
        raise AttnError.usage(
            f"-f {output_format.value} is binary and stdout is a terminal; write it to a file "
            f"with -o out{spec.extensions[0]}, or pipe it on"
        )
    if not 0 <= request.precision <= 15:
        raise AttnError.usage(
            f"--precision {request.precision} is out of range; tables show 0 to 15 decimals"
        )
    if "precision" in request.explicit and not spec.rounded:
        why = "" if request.format or request.output else " (stdout is not a terminal)"
        rounded = formats.names(lambda f: f.rounded)
        raise AttnError.usage(
            f"--precision only rounds tables, and the output is {output_format.value}{why}, "
            f"which keeps full precision; add -f {rounded[0]} (or {', '.join(rounded[1:])}), "
            "or drop --precision"
        )
    if request.input is None and "input_format" in request.explicit and not stdin_is_piped():
        raise AttnError.usage(
            "--input-format has no effect on the built-in example; give INPUT (a file or -)"
        )


def _check_decode_flags(request: Request, spec: formats.FormatSpec) -> None:
    """attn decode runs the book's cached classes: causal, in eval mode, every token fed,
    each step's mask from the positions."""
    mode = request.params.mode
    if mode is not Mode.CAUSAL:
        raise AttnError.usage(
            f"attn decode is causal attention, as the book's cached classes are; --mode "
            f"{mode.value} has no meaning there: drop --mode (causal is implied)"
        )
    why = {
        "query": "every token is fed, and each step shows its new queries",
        "dropout": "the book decodes in eval mode, without dropout",
        "dropout_seed": "the book decodes in eval mode, without dropout",
        "batch": "a batch's items decode alike",
        "qkv": "the cache is filled from the input's own projections",
        "kv": "the cache holds the input's own keys and values",
        "mask": "each step's mask follows from the positions (causal, and --window's)",
    }
    for name, reason in why.items():
        if name in request.explicit:
            raise AttnError.usage(
                f"{_flag(name)} has no meaning in attn decode: {reason}; drop {_flag(name)}"
            )
    if not spec.decodes:
        drawn = _either(formats.names(lambda f: f.decodes and f.drawn))
        written = _either(formats.names(lambda f: f.decodes and not f.drawn))
        raise AttnError.usage(
            f"attn decode writes panels (-f {drawn}) or one JSON object (-f {written}), "
            f"not {spec.name.value}; for the context vectors alone use attn context"
        )


def _check_qkv_flags(request: Request) -> None:
    """--qkv gives the queries, keys and values: no input, no weights, no projections."""
    if request.input is not None:  # (stdin is left unread: a loop's pipe may feed it)
        raise AttnError.usage(
            "--qkv gives the queries, keys and values, so there is no INPUT to read; drop INPUT"
        )
    if request.kv is not None:
        raise AttnError.usage("--kv and --qkv both give the keys and values; drop one")
    for name in (*_WEIGHT_FLAGS, "input_format"):
        if name in request.explicit:
            raise AttnError.usage(
                f"{_flag(name)} has no effect with --qkv (the file gives the queries, keys and "
                f"values, projected already; attention as torch's scaled_dot_product_attention "
                f"computes it); drop {_flag(name)}"
            )
    if request.params.mode is Mode.TRAINABLE:
        raise AttnError.usage(
            "--mode trainable has no effect with --qkv (there is nothing to train: the file "
            "gives the projected vectors); use --mode causal for a causal mask, or drop --mode"
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
    "batch",
    "weights",
    "kv_groups",
    "latent_dim",
    "gate",
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def stdin_is_piped() -> bool:
    """Whether data is being fed to stdin: a pipe, a redirected file, a socket, a device
    such as /dev/zero, or a stream handed over in-process. A terminal, /dev/null (cron,
    CI) or a closed stdin is not; then no INPUT means the built-in example."""
    if sys.stdin is None:
        return False
    try:
        fd = sys.stdin.fileno()
        status = os.fstat(fd)
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # no file descriptor: a stream someone gave us to read
    if stat.S_ISCHR(status.st_mode):
        return not os.isatty(fd) and status.st_rdev != _null_device()
    return (
        stat.S_ISFIFO(status.st_mode)
        or stat.S_ISREG(status.st_mode)
        or stat.S_ISSOCK(status.st_mode)
    )


def _null_device() -> int:
    try:
        return os.stat(os.devnull).st_rdev
    except OSError:
        return -1


def stdout_is_terminal() -> bool:
    """Whether a person reads stdout (then the default format is a table)."""
    return sys.stdout is not None and sys.stdout.isatty()


def _read_input(request: Request) -> Embeddings:
    from_stdin = request.input is None and request.theirs != "-" and stdin_is_piped()
    if request.input == "-" or from_stdin:
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


def _write(
    job: formats.AnyJob, spec: formats.FormatSpec, path: str | None, color: bool | None
) -> None:
    """A job as `spec` writes it (the table: drawn on a console), to stdout or `path`."""
    if spec.write is None:
        _print_table(job, path, color)
        return
    chunks = spec.write(job)
    with output.sink(path) as write:
        for chunk in chunks:
            write(chunk)


def _print_table(job: formats.AnyJob, path: str | None, color: bool | None) -> None:
    """The heat-map table (or explain's panels): on the terminal, or into a text file."""
    buffer = io.StringIO() if path is not None else None
    console = output.console(color, buffer)
    renderable = formats.draw(job, console.width)
    if buffer is None:
        if sys.stdout is None:
            raise AttnError(
                "cannot write the table: stdout is closed; write to a file with -o FILE"
            )
        with output.writing_stdout("the table"):
            console.print(renderable)
        return
    console.print(renderable)
    with output.sink(path) as write:
        write(buffer.getvalue())


def check_file_heads(projections: Projections, heads: int, heads_given: bool) -> None:
    """What the command line must say about heads for weights from a file: a fused
    MultiHeadAttention (it has an out_proj) does not record its head count, so --heads
    must; a wrapper's file does record it, and --heads must agree."""
    source = projections.file or "the weights"
    if projections.heads is not None:
        if heads_given and heads != projections.heads:
            raise AttnError.usage(
                f"--heads {number_text(heads)} contradicts {source}, which holds "
                f"{projections.heads} heads (heads.0 to heads.{projections.heads - 1}); "
                "drop --heads"
            )
        return
    if projections.W_out is not None and not heads_given:
        raise AttnError.usage(
            f"{source} holds an out_proj: the weights of a MultiHeadAttention, whose head "
            f"count a state_dict does not record; add --heads H with the module's num_heads "
            f"(H divides d_out = {projections.d_out}: {_divisors_text(projections.d_out)})"
        )


def _divisors_text(n: int) -> str:
    """The divisors of n, the middle ones elided when there are many.

    >>> _divisors_text(6), _divisors_text(768)
    ('1, 2, 3, 6', '1, 2, 3, 4, 6, 8, …, 768')
    """
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    divisors = sorted(set(small) | {n // d for d in small})
    return (
        ", ".join(map(str, divisors))
        if len(divisors) <= 8
        else (", ".join(map(str, divisors[:6])) + f", …, {n}")
    )

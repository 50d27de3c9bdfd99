"""`attn check THEIRS [INPUT]`: what the command line adds to the library's check
(checking.py): its flags checked, THEIRS read (a file, or stdin for pasted text), and
the job the formats write. The rest (INPUT, --weights, --mask, --kv, --qkv, the output)
is app.execute's, as for every attention command.

Exit status: 0 when the reader's numbers are right, 1 when they differ, as `diff`
exits; and, as everywhere in attn, 1 for bad data and 2 for bad usage. A script tells a
difference from an error by stdout: a report (JSON `"status": "differs"`) on a
difference; nothing on stdout and one `attn: error: ...` line on stderr on an error.
"""

from __future__ import annotations

import sys

from ..embeddings import Embeddings
from ..errors import AttnError
from ..inputs.mask_file import MaskArray
from ..inputs.qkv_file import QKV
from ..inputs.reading import available_memory, read_stream
from ..inputs.theirs import Theirs, load_theirs, theirs_from_bytes
from ..params import AttentionParams, Projections
from ..render import formats


def check_request(
    theirs: str | None, given_input: str | None, explicit: frozenset[str], spec: formats.FormatSpec
) -> None:
    """attn check's own flags: a format it writes; stdin for THEIRS or INPUT, not both."""
    if not spec.checks:
        drawn = ", ".join(formats.names(lambda f: f.checks and f.drawn))
        written = ", ".join(formats.names(lambda f: f.checks and not f.drawn))
        raise AttnError.usage(
            f"attn check writes a report (-f {drawn}) or one JSON object (-f {written}), not "
            f"{spec.name.value}; for the right numbers alone use attn scores, weights or context"
        )
    for flag in ("softcap", "alibi", "sink_logits", "gate"):
        if flag in explicit:
            name = "--" + flag.replace("_", "-")
            raise AttnError.usage(
                f"attn check does not know the mistakes of {name} yet (its catalogue covers "
                f"chapter 3, grouped-query heads and RoPE); compare with attn weights or attn "
                f"context {name} instead, or drop {name}"
            )
    if theirs == "-" and given_input == "-":
        raise AttnError.usage(
            "THEIRS and INPUT both read stdin (-), which can give only one of them; give the "
            "other as a file, or <(command) for a command's output"
        )
    if theirs == "-" and given_input is None and "input_format" in explicit:
        raise AttnError.usage(
            "--input-format has no effect on the built-in example (stdin gives THEIRS here); "
            "give INPUT (a file), or drop --input-format"
        )


def read_theirs(theirs: str, stage: str | None) -> Theirs:
    """THEIRS, from its file or from stdin."""
    if theirs != "-":
        return load_theirs(theirs, stage)
    data = read_stream(sys.stdin.buffer, "<stdin>") if sys.stdin is not None else b""
    if not data:
        raise AttnError(
            "stdin is empty; paste your numbers (a tensor as torch prints it, JSON or CSV) "
            "and end with Ctrl-D, or name a file"
        )
    return theirs_from_bytes(data, "<stdin>", stage)


def check_job(
    theirs: str,
    stage: str | None,
    params: AttentionParams,
    embeddings: Embeddings,
    query: int | None,
    projections: Projections | None,
    mask_file: MaskArray | None,
    kv: Embeddings | None,
    qkv: QKV | None,
    precision: int,
    color: bool,
) -> formats.CheckJob:
    """The report of a check, computed (every error found before anything is written)."""
    from ..attention import prepare, prepare_qkv
    from ..checking import check

    memory = available_memory()
    if qkv is not None:
        prepared = prepare_qkv(qkv, params, mask_file)
    else:
        prepared = prepare(embeddings, params, projections, memory, mask_file, kv)
    report = check(prepared, read_theirs(theirs, stage), query, memory)
    return formats.CheckJob(report, precision, color)

"""The output formats, as one table: each format's name, file extensions, whether it
is binary, streamed, rounded, drawn or coloured, whether `attn explain`, `attn
kv-memory` and `attn rope` write it, and its writer. The command line reads everything it
knows about formats from here (help, `-o` by extension, the flags that have no effect,
how output is written), so a new format is one entry and its writer.

A writer is given a Job (what to show, and how to compute it; for `attn kv-memory`, a
MemoryJob; for `attn rope`, a RopeJob) and first computes, then returns the pieces to
write: every error is found before the first byte goes out. This module imports nothing
heavy; each writer imports its module when called.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..attention import AttentionResult, Prepared
    from ..checking import Report
    from ..decoding import Decoding
    from ..embeddings import Embeddings
    from ..inputs.mask_file import MaskArray
    from ..inputs.qkv_file import QKV
    from ..kv_memory import KVMemory
    from ..params import AttentionParams, Projections
    from ..rotation import RopeTable
    from .data import Blocks
    from .view import View

Chunk = str | bytes  # text is written as UTF-8
Progress = Callable[[int, int], None]  # (done, total)


class OutputFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    NPY = "npy"
    MARKDOWN = "markdown"
    SVG = "svg"
    HTML = "html"


# Rows a drawn table shows of a long input: the first and last ones.
TABLE_MAX_ROWS = 40


class Job:
    """One command's output to make: what to show and how to compute it, for a writer to
    ask (each computes only what its format needs, once). A plain class: a dataclass
    costs a millisecond of every start."""

    def __init__(
        self,
        command: str,  # scores, weights, context, queries, keys, values or explain
        embeddings: Embeddings,
        params: AttentionParams,
        query: int | None = None,
        projections: Projections | None = None,
        memory: int | None = None,  # bytes free, for the size checks (None: not checked)
        precision: int = 4,
        color: bool = True,  # pictures in colour
        mask_file: MaskArray | None = None,  # --mask FILE, read
        kv: Embeddings | None = None,  # --kv FILE: the keys' and values' tokens
        qkv: QKV | None = None,  # --qkv FILE: queries, keys and values as given
        prefill: int | None = None,  # decode: the tokens fed at once first
        chunk: int | None = None,  # decode: the tokens fed a step
    ) -> None:
        self.command = command
        self.embeddings = embeddings
        self.params = params
        self.query = query
        self.projections = projections
        self.memory = memory
        self.precision = precision
        self.color = color
        self.mask_file = mask_file
        self.kv = kv
        self.qkv = qkv
        self.prefill = prefill
        self.chunk = chunk
        self.progress: Progress | None = None  # told how streamed work goes
        self._prepared: Prepared | None = None

    def prepared(self) -> Prepared:
        if self._prepared is None:
            self._prepared = self._prepare()
        return self._prepared

    def _prepare(self) -> Prepared:
        """A new Prepared (its dropout stream at its start)."""
        from ..attention import prepare, prepare_qkv

        if self.qkv is not None:
            return prepare_qkv(self.qkv, self.params, self.mask_file)
        return prepare(
            self.embeddings, self.params, self.projections, self.memory, self.mask_file, self.kv
        )

    def decoding(self) -> Decoding:
        """`attn decode`: every step of feeding the tokens to the cached module."""
        from ..decoding import decode

        return decode(self.prepared(), self.prefill, self.chunk, self.memory, self.progress)

    def result(self, drawn: bool = False) -> AttentionResult:
        """Every intermediate, for all rows (or the query's); `drawn`: only the rows a
        table shows of a long input."""
        import numpy as np

        from ..attention import compute_prepared

        rows = None
        n_tokens = len(self.embeddings.tokens)
        if drawn and self.query is None and n_tokens > TABLE_MAX_ROWS:
            half = TABLE_MAX_ROWS // 2
            rows = np.concatenate([np.arange(half), np.arange(n_tokens - half, n_tokens)])
        return compute_prepared(self._prepare(), self.query, rows, self.memory)

    @property
    def work(self) -> int:
        """How much a streamed output computes (heads x rows x tokens): a progress bar's
        worth or not."""
        n_tokens = len(self.embeddings.tokens)
        n_keys = len(self.kv.tokens) if self.kv is not None else n_tokens
        n_rows = 1 if self.query is not None else n_tokens
        return self.params.heads * n_rows * n_keys

    def stream(self) -> tuple[View, Blocks]:
        """What the command shows, as blocks of rows computed in bounded memory: every
        check done before the first block is handed out."""
        from .. import attention
        from .view import Kind, View, vector_labels

        prepared = self.prepared()
        tokens = prepared.embeddings.tokens
        rows = (tokens[self.query],) if self.query is not None else tokens
        if self.command in ("scores", "weights"):
            blocks = attention.iter_rows(prepared, self.command, self.query, self.progress)
            kind: Kind = "scores" if self.command == "scores" else "weights"
            columns = prepared.key_tokens
            return View(self.command, kind, prepared.heads, rows, columns, self.query), blocks
        if self.command in ("keys", "values") and prepared.kv is not None:
            rows = prepared.key_tokens  # cross-attention: the keys are other tokens
        if self.command == "context":
            matrix = attention.context(prepared, self.query, progress=self.progress)
        else:
            vectors = {
                "queries": prepared.queries,
                "keys": prepared.keys,
                "values": prepared.values,
            }[self.command]
            matrix = vectors[[self.query] if self.query is not None else slice(None)]
        labels = vector_labels(matrix.shape[1])
        return View(self.command, "vectors", 1, rows, labels, self.query), [matrix]


class MemoryJob:
    """`attn kv-memory`'s output to make: the estimate (computed and checked already),
    and whether pictures are coloured. A plain class, as Job."""

    command = "kv-memory"

    def __init__(self, report: KVMemory, color: bool = True) -> None:
        self.report = report
        self.color = color


class CheckJob:
    """`attn check`'s output to make: the report (computed and checked already), the
    decimals its tables show, whether pictures are coloured. A plain class, as Job."""

    command = "check"

    def __init__(self, report: Report, precision: int = 4, color: bool = True) -> None:
        self.report = report
        self.precision = precision
        self.color = color

    @property
    def status(self) -> int:
        """The exit status: 0 when the reader's numbers are right, 1 when they differ."""
        return 0 if self.report.matches else 1


class RopeJob:
    """`attn rope`'s output to make: the table (computed and checked already), the
    decimals shown, and whether pictures are coloured. A plain class, as Job."""

    command = "rope"

    def __init__(self, table: RopeTable, precision: int = 4, color: bool = True) -> None:
        self.table = table
        self.precision = precision
        self.color = color


AnyJob = Job | MemoryJob | CheckJob | RopeJob


class FormatSpec(NamedTuple):
    """One output format and everything the command line needs to know of it."""

    name: OutputFormat
    extensions: tuple[str, ...]  # for -o FILE, the first is the usual one
    description: str  # for --help
    binary: bool = False  # bytes, never for a terminal
    streamed: bool = False  # written block by block as computed: bounded memory
    rounded: bool = False  # at --precision; the others keep full precision
    drawn: bool = False  # drawn by rich: a long input's middle rows left out
    coloured: bool = False  # --color / --no-color mean something
    explains: bool = False  # attn explain writes it
    kv_memory: bool = False  # attn kv-memory writes it
    rope: bool = False  # attn rope writes it
    decodes: bool = False  # attn decode writes it
    checks: bool = False  # attn check writes it
    # Computes, then returns the pieces to write (None: the table, drawn on a console).
    write: Callable[[AnyJob], Iterable[Chunk]] | None = None


def _write_json(job: AnyJob) -> Iterable[Chunk]:
    if isinstance(job, CheckJob):
        from .check import to_json as check_json

        return [check_json(job.report)]
    if isinstance(job, RopeJob):
        from . import rotation

        return [rotation.to_json(job.table)]
    if isinstance(job, MemoryJob):
        from . import kv_memory

        return [kv_memory.to_json(job.report)]
    if job.command == "decode":
        from ..decoding import json_chunks as decoding_chunks

        return decoding_chunks(job.decoding())
    if job.command == "explain":
        from .. import explain

        return [explain.to_json(explain.walkthrough(job.result()))]
    from .data import json_chunks

    shown, blocks = job.stream()
    return json_chunks(job.prepared(), shown, blocks)


def _write_csv(job: AnyJob) -> Iterable[Chunk]:
    if isinstance(job, RopeJob):
        from . import rotation

        return [rotation.to_csv(job.table)]
    if isinstance(job, MemoryJob):
        from . import kv_memory

        return [kv_memory.to_csv(job.report)]
    assert isinstance(job, Job), "attn check writes no CSV (FORMATS says so)"
    from .data import csv_chunks

    shown, blocks = job.stream()
    return csv_chunks(shown, blocks)


def _write_npy(job: AnyJob) -> Iterable[Chunk]:
    assert isinstance(job, Job), "attn kv-memory and rope write no .npy (FORMATS says so)"
    from .data import npy_chunks

    shown, blocks = job.stream()
    return npy_chunks(shown, blocks, job.prepared().keys.dtype)


def _write_markdown(job: AnyJob) -> Iterable[Chunk]:
    if isinstance(job, RopeJob):
        from . import rotation

        return [rotation.to_markdown(job.table, job.precision)]
    if isinstance(job, MemoryJob):
        from . import kv_memory

        return [kv_memory.to_markdown(job.report)]
    assert isinstance(job, Job), "attn check writes no Markdown (FORMATS says so)"
    from .markdown import to_markdown

    return [to_markdown(job.result(), job.command, job.precision)]


def draw(job: AnyJob, width: int) -> RenderableType:
    """The heat-map table (or explain's or decode's panels) of a job, for `width` columns."""
    if isinstance(job, CheckJob):
        from .check import render as render_check

        return render_check(job.report, job.precision, width)
    if isinstance(job, RopeJob):
        from .rotation import to_table as rope_table

        return rope_table(job.table, job.precision, width)
    if isinstance(job, MemoryJob):
        from .kv_memory import to_table as memory_table

        return memory_table(job.report, width)
    if job.command == "decode":
        from .decoding import render as render_decoding

        return render_decoding(job.decoding(), job.precision)
    if job.command == "explain":
        from .. import explain
        from .explain import render

        return render(explain.walkthrough(job.result()), job.precision)
    from .table import to_table

    return to_table(job.result(drawn=True), job.command, job.precision, width)


def _picture(kind: str) -> Callable[[AnyJob], Iterable[Chunk]]:
    def write(job: AnyJob) -> Iterator[Chunk]:
        from .picture import PICTURE_WIDTH, export_picture

        picture = export_picture(draw(job, PICTURE_WIDTH), kind, f"attn {job.command}", job.color)
        return iter([picture])

    return write


FORMATS: dict[OutputFormat, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            OutputFormat.TABLE,
            (".txt",),
            "a coloured heat-map table",
            rounded=True,
            drawn=True,
            coloured=True,
            explains=True,
            kv_memory=True,
            rope=True,
            decodes=True,
            checks=True,
        ),
        FormatSpec(
            OutputFormat.JSON,
            (".json",),
            "one strict JSON object",
            streamed=True,
            explains=True,
            kv_memory=True,
            rope=True,
            decodes=True,
            checks=True,
            write=_write_json,
        ),
        FormatSpec(
            OutputFormat.CSV,
            (".csv",),
            "a header and one row per token",
            streamed=True,
            kv_memory=True,
            rope=True,
            write=_write_csv,
        ),
        FormatSpec(
            OutputFormat.NPY,
            (".npy",),
            "a NumPy array",
            binary=True,
            streamed=True,
            write=_write_npy,
        ),
        FormatSpec(
            OutputFormat.MARKDOWN,
            (".md", ".markdown"),
            "a table to paste into a post",
            rounded=True,
            kv_memory=True,
            rope=True,
            write=_write_markdown,
        ),
        FormatSpec(
            OutputFormat.SVG,
            (".svg",),
            "the coloured table as a picture",
            rounded=True,
            drawn=True,
            coloured=True,
            explains=True,
            kv_memory=True,
            rope=True,
            decodes=True,
            checks=True,
            write=_picture("svg"),
        ),
        FormatSpec(
            OutputFormat.HTML,
            (".html", ".htm"),
            "the coloured table as a page",
            rounded=True,
            drawn=True,
            coloured=True,
            explains=True,
            kv_memory=True,
            rope=True,
            decodes=True,
            checks=True,
            write=_picture("html"),
        ),
    )
}


# About how many bytes a number takes in a text format (its digits and a separator),
# for refusing up front an -o the disk cannot hold; a binary one takes its dtype's size.
TEXT_BYTES_PER_VALUE = 20


def by_extension(path: str) -> OutputFormat | None:
    """The format a file name asks for by its extension, if any."""
    extension = os.path.splitext(path)[1].lower()
    return next((spec.name for spec in FORMATS.values() if extension in spec.extensions), None)


def names(where: Callable[[FormatSpec], bool] = lambda spec: True) -> list[str]:
    """The names of the formats `where` says yes to, in the table's order."""
    return [spec.name.value for spec in FORMATS.values() if where(spec)]


def extensions() -> list[str]:
    """Every file extension a format is known by, in the table's order."""
    return [extension for spec in FORMATS.values() for extension in spec.extensions]

"""Where attn's output goes: stdout in flushed pieces (quiet when the reader leaves),
files written atomically, rich consoles, and the progress bar. cli.py decides what to
write; this module is how it is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from .errors import AttnError, size_text

if TYPE_CHECKING:
    from rich.console import Console

# Work (heads x rows x tokens) below which no progress bar is worth drawing: about a second.
PROGRESS_WORK = 20_000_000


@contextlib.contextmanager
def progress(work: int, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback, (done, total) -> None, drawing a rich bar on stderr for long
    work when stderr is a terminal (never when piped); None otherwise."""
    if work < PROGRESS_WORK or not stderr_is_terminal():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=console(None, sys.stderr)) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def console(color: bool | None, file: IO[str] | None = None) -> Console:
    """A rich console: stdout's (colour as the terminal, NO_COLOR and --color say), or one
    writing into `file` (a table written to a file: no colour unless --color, 100
    columns)."""
    from rich.console import Console

    if isinstance(file, io.StringIO):
        return Console(
            file=file,
            width=100,
            force_terminal=bool(color),
            no_color=not color,
            highlight=False,
        )
    return Console(
        file=file,
        force_terminal=True if color else None,
        no_color=True if color is False else None,
        highlight=False,
    )


def stderr_is_terminal() -> bool:
    """Whether a person watches stderr (then long work shows a progress bar)."""
    return sys.stderr is not None and sys.stderr.isatty()


_CHUNK = 1 << 16  # characters per write to stdout


@contextlib.contextmanager
def sink(path: str | None, binary: bool) -> Iterator[Callable[[Any], object]]:
    """Where the output goes, as a write function: stdout in flushed pieces, or a file
    written through a temporary file and renamed only when everything worked."""
    if path is None:
        stream: Any = sys.stdout.buffer if binary else sys.stdout

        def write_stdout(chunk: Any) -> None:
            # In pieces, each flushed: one huge write() into a pipe the reader has closed
            # can end as a short write that Python does not report.
            try:
                for start in range(0, len(chunk), _CHUNK):
                    stream.write(chunk[start : start + _CHUNK])
                    stream.flush()
            except BrokenPipeError:
                closed_pipe()

        yield write_stdout
        return
    with atomic_file(path, binary) as handle:
        yield lambda chunk: handle.write(chunk)


def closed_pipe() -> None:
    # The reader (e.g. `head`) has what it wanted. Point stdout at /dev/null so the
    # interpreter's final flush does not complain, and leave quietly.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # stdout without a file descriptor
        os.dup2(devnull, sys.stdout.fileno())
    raise ClosedPipeError


@contextlib.contextmanager
def atomic_file(path: str, binary: bool) -> Iterator[IO[Any]]:
    """A temporary file beside `path`, renamed onto it when the block ends without an
    error and removed when it does not: a reader never sees half a file, and an error
    leaves the old file as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise AttnError(f"-o {path} is a directory; give a file name such as {path}/result.json")
    if not os.path.isdir(folder):
        raise AttnError(f"-o {path}: the folder {folder} does not exist; create it first")
    import tempfile  # only when writing a file: it costs start-up time

    try:
        handle, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
    except OSError as exc:
        raise AttnError(f"-o {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    try:
        if binary:
            with os.fdopen(handle, "wb") as stream:
                yield stream
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                yield stream
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


def check_disk(path: str, needed: int, command: str) -> None:
    """Refuse up front an output file the disk cannot hold, rather than fill it."""
    import shutil  # only when writing a file: it costs start-up time

    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a missing folder is reported when the file is opened
    if needed > free:
        raise AttnError(
            f"attn {command} would write about {size_text(needed)} to {path}, but only about "
            f"{size_text(free)} is free there; ask for less: --query TOKEN gives one row, "
            "attn context gives one vector per token"
        )


class ClosedPipeError(Exception):
    """stdout's reader has gone (`| head`): stop quietly."""

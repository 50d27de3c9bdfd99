"""Where attn's output goes: stdout in flushed pieces (quiet when the reader leaves),
files written atomically, rich consoles, and the progress bar. cli.py decides what to
write; this module is how it is written.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator

from ..errors import AttnError, size_text
from . import signals

# typing.TYPE_CHECKING without importing typing: `attn --version` needs this module,
# and typing would be a fifth of its start-up beyond Python's own.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Literal

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

    # rich's live display would capture stdout by default and send the data to the
    # terminal: the data stays where the user sent it, the bar goes to stderr alone.
    with Progress(
        transient=True,
        console=console(None, sys.stderr),
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
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
    terminal = Console(
        file=file,
        force_terminal=True if color else None,
        no_color=True if color is False else None,
        highlight=False,
    )
    terminal.width = max(terminal.width, MIN_WIDTH)
    return report_broken_pipes(terminal)


# Narrower than this (COLUMNS=0, a tiny pane), tables and help would be cut to nothing:
# they are drawn this wide, and the terminal wraps what it cannot show.
MIN_WIDTH = 40


def help_width() -> int:
    """How wide Typer draws the help: the terminal's width, at least MIN_WIDTH."""
    from rich.console import Console

    return max(Console(file=sys.stdout).width, MIN_WIDTH)


def stderr_is_terminal() -> bool:
    """Whether a person watches stderr (then long work shows a progress bar)."""
    return sys.stderr is not None and sys.stderr.isatty()


_CHUNK = 1 << 16  # characters per write to stdout


@contextlib.contextmanager
def sink(path: str | None) -> Iterator[Callable[[str | bytes], None]]:
    """Where the output goes, as a write function taking text (written as UTF-8) or
    bytes: stdout in flushed pieces; a regular file (new, or replaced through its
    symbolic links) written atomically: a temporary file beside it, renamed over it
    only when everything worked; a device or a named pipe written straight into."""
    target = output_target(path)
    if target.kind == "stdout":
        stream = stdout_bytes()

        def write_stdout(chunk: str | bytes) -> None:
            # In pieces, each flushed: one huge write() into a pipe the reader has closed
            # can end as a short write that Python does not report.
            data = _utf8(chunk)
            with writing_stdout():
                for start in range(0, len(data), _CHUNK):
                    stream.write(data[start : start + _CHUNK])
                    stream.flush()

        yield write_stdout
    elif target.kind == "file":
        with atomic_file(target.path, target.real) as handle:
            yield lambda chunk: _write_all(handle, chunk, target.path)
    else:
        with _open_stream(target) as handle:
            yield lambda chunk: _write_all(handle, chunk, target.path)


def _utf8(chunk: str | bytes) -> bytes:
    # Text is written as UTF-8 whatever the locale says (with PYTHONIOENCODING=ascii a
    # CSV's tokens would otherwise turn into escapes); a lone surrogate, which UTF-8
    # cannot carry, is written as its escape rather than crash attn.
    return chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "backslashreplace")


def _write_all(handle: IO[bytes], chunk: str | bytes, path: str) -> None:
    try:
        handle.write(_utf8(chunk))
    except BrokenPipeError:  # -o a named pipe whose reader has what it wanted
        raise ClosedPipeError from None
    except OSError as exc:
        raise AttnError(f"-o {path}: cannot write it ({exc.strerror or exc})") from None


class Target:
    """What `-o PATH` names, and so how it is written. (A plain class: a dataclass
    costs a millisecond of every start.)"""

    __slots__ = ("fd", "kind", "path", "real")

    def __init__(
        self,
        kind: Literal["stdout", "descriptor", "device", "file"],
        path: str,  # as the user wrote it (for messages)
        real: str = "",  # "file": the file replaced, symbolic links followed; "device": opened
        fd: int = -1,  # "descriptor": the open file descriptor written into
    ) -> None:
        self.kind = kind
        self.path = path
        self.real = real
        self.fd = fd


# /dev/fd/N and /proc/self/fd/N name a descriptor attn already has open (bash's >(cmd)
# gives /dev/fd/63): written into as it is, as the shell's `>&N` would, not reopened
# (which would truncate a file opened for appending).
_DESCRIPTOR_PATH = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")
_STANDARD_PATHS = {"/dev/stdout": 1, "/dev/stderr": 2}


def output_target(path: str | None) -> Target:
    """Classify `-o PATH`: stdout; an open descriptor; a character device or named pipe
    (written straight into); or a regular file, new or replaced (atomically)."""
    if path is None:
        return Target("stdout", "-")
    match = _DESCRIPTOR_PATH.fullmatch(path)
    fd = int(match.group(1)) if match else _STANDARD_PATHS.get(path)
    if fd == 1:
        return Target("stdout", path)
    if fd is not None:
        return Target("descriptor", path, fd=fd)
    try:
        mode = os.stat(path).st_mode  # through symbolic links
    except FileNotFoundError:
        mode = None  # a new file (perhaps at the end of a dangling link)
    except OSError as exc:
        raise AttnError(f"-o {path}: cannot write there ({exc.strerror or exc})") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise AttnError(
                f"-o {path} is a directory; give a file name such as {path}/result.json"
            )
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            return Target("device", path, real=path)
        if not stat.S_ISREG(mode):
            kind = "a block device" if stat.S_ISBLK(mode) else "a socket"
            raise AttnError(
                f"-o {path} is {kind}; attn writes to files, character devices (such as "
                "/dev/null) and named pipes"
            )
    return Target("file", path, real=os.path.realpath(path))


@contextlib.contextmanager
def _open_stream(target: Target) -> Iterator[IO[bytes]]:
    """A device, named pipe or open descriptor, written straight into (a named pipe
    waits here for its reader, as the shell's `>` does)."""
    try:
        if target.kind == "descriptor":
            fd = os.dup(target.fd)
        else:
            fd = os.open(target.real, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        what = "no such open file descriptor" if exc.errno == errno.EBADF else exc.strerror
        raise AttnError(f"-o {target.path}: cannot write it ({what or exc})") from None
    handle = os.fdopen(fd, "wb")
    try:
        yield handle
        try:
            handle.flush()
        except BrokenPipeError:
            raise ClosedPipeError from None
        except OSError as exc:
            raise AttnError(f"-o {target.path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):  # after an error, what is left may not flush
            handle.close()


def stdout_bytes() -> IO[bytes]:
    """stdout's byte stream (what is buffered as text is flushed into it first)."""
    if sys.stdout is None:
        raise AttnError("cannot write the output: stdout is closed; write to a file with -o FILE")
    sys.stdout.flush()
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise AttnError("stdout takes no bytes here; write to a file with -o FILE instead")
    return buffer


# What a write to a full disk, /dev/full or a vanished device fails with.
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF})


@contextlib.contextmanager
def writing_stdout(what: str = "the output") -> Iterator[None]:
    """Around writes to stdout: a reader that left is a quiet exit (141); a full disk or
    /dev/full is one line of error (exit 1). Other OSErrors are not the output's, and
    pass through."""
    try:
        yield
    except BrokenPipeError:
        closed_pipe()
    except OSError as exc:
        if exc.errno not in _WRITE_ERRORS:
            raise
        _detach_stdout()
        raise AttnError(f"cannot write {what} to stdout ({exc.strerror or exc})") from None


def write_version(version: str) -> None:
    """`attn --version`'s line, with the same care as any output."""
    if sys.stdout is None:
        raise AttnError("cannot write the version: stdout is closed")
    with writing_stdout("the version"):
        sys.stdout.write(f"attn {version}\n")
        sys.stdout.flush()


def _raise_broken_pipe() -> None:
    raise BrokenPipeError


@contextlib.contextmanager
def rich_reports_broken_pipes() -> Iterator[None]:
    """While it lasts, every rich console (Typer draws its help with consoles of its
    own making) raises BrokenPipeError on a closed pipe, as attn's own do."""
    from rich.console import Console

    saved = Console.on_broken_pipe
    Console.on_broken_pipe = _raise_broken_pipe_method  # type: ignore[method-assign]
    try:
        yield
    finally:
        Console.on_broken_pipe = saved  # type: ignore[method-assign]


def _raise_broken_pipe_method(self: Console) -> None:
    raise BrokenPipeError


def report_broken_pipes(console: Console) -> Console:
    """rich's consoles exit(1) on a closed pipe; attn's exit 141, quietly, like every
    other output of attn: make the console raise, for writing_stdout to handle."""
    console.on_broken_pipe = _raise_broken_pipe  # type: ignore[method-assign]
    return console


def closed_pipe() -> None:
    # The reader (e.g. `head`) has what it wanted: leave quietly.
    _detach_stdout()
    raise ClosedPipeError


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so that what is left in its buffer does not fail
    again (and print a second complaint) when the interpreter flushes it at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no file descriptor
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextlib.contextmanager
def atomic_file(path: str, real: str | None = None) -> Iterator[IO[bytes]]:
    """A temporary file beside `real` (`path` with its symbolic links followed, so a
    link stays a link), renamed onto it when the block ends without an error and
    removed when it does not, Ctrl-C, SIGTERM and SIGHUP included: a reader never sees
    half a file, and an error leaves the old file as it was. A file replaced keeps its
    permissions (and, for root, its owner); one the user may not write is refused."""
    real = os.path.realpath(path) if real is None else real
    folder = os.path.dirname(real)
    if os.path.isdir(real):
        raise AttnError(f"-o {path} is a directory; give a file name such as {path}/result.json")
    if not os.path.isdir(folder):
        raise AttnError(f"-o {path}: the folder {folder} does not exist; create it first")
    old = _existing(real)
    if old is not None and not _may_write(old):
        raise AttnError(
            f"-o {path}: the file is read-only (mode {stat.filemode(old.st_mode)}); make it "
            f"writable (chmod u+w {path}) or write to another name"
        )
    temporary = None
    try:
        # Held until `temporary` names the new file: a signal that came between its
        # creation and the assignment would leave it behind. A signal held here acts
        # when the block ends, inside this `try`, which removes the file.
        with signals.held():
            handle, temporary = _new_temporary(path, folder, os.path.basename(real))
        with os.fdopen(handle, "wb") as stream:
            yield stream
        _copy_permissions(temporary, old)
        os.replace(temporary, real)
    except BaseException as exc:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        if isinstance(exc, OSError):
            raise AttnError(f"-o {path}: cannot write it ({exc.strerror or exc})") from None
        raise


def _new_temporary(path: str, folder: str, name: str) -> tuple[int, str]:
    import tempfile  # only when writing a file: it costs start-up time

    try:
        return tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    except OSError as exc:
        raise AttnError(f"-o {path}: cannot write in {folder} ({exc.strerror or exc})") from None


def _existing(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _may_write(st: os.stat_result) -> bool:
    """Whether the file's permission bits let this user write it. Root is held to the
    bits too: a read-only file says "do not replace me" to everyone."""
    if os.geteuid() == st.st_uid or os.geteuid() == 0:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _copy_permissions(temporary: str, old: os.stat_result | None) -> None:
    """Give the new file the old one's permissions (and owner, when root replaces
    another user's file), or a new file the usual umask-based ones (mkstemp's are
    private to the owner)."""
    if old is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        return
    if os.geteuid() == 0 and (old.st_uid, old.st_gid) != (0, 0):
        with contextlib.suppress(OSError):
            os.chown(temporary, old.st_uid, old.st_gid)
    os.chmod(temporary, old.st_mode & 0o7777)


def check_disk(path: str, needed: int, command: str) -> None:
    """Refuse up front an output file the disk cannot hold, rather than fill it."""
    target = output_target(path)
    if target.kind != "file":
        return  # a device or a pipe holds what its reader takes
    import shutil  # only when writing a file: it costs start-up time

    folder = os.path.dirname(target.real)
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

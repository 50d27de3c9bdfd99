"""Bytes in, read once and bounded: the first bytes of an input tell text from .npy,
.npz and binary data before more is read (so /dev/zero is refused at once), a stream is
read at most as far as free memory could parse, and text is UTF-8 or a message saying
what it is instead."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import stat
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from ..errors import AttnError, size_text

HEAD_BYTES = 1 << 16  # read before the rest, to tell text, .npy, .npz and binary data apart
# The first bytes of a .npy file, and of a zip archive (.npz) with members or without
NUMPY_MAGICS = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")
EMBEDDINGS_TEXT = "token embeddings as UTF-8 JSON or CSV"
_SNIFF_BYTES = 4096  # looked at for NUL and control bytes (binary data) and UTF-16
_CHUNK_BYTES = 1 << 24
# C0 control characters other than tab, line feed, carriage return and form feed
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


class Readable(Protocol):
    """What attn reads input from: a file, stdin's bytes, a BytesIO."""

    def read(self, size: int, /) -> bytes: ...


def read_stream(stream: Readable, source: str) -> bytes:
    """All of a stream such as stdin, read once: binary data is refused from its first
    bytes, and an endless stream stops at what free memory can hold."""
    head = stream.read(HEAD_BYTES)
    if not head.startswith(NUMPY_MAGICS):
        refuse_binary(head, source)
    return head + read_rest(stream, source, len(head), available_memory())


def read_rest(stream: Readable, source: str, already: int, limit: int | None) -> bytes:
    """The rest of a stream of unknown length, `already` bytes into it, up to `limit`."""
    chunks = []
    total = already
    while chunk := stream.read(_CHUNK_BYTES):
        total += len(chunk)
        check_room(total, limit, source, endless=True)
        chunks.append(chunk)
    return b"".join(chunks)


def check_room(n_bytes: int, limit: int | None, source: str, endless: bool = False) -> None:
    """Refuse input beyond free memory (`endless`: a stream, of which more may follow)."""
    if limit is not None and n_bytes > limit:
        size = f"more than {size_text(limit)}" if endless else size_text(n_bytes)
        raise AttnError(
            f"{source}: {size} of input, beyond the {size_text(limit)} of memory free to "
            "parse it; give a shorter input"
        )


def available_memory() -> int | None:
    """Bytes this process can still allocate: the kernel's MemAvailable, or less if a
    cgroup (container) limit is lower; None where neither can be read."""
    available = None
    try:
        with open("/proc/meminfo", "rb") as meminfo:  # bytes: no codec to load
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", "rb") as limit_file:
            limit = limit_file.read().strip()
        with open("/sys/fs/cgroup/memory.current", "rb") as current_file:
            current = int(current_file.read().strip())
        if limit != b"max":
            room = int(limit) - current
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def decode_text(data: bytes, source: str, wanted: str = EMBEDDINGS_TEXT) -> str:
    """UTF-8 text (a byte-order mark is dropped), or an AttnError that says what it is
    (`wanted` names what to give instead)."""
    refuse_binary(data, source, wanted)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        head = data[:_SNIFF_BYTES]
        controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
        if controls > 8 and controls * 50 > len(head):  # text in 8-bit codes has next to none
            raise AttnError(
                f"{source} is binary data, not text ({controls} control bytes in its first "
                f"{len(head)}); give {wanted}"
            ) from None
        line = data.count(b"\n", 0, exc.start) + 1
        raise AttnError(
            f"{source}: line {line}, byte {exc.start}: not UTF-8 text (byte "
            f"0x{data[exc.start]:02x}; Latin-1 or Windows-1252?); save it as UTF-8, e.g. "
            f"`iconv -f LATIN1 -t UTF-8 {source}`"
        ) from None


def refuse_binary(data: bytes, source: str, wanted: str = EMBEDDINGS_TEXT) -> None:
    """An AttnError if the first bytes of `data` are not text: UTF-16, or binary data
    (NUL bytes)."""
    head = data[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AttnError(
            f"{source} is UTF-16 text; attn reads UTF-8: convert it with "
            f"`iconv -f UTF-16 -t UTF-8 {source}`"
        )
    if b"\x00" in head:
        # ASCII text in UTF-16 has a NUL beside nearly every character, all on the same
        # side (odd bytes for little-endian, even for big-endian); other NULs mean binary
        half = len(head) // 2
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if len(head) >= 8 and max(odd, even) >= 0.4 * half and min(odd, even) < 0.1 * half:
            raise AttnError(
                f"{source} looks like UTF-16 text without a byte-order mark; attn reads "
                f"UTF-8: convert it with `iconv -f UTF-16LE -t UTF-8 {source}`"
            )
        raise AttnError(f"{source} is binary data, not text (it holds NUL bytes); give {wanted}")


class Opened(NamedTuple):
    """An input file opened for reading once: its first bytes, read before anything else
    so binary data is recognised without reading on; `size` for a regular file (None for
    a pipe, a device or `<(...)`, which cannot be read twice)."""

    name: str
    handle: io.BufferedIOBase
    head: bytes
    size: int | None

    def read_all(self) -> bytes:
        """Every byte, `head` included; at most what free memory can hold."""
        limit = available_memory()
        if self.size is not None:
            check_room(self.size, limit, self.name)
            self.handle.seek(0)
            return self.handle.read()
        return self.head + read_rest(self.handle, self.name, len(self.head), limit)

    def seekable(self) -> tuple[io.BufferedIOBase, int]:
        """The input as a file that can seek (a zip archive needs one), at its start,
        and its size: a pipe is read into memory."""
        if self.size is not None:
            self.handle.seek(0)
            return self.handle, self.size
        data = self.read_all()
        return io.BytesIO(data), len(data)


@contextlib.contextmanager
def open_input(name: str, wanted: str) -> Iterator[Opened]:
    """`name` opened for reading, its first HEAD_BYTES read; or an AttnError that says
    why it cannot be read (`wanted` names what to give instead)."""
    if os.path.isdir(name):
        raise AttnError(f"{name} is a directory; give {wanted}")
    try:
        handle = open(name, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise AttnError(f"{name}: no such file; check the path") from None
    except PermissionError:
        raise AttnError(f"{name}: permission denied; make the file readable") from None
    except OSError as exc:
        raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    with handle:
        try:
            status = os.fstat(handle.fileno())
            size = status.st_size if stat.S_ISREG(status.st_mode) else None
            head = handle.read(HEAD_BYTES)
        except OSError as exc:
            raise AttnError(f"{name}: cannot read it ({exc.strerror or exc})") from None
        yield Opened(name, handle, head, size)

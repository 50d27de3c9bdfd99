""".npy arrays and .npz archives, read once and checked before their data is.

numpy.load trusts a file more than attn can: it memory-maps (a file truncated while attn
runs then kills it with SIGBUS), it allocates whatever shape a header declares, it
inflates whatever a zip archive holds, and it opens a file twice (a pipe's first bytes
are gone by then). So attn reads the .npy header and the zip directory itself, checks
the sizes they declare against the file and against free memory, and only then reads
each array, once, into memory it owns.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from ..embeddings import Embeddings
from ..errors import AttnError, setting, size_text
from . import reading
from .reading import HEAD_BYTES, Opened
from .text import InputFormat, check_finite, looks_like_json

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members, an empty one
# Checks an array's header (where, shape, dtype) before its data is read
HeaderCheck = Callable[[str, tuple[int, ...], "np.dtype[Any]"], None]
_READ_ERRORS = (
    ValueError,  # a damaged .npy header
    EOFError,  # a compressed member cut short
    OSError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a compression method zipfile lacks
    RuntimeError,  # an encrypted member
)


def embeddings_from_file(opened: Opened, fmt: InputFormat | None) -> Embeddings:
    """Embeddings from an opened .npy or .npz file (or pipe)."""
    fmt = _format(opened.head, opened.name, fmt)
    stream, size = opened.seekable()
    return _embeddings(stream, size, opened.name, fmt)


def embeddings_from_bytes(data: bytes, source: str, fmt: InputFormat | None) -> Embeddings:
    """Embeddings from the bytes of a .npy or .npz file (stdin)."""
    fmt = _format(data[:HEAD_BYTES], source, fmt)
    return _embeddings(io.BytesIO(data), len(data), source, fmt)


def read_npz(opened: Opened, source: str) -> dict[str, NDArray[Any]]:
    """Every array of an opened .npz archive, by name (weights files)."""
    if opened.head.startswith(NPY_MAGIC):
        raise AttnError(
            f"{source}: a .npy file holds one array; weights need W_query, W_key and "
            "W_value: save them with numpy.savez(path, W_query=..., W_key=..., W_value=...)"
        )
    stream, _ = opened.seekable()
    return _read_npz(stream, source, lambda names: dict.fromkeys(names))


def read_npy_file(opened: Opened, check: HeaderCheck | None) -> NDArray[Any]:
    """The one array of an opened .npy file (or pipe), its header checked by `check`
    before its data is read (errors name the file alone)."""
    stream, size = opened.seekable()
    return _read_npy(stream, opened.name, size, check)


def read_npz_members(
    opened: Opened, pick: Callable[[list[str]], dict[str, HeaderCheck | None]]
) -> dict[str, NDArray[Any]]:
    """The arrays `pick` chooses, by name, from the members of an opened .npz archive,
    each header checked by the check `pick` gives it; the sizes the archive declares are
    checked against free memory before any member is inflated (errors name the file and
    the member: "qkv.npz: q: ...")."""
    stream, _ = opened.seekable()
    return _read_npz(stream, opened.name, pick)


# ---------------------------------------------------------------- which format


def _format(head: bytes, source: str, fmt: InputFormat | None) -> InputFormat:
    """The format the first bytes show, checked against the one asked for."""
    if head.startswith(NPY_MAGIC):
        if fmt is InputFormat.NPZ:
            raise AttnError(f"{source}: a .npy array, not a .npz archive; name it .npy")
        return InputFormat.NPY
    if head.startswith(ZIP_MAGICS):
        if fmt is InputFormat.NPY:
            raise AttnError(f"{source}: a .npz archive, not a .npy array; name it .npz")
        return InputFormat.NPZ
    wanted = fmt.value if fmt is not None else "npy"
    if not head:
        raise AttnError(f"{source} is empty; expected a .{wanted} file")
    text = head[:4096].decode("utf-8", "replace").removeprefix("\ufeff")
    if b"\x00" not in head[:4096] and "\ufffd" not in text[:-4]:
        kind = "json" if looks_like_json(text) else "csv"
        raise AttnError(
            f"{source} is {kind.upper()} text, not a .{wanted} file; give it a .{kind} name "
            f"or pass {setting('input_format', kind)}"
        )
    raise AttnError(
        f"{source}: not a .{wanted} file (it does not start as NumPy's files do); save it "
        f"with numpy.{'save' if wanted == 'npy' else 'savez'}"
    )


# ---------------------------------------------------------------- embeddings


def _embeddings(stream: io.BufferedIOBase, size: int, source: str, fmt: InputFormat) -> Embeddings:
    if fmt is InputFormat.NPY:
        return _checked(_read_npy(stream, source, size, _check_matrix), None, source)

    def pick(names: list[str]) -> dict[str, HeaderCheck | None]:
        """ "embeddings" (or the only member), and "tokens" if there are both."""
        if "embeddings" not in names and len(names) != 1:
            held = ", ".join(names) or "nothing"
            raise AttnError(
                f'{source}: a .npz archive needs an array named "embeddings" (and '
                f'"tokens", if the tokens have names); it holds {held}'
            )
        matrix = "embeddings" if "embeddings" in names else names[0]
        chosen: dict[str, HeaderCheck | None] = {matrix: _check_matrix}
        if matrix != "tokens" and "tokens" in names:
            chosen["tokens"] = _check_tokens
        return chosen

    arrays = _read_npz(stream, source, pick)
    names = arrays.pop("tokens") if len(arrays) == 2 else None
    (matrix,) = arrays.values()
    return _checked(matrix, names, source)


def _check_matrix(where: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """Refuse, from the header alone, an embeddings matrix attn cannot use."""
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise AttnError(
            f"{where}: the array has shape {shape}; give a T x d_in matrix, one "
            "row per token (at least one token, one dimension)"
        )
    if dtype.kind not in "fiu":
        real = " (real ones: save array.real)" if dtype.kind == "c" else ""
        raise AttnError(f"{where}: the array holds {dtype} values; give numbers{real}")


def _check_tokens(where: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if dtype.kind not in "US" or len(shape) != 1:
        raise AttnError(f'{where}: "tokens" must be strings, one per row')


def _checked(matrix: NDArray[Any], names: NDArray[Any] | None, source: str) -> Embeddings:
    if matrix.dtype.kind != "f" or matrix.dtype.itemsize < 4:
        matrix = matrix.astype(np.float64)  # integers and float16: widened once
    if names is None:
        tokens = tuple(f"x{i + 1}" for i in range(matrix.shape[0]))
    else:
        if len(names) != matrix.shape[0]:
            raise AttnError(f'{source}: "tokens" must be {matrix.shape[0]} strings, one per row')
        tokens = _tokens(names, source)
    for start in range(0, matrix.shape[0], 1 << 16):  # in slices: no T x d_in temporary
        part = matrix[start : start + (1 << 16)]
        if not np.isfinite(part).all():
            check_finite(part, tokens[start:], source, first_row=start)
    return Embeddings(tokens, matrix, source)


def _tokens(names: NDArray[Any], source: str) -> tuple[str, ...]:
    """Token strings; bytes (numpy 'S' arrays) decoded as UTF-8."""
    if names.dtype.kind == "U":
        return tuple(str(name) for name in names.tolist())
    tokens = []
    for i, raw in enumerate(names.tolist()):
        try:
            tokens.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise AttnError(
                f'{source}: "tokens" row {i + 1} ({raw!r}) is not UTF-8 text (byte '
                f"0x{raw[exc.start]:02x}); save the tokens as text, e.g. "
                "numpy.array(tokens, dtype=str)"
            ) from None
    return tuple(tokens)


# ---------------------------------------------------------------- .npy and .npz


def _read_npz(
    file: io.BufferedIOBase, source: str, pick: Callable[[list[str]], dict[str, HeaderCheck | None]]
) -> dict[str, NDArray[Any]]:
    """The arrays `pick` chooses from the archive's members (each with the check of
    its header); their sizes, as the zip directory and their headers declare them,
    checked before any is inflated."""
    try:
        archive = zipfile.ZipFile(file)
    except _READ_ERRORS as exc:
        raise AttnError(
            f"{source}: not a readable .npz archive ({exc}); save it with numpy.savez"
        ) from None
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if name in members:
                raise AttnError(
                    f"{source}: the archive holds two members named {name!r}; which one "
                    "is meant is unclear: save it again with numpy.savez"
                )
            members[name] = info
        chosen = pick(list(members))
        unpacked = sum(members[name].file_size for name in chosen)
        room = reading.available_memory()
        if room is not None and unpacked > room:
            packed = sum(members[name].compress_size for name in chosen)
            raise AttnError(
                f"{source}: its arrays would unpack to {size_text(unpacked)} (from "
                f"{size_text(packed)} in the archive), more than the {size_text(room)} of "
                "memory free; give a smaller archive"
            )
        arrays = {}
        for name in chosen:
            info = members[name]
            where = f"{source}: {name}"
            try:
                with archive.open(info) as member:  # a ZipExtFile, a BufferedIOBase
                    stream = cast("io.BufferedIOBase", member)
                    arrays[name] = _read_npy(stream, where, info.file_size, chosen[name])
            except _READ_ERRORS as exc:
                raise AttnError(
                    f"{where}: cannot be read ({exc}); save the archive again with numpy.savez"
                ) from None
    return arrays


def _read_npy(
    stream: io.BufferedIOBase, where: str, size: int, check: HeaderCheck | None
) -> NDArray[Any]:
    """One .npy array of `size` bytes from `stream`: its header read and checked (by
    `check` too), then its data read into memory of its own."""
    start = stream.tell()
    magic = stream.read(len(NPY_MAGIC) + 2)  # and the format's version, two bytes
    if not magic.startswith(NPY_MAGIC):
        raise AttnError(f"{where}: not a .npy array; save it with numpy.save or numpy.savez")
    version = (magic[-2], magic[-1])
    try:
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"a .npy file of version {version[0]}.{version[1]}")
    except (ValueError, EOFError) as exc:
        raise AttnError(
            f"{where}: a damaged .npy header ({exc}); save it with numpy.save"
        ) from None
    if dtype.hasobject:
        raise AttnError(
            f"{where}: the array holds Python objects (it needs pickle, which attn does not "
            "run); save numbers, e.g. numpy.save(path, array.astype(float))"
        )
    if check is not None:
        check(where, shape, dtype)
    n_bytes = math.prod(shape) * dtype.itemsize
    follows = size - (stream.tell() - start)
    if n_bytes > follows:
        raise AttnError(
            f"{where}: cut short: its header declares {shape} {dtype} values "
            f"({size_text(n_bytes)}), but only {size_text(follows)} follow; copy or save "
            "it again"
        )
    room = reading.available_memory()
    if room is not None and n_bytes > room:
        raise AttnError(
            f"{where}: the array takes {size_text(n_bytes)} ({shape} {dtype} values), more "
            f"than the {size_text(room)} of memory free; give fewer tokens"
        )
    array = np.empty(shape[::-1] if fortran_order else shape, dtype)
    _read_into(stream, array, where)
    if fortran_order:
        array = array.T
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _read_into(stream: io.BufferedIOBase, array: NDArray[Any], where: str) -> None:
    """Fill `array` from `stream`, or say the data ends too soon."""
    view = array.reshape(-1).view(np.uint8).data  # (n_bytes,), as a memoryview
    done = 0
    while done < len(view):
        got = stream.readinto(view[done:])
        if not got:
            raise AttnError(
                f"{where}: cut short: the data ends after {size_text(done)} of "
                f"{size_text(len(view))}; copy or save it again"
            )
        done += got

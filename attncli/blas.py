"""How many threads numpy's BLAS runs: the engine's workers each want it at one.

The engine splits long attention over worker threads (numpy releases the GIL in its
matrix products and in `exp`), each multiplying small cache-sized tiles. A BLAS that
also splits each of those products over every core makes the threads fight for the
cores (measured: up to 5x slower with another process busy). OpenBLAS, which numpy's
wheels bundle, is told to use one thread for the duration through its C interface;
`single_threaded()` says whether it could be (another BLAS: the engine then runs its
one-thread blocked kernel, whose large products that BLAS's own threads split).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Controls = tuple[Callable[[int], Any], Callable[[], int]]  # (set threads, get threads)

# Names of the setter and getter in the OpenBLAS builds numpy ships or links: scipy's
# wheels prefix and suffix them (64-bit integers), a system OpenBLAS does not.
_NAMES = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)

_lock = threading.Lock()
_users = 0  # computations inside single_threaded() now; the last one out restores
_saved = 0
_looked = False
_controls: Controls | None = None


def _openblas_paths() -> list[str]:
    """Shared libraries with "openblas" in their name that this process has loaded."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        maps = ""
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if "openblas" in line}
    if not paths:  # no /proc (macOS): the wheels keep their libraries beside numpy
        import numpy

        root = Path(numpy.__file__).parent
        for folder in (root / ".dylibs", root.parent / "numpy.libs"):
            if folder.is_dir():
                paths.update(str(p) for p in folder.iterdir() if "openblas" in p.name)
    return sorted(p for p in paths if os.path.isfile(p))


def _find_controls() -> Controls | None:
    import numpy  # noqa: F401  (loads the BLAS whose library is looked for)

    for path in _openblas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            setter = getattr(library, set_name, None)
            getter = getattr(library, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def _controls_once() -> Controls | None:
    global _looked, _controls
    if not _looked:
        _controls, _looked = _find_controls(), True
    return _controls


@contextlib.contextmanager
def single_threaded() -> Iterator[bool]:
    """Run numpy's BLAS on one thread inside the block, and say whether it could be.

    The setting is the process's (OpenBLAS keeps one); nested and concurrent blocks
    share it, and the last one to leave puts back the number found on entry."""
    global _users, _saved
    with _lock:
        controls = _controls_once()
        if controls is not None:
            setter, getter = controls
            if _users == 0:
                _saved = int(getter())
                setter(1)
            _users += 1
    try:
        yield controls is not None
    finally:
        if controls is not None:
            with _lock:
                _users -= 1
                if _users == 0:
                    controls[0](_saved)

"""attncli: the attention calculator of *Build a Large Language Model (From Scratch)*, ch. 3.

>>> import attncli
>>> result = attncli.compute(attncli.book_example(), attncli.AttentionParams(mode="trainable"))
>>> result.context_vecs[1].round(4).tolist()  # the book's context_vec_2
[0.3061, 0.821]

The names below are imported when first used, so `import attncli` (and the `attn`
command's start, `--version` above all) costs nothing until numpy is needed.
"""

from __future__ import annotations

import importlib

from .version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up

# public name -> the module that defines it
_EXPORTS = {
    "compute": "attention",
    "context": "attention",
    "prepare": "attention",
    "decode": "decoding",
    "AttnError": "errors",
    "ExitStatus": "errors",
    "Embeddings": "embeddings",
    "InputFormat": "inputs",
    "book_example": "embeddings",
    "load": "inputs",
    "loads": "inputs",
    "AttentionParams": "params",
    "AttentionResult": "attention",
    "Init": "params",
    "Mode": "params",
    "Projections": "params",
}

if TYPE_CHECKING:
    from .attention import AttentionResult, compute, context, prepare
    from .decoding import decode
    from .embeddings import Embeddings, book_example
    from .errors import AttnError, ExitStatus
    from .inputs import InputFormat, load, loads
    from .params import AttentionParams, Init, Mode, Projections


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'attncli' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "AttentionParams",
    "AttentionResult",
    "AttnError",
    "Embeddings",
    "ExitStatus",
    "Init",
    "InputFormat",
    "Mode",
    "Projections",
    "__version__",
    "book_example",
    "compute",
    "context",
    "decode",
    "load",
    "loads",
    "prepare",
]

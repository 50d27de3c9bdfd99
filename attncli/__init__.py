"""attncli: the attention calculator of *Build a Large Language Model (From Scratch)*, ch. 3.

>>> import attncli
>>> result = attncli.compute(attncli.book_example(), attncli.AttentionParams(mode="trainable"))
>>> result.context_vecs[1].round(4).tolist()  # the book's context_vec_2
[0.3061, 0.821]
"""

from .attention import compute, context, prepare
from .errors import AttnError, ExitStatus
from .loading import Embeddings, InputFormat, book_example, load, loads
from .modes import AttentionParams, AttentionResult, Init, Mode, Projections

__version__ = "0.1.0"

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
    "load",
    "loads",
    "prepare",
]

"""The settings that are one of a few words: the attention mode, how the weights are
drawn, the arithmetic, and the input's format.

They live apart from the modules that use them (params.py, inputs/text.py, which
import numpy) so that the command line can build its flags, and Typer its help, from
them without numpy: `attn --help` must not pay for an import it never uses.
"""

from __future__ import annotations

import enum


class Mode(str, enum.Enum):
    PLAIN = "plain"
    TRAINABLE = "trainable"
    CAUSAL = "causal"


class Init(str, enum.Enum):
    """How W_query, W_key, W_value are drawn from the seed."""

    RAND = "rand"  # torch.rand(d_in, d_out), applied as X @ W (book 3.4.1)
    LINEAR = "linear"  # nn.Linear(d_in, d_out): weight (d_out, d_in), X @ W.T + b (3.4.2 on)


class DType(str, enum.Enum):
    """The arithmetic: float64 by default; float32 as the book's torch code computes."""

    FLOAT64 = "float64"
    FLOAT32 = "float32"


class InputFormat(str, enum.Enum):
    """How INPUT is parsed; detected from the extension, else from the content."""

    JSON = "json"
    CSV = "csv"
    TSV = "tsv"
    NPY = "npy"  # a NumPy array, T x d_in
    NPZ = "npz"  # a NumPy archive: "embeddings", and "tokens" if named

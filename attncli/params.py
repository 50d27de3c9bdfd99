"""The settings of one attention layer, checked, and its trainable weights (drawn as
the book's modules draw them, or given): what attention.prepare starts from.

- plain (3.3): the inputs are queries, keys and values; no scaling.
- trainable (3.4): queries = X @ W_query, keys = X @ W_key, values = X @ W_value,
  scores scaled by 1/sqrt(d_k).
- causal (3.5): trainable, with every key after the query masked.
- heads > 1 (3.6): d_out split into heads of head_dim = d_out / heads, each attending
  on its own, concatenated, then `out_proj` (MultiHeadAttention); or, with `wrapper`,
  `heads` separate single-head modules of d_out each, concatenated
  (MultiHeadAttentionWrapper).
- dropout (3.5.2): nn.Dropout on the attention weights, in training mode.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import AttnError, setting
from .masks import Mask
from .rng import TorchGenerator, check_seed, number_text


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


class WeightLayout(str, enum.Enum):
    """How a weight matrix is written down (applied, every matrix acts as X @ W)."""

    XW = "xw"  # (d_in, d_out), applied as X @ W: the book's torch.rand matrices
    LINEAR = "linear"  # (d_out, d_in), applied as X @ W.T + b: nn.Linear's weight


@dataclass(frozen=True)
class AttentionParams:
    """Every setting that produces the numbers. Defaults follow the book."""

    mode: Mode = Mode.PLAIN
    d_out: int = 2
    seed: int = 123
    init: Init = Init.RAND
    qkv_bias: bool = False
    heads: int = 1
    wrapper: bool = False  # heads as separate modules of d_out each, no out_proj (3.6.1)
    dropout: float = 0.0
    dropout_seed: int | None = None  # re-seed just before the dropout draws
    # Copies of the input in the batch the module runs on, as the book's torch.stack: attn
    # shows item 0, but with dropout the later items' masks are drawn between the
    # wrapper's heads (see attention.dropout_stream).
    batch: int = 1
    dtype: DType = DType.FLOAT64

    def __post_init__(self) -> None:
        # Accept the plain strings a library user types: AttentionParams(mode="causal").
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "init", Init(self.init))
        object.__setattr__(self, "dtype", DType(self.dtype))

    @property
    def projected(self) -> bool:
        """Whether W_query, W_key, W_value exist (every mode but plain)."""
        return self.mode is not Mode.PLAIN

    @property
    def mask(self) -> Mask:
        """The keys each query may not see: the one place a mask is made from settings."""
        return Mask.for_mode(causal=self.mode is Mode.CAUSAL)


@dataclass(frozen=True)
class Projections:
    """The trainable weights, as applied: `X @ W_query + b_query` and so on, each W of
    shape (d_in, D); with several heads, head h owns columns h*head_dim to
    (h+1)*head_dim. `W_out`/`b_out` is MultiHeadAttention's out_proj, (D, D) applied as
    `context @ W_out + b_out`. `layout` is how the book (or the weights file) writes
    them, for display."""

    W_query: NDArray[np.float64]  # (d_in, D)
    W_key: NDArray[np.float64]  # (d_in, D)
    W_value: NDArray[np.float64]  # (d_in, D)
    b_query: NDArray[np.float64] | None = None  # (D,)
    b_key: NDArray[np.float64] | None = None
    b_value: NDArray[np.float64] | None = None
    W_out: NDArray[np.float64] | None = None  # (D, D)
    b_out: NDArray[np.float64] | None = None  # (D,)
    layout: WeightLayout = WeightLayout.XW
    heads: int | None = None  # fixed by the file (a wrapper's state_dict), else None
    file: str | None = None  # the weights file they came from; None when drawn

    @property
    def d_in(self) -> int:
        return int(self.W_query.shape[0])

    @property
    def d_out(self) -> int:
        return int(self.W_query.shape[1])

    @property
    def parameters(self) -> int:
        """How many trainable numbers the module has (exercise 3.3 counts them)."""
        arrays = (
            self.W_query,
            self.W_key,
            self.W_value,
            self.b_query,
            self.b_key,
            self.b_value,
            self.W_out,
            self.b_out,
        )
        return sum(int(a.size) for a in arrays if a is not None)


def check_params(params: AttentionParams, from_file: bool = False) -> None:
    """Refuse settings no attention module can have, with the fix. With weights
    `from_file`, the file fixes d_out (and params.d_out means nothing), so the head
    count is checked against the file instead (attention.prepare does that)."""
    if not from_file:
        if params.d_out < 1:
            raise AttnError.usage(
                f"{setting('d_out', number_text(params.d_out))} is too small: the projections "
                "need d_out ≥ 1 dimensions (the book uses 2)"
            )
        if params.heads > 1 and not params.wrapper and params.d_out % params.heads:
            heads = number_text(params.heads)
            suggestion = max(1, params.d_out // params.heads)
            raise AttnError.usage(
                f"{setting('d_out', number_text(params.d_out))} does not split into "
                f"{setting('heads', heads)}: MultiHeadAttention gives each head d_out / heads "
                f"dimensions; pick a d_out that {heads} divides (e.g. "
                f"{setting('d_out', number_text(params.heads * suggestion))}), or "
                f"{setting('wrapper')} for heads of d_out each"
            )
    if params.heads < 1:
        raise AttnError.usage(
            f"{setting('heads', number_text(params.heads))} is too small: attention needs a "
            f"head; give {setting('heads', 1)} or more"
        )
    if not 0.0 <= params.dropout <= 1.0:
        raise AttnError.usage(
            f"{setting('dropout', params.dropout)} is not a probability; give a value from 0 to 1"
        )
    if params.qkv_bias and params.init is not Init.LINEAR:
        raise AttnError.usage(
            f"{setting('qkv_bias')} needs {setting('init', 'linear')}: the torch.rand weights "
            "of section 3.4.1 have no bias, nn.Linear's have"
        )
    if params.batch < 1:
        raise AttnError.usage(
            f"{setting('batch', number_text(params.batch))} is too small: a batch holds at "
            "least one copy of the input (the book stacks two)"
        )
    check_seed(params.seed)
    if params.dropout_seed is not None:
        check_seed(params.dropout_seed, "dropout_seed")


def draw_projections(d_in: int, params: AttentionParams) -> tuple[Projections, TorchGenerator]:
    """W_query, W_key, W_value (and out_proj) drawn from one seeded stream in the order
    the book's modules draw them; returns the stream too, for the dropout draws that
    follow in a forward pass."""
    gen = TorchGenerator(params.seed)
    linear = params.init is Init.LINEAR
    groups = params.heads if params.wrapper else 1  # modules drawn one after another
    width = params.d_out  # each module's d_out: a wrapper's heads have d_out each
    drawn: list[tuple[NDArray[np.float64], NDArray[np.float64] | None]] = []
    for _ in range(groups):
        for _ in ("W_query", "W_key", "W_value"):
            if linear:
                weight, bias = gen.linear(d_in, width, params.qkv_bias)  # (width, d_in)
                drawn.append((weight.T.astype(np.float64), _f64(bias)))  # -> (d_in, width)
            else:
                drawn.append((gen.rand(d_in, width).astype(np.float64), None))  # (d_in, width)
    # drawn[g * 3 + k]: module g's query (k=0), key (1), value (2); heads side by side
    W_query, W_key, W_value = (
        np.concatenate([drawn[g * 3 + k][0] for g in range(groups)], axis=1) for k in range(3)
    )  # each (d_in, groups * width)
    b_query, b_key, b_value = (
        np.concatenate([_required(drawn[g * 3 + k][1]) for g in range(groups)])
        if params.qkv_bias
        else None
        for k in range(3)
    )
    W_out = b_out = None
    if params.heads > 1 and not params.wrapper:
        weight, bias = gen.linear(params.d_out, params.d_out, True)  # out_proj, (D, D)
        W_out, b_out = weight.T.astype(np.float64), _f64(bias)
    projections = Projections(
        W_query,
        W_key,
        W_value,
        b_query,
        b_key,
        b_value,
        W_out,
        b_out,
        layout=WeightLayout.LINEAR if linear else WeightLayout.XW,
    )
    return projections, gen


def _f64(array: NDArray[np.float32] | None) -> NDArray[np.float64] | None:
    return None if array is None else array.astype(np.float64)


def _required(array: NDArray[np.float64] | None) -> NDArray[np.float64]:
    assert array is not None  # drawn whenever qkv_bias is set
    return array

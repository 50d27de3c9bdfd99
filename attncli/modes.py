"""The attention modes of the book: projections + core math -> AttentionResult.

- plain (3.3): the inputs are queries, keys and values; no scaling.
- trainable (3.4): queries = X @ W_query, keys = X @ W_key, values = X @ W_value,
  scores scaled by 1/sqrt(d_k) with d_k = d_out.
- causal (3.5): trainable, with every key after the query masked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import core
from .errors import AttnError
from .loading import Embeddings
from .rng import TorchGenerator, check_seed


class Mode(str, enum.Enum):
    PLAIN = "plain"
    TRAINABLE = "trainable"
    CAUSAL = "causal"


class Init(str, enum.Enum):
    """How W_query, W_key, W_value are drawn from the seed."""

    RAND = "rand"  # three torch.rand(d_in, d_out), applied as X @ W (book 3.4.1)


@dataclass(frozen=True)
class AttentionParams:
    """Every setting that produces the numbers. Defaults follow the book."""

    mode: Mode = Mode.PLAIN
    d_out: int = 2
    seed: int = 123
    init: Init = Init.RAND

    def __post_init__(self) -> None:
        # Accept the plain strings a library user types: AttentionParams(mode="causal").
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "init", Init(self.init))

    @property
    def projected(self) -> bool:
        """Whether W_query, W_key, W_value exist (every mode but plain)."""
        return self.mode is not Mode.PLAIN


@dataclass(frozen=True)
class Projections:
    """The trainable weight matrices, each (d_in, d_out), applied as X @ W."""

    W_query: NDArray[np.float64]
    W_key: NDArray[np.float64]
    W_value: NDArray[np.float64]


@dataclass(frozen=True)
class AttentionResult:
    """Every intermediate of one attention pass, for the query rows asked for.

    `rows` are the positions of the queries computed: every token, or the
    `query_index`. `queries`, `attn_scores`, `attn_weights` and `context_vecs` have one
    row per entry of `rows`; `keys` and `values` one per token. Masked scores are -inf.
    """

    embeddings: Embeddings
    params: AttentionParams
    query_index: int | None  # the `--query` row, or None when every token was computed
    scale: float  # scores are multiplied by this before the softmax
    weights: Projections | None  # None in plain mode
    queries: NDArray[np.float64]  # (n, d_k)
    keys: NDArray[np.float64]  # (T, d_k)
    values: NDArray[np.float64]  # (T, d_v)
    attn_scores: NDArray[np.float64]  # (n, T)
    attn_weights: NDArray[np.float64]  # (n, T)
    context_vecs: NDArray[np.float64]  # (n, d_v)

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.embeddings.tokens

    @property
    def rows(self) -> NDArray[np.intp]:
        """The positions of the query rows computed."""
        return query_rows(len(self.tokens), self.query_index)  # (n,)


def query_rows(n_tokens: int, query: int | None) -> NDArray[np.intp]:
    return np.arange(n_tokens) if query is None else np.array([query])


def draw_projections(d_in: int, params: AttentionParams) -> Projections:
    """W_query, W_key, W_value drawn in that order from one seeded stream, exactly as
    `torch.manual_seed(seed)` followed by three `torch.rand(d_in, d_out)`."""
    gen = TorchGenerator(params.seed)
    W_query, W_key, W_value = (
        gen.rand(d_in, params.d_out).astype(np.float64) for _ in range(3)
    )  # each (d_in, d_out)
    return Projections(W_query, W_key, W_value)


def check_params(params: AttentionParams) -> None:
    if params.d_out < 1:
        raise AttnError.usage(
            f"--d-out {params.d_out} is too small: the projections need d_out ≥ 1 "
            "dimensions (the book uses 2)"
        )
    check_seed(params.seed)


def compute(
    embeddings: Embeddings,
    params: AttentionParams | None = None,
    query: int | None = None,
) -> AttentionResult:
    """Run one attention pass over `embeddings`, for every token or just `query`."""
    params = params or AttentionParams()
    check_params(params)
    X = embeddings.matrix  # (T, d_in)
    n_tokens = X.shape[0]
    if query is not None and not 0 <= query < n_tokens:
        raise AttnError.usage(f"query index {query} is out of range 0..{n_tokens - 1}")
    rows = query_rows(n_tokens, query)  # (n,)

    weights = draw_projections(embeddings.d_in, params) if params.projected else None
    # Overflow is possible only for absurd inputs; it is checked below and said plainly.
    with np.errstate(over="ignore", invalid="ignore"):
        if weights is not None:
            queries = X[rows] @ weights.W_query  # (n, d_in) @ (d_in, d_out) -> (n, d_out)
            keys = X @ weights.W_key  # (T, d_in) @ (d_in, d_out) -> (T, d_out)
            values = X @ weights.W_value  # (T, d_in) @ (d_in, d_out) -> (T, d_out)
            scale = float(params.d_out) ** -0.5  # 1/sqrt(d_k), d_k = keys.shape[-1]
        else:
            queries, keys, values = X[rows], X, X  # (n, d_in), (T, d_in), (T, d_in)
            scale = 1.0  # section 3.3 does not scale

        attn_scores = core.attention_scores(queries, keys)  # (n, T)
        _check_finite(attn_scores, "attention scores", embeddings)
        if params.mode is Mode.CAUSAL:
            attn_scores = core.apply_mask(attn_scores, core.causal_mask(rows, n_tokens))
        attn_weights = core.attention_weights(attn_scores, scale)  # (n, T)
        context_vecs = core.context_vectors(attn_weights, values)  # (n, d_v)
        _check_finite(context_vecs, "context vectors", embeddings)
    return AttentionResult(
        embeddings=embeddings,
        params=params,
        query_index=query,
        scale=scale,
        weights=weights,
        queries=queries,
        keys=keys,
        values=values,
        attn_scores=attn_scores,
        attn_weights=attn_weights,
        context_vecs=context_vecs,
    )


def _check_finite(matrix: NDArray[np.float64], what: str, embeddings: Embeddings) -> None:
    if not np.isfinite(matrix).all():
        largest = float(np.max(np.abs(embeddings.matrix)))
        raise AttnError(
            f"{embeddings.source}: the {what} overflow float64 (inputs as large as "
            f"{largest:.3g} make numbers beyond 1.8e308); rescale the embeddings"
        )

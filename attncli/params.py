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
import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

# Mode, Init and DType are defined without numpy (choices.py), and are params' too.
from .choices import DType as DType
from .choices import Init as Init
from .choices import Mode as Mode
from .errors import AttnError, number_text, setting
from .masks import Mask
from .rng import TorchGenerator, check_seed
from .rope import Rope


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
    # Grouped-query attention (the book's ch04/04_gqa GroupedQueryAttention): this many
    # key/value heads, each shared by heads / kv_groups consecutive query heads; None:
    # one per query head.
    kv_groups: int | None = None
    # Sliding-window attention (ch04/06_swa), causal: query i sees keys i - W < j <= i.
    window: int | None = None
    # The factor on the scores; None: 1/sqrt(head_dim) (1 in plain mode).
    scale: float | None = None
    # Multi-head latent attention (ch04/05_mla MultiHeadLatentAttention): keys and values
    # re-projected from a latent c_kv of this many dimensions; None: no latent.
    latent_dim: int | None = None
    # With fewer queries than keys (cross-attention), where a causal mask puts query 0:
    # beside the last key of its block ("bottom-right": query i sees keys j <= i + T_k -
    # T_q, as a KV cache needs) or beside key 0 ("top-left": torch's is_causal).
    causal_align: str = "bottom-right"
    # Rotary position embeddings on each head's queries and keys (rope.py), or None.
    rope: Rope | None = None
    # Where positions start: P after a KV cache of P tokens (RoPE's angles, ALiBi's distances).
    position_offset: int = 0
    # Score modifiers (modifiers.py): Gemma 2's soft-cap C, ALiBi's linear biases,
    # gpt-oss's sink logit for every head.
    softcap: float | None = None
    alibi: bool = False
    sink_logits: tuple[float, ...] | None = None  # one for every head, or one per head
    # Qwen3's QK-norm: RMSNorm (eps 1e-6, unit weight) on each head's queries and keys,
    # before RoPE.
    qk_norm: bool = False
    # The sigmoid output gate of the book's GatedMultiHeadAttention (ch04/08_deltanet):
    # the heads' context vectors times sigmoid(X @ W_gate), before out_proj.
    gate: bool = False

    def __post_init__(self) -> None:
        # Accept the plain strings a library user types: AttentionParams(mode="causal").
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "init", Init(self.init))
        object.__setattr__(self, "dtype", DType(self.dtype))

    @property
    def projected(self) -> bool:
        """Whether W_query, W_key, W_value exist (every mode but plain)."""
        return self.mode is not Mode.PLAIN

    def mask_for(self, n_queries: int, n_keys: int) -> Mask:
        """The keys each of n_queries queries may not see among n_keys keys: the one
        place a mask is made from settings (a file's array joins it: Mask.with_file)."""
        offset = n_keys - n_queries if self.causal_align == "bottom-right" else 0
        causal = self.mode is Mode.CAUSAL
        return Mask.for_mode(causal, self.window, offset, cross=n_queries != n_keys)

    @property
    def out_proj(self) -> bool:
        """Whether the module ends with out_proj: MultiHeadAttention (heads > 1) and the
        later modules always (grouped-query and latent attention, even with one head)."""
        return self.grouped or self.latent or self.gate or (self.heads > 1 and not self.wrapper)

    @property
    def latent(self) -> bool:
        """Whether the module is the book's MultiHeadLatentAttention (latent_dim given)."""
        return self.latent_dim is not None

    @property
    def grouped(self) -> bool:
        """Whether the module is the book's GroupedQueryAttention (kv_groups given)."""
        return self.kv_groups is not None


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
    # Multi-head latent attention: the latent c_kv = X @ W_DKV + b_DKV, (T, L); then
    # W_key and W_value (W_UK, W_UV; (L, D)) act on it instead of on X.
    W_DKV: NDArray[np.float64] | None = None  # (d_in, L)
    b_DKV: NDArray[np.float64] | None = None  # (L,)
    # GatedMultiHeadAttention's gate: sigmoid(X @ W_gate + b_gate) times the heads' context
    W_gate: NDArray[np.float64] | None = None  # (d_in, D)
    b_gate: NDArray[np.float64] | None = None  # (D,)
    # From a weights file: Qwen3's q_norm and k_norm weights (head_dim,), gpt-oss's sink
    # logits (heads,); drawn modules have none (unit norms, sinks from the settings)
    q_norm: NDArray[np.float64] | None = None
    k_norm: NDArray[np.float64] | None = None
    sinks: NDArray[np.float64] | None = None
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
            self.W_DKV,
            self.b_DKV,
            self.W_gate,
            self.b_gate,
            self.q_norm,
            self.k_norm,
            self.sinks,
        )
        return sum(int(a.size) for a in arrays if a is not None)

    @property
    def latent_dim(self) -> int | None:
        """The latent's width L (multi-head latent attention), or None."""
        return None if self.W_DKV is None else int(self.W_DKV.shape[1])


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
    _check_variants(params)
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


def _check_variants(params: AttentionParams) -> None:
    """The settings of the book's later attention modules: grouped-query heads, a
    sliding window, a scale."""
    groups = params.kv_groups
    if groups is not None:
        heads = number_text(params.heads)
        if not params.projected:
            raise AttnError.usage(
                f"{setting('kv_groups', number_text(groups))} needs key and value projections; "
                f"add {setting('mode', 'causal')} (or trainable)"
            )
        if params.wrapper:
            raise AttnError.usage(
                f"{setting('kv_groups')} and {setting('wrapper')} are different modules: "
                "GroupedQueryAttention splits one projection into heads; drop one"
            )
        if groups < 1 or groups > params.heads or params.heads % groups:
            fits = ", ".join(str(g) for g in range(1, params.heads + 1) if params.heads % g == 0)
            raise AttnError.usage(
                f"{setting('kv_groups', number_text(groups))} does not divide "
                f"{setting('heads', heads)}: each key/value head serves heads / kv_groups query "
                f"heads; give one of {fits} (1 is multi-query attention)"
            )
    if params.gate:
        others = [
            setting(name)
            for name, given in (
                ("wrapper", params.wrapper),
                ("kv_groups", params.kv_groups is not None),
                ("latent_dim", params.latent_dim is not None),
            )
            if given
        ]
        if not params.projected or others:
            raise AttnError.usage(
                f"{setting('gate')} is the book's GatedMultiHeadAttention, chapter 3's "
                "MultiHeadAttention with a sigmoid gate: "
                + (
                    f"add {setting('mode', 'causal')} (or trainable)"
                    if not params.projected
                    else f"another module than {', '.join(others)}; drop one"
                )
            )
    latent = params.latent_dim
    if latent is not None:
        if not params.projected:
            raise AttnError.usage(
                f"{setting('latent_dim', number_text(latent))} needs key and value projections; "
                f"add {setting('mode', 'causal')} (or trainable)"
            )
        if params.wrapper or groups is not None:
            other = setting("wrapper") if params.wrapper else setting("kv_groups")
            raise AttnError.usage(
                f"{setting('latent_dim')} and {other} are different modules: "
                "MultiHeadLatentAttention re-projects every head's keys and values from one "
                "latent; drop one"
            )
        if latent < 1:
            raise AttnError.usage(
                f"{setting('latent_dim', number_text(latent))} is too small: the latent needs "
                f"a dimension; give {setting('latent_dim', 1)} or more (the book's default "
                "is max(16, d_out // 8))"
            )
    if params.window is not None:
        if params.mode is not Mode.CAUSAL:
            raise AttnError.usage(
                f"{setting('window', number_text(params.window))} is a causal sliding window "
                f"(query i sees keys i-W < j ≤ i); add {setting('mode', 'causal')}"
            )
        if params.window < 1:
            raise AttnError.usage(
                f"{setting('window', number_text(params.window))} is too small: a window holds "
                f"at least the query's own key; give {setting('window', 1)} or more"
            )
    _check_rope(params)
    _check_modifiers(params)
    if params.causal_align not in ("bottom-right", "top-left"):
        raise AttnError.usage(
            f"{setting('causal_align', params.causal_align)} is not an alignment; give "
            "bottom-right (query i sees keys j ≤ i + T_k - T_q) or top-left (j ≤ i)"
        )
    if params.scale is not None and not (math.isfinite(params.scale) and params.scale > 0):
        raise AttnError.usage(
            f"{setting('scale', params.scale)} is not a scale; give a positive number (the "
            "default is 1/√head_dim)"
        )


def _check_modifiers(params: AttentionParams) -> None:
    if params.softcap is not None and not (math.isfinite(params.softcap) and params.softcap > 0):
        raise AttnError.usage(
            f"{setting('softcap', params.softcap)} is not a cap; give a positive number C "
            "(scores become C·tanh(scores / C); Gemma 2 uses 50)"
        )
    if params.alibi and params.mode is not Mode.CAUSAL:
        raise AttnError.usage(
            f"{setting('alibi')} biases each score by -slope·(i - j), the distance back to "
            f"an earlier key: it is for causal attention; add {setting('mode', 'causal')}"
        )
    if params.alibi and params.rope is not None:
        raise AttnError.usage(
            f"{setting('alibi')} and {setting('rope')} are two ways to give attention "
            "positions, and no model uses both; drop one"
        )
    sinks = params.sink_logits
    if sinks is not None and not all(math.isfinite(x) or x == -math.inf for x in sinks):
        raise AttnError.usage(
            f"{setting('sink_logits', ','.join(f'{x:g}' for x in sinks))} holds a value "
            "that is not a logit; give finite numbers (or -inf: no sink)"
        )


def _check_rope(params: AttentionParams) -> None:
    rope = params.rope
    if params.position_offset < 0:
        raise AttnError.usage(
            f"{setting('position_offset', params.position_offset)} is negative: positions "
            "start at 0 or later (P after a KV cache of P tokens)"
        )
    if params.position_offset > 2**53:
        raise AttnError.usage(
            f"{setting('position_offset', params.position_offset)} is too large: positions "
            "beyond 2^53 are not exact in floating point (no model has a context that long)"
        )
    if rope is None:
        if params.position_offset:
            raise AttnError.usage(
                f"{setting('position_offset')} has no effect without {setting('rope')}: "
                "chapter 3's attention knows nothing of position; add --rope or drop it"
            )
        return
    check_rope(rope)


def check_rope(rope: Rope) -> None:
    """RoPE's own settings: a layout, a base, a fraction rotated, a Llama 3 scaling that
    means something (attention's --rope and `attn rope` alike)."""
    if rope.layout not in ("split", "interleaved"):
        raise AttnError.usage(
            f"{setting('rope_layout', rope.layout)} is not a layout; give split (halves, "
            "Hugging Face's and the book's) or interleaved (pairs, Meta's original)"
        )
    if not (math.isfinite(rope.theta) and rope.theta > 1):
        raise AttnError.usage(
            f"{setting('rope_theta', rope.theta)} is not a RoPE base; give a number above 1 "
            "(10000 by default; Llama 3 uses 500000)"
        )
    if not 0 < rope.partial <= 1:
        raise AttnError.usage(
            f"{setting('rope_partial', rope.partial)} is not a fraction of the head's "
            "dimensions; give 0 < F ≤ 1 (1 rotates them all)"
        )
    scaling = rope.scaling
    if scaling is not None and not (
        all(_finite(x) for x in scaling)
        and scaling.factor > 0
        and 0 < scaling.low_freq_factor < scaling.high_freq_factor
        and scaling.original_context > 0
    ):
        raise AttnError.usage(
            "the Llama 3 scaling needs finite numbers: factor > 0, 0 < low-freq-factor < "
            "high-freq-factor and an original context above 0 (Llama 3.1: 8, 1, 4, 8192)"
        )


def _finite(x: float) -> bool:
    """A number a float holds (an integer too large for one is not)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def draw_projections(
    d_in: int, params: AttentionParams, order: tuple[str, ...] | None = None
) -> tuple[Projections, TorchGenerator]:
    """W_query, W_key, W_value (and out_proj, or a latent's W_DKV) drawn from one seeded
    stream in the order the book's modules draw them (`order`: in this order of their
    names instead, as a reader's module might; see draw_order); returns the stream too,
    for the dropout draws that follow in a forward pass."""
    gen = TorchGenerator(params.seed)
    linear = params.init is Init.LINEAR
    drawn: dict[str, list[tuple[NDArray[np.float64], NDArray[np.float64] | None]]] = {
        name: [] for name in ("W_query", "W_key", "W_value", "W_DKV", "W_gate")
    }
    for name, fan_in, width in draw_order(d_in, params, order):
        if linear:
            weight, bias = gen.linear(fan_in, width, params.qkv_bias)  # (width, fan_in)
            drawn[name].append((weight.T.astype(np.float64), _f64(bias)))  # -> (fan_in, width)
        else:
            drawn[name].append((gen.rand(fan_in, width).astype(np.float64), None))  # (in, width)
    # a wrapper's modules side by side: (d_in, heads * d_out)
    W_query, W_key, W_value = (
        np.concatenate([weight for weight, _ in drawn[name]], axis=1)
        for name in ("W_query", "W_key", "W_value")
    )
    b_query, b_key, b_value = (
        np.concatenate([_required(bias) for _, bias in drawn[name]]) if params.qkv_bias else None
        for name in ("W_query", "W_key", "W_value")
    )
    W_DKV, b_DKV = drawn["W_DKV"][0] if params.latent else (None, None)
    W_gate, b_gate = drawn["W_gate"][0] if params.gate else (None, None)
    W_out = b_out = None
    if params.out_proj:
        # MultiHeadAttention's and MultiHeadLatentAttention's out_proj have a bias,
        # GroupedQueryAttention's not
        weight, bias = gen.linear(params.d_out, params.d_out, not params.grouped)  # (D, D)
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
        W_DKV=W_DKV,
        b_DKV=b_DKV,
        W_gate=W_gate,
        b_gate=b_gate,
    )
    return projections, gen


def draw_order(
    d_in: int, params: AttentionParams, order: tuple[str, ...] | None = None
) -> list[tuple[str, int, int]]:
    """The projections (name, fan_in, width) in the order the module constructs them
    (W_key and W_value of a latent module being its W_UK and W_UV); `order`, the names
    in another order, reorders each module's draws (a wrapper's modules one by one).

    >>> draw_order(3, AttentionParams(d_out=4, heads=2, wrapper=True))[:4]
    [('W_query', 3, 4), ('W_key', 3, 4), ('W_value', 3, 4), ('W_query', 3, 4)]
    >>> draw_order(3, AttentionParams(mode="causal", d_out=4, heads=4, kv_groups=2))
    [('W_key', 3, 2), ('W_value', 3, 2), ('W_query', 3, 4)]
    >>> draw_order(3, AttentionParams(mode="causal", d_out=4, heads=2, latent_dim=5))
    [('W_query', 3, 4), ('W_DKV', 3, 5), ('W_key', 5, 4), ('W_value', 5, 4)]
    >>> draw_order(3, AttentionParams(d_out=4, kv_groups=1), ("W_query", "W_key", "W_value"))
    [('W_query', 3, 4), ('W_key', 3, 4), ('W_value', 3, 4)]
    """
    drawn = _module_order(d_in, params)
    if order is None:
        return drawn
    per_module = len(drawn) // (params.heads if params.wrapper else 1)
    modules = [drawn[i : i + per_module] for i in range(0, len(drawn), per_module)]

    def rank(entry: tuple[str, int, int]) -> int:  # names `order` leaves out go last
        name = entry[0]
        return order.index(name) if name in order else per_module + drawn.index(entry)

    return [entry for module in modules for entry in sorted(module, key=rank)]


def _module_order(d_in: int, params: AttentionParams) -> list[tuple[str, int, int]]:
    D = params.d_out
    if params.grouped:  # GroupedQueryAttention: the narrower key and value first
        kv_width = _required(params.kv_groups) * (D // params.heads)
        return [("W_key", d_in, kv_width), ("W_value", d_in, kv_width), ("W_query", d_in, D)]
    if params.gate:  # GatedMultiHeadAttention: W_query, W_gate, W_key, W_value
        return [(name, d_in, D) for name in ("W_query", "W_gate", "W_key", "W_value")]
    if params.latent:  # MultiHeadLatentAttention: W_query, W_DKV, W_UK, W_UV
        L = _required(params.latent_dim)
        return [("W_query", d_in, D), ("W_DKV", d_in, L), ("W_key", L, D), ("W_value", L, D)]
    modules = params.heads if params.wrapper else 1  # a wrapper's modules one after another
    names = ("W_query", "W_key", "W_value")
    return [(name, d_in, D) for _ in range(modules) for name in names]


def _f64(array: NDArray[np.float32] | None) -> NDArray[np.float64] | None:
    return None if array is None else array.astype(np.float64)


T = TypeVar("T")


def _required(value: T | None) -> T:
    assert value is not None  # drawn whenever qkv_bias is set; kv_groups when grouped
    return value

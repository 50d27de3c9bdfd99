"""The KV cache of a model configuration: how many bytes the keys and values a model keeps
while it generates take, for multi-head (MHA), grouped-query (GQA) and multi-head latent
(MLA) attention, each also with sliding-window (SWA) layers.

The formulas, and the rounding of what is printed, are those of the book's memory
estimators (rasbt/LLMs-from-scratch, ch04/04_gqa/memory_estimator_gqa.py,
ch04/05_mla/memory_estimator_mla.py, ch04/06_swa/memory_estimator_swa.py):

    head_dim  = ⌈emb_dim / heads⌉
    MHA, GQA: bytes = batch × tokens × head_dim × kv_heads × 2 (K and V) × bytes/element
              per layer; MHA has kv_heads = heads
    MLA:      bytes = batch × tokens × latent_dim × bytes/element per layer
    SWA:      of every swa:full block of layers, the first `swa` cache only the last
              min(window, context_length) tokens, the other `full` the whole context
    GB        = bytes / 10⁹, printed with two decimals ("17.18 GB")

`kv_groups` is the NUMBER of key/value heads, as `num_kv_groups` of the book's
GroupedQueryAttention class. The scripts' --n_kv_groups is the group SIZE instead (query
heads per key/value head: n_kv_heads = n_heads // n_kv_groups), so their
`--n_heads 32 --n_kv_groups 4` is `heads=32, kv_groups=8` here.

>>> report = estimate(
...     KVConfig(emb_dim=4096, heads=32, layers=32, context_length=32768, dtype="bf16",
...              kv_groups=8, window=1024, swa_ratio="5:1")
... )
>>> [(v.name, gb_text(v.bytes)) for v in report.variants]
[('MHA', '17.18 GB'), ('GQA', '4.29 GB'), ('MHA+SWA', '3.14 GB'), ('GQA+SWA', '0.78 GB')]
>>> report.head_dim, report.swa_layers, report.full_layers
(128, 27, 5)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import NamedTuple

from .errors import AttnError, number_text, setting


class KVDType(str, enum.Enum):
    """The element type of the cache: the scripts' five, and torch's names for three."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    FLOAT32 = "float32"  # torch.float32: fp32
    BFLOAT16 = "bfloat16"  # torch.bfloat16: bf16
    FLOAT16 = "float16"  # torch.float16: fp16

    @property
    def canonical(self) -> KVDType:
        """The scripts' name for it: fp32 for float32, and so on."""
        return _ALIASES.get(self, self)

    @property
    def bytes(self) -> int:
        """Bytes per element, as the scripts' DTYPE_BYTES."""
        return _BYTES[self.canonical]


_ALIASES = {
    KVDType.FLOAT32: KVDType.FP32,
    KVDType.BFLOAT16: KVDType.BF16,
    KVDType.FLOAT16: KVDType.FP16,
}
_BYTES = {KVDType.FP32: 4, KVDType.BF16: 2, KVDType.FP16: 2, KVDType.FP8: 1, KVDType.INT8: 1}

# The largest size a setting may have: a tensor dimension torch can hold (int64). The
# products of such sizes stay far inside what a float can divide (GB).
LARGEST = 2**63 - 1


@dataclass(frozen=True)
class KVConfig:
    """A model configuration whose KV cache is estimated. The defaults are the book's
    GPT_CONFIG_124M (emb_dim, heads, layers: chapter 4) at the GQA script's defaults
    (context_length 1024, batch 1, fp16). `kv_groups` (key/value heads), `latent_dim`
    and `window` add the GQA, MLA and SWA variants; `swa_ratio` "A:B" puts A
    sliding-window layers before every B full ones ("1:0": all sliding-window)."""

    emb_dim: int = 768
    heads: int = 12
    layers: int = 12
    context_length: int = 1024
    batch: int = 1
    dtype: KVDType = KVDType.FP16
    kv_groups: int | None = None
    latent_dim: int | None = None
    window: int | None = None
    swa_ratio: str = "1:0"

    def __post_init__(self) -> None:
        # Accept the strings a library user types, KVConfig(dtype="bf16"), and keep the
        # scripts' name of a torch alias (float16 -> fp16).
        try:
            dtype = KVDType(self.dtype)
        except ValueError:
            choices = ", ".join(d.value for d in KVDType)
            raise AttnError.usage(
                f"{setting('dtype', repr(self.dtype))} is not a KV-cache element type; "
                f"give one of {choices}"
            ) from None
        object.__setattr__(self, "dtype", dtype.canonical)


class Variant(NamedTuple):
    """One kind of attention's cache over all layers."""

    name: str  # MHA, GQA, MLA, MHA+SWA, GQA+SWA or MLA+SWA
    attention: str  # MHA, GQA or MLA
    sliding_window: bool  # the SWA layers cache only the window
    kv_heads: int | None  # key/value heads (None: MLA caches one latent vector)
    bytes_per_token: int  # one token of one sequence in one layer: K and V, or the latent
    bytes: int  # the whole cache: every layer, every sequence of the batch


class KVMemory(NamedTuple):
    """The estimate: the configuration, what follows from it, and each variant."""

    config: KVConfig
    head_dim: int
    bytes_per_element: int
    swa_layers: int  # layers with a sliding window (0 without one)
    full_layers: int
    effective_window: int | None  # min(window, context_length)
    swa_ratio: tuple[int, int] | None  # (sliding-window, full) layers per block, read
    variants: tuple[Variant, ...]

    @property
    def layer_ratio(self) -> str | None:
        """The layer ratio as "A:B" (whatever spaces it was given with)."""
        return None if self.swa_ratio is None else f"{self.swa_ratio[0]}:{self.swa_ratio[1]}"

    @property
    def mha(self) -> Variant:
        return self.variants[0]

    def ratio(self, variant: Variant) -> float:
        """How many times the MHA cache is larger: the scripts' "Ratio (MHA / GQA)"."""
        return self.mha.bytes / variant.bytes

    def savings(self, variant: Variant) -> float:
        """The fraction saved against MHA: the scripts' "Savings (GQA vs MHA)"."""
        return 1 - (variant.bytes / self.mha.bytes)


# ---------------------------------------------------------------- the scripts' formulas


def head_dim(emb_dim: int, heads: int) -> int:
    """⌈emb_dim / heads⌉, as the scripts' math.ceil(emb_dim / n_heads) (exactly, also
    where a float would round).

    >>> head_dim(4096, 32), head_dim(2048, 24)
    (128, 86)
    """
    return -(-emb_dim // heads)


def kv_bytes_per_layer(
    batch: int, tokens: int, head_dim: int, kv_heads: int, bytes_per_element: int
) -> int:
    """One layer's keys and values: batch × tokens × head_dim × kv_heads × 2 × bytes."""
    return batch * tokens * head_dim * kv_heads * 2 * bytes_per_element


def mla_bytes_per_layer(batch: int, tokens: int, latent_dim: int, bytes_per_element: int) -> int:
    """One layer's compressed latent: batch × tokens × latent_dim × bytes."""
    return batch * tokens * latent_dim * bytes_per_element


def parse_ratio(text: str) -> tuple[int, int]:
    """ "A:B" as (A, B): A sliding-window layers for every B full ones.

    >>> parse_ratio("5:1"), parse_ratio("1:0")
    ((5, 1), (1, 0))
    """
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise AttnError.usage(
            f"{setting('swa_ratio', repr(text))} is not A:B; give the sliding-window and "
            "full layers of each block as two whole numbers, e.g. 5:1 (Gemma 3), 1:1 "
            "(Gemma 2) or 1:0 (every layer sliding-window)"
        )
    swa, full = int(parts[0]), int(parts[1])
    if swa + full == 0:
        raise AttnError.usage(
            f"{setting('swa_ratio', repr(text))} has no layers in a block; give A:B with "
            "A + B ≥ 1, e.g. 5:1"
        )
    return swa, full


def distribute_layers(layers: int, swa: int, full: int) -> tuple[int, int]:
    """(sliding-window layers, full layers) of `layers` in blocks of `swa` then `full`,
    a last partial block filled with sliding-window layers first.

    >>> distribute_layers(32, 5, 1), distribute_layers(26, 3, 2)
    ((27, 5), (16, 10))
    """
    block = swa + full
    blocks, rest = divmod(layers, block)
    return blocks * swa + min(swa, rest), blocks * full + max(0, rest - swa)


def gb(n_bytes: int) -> float:
    """Bytes in GB (10⁹ bytes), as the scripts divide."""
    return n_bytes / (1000**3)


def gb_text(n_bytes: int) -> str:
    """Bytes as the scripts print them.

    >>> gb_text(17179869184), gb_text(4_000_000)
    ('17.18 GB', '0.00 GB')
    """
    return f"{gb(n_bytes):,.2f} GB"


def ratio_text(ratio: float) -> str:
    """A ratio as the scripts print it.

    >>> ratio_text(4.0), ratio_text(1234.5)
    ('4.00x', '1,234.50x')
    """
    return f"{ratio:,.2f}x"


def percent_text(fraction: float) -> str:
    """A fraction as the scripts print it, in per cent.

    >>> percent_text(0.75)
    '75.00%'
    """
    return f"{fraction * 100:,.2f}%"


# ---------------------------------------------------------------- checks and the estimate


def check_config(config: KVConfig) -> tuple[int, int]:
    """Refuse a configuration no model has, with the fix; the (swa, full) ratio."""
    sizes = {
        "emb_dim": config.emb_dim,
        "heads": config.heads,
        "layers": config.layers,
        "context_length": config.context_length,
        "batch": config.batch,
        "kv_groups": config.kv_groups,
        "latent_dim": config.latent_dim,
        "window": config.window,
    }
    for name, value in sizes.items():
        if value is None:
            continue
        if value < 1:
            raise AttnError.usage(
                f"{setting(name, number_text(value))} is too small: {_WHAT[name]}; give "
                f"{setting(name, 1)} or more"
            )
        if value > LARGEST:
            raise AttnError.usage(
                f"{setting(name, number_text(value))} is too large: sizes go up to "
                f"2**63 - 1 = {LARGEST} (torch's int64)"
            )
    if config.kv_groups is not None and config.heads % config.kv_groups:
        heads, groups = number_text(config.heads), number_text(config.kv_groups)
        raise AttnError.usage(
            f"{setting('kv_groups', groups)} does not divide {setting('heads', heads)}: "
            f"{setting('kv_groups')} counts the key/value heads, each shared by the same "
            f"number of query heads; give one of {_divisors_text(config.heads)} (the book's "
            f"memory_estimator scripts' --n_kv_groups is that group size instead: their "
            f"--n_kv_groups G is {setting('kv_groups', heads + '/G')} here)"
        )
    return parse_ratio(config.swa_ratio)


_WHAT = {
    "emb_dim": "a token's embedding has at least one dimension",
    "heads": "attention needs a head",
    "layers": "a model has at least one layer",
    "context_length": "the cache holds at least one token",
    "batch": "a batch holds at least one sequence",
    "kv_groups": "GQA keeps at least one key/value head",
    "latent_dim": "MLA's latent vector has at least one dimension",
    "window": "a sliding window holds at least the query's own token",
}


def _divisors_text(n: int) -> str:
    """The divisors of n, the middle ones elided when there are many.

    >>> _divisors_text(32), _divisors_text(720720)
    ('1, 2, 4, 8, 16, 32', '1, 2, 3, 4, 5, 6, …, 720720')
    """
    small = [d for d in range(1, math.isqrt(min(n, 10**10)) + 1) if n % d == 0]
    divisors = sorted(set(small) | {n // d for d in small})
    if len(divisors) <= 8:
        return ", ".join(map(str, divisors))
    return ", ".join(map(str, divisors[:6])) + f", …, {number_text(n)}"


def estimate(config: KVConfig) -> KVMemory:
    """The KV cache of `config`: MHA, then GQA (with kv_groups), MLA (with latent_dim),
    then each of them with sliding-window layers (with window)."""
    swa_share, full_share = check_config(config)
    c = config
    bpe = c.dtype.bytes
    dim = head_dim(c.emb_dim, c.heads)
    kinds: list[tuple[str, int | None, int]] = [  # (attention, kv_heads, bytes per token)
        ("MHA", c.heads, kv_bytes_per_layer(1, 1, dim, c.heads, bpe))
    ]
    if c.kv_groups is not None:
        kinds.append(("GQA", c.kv_groups, kv_bytes_per_layer(1, 1, dim, c.kv_groups, bpe)))
    if c.latent_dim is not None:
        kinds.append(("MLA", None, mla_bytes_per_layer(1, 1, c.latent_dim, bpe)))

    def per_layer(kv_heads: int | None, tokens: int) -> int:
        if kv_heads is None:
            assert c.latent_dim is not None  # MLA
            return mla_bytes_per_layer(c.batch, tokens, c.latent_dim, bpe)
        return kv_bytes_per_layer(c.batch, tokens, dim, kv_heads, bpe)

    variants = [
        Variant(
            name, name, False, kv_heads, per_token, per_layer(kv_heads, c.context_length) * c.layers
        )
        for name, kv_heads, per_token in kinds
    ]
    swa_layers, full_layers, window, ratio = 0, c.layers, None, None
    if c.window is not None:
        ratio = (swa_share, full_share)
        swa_layers, full_layers = distribute_layers(c.layers, swa_share, full_share)
        window = min(c.context_length, c.window)
        variants += [
            Variant(
                f"{name}+SWA",
                name,
                True,
                kv_heads,
                per_token,
                swa_layers * per_layer(kv_heads, window)
                + full_layers * per_layer(kv_heads, c.context_length),
            )
            for name, kv_heads, per_token in kinds
        ]
    return KVMemory(config, dim, bpe, swa_layers, full_layers, window, ratio, tuple(variants))

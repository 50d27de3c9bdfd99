"""attn's command-line options, declared once, and the fast parser for everyday calls.

`FLAGS` is the single declaration of the attention commands' options, `kv_memory_flags()`
of `attn kv-memory`'s and `rope_flags()` of `attn rope`'s, which takes the attention
commands' RoPE flags as they are (`command_flags` gives each command its own):
typer_app.py builds the Typer commands (help, completion, error messages) from them, and
`parse` reads an ordinary call such as
`attn context x.csv -m causal -f json` without importing Typer at all, which is most
of attn's start-up time. Whatever `parse` is not sure about (help, a typo, a bad
value, completion) it leaves to Typer by returning None, so both give the same
results and Typer alone words the errors; a test checks that they agree.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..choices import DType, Init, InputFormat, Mode
from ..render import formats
from ..render.formats import FormatSpec, OutputFormat

# The commands on token embeddings (an optional INPUT), and the one on a model's sizes.
ATTENTION_COMMANDS = (
    "scores",
    "weights",
    "context",
    "queries",
    "keys",
    "values",
    "explain",
    "decode",
)
KV_MEMORY = "kv-memory"
CHECK = "check"  # a reader's numbers (THEIRS) against the right ones: INPUT and flags too
ROPE = "rope"
COMMANDS = (*ATTENTION_COMMANDS, CHECK, KV_MEMORY, ROPE)
# Set by the shell's completion script (click's name for it, from the program's name):
# then Typer reads the words from COMP_WORDS, and the fast parser stays out of it.
COMPLETION_VARIABLE = "_ATTN_COMPLETE"

HELP = {
    "scores": (
        "Attention scores: the dot product of each query with every key "
        "(attn_scores = queries @ keys.T), before scaling; masked scores show as -inf."
    ),
    "weights": (
        "Attention weights: the scores, scaled and (causal) masked, through a row-wise "
        "softmax; each row sums to 1."
    ),
    "context": (
        "Context vectors: each token's weighted sum of the value vectors "
        "(context_vecs = attn_weights @ values)."
    ),
    "queries": "Query vectors: queries = X @ W_query (the inputs themselves in plain mode).",
    "keys": "Key vectors: keys = X @ W_key (the inputs themselves in plain mode).",
    "values": "Value vectors: values = X @ W_value (the inputs themselves in plain mode).",
    "explain": (
        "One query's attention, step by step with the real numbers: the projections, each "
        "dot product, the scaling, the mask, the softmax, dropout and the weighted sum. "
        "Without --query, the book's query: the second token."
    ),
    KV_MEMORY: (
        "The KV cache of a model configuration, in bytes and GB, as the book's memory "
        "estimators (ch04/04_gqa, 05_mla, 06_swa) compute and print it: multi-head (MHA) "
        "always; grouped-query (GQA) with --kv-groups, latent (MLA) with --latent-dim, "
        "each also with sliding-window layers (SWA) with --window. Takes no INPUT. "
        "--kv-groups is the NUMBER of key/value heads, as in the book's "
        "GroupedQueryAttention; the scripts' --n_kv_groups is the group SIZE: their "
        "--n_heads 32 --n_kv_groups 4 is --heads 32 --kv-groups 8."
    ),
    CHECK: (
        "Why don't my numbers match? Compare your numbers (THEIRS) with the right ones for "
        "INPUT and the flags, stage by stage: equal or not, the largest difference and where, "
        "to your numbers' precision (their printed decimals; float32's for float32 numbers). "
        "Where they differ, name each known mistake that reproduces them (softmax over dim 0, "
        "the wrong scaling, a mask off by one, dropout without rescaling, heads split without "
        "transpose, ...) with its fix and the book's section. THEIRS: attn's own JSON output; "
        'a JSON object {"weights": [[...]], "context": [[...]], ...} (or a .npz) of any of '
        "queries, keys, values, scores, weights, context; a bare matrix (JSON, CSV, .npy) with "
        "--stage; or a tensor as torch prints it, pasted (- for stdin). Exit status 0: your "
        "numbers are right; 1: they differ (the report says how); errors exit 1 or 2 with "
        "'attn: error:' on stderr and nothing on stdout."
    ),
    ROPE: (
        "The rotation of rotary position embeddings (RoPE) by itself, for a head_dim and a "
        "run of positions, as the book's compute_rope_params builds it: each pair of "
        "dimensions' frequency inv_freq_k = 1/theta^(2k/d) and wavelength 2*pi/inv_freq_k "
        "(with --rope-scaling llama3, its band: kept, smoothed or divided), and at each "
        "position p the angles p*inv_freq_k, their cos and sin. Takes no INPUT; the same "
        "--rope-* flags as the attention commands' --rope. Computes in float64 (the book "
        "computes inv_freq in float32: --dtype float32)."
    ),
    "decode": (
        "KV-cache decoding, step by step, as the book's ch04/03_kv-cache model runs: the "
        "tokens fed one at a time (--prefill N: the first N at once; --chunk C: C a step). "
        "Each step shows the keys it attends to, its new rows' weights and context vectors, "
        "the cache after it (positions, numbers, bytes) and the largest difference from the "
        "full causal computation. --kv-groups caches G key/value heads, --latent-dim only the "
        "latent c_kv, --window the last W tokens (ch04/04-06). Always causal, as the cached "
        "classes are: --mode causal is implied (other modes are refused); in eval mode, so no "
        "--dropout; no --query (every token is fed)."
    ),
}

EXAMPLES = {
    "scores": (
        "attn scores --query journey",
        "attn scores --mode causal",
        "attn scores my_tokens.csv -f csv -o scores.csv",
    ),
    "weights": (
        "attn weights",
        "attn weights --mode causal",
        "attn weights my_tokens.csv --mode trainable --d-out 4 --seed 42",
    ),
    "context": (
        "attn context",
        "attn context --mode trainable --query journey",
        "attn context -f json | attn context --mode causal -",
    ),
    "queries": ("attn queries --mode trainable --query journey",),
    "keys": ("attn keys --mode trainable",),
    "values": ("attn values --mode trainable",),
    "explain": (
        "attn explain",
        "attn explain --mode causal --query starts",
        "attn explain my_tokens.csv -q 3 --mode trainable --heads 2 -f json",
    ),
    KV_MEMORY: (
        "attn kv-memory",
        "attn kv-memory --emb-dim 4096 --heads 32 --layers 32 --context-length 32768 "
        "--dtype bf16 --kv-groups 8 --window 1024 --swa-ratio 5:1",
        "attn kv-memory --emb-dim 2048 --heads 24 --layers 48 --context-length 8192 "
        "--dtype bf16 --kv-groups 6 --latent-dim 1024 -f json",
    ),
    CHECK: (
        "attn check my_weights.json --stage weights",
        "attn check mine.json -m causal --init linear --heads 2 --d-out 4",
        "attn check - --stage weights -q journey -m trainable   # paste a tensor, then Ctrl-D",
    ),
    ROPE: (
        "attn rope",
        "attn rope --head-dim 64 --positions 12 --rope-theta 500000 --rope-scaling llama3",
        "attn rope --head-dim 16 --rope-layout interleaved --position-offset 100 -f json",
    ),
    "decode": (
        "attn decode --init linear --prefill 4",
        "attn decode --init linear --heads 2 --d-out 4 --window 3 --chunk 2",
        "attn decode my_tokens.csv --d-out 16 --heads 4 --kv-groups 2 --prefill 5 -f json",
    ),
}

Kind = Literal["text", "int", "float", "flag", "switch", "choice"]
INPUT_PANEL = "Input"
ATTENTION_PANEL = "Attention"
MODEL_PANEL = "Model"
OUTPUT_PANEL = "Output"
BEYOND_PANEL = "Beyond chapter 3"
POSITIONS_PANEL = "Positions (RoPE)"


@dataclass(frozen=True)
class Flag:
    """One option: its names, what it takes, its default and its help."""

    name: str  # the parameter name, as execute() receives it
    decls: tuple[str, ...]  # "--d-out", or "--mode", "-m"; a switch: "--color/--no-color"
    kind: Kind
    default: Any
    help: str
    panel: str
    metavar: str | None = None
    choices: type[enum.Enum] | None = None  # for kind "choice"
    show_default: bool = True


def whole(text: str | int) -> int:
    """An integer flag's value (ValueError if it is not one). Typer passes defaults
    through its parser too, already as numbers."""
    if isinstance(text, int):
        return text
    return int(text.strip())


def real(text: str | float) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    return float(text.strip())


INPUT_HELP = (
    "Token embeddings: a .json, .csv, .tsv, .npy or .npz file, or - for stdin. Without it, "
    "attn reads stdin when something is piped in, else uses the book's six tokens."
)
THEIRS_HELP = (
    "Your numbers: attn's JSON output, a JSON object (or .npz) of queries, keys, values, "
    "scores, weights and context, a bare matrix (JSON, CSV, .npy) with --stage, or a tensor "
    "as torch prints it; - for stdin."
)


class Stage(str, enum.Enum):
    """The stage of a bare matrix given to attn check (--stage)."""

    QUERIES = "queries"
    KEYS = "keys"
    VALUES = "values"
    SCORES = "scores"
    WEIGHTS = "weights"
    CONTEXT = "context"


def positionals(command: str) -> tuple[str, ...]:
    """The positional arguments of `command`, in order: INPUT for the attention
    commands, THEIRS and INPUT for attn check, none for attn kv-memory and attn rope."""
    if command == CHECK:
        return ("theirs", "input")
    return ("input",) if command in ATTENTION_COMMANDS else ()


def _format_flag(
    where: Callable[[FormatSpec], bool], descriptions: dict[OutputFormat, str] | None = None
) -> Flag:
    """--format, for a command that writes the formats `where` says yes to (in words of
    its own for some, `descriptions`)."""
    specs = [spec for spec in formats.FORMATS.values() if where(spec)]
    every = len(specs) == len(formats.FORMATS)
    extensions = [extension for spec in specs for extension in spec.extensions]
    described = "; ".join(
        f"{spec.name.value}: {(descriptions or {}).get(spec.name, spec.description)}"
        for spec in specs
    )
    return Flag(
        "format",
        ("--format", "-f"),
        "choice",
        None,
        "Output format. Default: table on a terminal, JSON when piped; with -o, from the "
        f"file's extension ({' '.join(extensions)}). {described}.",
        OUTPUT_PANEL,
        # Typer lists every choice; a command that writes fewer names its own
        metavar=None if every else "<" + "|".join(spec.name.value for spec in specs) + ">",
        choices=OutputFormat,
        show_default=False,
    )


PRECISION = Flag(
    "precision",
    ("--precision",),
    "int",
    4,
    "Decimals shown in tables, Markdown, SVG and HTML (JSON, CSV and .npy keep full precision).",
    OUTPUT_PANEL,
    metavar="INT",
)
OUTPUT = Flag(
    "output",
    ("--output", "-o"),
    "text",
    None,
    "Write the result to FILE (all at once: no partial file on error); - is stdout.",
    OUTPUT_PANEL,
    metavar="FILE",
    show_default=False,
)
COLOR = Flag(
    "color",
    ("--color/--no-color",),
    "switch",
    None,
    "Colour the table even when piped, or never (SVG and HTML are coloured unless "
    "--no-color). Default: on a terminal, unless NO_COLOR is set.",
    OUTPUT_PANEL,
    show_default=False,
)
DEBUG = Flag(
    "debug",
    ("--debug",),
    "flag",
    False,
    "On an error, print the full Python traceback too (for bug reports); ATTN_DEBUG=1 "
    "does the same.",
    OUTPUT_PANEL,
)

FLAGS: tuple[Flag, ...] = (
    Flag(
        "input_format",
        ("--input-format",),
        "choice",
        None,
        "Parse INPUT as this format instead of guessing from its name and content.",
        INPUT_PANEL,
        choices=InputFormat,
        show_default=False,
    ),
    Flag(
        "mode",
        ("--mode", "-m"),
        "choice",
        Mode.PLAIN,
        "plain: inputs as queries/keys/values, no scaling (book 3.3). trainable: seeded "
        "W_query, W_key, W_value, scores scaled by 1/sqrt(d_out) (3.4). causal: trainable "
        "with future tokens masked (3.5).",
        ATTENTION_PANEL,
        choices=Mode,
    ),
    Flag(
        "query",
        ("--query", "-q"),
        "text",
        None,
        "Show only this query's row: a token's text (exact, then case-insensitive) or a "
        "0-based index.",
        ATTENTION_PANEL,
        metavar="TOKEN",
        show_default=False,
    ),
    Flag(
        "d_out",
        ("--d-out",),
        "int",
        2,
        "Size of the query/key/value projections (trainable and causal modes).",
        ATTENTION_PANEL,
        metavar="INT",
    ),
    Flag(
        "seed",
        ("--seed",),
        "int",
        123,
        "torch.manual_seed for the weights (and dropout): the same seed gives the book's "
        "(torch's) numbers.",
        ATTENTION_PANEL,
        metavar="INT",
    ),
    Flag(
        "init",
        ("--init",),
        "choice",
        Init.RAND,
        "How the weights are drawn. rand: torch.rand(d_in, d_out), applied as X @ W (book "
        "3.4.1). linear: nn.Linear(d_in, d_out), X @ W.T (3.4.2 onwards).",
        ATTENTION_PANEL,
        choices=Init,
    ),
    Flag(
        "qkv_bias",
        ("--qkv-bias",),
        "flag",
        False,
        "Give W_query, W_key, W_value biases, drawn after each weight (with --init linear).",
        ATTENTION_PANEL,
    ),
    Flag(
        "heads",
        ("--heads",),
        "int",
        1,
        "Attention heads. H > 1 is the book's MultiHeadAttention (3.6.2): d_out split into "
        "H heads, then out_proj; with --wrapper, MultiHeadAttentionWrapper (3.6.1).",
        ATTENTION_PANEL,
        metavar="H",
    ),
    Flag(
        "wrapper",
        ("--wrapper",),
        "flag",
        False,
        "With --heads H: H separate single-head modules of d_out each, side by side, no "
        "out_proj (MultiHeadAttentionWrapper, book 3.6.1).",
        ATTENTION_PANEL,
    ),
    Flag(
        "dropout",
        ("--dropout",),
        "float",
        0.0,
        "nn.Dropout(P) on the attention weights, in training mode, with torch's draws "
        "(continuing the seed's stream after the weights).",
        ATTENTION_PANEL,
        metavar="P",
    ),
    Flag(
        "dropout_seed",
        ("--dropout-seed",),
        "int",
        None,
        "torch.manual_seed(S) just before the dropout draws (book 3.5.2 uses 123).",
        ATTENTION_PANEL,
        metavar="S",
        show_default=False,
    ),
    Flag(
        "batch",
        ("--batch",),
        "int",
        1,
        "Run on B copies of the input, as the book's torch.stack((inputs, inputs)) for B = 2, "
        "and show item 0: with --wrapper and --dropout, each head draws every item's mask "
        "before the next head draws.",
        ATTENTION_PANEL,
        metavar="B",
    ),
    Flag(
        "weights",
        ("--weights",),
        "text",
        None,
        "Take W_query, W_key, W_value (biases, out_proj) from a .json or .npz file, e.g. a "
        "module's state_dict, instead of drawing them.",
        ATTENTION_PANEL,
        metavar="FILE",
        show_default=False,
    ),
    Flag(
        "dtype",
        ("--dtype",),
        "choice",
        DType.FLOAT64,
        "Arithmetic: float64, or float32 as the book's torch code computes (half the memory).",
        ATTENTION_PANEL,
        choices=DType,
    ),
    Flag(
        "kv_groups",
        ("--kv-groups",),
        "int",
        None,
        "Grouped-query attention (the book's ch04/04_gqa GroupedQueryAttention): G key/value "
        "heads, each shared by H/G consecutive query heads (repeat_interleave); G = 1 is "
        "multi-query attention. G counts key/value heads, as the class's num_kv_groups (the "
        "book's memory estimators' --n_kv_groups is the group size H/G). Draws W_key, "
        "W_value, W_query, then out_proj without bias.",
        BEYOND_PANEL,
        metavar="G",
        show_default=False,
    ),
    Flag(
        "latent_dim",
        ("--latent-dim",),
        "int",
        None,
        "Multi-head latent attention (ch04/05_mla MultiHeadLatentAttention): keys and values "
        "re-projected from a latent c_kv = X @ W_DKV of L dimensions (K = c_kv @ W_UK, V = "
        "c_kv @ W_UV). Draws W_query, W_DKV, W_UK, W_UV, then out_proj.",
        BEYOND_PANEL,
        metavar="L",
        show_default=False,
    ),
    Flag(
        "window",
        ("--window",),
        "int",
        None,
        "Sliding-window attention (ch04/06_swa), with --mode causal: query i sees the W keys "
        "i-W < j <= i, itself included (Gemma 3's and Hugging Face's convention).",
        BEYOND_PANEL,
        metavar="W",
        show_default=False,
    ),
    Flag(
        "mask",
        ("--mask",),
        "text",
        None,
        "A mask from a .npy, .npz or JSON file, shaped (T, T) or (H, T, T), as torch's "
        "scaled_dot_product_attention takes attn_mask: booleans (true = may attend) or "
        "floats added to the scaled scores (-inf hides). Joins --mode causal and --window.",
        BEYOND_PANEL,
        metavar="FILE",
        show_default=False,
    ),
    Flag(
        "kv",
        ("--kv",),
        "text",
        None,
        "Cross-attention: keys and values from the tokens of FILE (same formats as INPUT, "
        "same d_in), queries from INPUT. With --mode causal and fewer queries than keys, "
        "query i sees keys j <= i + T_k - T_q (aligned bottom-right, as a KV cache needs).",
        BEYOND_PANEL,
        metavar="FILE",
        show_default=False,
    ),
    Flag(
        "causal_align",
        ("--causal-align",),
        "text",
        "bottom-right",
        "With --kv (or --qkv) and --mode causal, where fewer queries than keys sit: "
        "bottom-right (query i sees keys j <= i + T_k - T_q) or top-left (j <= i, as torch's "
        "is_causal).",
        BEYOND_PANEL,
        metavar="ALIGN",
    ),
    Flag(
        "qkv",
        ("--qkv",),
        "text",
        None,
        "Queries, keys and values as a model computed them: a .npz or JSON file with arrays "
        "q, k, v of shape (T, d) or (heads, T, d) (k and v may have fewer heads: grouped "
        "query). No projections: scores, weights and context as torch's "
        "scaled_dot_product_attention(q, k, v, attn_mask, is_causal, scale, enable_gqa=True) "
        "gives them, with --mode causal, --window, --mask and --scale (default 1/sqrt(d)).",
        BEYOND_PANEL,
        metavar="FILE",
        show_default=False,
    ),
    Flag(
        "scale",
        ("--scale",),
        "text",
        None,
        "Multiply the scores by S before the softmax, instead of 1/sqrt(head_dim) (1 in "
        "plain mode); none: no scaling at all (Gemma 4).",
        BEYOND_PANEL,
        metavar="S",
        show_default=False,
    ),
    Flag(
        "softcap",
        ("--softcap",),
        "float",
        None,
        "Soft-cap the scaled scores before the mask: C*tanh(scores/C) (Gemma 2: 50).",
        BEYOND_PANEL,
        metavar="C",
        show_default=False,
    ),
    Flag(
        "alibi",
        ("--alibi",),
        "flag",
        False,
        "ALiBi: add -slope_h*(i - j) to the scaled scores (causal), one slope per head from "
        "the ALiBi paper's formula (8 heads: 1/2, 1/4, ..., 1/256).",
        BEYOND_PANEL,
    ),
    Flag(
        "sink_logits",
        ("--sink-logits",),
        "text",
        None,
        "Attention sinks (gpt-oss): a logit X for every head (or X0,X1,... one per head) joins "
        "each row's softmax as one more column and is dropped after, so rows sum to less "
        "than 1.",
        BEYOND_PANEL,
        metavar="X",
        show_default=False,
    ),
    Flag(
        "gate",
        ("--gate",),
        "flag",
        False,
        "The sigmoid output gate of the book's GatedMultiHeadAttention (ch04/08_deltanet): "
        "draws W_query, W_gate, W_key, W_value, out_proj; the heads' context vectors times "
        "sigmoid(x @ W_gate) before out_proj.",
        BEYOND_PANEL,
    ),
    Flag(
        "qk_norm",
        ("--qk-norm",),
        "flag",
        False,
        "QK-norm (Qwen3): RMSNorm (eps 1e-6, unit weight) on each head's queries and keys, "
        "before RoPE.",
        POSITIONS_PANEL,
    ),
    Flag(
        "rope",
        ("--rope",),
        "flag",
        False,
        "Rotary position embeddings on each head's queries and keys, after the head split "
        "and before the scores, as the book's compute_rope_params and apply_rope (llama3.py): "
        "x*cos + rotate_half(x)*sin.",
        POSITIONS_PANEL,
    ),
    Flag(
        "rope_theta",
        ("--rope-theta",),
        "float",
        10_000.0,
        "RoPE's base: inv_freq_k = 1/theta^(2k/d) (Llama 3 uses 500000).",
        POSITIONS_PANEL,
        metavar="THETA",
    ),
    Flag(
        "rope_layout",
        ("--rope-layout",),
        "text",
        "split",
        "split: halves [x1, x2] rotate together (Hugging Face's, the book's); interleaved: "
        "pairs (x_2k, x_2k+1) (Meta's original, ch05/15_tiny-aya).",
        POSITIONS_PANEL,
        metavar="LAYOUT",
    ),
    Flag(
        "rope_scaling",
        ("--rope-scaling",),
        "text",
        None,
        "llama3: Llama 3.1's frequency scaling (the book's freq_config), with the four "
        "--rope-* factors below.",
        POSITIONS_PANEL,
        metavar="KIND",
        show_default=False,
    ),
    Flag(
        "rope_factor",
        ("--rope-factor",),
        "float",
        8.0,
        "Llama 3 scaling: factor (Llama 3.1: 8; Llama 3.2: 32).",
        POSITIONS_PANEL,
        metavar="X",
    ),
    Flag(
        "rope_low_freq_factor",
        ("--rope-low-freq-factor",),
        "float",
        1.0,
        "Llama 3 scaling: low_freq_factor.",
        POSITIONS_PANEL,
        metavar="X",
    ),
    Flag(
        "rope_high_freq_factor",
        ("--rope-high-freq-factor",),
        "float",
        4.0,
        "Llama 3 scaling: high_freq_factor.",
        POSITIONS_PANEL,
        metavar="X",
    ),
    Flag(
        "rope_original_context",
        ("--rope-original-context",),
        "int",
        8192,
        "Llama 3 scaling: original_context_length.",
        POSITIONS_PANEL,
        metavar="T",
    ),
    Flag(
        "rope_partial",
        ("--rope-partial",),
        "float",
        1.0,
        "Rotate only the first F*head_dim dimensions of each head (Qwen3.5, Gemma 4), their "
        "frequencies counted over those.",
        POSITIONS_PANEL,
        metavar="F",
    ),
    Flag(
        "position_offset",
        ("--position-offset",),
        "int",
        0,
        "Positions start at P, as after a KV cache of P tokens.",
        POSITIONS_PANEL,
        metavar="P",
    ),
    Flag(
        "prefill",
        ("--prefill",),
        "int",
        None,
        "attn decode: feed the first N tokens at once (a prompt's prefill), then --chunk "
        "tokens a step. Default: no prefill, a chunk from the start.",
        BEYOND_PANEL,
        metavar="N",
        show_default=False,
    ),
    Flag(
        "chunk",
        ("--chunk",),
        "int",
        None,
        "attn decode: feed C tokens a step (after --prefill); the last step feeds what is "
        "left. Default: 1, one token at a time.",
        BEYOND_PANEL,
        metavar="C",
        show_default=False,
    ),
    _format_flag(lambda spec: True),
    PRECISION,
    OUTPUT,
    COLOR,
    DEBUG,
)


@functools.cache
def kv_memory_flags() -> tuple[Flag, ...]:
    """`attn kv-memory`'s flags: the book's scripts' arguments (--emb_dim, --n_heads, ...)
    under attn's names, with their defaults where they have one and the book's GPT-2 124M
    where they require one; the output flags shared. Built when first asked for, so the
    attention commands never import kv_memory.py."""
    from ..kv_memory import KVConfig, KVDType

    model = KVConfig()
    return (
        Flag(
            "emb_dim",
            ("--emb-dim",),
            "int",
            model.emb_dim,
            "Embedding size, d_model (the scripts' --emb_dim). The default sizes are the "
            "book's GPT_CONFIG_124M (chapter 4).",
            MODEL_PANEL,
            metavar="D",
        ),
        Flag(
            "heads",
            ("--heads",),
            "int",
            model.heads,
            "Attention (query) heads, n_heads; head_dim = emb_dim / heads, rounded up as the "
            "scripts do.",
            MODEL_PANEL,
            metavar="H",
        ),
        Flag(
            "layers",
            ("--layers",),
            "int",
            model.layers,
            "Transformer layers, each with its own cache (n_layers).",
            MODEL_PANEL,
            metavar="L",
        ),
        Flag(
            "context_length",
            ("--context-length",),
            "int",
            model.context_length,
            "Tokens cached per sequence (the scripts' --context_length and its default).",
            MODEL_PANEL,
            metavar="T",
        ),
        Flag(
            "batch",
            ("--batch",),
            "int",
            model.batch,
            "Sequences cached at once (the scripts' --batch_size).",
            MODEL_PANEL,
            metavar="B",
        ),
        Flag(
            "dtype",
            ("--dtype",),
            "choice",
            model.dtype,
            "Element type of the cache: fp32 (4 bytes), bf16 or fp16 (2), fp8 or int8 (1), the "
            "scripts' choices; float32, bfloat16 and float16 are torch's names for the same.",
            MODEL_PANEL,
            metavar="<fp32|bf16|fp16|fp8|int8>",  # and torch's names, said in the help
            choices=KVDType,
        ),
        Flag(
            "kv_groups",
            ("--kv-groups",),
            "int",
            None,
            "Add grouped-query attention (GQA) with G key/value heads, each shared by heads / G "
            "query heads. G is the NUMBER of KV heads, as num_kv_groups of the book's "
            "GroupedQueryAttention; the memory_estimator scripts' --n_kv_groups is the group "
            "SIZE instead: their --n_heads 32 --n_kv_groups 4 is --heads 32 --kv-groups 8.",
            MODEL_PANEL,
            metavar="G",
            show_default=False,
        ),
        Flag(
            "latent_dim",
            ("--latent-dim",),
            "int",
            None,
            "Add multi-head latent attention (MLA): one latent vector of D numbers cached per "
            "token and layer instead of the keys and values.",
            MODEL_PANEL,
            metavar="D",
            show_default=False,
        ),
        Flag(
            "window",
            ("--window",),
            "int",
            None,
            "Add sliding-window attention (SWA): the sliding-window layers cache only the last "
            "W tokens (the scripts' --sliding_window_size); --swa-ratio says which layers.",
            MODEL_PANEL,
            metavar="W",
            show_default=False,
        ),
        Flag(
            "swa_ratio",
            ("--swa-ratio",),
            "text",
            model.swa_ratio,
            "With --window: sliding-window to full layers in each block of layers, e.g. 5:1 "
            "(Gemma 3: five sliding-window layers, then a full one) or 1:1 (Gemma 2); 1:0, the "
            "scripts' default, makes every layer sliding-window.",
            MODEL_PANEL,
            metavar="A:B",
        ),
        _format_flag(
            lambda spec: spec.kv_memory, {OutputFormat.CSV: "a header and one row per variant"}
        ),
        OUTPUT,
        COLOR,
        DEBUG,
    )


@functools.cache
def check_flags() -> tuple[Flag, ...]:
    """`attn check`'s flags: the attention commands' (what the right numbers are), the
    formats it writes, and --stage."""
    stage = Flag(
        "stage",
        ("--stage",),
        "choice",
        None,
        "The stage of THEIRS when it is a bare matrix (JSON list, CSV, .npy, printed tensor): "
        "scores are before scaling, -inf where masked (the book's attn_scores); weights after "
        "the softmax and dropout; context after out_proj.",
        INPUT_PANEL,
        choices=Stage,
        show_default=False,
    )
    written = _format_flag(lambda spec: spec.checks)
    return (stage, *(written if flag.name == "format" else flag for flag in FLAGS))


# The attention commands' RoPE flags, which `attn rope` takes as they are.
ROPE_FLAG_NAMES = (
    "rope_theta",
    "rope_layout",
    "rope_scaling",
    "rope_factor",
    "rope_low_freq_factor",
    "rope_high_freq_factor",
    "rope_original_context",
    "rope_partial",
    "position_offset",
)


@functools.cache
def rope_flags() -> tuple[Flag, ...]:
    """`attn rope`'s flags: a head_dim and a count of positions, the attention commands'
    RoPE flags (the same declarations), a dtype, and the output flags shared."""
    by_name = {flag.name: flag for flag in FLAGS}
    return (
        Flag(
            "head_dim",
            ("--head-dim",),
            "int",
            8,
            "The dimensions of one head (d_out / heads in the attention commands); RoPE turns "
            "them in pairs, so an even number unless --rope-partial is below 1.",
            POSITIONS_PANEL,
            metavar="D",
        ),
        Flag(
            "positions",
            ("--positions",),
            "int",
            8,
            "How many positions: P, P+1, ..., P+N-1 with --position-offset P (0 by default).",
            POSITIONS_PANEL,
            metavar="N",
        ),
        *(by_name[name] for name in ROPE_FLAG_NAMES),
        Flag(
            "dtype",
            ("--dtype",),
            "choice",
            DType.FLOAT64,
            "Arithmetic: float64, or float32 as the book's compute_rope_params computes "
            "inv_freq (always float32 there, whatever its dtype) and, by default, the angles.",
            POSITIONS_PANEL,
            choices=DType,
        ),
        _format_flag(lambda spec: spec.rope, {OutputFormat.CSV: "a row per position and pair"}),
        PRECISION,
        OUTPUT,
        COLOR,
        DEBUG,
    )


def command_flags(command: str) -> tuple[Flag, ...]:
    """The flags of `command`."""
    if command == CHECK:
        return check_flags()
    if command == KV_MEMORY:
        return kv_memory_flags()
    return rope_flags() if command == ROPE else FLAGS


@dataclass(frozen=True)
class Parsed:
    """A command line read into values: every flag (defaults filled in) and INPUT."""

    command: str
    values: dict[str, Any]
    explicit: frozenset[str]  # the flags given on the command line


def defaults(command: str = ATTENTION_COMMANDS[0]) -> dict[str, Any]:
    """The values of a command line that gives no flag: INPUT (for the commands that
    take one) and every flag of `command` at its default."""
    values: dict[str, Any] = dict.fromkeys(positionals(command))
    return values | {flag.name: flag.default for flag in command_flags(command)}


def _lookup(flags: tuple[Flag, ...]) -> dict[str, tuple[Flag, Any]]:
    """Every spelling -> (flag, the value it sets when it takes none)."""
    table: dict[str, tuple[Flag, Any]] = {}
    for flag in flags:
        for decl in flag.decls:
            if flag.kind == "switch":
                on, off = decl.split("/")
                table[on] = (flag, True)
                table[off] = (flag, False)
            else:
                table[decl] = (flag, True if flag.kind == "flag" else None)
    return table


_SPELLINGS = _lookup(FLAGS)


def _spellings(command: str) -> dict[str, tuple[Flag, Any]]:
    if command == CHECK:
        return _check_spellings()
    if command == KV_MEMORY:
        return _kv_memory_spellings()
    return _rope_spellings() if command == ROPE else _SPELLINGS


@functools.cache
def _rope_spellings() -> dict[str, tuple[Flag, Any]]:
    return _lookup(rope_flags())


@functools.cache
def _check_spellings() -> dict[str, tuple[Flag, Any]]:
    return _lookup(check_flags())


@functools.cache
def _kv_memory_spellings() -> dict[str, tuple[Flag, Any]]:
    return _lookup(kv_memory_flags())


def parse(argv: Sequence[str]) -> Parsed | None:
    """Read `attn COMMAND [INPUT] [OPTIONS]` as click would, or None to leave it to
    Typer (help, completion, an unknown option, a value that does not parse, ...)."""
    if not argv or argv[0] not in COMMANDS:
        return None
    spellings = _spellings(argv[0])
    values = defaults(argv[0])
    explicit: set[str] = set()
    positional: list[str] = []
    args = list(argv[1:])
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            positional.extend(args[i:])
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, attached = token, None
        if token.startswith("--"):
            if "=" in token:
                name, attached = token.split("=", 1)
        elif len(token) > 2:  # -mcausal: a short option with its value attached
            name, attached = token[:2], token[2:]
        if name not in spellings:
            return None  # help, a typo, a global option: Typer's business
        flag, fixed = spellings[name]
        if flag.kind in ("flag", "switch"):
            if attached is not None:
                return None
            values[flag.name] = fixed
        else:
            if attached is None:
                if i >= len(args):
                    return None  # missing value: Typer says so
                attached = args[i]
                i += 1
            try:
                values[flag.name] = _convert(flag, attached)
            except ValueError:
                return None
        explicit.add(flag.name)
    names = positionals(argv[0])
    if len(positional) > len(names):
        return None  # an INPUT too many (kv-memory takes none): Typer says so
    values.update(zip(names[: len(positional)], positional, strict=True))
    if "theirs" in names and values["theirs"] is None:
        return None  # attn check without THEIRS: Typer says what is missing
    return Parsed(argv[0], values, frozenset(explicit))


def _convert(flag: Flag, text: str) -> Any:
    if flag.kind == "int":
        return whole(text)
    if flag.kind == "float":
        return real(text)
    if flag.kind == "choice":
        assert flag.choices is not None
        return flag.choices(text)  # ValueError when not a choice
    return text

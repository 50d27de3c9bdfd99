"""Records the book's bonus attention classes (GQA, MLA, sliding window, KV caches) and
torch's scaled_dot_product_attention, for tests/data/torch_beyond.json (torch 2.13.0+cpu).

Run where torch is installed, with a checkout of rasbt/LLMs-from-scratch at commit
28c65cdfbc3338e2e040016eea4b7fdf556e4d57 (the commit of book_ch03.json):

    python tests/data/record_torch_beyond.py /path/to/LLMs-from-scratch > tests/data/torch_beyond.json

The book's classes are not copied into this file: it reads each class's source, verbatim,
from the checkout (every file is checked against the SHA-256 below, so another commit is
refused), and executes only that class definition with `torch` and `nn` in scope. The
intermediates are recorded from outside, without changing a line of the classes: forward
hooks on the layers (W_query, W_key, W_value, W_DKV, W_UK, W_UV give the projections,
out_proj's input is the joined heads, the dropout layer's input is the softmax output, as
dropout is 0.0 and the module is in eval mode) and a TorchFunctionMode that keeps what the
class's own masked_fill/masked_fill_ call returns (the raw q.k scores, unscaled, with -inf
in the masked cells).

Conventions (so attn's numbers are comparable): the six tokens are the book's decimal
literals as float64; the second input is torch.manual_seed(7); torch.randn(12, 8, float64).
Each module is built by torch.manual_seed(seed) then the class (float32, as the book does),
converted with .double(), put in eval mode, and run on the float64 input with a batch
dimension of 1. Every tensor is written with full float64 precision; masked (-inf) cells are
null. Each module case is also re-derived from its recorded projections and weights
(head h uses columns h*head_dim:(h+1)*head_dim; GQA's head h uses KV group
h // (num_heads // num_kv_groups)) and the largest difference is kept in `self_check`.
The tests compare attn's numbers with these, without torch.
"""

import ast
import hashlib
import json
import math
import pathlib
import sys

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right
from torch.nn.functional import scaled_dot_product_attention
from torch.overrides import TorchFunctionMode

BOOK_REPO = "rasbt/LLMs-from-scratch"
BOOK_COMMIT = "28c65cdfbc3338e2e040016eea4b7fdf556e4d57"
BOOK_FILES = {  # SHA-256 of each file at BOOK_COMMIT
    "pkg/llms_from_scratch/ch03.py": "54d6710139851f5e1b25a074cfdd5b38e2bd70ec923bdf0984f9fc68ad7c7374",
    "ch04/03_kv-cache/gpt_with_kv_cache.py": "b50996769ff396766bc229104663c7fbc27198578b3c731920ae7114e995eace",
    "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py": "6e3f314c678be0312ebcd0520c56b29cf76c211eaee984bdd824cee9355e3413",
    "ch04/04_gqa/gpt_with_kv_gqa.py": "f129c693aefc2671a6d68b4df1e66996e9d9fe5fd42ac47623235e9f8dc2c0e1",
    "ch04/05_mla/gpt_with_kv_mla.py": "aded18dd5e48c05b2be537afc79c475edd485cecbc19b7fa70450e3b9f10f29c",
    "ch04/06_swa/gpt_with_kv_swa.py": "5a5374633fd2b8d18519c6cb71c73aa465014319f4af61b7c9f5b5f9cda4393b",
}
SOURCES = {}  # "path:Class" -> SHA-256 of the class's source text as executed


def book_class(root, path, name):
    """The class `name`, defined by executing its verbatim source from the book's file."""
    raw = (root / path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != BOOK_FILES[path]:
        sys.exit(f"{path}: SHA-256 {digest} is not the file at {BOOK_COMMIT}")
    text = raw.decode("utf-8")
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == name)
    source = ast.get_source_segment(text, node)
    SOURCES[f"{path}:{name}"] = hashlib.sha256(source.encode("utf-8")).hexdigest()
    namespace = {"torch": torch, "nn": nn, "__name__": "book"}
    # padded with blank lines so that tracebacks give the book file's line numbers
    exec(compile("\n" * (node.lineno - 1) + source, str(root / path), "exec"), namespace)
    return namespace[name]


class FilledScores(TorchFunctionMode):
    """Keeps the result of every masked_fill/masked_fill_ call: the masked raw scores."""

    def __init__(self):
        super().__init__()
        self.filled = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ("masked_fill", "masked_fill_"):
            self.filled.append(out.detach().clone())
        return out


def run(module, x, **kwargs):
    """One forward pass (batch of 1) with every intermediate recorded; batch dim dropped."""
    seen = {}
    handles = []

    def keep(key, from_input=False):
        def hook(_module, inputs, output):
            seen[key] = (inputs[0] if from_input else output).detach().clone()[0]

        return hook

    for layer, key in [
        ("W_query", "queries"),
        ("W_key", "keys"),
        ("W_value", "values"),
        ("W_DKV", "latent"),
        ("W_UK", "keys"),
        ("W_UV", "values"),
    ]:
        if hasattr(module, layer):
            handles.append(getattr(module, layer).register_forward_hook(keep(key)))
    handles.append(module.out_proj.register_forward_hook(keep("heads_context", True)))
    handles.append(module.dropout.register_forward_hook(keep("attn_weights", True)))
    try:
        with torch.no_grad(), FilledScores() as calls:
            out = module(x.unsqueeze(0), **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls.filled) == 1, len(calls.filled)
    seen["attn_scores"] = calls.filled[0][0]
    seen["context_vecs"] = out.detach()[0]
    return seen


def nested(t):
    """A tensor as nested lists of floats, -inf as null."""
    if t.dim() == 0:
        v = float(t)
        assert not math.isnan(v)
        return None if v == -math.inf else v
    return [nested(row) for row in t]


def bools(t):
    return [bools(row) for row in t] if t.dim() else bool(t)


def weights_of(module):
    """state_dict order, shapes, SHA-256 of the float32 bytes (row-major), before .double()."""
    out = []
    for name, tensor in module.state_dict().items():
        assert tensor.dtype == torch.float32
        out.append(
            {
                "name": name,
                "shape": list(tensor.shape),
                "sha256_float32": hashlib.sha256(
                    tensor.detach().contiguous().numpy().tobytes()
                ).hexdigest(),
            }
        )
    return out


def build(cls, seed, double=True, **kwargs):
    torch.manual_seed(seed)
    module = cls(**kwargs)
    weights = weights_of(module)
    if double:
        module = module.double()
    module.eval()
    return module, weights


def visible_keys(filled):
    """For each query row of (H, Tq, Tk) filled scores, the key columns it sees (all heads)."""
    finite = torch.isfinite(filled)
    assert all(torch.equal(finite[0], finite[h]) for h in range(finite.shape[0]))
    return [[j for j in range(finite.shape[2]) if finite[0, i, j]] for i in range(finite.shape[1])]


def self_check(module, seen, num_kv):
    """Re-derives scores, weights, context from the recorded projections; largest difference."""
    H, hd = module.num_heads, module.head_dim
    group = H // num_kv
    Q, K, V = seen["queries"], seen["keys"], seen["values"]
    worst = 0.0
    heads = []
    for h in range(H):
        g = h // group
        s = Q[:, h * hd : (h + 1) * hd] @ K[:, g * hd : (g + 1) * hd].T
        filled = seen["attn_scores"][h]
        ok = torch.isfinite(filled)
        worst = max(worst, float((s[ok] - filled[ok]).abs().max()))
        w = torch.softmax(filled / hd**0.5, dim=-1)
        worst = max(worst, float((w - seen["attn_weights"][h]).abs().max()))
        heads.append(w @ V[:, g * hd : (g + 1) * hd])
    joined = torch.cat(heads, dim=1)
    worst = max(worst, float((joined - seen["heads_context"]).abs().max()))
    with torch.no_grad():
        out = module.out_proj(joined)
        worst = max(worst, float((out - seen["context_vecs"]).abs().max()))
        if "latent" in seen:
            worst = max(worst, float((module.W_UK(seen["latent"]) - K).abs().max()))
            worst = max(worst, float((module.W_UV(seen["latent"]) - V).abs().max()))
    return worst


def module_case(name, cls_name, source, module, weights, seed, input_name, x, args, num_kv):
    seen = run(module, x)
    case = {
        "name": name,
        "class": cls_name,
        "source": source,
        "args": args,
        "seed": seed,
        "input": input_name,
        "weights": weights,
        "queries": nested(seen["queries"]),
        "keys": nested(seen["keys"]),
        "values": nested(seen["values"]),
    }
    if "latent" in seen:
        case["latent"] = nested(seen["latent"])
    case.update(
        {
            "attn_scores": nested(seen["attn_scores"]),
            "attn_weights": nested(seen["attn_weights"]),
            "heads_context": nested(seen["heads_context"]),
            "context_vecs": nested(seen["context_vecs"]),
            "visible_keys": visible_keys(seen["attn_scores"]),
            "self_check": self_check(module, seen, num_kv),
        }
    )
    assert case["self_check"] < 1e-12, (name, case["self_check"])
    return case, seen


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[1])
    GQA_PATH = "ch04/04_gqa/gpt_with_kv_gqa.py"
    MLA_PATH = "ch04/05_mla/gpt_with_kv_mla.py"
    SWA_PATH = "ch04/06_swa/gpt_with_kv_swa.py"
    KV_PATH = "ch04/03_kv-cache/gpt_with_kv_cache.py"
    KVO_PATH = "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"
    CH03_PATH = "pkg/llms_from_scratch/ch03.py"
    GroupedQueryAttention = book_class(root, GQA_PATH, "GroupedQueryAttention")
    MultiHeadLatentAttention = book_class(root, MLA_PATH, "MultiHeadLatentAttention")
    MultiHeadAttentionWithSWA = book_class(root, SWA_PATH, "MultiHeadAttentionWithSWA")
    KVCacheMHA = book_class(root, KV_PATH, "MultiHeadAttention")
    KVCacheMHAOptimized = book_class(root, KVO_PATH, "MultiHeadAttention")
    Ch03MHA = book_class(root, CH03_PATH, "MultiHeadAttention")

    six = torch.tensor(
        [
            [0.43, 0.15, 0.89],  # Your
            [0.55, 0.87, 0.66],  # journey
            [0.57, 0.85, 0.64],  # starts
            [0.22, 0.58, 0.33],  # with
            [0.77, 0.25, 0.10],  # one
            [0.05, 0.80, 0.55],  # step
        ],
        dtype=torch.float64,
    )
    book = json.loads(pathlib.Path(__file__).with_name("book_ch03.json").read_text("utf-8"))
    assert six.tolist() == book["inputs"]["matrix"]
    torch.manual_seed(7)
    t12 = torch.randn(12, 8, dtype=torch.float64)
    inputs = {"six_tokens": six, "t12": t12}

    cases = []
    seen_by_name = {}

    def add(name, cls, path, seed, input_name, args, num_kv):
        module, weights = build(cls, seed, **args)
        case, seen = module_case(
            name,
            cls.__name__,
            path,
            module,
            weights,
            seed,
            input_name,
            inputs[input_name],
            args,
            num_kv,
        )
        cases.append(case)
        seen_by_name[name] = (module, seen)
        return case

    # 1. GroupedQueryAttention(d_in, d_out, dropout, num_heads, num_kv_groups, dtype, qkv_bias)
    for name, seed, inp, d_in, d_out, heads, groups, bias in [
        ("gqa_h4_g1", 123, "six_tokens", 3, 4, 4, 1, False),
        ("gqa_h4_g2", 123, "six_tokens", 3, 4, 4, 2, False),
        ("gqa_h4_g4", 123, "six_tokens", 3, 4, 4, 4, False),
        ("gqa_h2_g1", 123, "six_tokens", 3, 4, 2, 1, False),
        ("gqa_h2_g2", 123, "six_tokens", 3, 4, 2, 2, False),
        ("gqa_h4_g2_bias", 123, "six_tokens", 3, 4, 4, 2, True),
        ("gqa_t12_h4_g2", 42, "t12", 8, 16, 4, 2, False),
    ]:
        args = {
            "d_in": d_in,
            "d_out": d_out,
            "dropout": 0.0,
            "num_heads": heads,
            "num_kv_groups": groups,
            "qkv_bias": bias,
        }
        add(name, GroupedQueryAttention, GQA_PATH, seed, inp, args, groups)

    # 2. MultiHeadLatentAttention(d_in, d_out, dropout, num_heads, qkv_bias, latent_dim)
    for name, seed, inp, d_in, d_out, heads, latent, bias in [
        ("mla_h2_l2", 123, "six_tokens", 3, 4, 2, 2, False),
        ("mla_h2_l3", 123, "six_tokens", 3, 4, 2, 3, False),
        ("mla_h2_l3_bias", 123, "six_tokens", 3, 4, 2, 3, True),
        ("mla_h2_default_latent", 123, "six_tokens", 3, 4, 2, None, False),
        ("mla_t12_h4_l6", 42, "t12", 8, 16, 4, 6, False),
    ]:
        args = {
            "d_in": d_in,
            "d_out": d_out,
            "dropout": 0.0,
            "num_heads": heads,
            "qkv_bias": bias,
            "latent_dim": latent,
        }
        add(name, MultiHeadLatentAttention, MLA_PATH, seed, inp, args, heads)

    # 3. MultiHeadAttentionWithSWA(d_in, d_out, dropout, num_heads, qkv_bias, sliding_window_size)
    for name, seed, inp, d_in, d_out, heads, window in [
        ("swa_h2_w1", 123, "six_tokens", 3, 4, 2, 1),
        ("swa_h2_w2", 123, "six_tokens", 3, 4, 2, 2),
        ("swa_h2_w3", 123, "six_tokens", 3, 4, 2, 3),
        ("swa_h2_w6", 123, "six_tokens", 3, 4, 2, 6),
        ("swa_h2_none", 123, "six_tokens", 3, 4, 2, None),
        ("swa_t12_h4_w4", 42, "t12", 8, 16, 4, 4),
    ]:
        args = {
            "d_in": d_in,
            "d_out": d_out,
            "dropout": 0.0,
            "num_heads": heads,
            "qkv_bias": False,
            "sliding_window_size": window,
        }
        case = add(name, MultiHeadAttentionWithSWA, SWA_PATH, seed, inp, args, heads)
        T = len(case["queries"])
        W = T + 1 if window is None else window
        assert case["visible_keys"] == [
            [j for j in range(T) if 0 <= i - j < W] for i in range(T)
        ], name

    # the classes are causal whatever their arguments; GQA with one group per head is MHA
    for case in cases:
        T = len(case["queries"])
        if case["class"] != "MultiHeadAttentionWithSWA":
            assert case["visible_keys"] == [list(range(i + 1)) for i in range(T)]
    # SWA with window >= T, or None, is the ch04/03 MHA (same construction order, same draws)
    for cls in (KVCacheMHA, Ch03MHA):
        ref, _ = build(cls, 123, d_in=3, d_out=4, context_length=6, dropout=0.0, num_heads=2)
        ref_out = run(ref, six)["context_vecs"]
        for name in ("swa_h2_w6", "swa_h2_none"):
            assert torch.equal(ref_out, seen_by_name[name][1]["context_vecs"]), name

    # 4. KV-cache decoding on t12: every step's new rows against the full causal output
    schedules = {"1x12": [1] * 12, "5+1x7": [5] + [1] * 7, "3x4": [3] * 4}

    def cache_state(module):
        if hasattr(module, "cache_c_kv"):
            c = module.cache_c_kv
            return {
                "cache_len": c.shape[1],
                "cache_shape": list(c.shape),
                "cache_dtype": str(c.dtype),
            }
        if hasattr(module, "ptr_cur"):  # optimized: fixed (b, H, window_size, hd) buffer
            return {
                "cache_len": module.ptr_cur,
                "cache_shape": list(module.cache_k.shape),
                "cache_dtype": str(module.cache_k.dtype),
            }
        c = module.cache_k
        seq_dim = 2 if hasattr(module, "num_kv_groups") else 1
        return {
            "cache_len": c.shape[seq_dim],
            "cache_shape": list(c.shape),
            "cache_dtype": str(c.dtype),
        }

    decode = []
    kv_modules = [
        (
            "kv_mha",
            KVCacheMHA,
            KV_PATH,
            {"d_in": 8, "d_out": 16, "context_length": 12, "dropout": 0.0, "num_heads": 4},
        ),
        (
            "kv_mha_optimized",
            KVCacheMHAOptimized,
            KVO_PATH,
            {"d_in": 8, "d_out": 16, "context_length": 12, "dropout": 0.0, "num_heads": 4},
        ),
        (
            "kv_mha_optimized_float32",
            KVCacheMHAOptimized,
            KVO_PATH,
            {"d_in": 8, "d_out": 16, "context_length": 12, "dropout": 0.0, "num_heads": 4},
        ),
        (
            "kv_mha_optimized_w4_float32",
            KVCacheMHAOptimized,
            KVO_PATH,
            {
                "d_in": 8,
                "d_out": 16,
                "context_length": 12,
                "dropout": 0.0,
                "num_heads": 4,
                "window_size": 4,
            },
        ),
        (
            "gqa_h4_g2",
            GroupedQueryAttention,
            GQA_PATH,
            {"d_in": 8, "d_out": 16, "dropout": 0.0, "num_heads": 4, "num_kv_groups": 2},
        ),
        (
            "mla_h4_l6",
            MultiHeadLatentAttention,
            MLA_PATH,
            {"d_in": 8, "d_out": 16, "dropout": 0.0, "num_heads": 4, "latent_dim": 6},
        ),
        (
            "swa_h4_w4",
            MultiHeadAttentionWithSWA,
            SWA_PATH,
            {"d_in": 8, "d_out": 16, "dropout": 0.0, "num_heads": 4, "sliding_window_size": 4},
        ),
        (
            "swa_h4_none",
            MultiHeadAttentionWithSWA,
            SWA_PATH,
            {"d_in": 8, "d_out": 16, "dropout": 0.0, "num_heads": 4, "sliding_window_size": None},
        ),
    ]
    # SWA window 4 in float64, to compare with the optimized class's window_size=4
    swa_w4_full = run(
        build(
            MultiHeadAttentionWithSWA,
            42,
            d_in=8,
            d_out=16,
            dropout=0.0,
            num_heads=4,
            sliding_window_size=4,
        )[0],
        t12,
    )["context_vecs"]
    for name, cls, path, args in kv_modules:
        # the optimized class's cache is float32 whatever the module's dtype (torch.zeros
        # without dtype), so in float64 its first cached step fails; it is also run in float32
        double = not name.endswith("_float32")
        x = t12 if double else t12.float()
        module, weights = build(cls, 42, double=double, **args)
        full = run(module, x)
        entry = {
            "name": name,
            "class": cls.__name__,
            "source": path,
            "args": args,
            "seed": 42,
            "input": "t12" if double else "t12 rounded to float32",
            "dtype": "float64" if double else "float32 (module left in float32)",
            "weights": weights,
            "full_context_vecs": nested(full["context_vecs"]),
            "full_visible_keys": visible_keys(full["attn_scores"]),
            "runs": [],
        }
        for schedule, sizes in schedules.items():
            module.reset_cache()
            steps, rows, start = [], [], 0
            error = None
            for size in sizes:
                chunk = x[start : start + size]
                try:
                    seen = run(module, chunk, use_cache=True)
                except (AssertionError, RuntimeError) as exc:
                    error = f"step at token {start}: {type(exc).__name__}: {exc}"
                    break
                held = seen["attn_scores"].shape[-1]
                end = start + size
                finite = torch.isfinite(seen["attn_scores"][0])
                steps.append(
                    {
                        "tokens": [start, end],
                        "context_rows": nested(seen["context_vecs"]),
                        "keys_attended": held,
                        # absolute positions: the attended keys are the last `held` keys up to `end`
                        "visible_keys": [
                            [end - held + j for j in range(held) if finite[i, j]]
                            for i in range(size)
                        ],
                        **cache_state(module),
                    }
                )
                rows.append(seen["context_vecs"])
                start = end
            run_entry = {"schedule": schedule, "chunk_sizes": sizes, "steps": steps}
            if error is None:
                joined = torch.cat(rows)
                run_entry["max_abs_diff_vs_full"] = float(
                    (joined - full["context_vecs"]).abs().max()
                )
                if name == "kv_mha_optimized_w4_float32":
                    run_entry["max_abs_diff_vs_swa_h4_w4_full"] = float(
                        (joined.double() - swa_w4_full).abs().max()
                    )
            else:
                run_entry["error"] = error
            entry["runs"].append(run_entry)
        decode.append(entry)
    by = {e["name"]: e for e in decode}
    for name in ("kv_mha", "gqa_h4_g2", "mla_h4_l6", "swa_h4_w4", "swa_h4_none"):
        for r in by[name]["runs"]:
            assert r["max_abs_diff_vs_full"] < 1e-12, (name, r["schedule"])
    for r in by["swa_h4_w4"]["runs"]:
        assert all(s["cache_len"] == min(s["tokens"][1], 4) for s in r["steps"])
    assert all(
        "expected scalar type Double but found Float" in r["error"]
        for r in by["kv_mha_optimized"]["runs"]
    )

    # 5. scaled_dot_product_attention, float64, no module
    torch.manual_seed(11)
    q = torch.randn(4, 6, 3, dtype=torch.float64)
    k4 = torch.randn(4, 6, 3, dtype=torch.float64)
    v4 = torch.randn(4, 6, 3, dtype=torch.float64)
    k2 = torch.randn(2, 6, 3, dtype=torch.float64)
    v2 = torch.randn(2, 6, 3, dtype=torch.float64)
    T = 6
    tril = torch.ones(T, T, dtype=torch.bool).tril()
    mask_tt = torch.tensor(
        [
            [1, 0, 1, 0, 0, 1],
            [0, 1, 1, 0, 1, 0],
            [1, 1, 0, 0, 0, 1],
            [0, 0, 1, 1, 0, 1],
            [1, 0, 0, 1, 1, 0],
            [0, 1, 0, 1, 0, 1],
        ],
        dtype=torch.bool,
    )
    mask_htt = torch.stack([mask_tt, mask_tt.flip(1), mask_tt.T, tril])
    float_mask = torch.tensor(
        [
            [0.0, -math.inf, 0.5, 0.0, -1.0, 0.0],
            [0.0, 0.0, -math.inf, -math.inf, 0.0, 2.0],
            [-math.inf, 0.0, 0.0, 1.0, 0.0, -math.inf],
            [0.0, -0.5, 0.0, -math.inf, 0.0, 0.0],
            [-math.inf, -math.inf, -math.inf, -math.inf, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, -math.inf],
        ],
        dtype=torch.float64,
    )
    custom = torch.tensor(
        [
            [1, 1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1, 1],
            [1, 0, 1, 1, 1, 1],
            [1, 1, 0, 1, 0, 1],
            [0, 1, 1, 0, 1, 1],
            [1, 0, 1, 0, 1, 0],
        ],
        dtype=torch.bool,
    )
    row_false = torch.ones(T, T, dtype=torch.bool)
    row_false[2] = False
    float_row_inf = torch.zeros(T, T, dtype=torch.float64)
    float_row_inf[2] = -math.inf

    def additive(mask, Tq, Tk):
        """(…, Tq, Tk) float mask to add to the scaled scores."""
        if mask is None:
            return torch.zeros(Tq, Tk, dtype=torch.float64)
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, -math.inf)
        return mask

    def sdpa_case(name, qq, kk, vv, gqa, mask_desc, allowed, call_kwargs, scale=None, extra=None):
        """allowed: (…, Tq, Tk) bool or float mask meaning what SDPA is asked to do."""
        kw = dict(call_kwargs)
        if gqa:
            kw["enable_gqa"] = True
        if scale is not None:
            kw["scale"] = scale
        out = scaled_dot_product_attention(qq[None], kk[None], vv[None], **kw)[0]
        Tq, Tk, E = qq.shape[1], kk.shape[1], qq.shape[2]
        rep = qq.shape[0] // kk.shape[0]
        ke, ve = kk.repeat_interleave(rep, 0), vv.repeat_interleave(rep, 0)
        s = qq @ ke.transpose(1, 2) * (scale if scale is not None else 1 / math.sqrt(E))
        s = s + additive(allowed, Tq, Tk)
        w = torch.softmax(s, dim=-1)  # NaN in a row with every cell -inf
        dead = torch.isnan(w).all(dim=-1)  # (H, Tq)
        ref = torch.nan_to_num(w) @ ve  # the rows the weights define; dead rows 0
        diff = float((ref[~dead] - out[~dead]).abs().max())
        assert diff < 1e-12, (name, diff)
        case = {
            "name": name,
            "kv_heads": kk.shape[0],
            "enable_gqa": gqa,
            "mask": mask_desc,
            "call": {k: (v if isinstance(v, (bool, float)) else mask_desc) for k, v in kw.items()},
            # 0.0 where the cell is masked; null across a row with every cell masked (NaN)
            "attn_weights": nested(torch.where(torch.isnan(w), -math.inf, w)),
            "output": nested(out),
            "max_abs_diff_weights_at_v": diff,
        }
        if dead.any():
            case["all_masked_rows"] = [[h, i] for h, i in dead.nonzero().tolist()]
            case["all_masked_rows_output"] = [
                out[h, i].tolist() for h, i in dead.nonzero().tolist()
            ]
        if extra:
            case.update(extra)
        return case

    sdpa = []
    for kv_name, kk, vv, gqa in [("mha", k4, v4, False), ("gqa", k2, v2, True)]:
        sdpa.append(sdpa_case(f"{kv_name}_no_mask", q, kk, vv, gqa, "none", None, {}))
        sdpa.append(
            sdpa_case(
                f"{kv_name}_causal", q, kk, vv, gqa, "is_causal=True", tril, {"is_causal": True}
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_bool_tt",
                q,
                kk,
                vv,
                gqa,
                "bool_tt (True = attend)",
                mask_tt,
                {"attn_mask": mask_tt},
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_bool_htt",
                q,
                kk,
                vv,
                gqa,
                "bool_htt (True = attend)",
                mask_htt,
                {"attn_mask": mask_htt},
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_float_mask",
                q,
                kk,
                vv,
                gqa,
                "float_mask (added)",
                float_mask,
                {"attn_mask": float_mask},
            )
        )
        # explicit AND of causal and the custom mask, passed as one bool mask
        sdpa.append(
            sdpa_case(
                f"{kv_name}_causal_and_custom",
                q,
                kk,
                vv,
                gqa,
                "causal_and_custom = tril & custom",
                tril & custom,
                {"attn_mask": tril & custom},
            )
        )
        # both arguments at once: what the default dispatch does with them
        sdpa.append(
            sdpa_case(
                f"{kv_name}_is_causal_plus_custom_mask",
                q,
                kk,
                vv,
                gqa,
                "attn_mask=custom and is_causal=True (default dispatch)",
                tril & custom,
                {"attn_mask": custom, "is_causal": True},
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_scale_0.5", q, kk, vv, gqa, "none, scale=0.5", None, {}, scale=0.5
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_causal_scale_0.5",
                q,
                kk,
                vv,
                gqa,
                "is_causal=True, scale=0.5",
                tril,
                {"is_causal": True},
                scale=0.5,
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_bool_row2_all_false",
                q,
                kk,
                vv,
                gqa,
                "row_false (row 2 all False)",
                row_false,
                {"attn_mask": row_false},
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_float_row2_all_-inf",
                q,
                kk,
                vv,
                gqa,
                "float_row_inf (row 2 all -inf)",
                float_row_inf,
                {"attn_mask": float_row_inf},
            )
        )
        q3 = q[:, :3]
        top_left = torch.ones(3, 6, dtype=torch.bool).tril()
        bottom_right = torch.ones(3, 6, dtype=torch.bool).tril(diagonal=3)
        sdpa.append(
            sdpa_case(
                f"{kv_name}_cross_q3_is_causal",
                q3,
                kk,
                vv,
                gqa,
                "T_q=3 (q[:, :3]), T_k=6, is_causal=True (top-left)",
                top_left,
                {"is_causal": True},
                extra={"allowed": bools(top_left)},
            )
        )
        sdpa.append(
            sdpa_case(
                f"{kv_name}_cross_q3_causal_lower_right",
                q3,
                kk,
                vv,
                gqa,
                "T_q=3 (q[:, :3]), T_k=6, causal_lower_right(3, 6)",
                bottom_right,
                {"attn_mask": causal_lower_right(3, 6)},
                extra={"allowed": bools(bottom_right)},
            )
        )

    # the same calls on the math backend: all-masked rows, and attn_mask with is_causal
    backends = {}
    for label, backend in [("math", SDPBackend.MATH), ("flash_cpu", SDPBackend.FLASH_ATTENTION)]:
        with sdpa_kernel(backend):
            out = scaled_dot_product_attention(q[None], k4[None], v4[None], attn_mask=row_false)[0]
            res = {"bool_row2_all_false_row2_output": out[:, 2].tolist()}
            try:
                out = scaled_dot_product_attention(
                    q[None], k4[None], v4[None], attn_mask=custom, is_causal=True
                )[0]
                ref = sdpa[[c["name"] for c in sdpa].index("mha_causal_and_custom")]["output"]
                res["attn_mask_with_is_causal"] = (
                    "accepted; max abs diff vs tril & custom: "
                    + repr(float((out - torch.tensor(ref, dtype=torch.float64)).abs().max()))
                )
            except RuntimeError as exc:
                res["attn_mask_with_is_causal"] = f"RuntimeError: {exc}"
        backends[label] = res
    backends["default_choice"] = {  # what the default dispatch picks for these calls
        call: SDPBackend(torch._fused_sdp_choice(q[None], kk[None], kk[None], *more, **kw)).name
        for call, kk, more, kw in [
            ("no mask", k4, (), {}),
            ("bool attn_mask", k4, (row_false,), {}),
            ("attn_mask and is_causal", k4, (custom, 0.0, True), {}),
            ("enable_gqa", k2, (), {"enable_gqa": True}),
        ]
    }

    # 6. cross-attention through chapter 3 MultiHeadAttention's weights
    ch03, ch03_weights = build(
        Ch03MHA, 123, d_in=3, d_out=4, context_length=6, dropout=0.0, num_heads=2
    )
    own = run(ch03, six)
    with torch.no_grad():
        Qx = ch03.W_query(six[:3])
        Kx = ch03.W_key(six)
        Vx = ch03.W_value(six)

        def split(t):  # (T, d_out) -> (1, H, T, hd)
            return t.view(1, t.shape[0], 2, 2).transpose(1, 2)

        cross = {
            "class": "MultiHeadAttention",
            "source": CH03_PATH,
            "args": {"d_in": 3, "d_out": 4, "context_length": 6, "dropout": 0.0, "num_heads": 2},
            "seed": 123,
            "weights": ch03_weights,
            "queries_from": "six_tokens[:3]",
            "keys_values_from": "six_tokens",
            "queries": nested(Qx),
            "keys": nested(Kx),
            "values": nested(Vx),
            "module_context_vecs_six_tokens": nested(own["context_vecs"]),
            "cases": [],
        }
        for mname, kw, allowed in [
            ("no_mask", {}, torch.ones(3, 6, dtype=torch.bool)),
            (
                "causal_lower_right",
                {"attn_mask": causal_lower_right(3, 6)},
                torch.ones(3, 6, dtype=torch.bool).tril(diagonal=3),
            ),
            ("is_causal_top_left", {"is_causal": True}, torch.ones(3, 6, dtype=torch.bool).tril()),
        ]:
            heads = scaled_dot_product_attention(split(Qx), split(Kx), split(Vx), **kw)
            joined = heads.transpose(1, 2).reshape(3, 4)
            out = ch03.out_proj(joined)
            s = (split(Qx) @ split(Kx).transpose(2, 3))[0]
            w = torch.softmax((s / math.sqrt(2)).masked_fill(~allowed, -math.inf), dim=-1)
            assert float((w @ split(Vx)[0] - heads[0]).abs().max()) < 1e-12
            c = {
                "mask": mname,
                "allowed": bools(allowed),
                "attn_scores": nested(s.masked_fill(~allowed, -math.inf)),
                "attn_weights": nested(w),
                "heads_context": nested(joined),
                "context_vecs": nested(out),
            }
            if mname == "is_causal_top_left":
                c["max_abs_diff_vs_module_rows_0_2"] = float(
                    (out - own["context_vecs"][:3]).abs().max()
                )
            cross["cases"].append(c)

    gqa_sd = [w["name"] for w in cases[0]["weights"]]
    mla_sd = [w["name"] for w in by["mla_h4_l6"]["weights"]]
    swa_sd = [w["name"] for w in by["swa_h4_w4"]["weights"]]
    assert gqa_sd == ["W_key.weight", "W_value.weight", "W_query.weight", "out_proj.weight"]
    assert mla_sd == [
        "W_query.weight",
        "W_DKV.weight",
        "W_UK.weight",
        "W_UV.weight",
        "out_proj.weight",
        "out_proj.bias",
    ]
    assert swa_sd == [
        "W_query.weight",
        "W_key.weight",
        "W_value.weight",
        "out_proj.weight",
        "out_proj.bias",
    ]
    notes = {
        "draws": "nn.Linear draws in construction order, weight then bias; state_dict order "
        "is construction order. SHA-256 digests are of each float32 tensor's bytes, "
        "row-major, shape (out_features, in_features).",
        "gqa": "GroupedQueryAttention(d_in, d_out, dropout, num_heads, num_kv_groups, dtype=None, "
        "qkv_bias=False), no context_length. Construction order W_key, W_value (both "
        "d_in -> num_kv_groups*head_dim), then W_query (d_in -> d_out), then out_proj "
        "(d_out -> d_out, bias=False: GQA's out_proj has NO bias, unlike chapter 3's). "
        "qkv_bias adds biases to W_key, W_value, W_query only. num_kv_groups is the NUMBER of "
        "KV heads; head h uses KV group h // (num_heads // num_kv_groups) (repeat_interleave). "
        "num_kv_groups == num_heads has the same layout as MHA but other weights, because of "
        "the construction order. The mask is always causal (q_pos < k_pos masked), with or "
        "without the cache; there is no argument to turn it off.",
        "mla": "MultiHeadLatentAttention(d_in, d_out, dropout, num_heads, qkv_bias=False, "
        "latent_dim=None). Construction order W_query (d_in -> d_out), W_DKV (d_in -> "
        "latent_dim), W_UK (latent_dim -> d_out), W_UV (latent_dim -> d_out), out_proj "
        "(d_out -> d_out, WITH bias). qkv_bias adds biases to W_query, W_DKV, W_UK and W_UV. "
        "latent_dim=None means max(16, d_out // 8) (16 for d_out=4: larger than d_out). "
        "keys = W_UK(latent), values = W_UV(latent), latent = W_DKV(x). Always causal.",
        "swa": "MultiHeadAttentionWithSWA(d_in, d_out, dropout, num_heads, qkv_bias=False, "
        "sliding_window_size=None). Construction order W_query, W_key, W_value, out_proj "
        "(with bias), as chapter 3, so the same seed gives chapter 3's weights. Query i sees "
        "key j iff 0 <= i - j < W: the W keys i-W+1 .. i, itself included (window 1 = only "
        "itself). Always causal; sliding_window_size=None (or >= T) is plain causal "
        "attention, equal to chapter 3's MultiHeadAttention output. A window of 0 would mask "
        "every cell (NaN rows); no case records it.",
        "kv_cache": "Feeding the tokens one at a time, 5 then one at a time, or in chunks of 3 "
        "reproduces the full causal output for the ch04/03 MultiHeadAttention, GQA, MLA and "
        "SWA classes (max_abs_diff_vs_full in each run; 0 or rounding). Cache lengths after "
        "each step: ch04/03 MHA, GQA (cache_k is (b, num_kv_groups, T, hd)) and SWA without a "
        "window keep every key; MLA keeps the latent c_kv (b, T, latent_dim) and re-projects "
        "all cached latents to keys/values at every step; SWA with a window keeps only the "
        "last W keys (cache_len = min(tokens so far, W)), but a step of n tokens attends to up "
        "to W + n - 1 keys (the W-1 cached older ones plus the chunk; keys_attended), so "
        "chunked prefill keeps every query's full window. The optimized ch04/03 class "
        "allocates its cache with torch.zeros(...) in the default dtype, float32, whatever the "
        "module's dtype: in float64 its first cached step fails (RuntimeError: expected scalar "
        "type Double but found Float), so it is recorded in float32 (module not converted, "
        "input rounded to float32; differences are float32 rounding). Its window_size is a "
        "rolling buffer of the last window_size keys; it refuses a chunk longer than "
        "window_size (AssertionError). Fed one token at a time with window_size=4 it equals "
        "SWA with window 4 (same weights; max_abs_diff_vs_swa_h4_w4_full); in chunks the "
        "earlier queries of a chunk lose older keys (query 3 sees only keys 2, 3 in the 3x4 "
        "run); its non-cached forward ignores window_size (plain causal).",
        "sdpa": "torch.nn.functional.scaled_dot_product_attention: a bool attn_mask is True = "
        "TAKES PART (the book's mask_bool is True = masked); a float mask is added to the "
        "scaled scores; default scale 1/sqrt(E); enable_gqa=True repeats each KV head over "
        "num_heads // kv_heads consecutive query heads (repeat_interleave). is_causal=True "
        "with T_q != T_k is TOP-LEFT aligned (query i sees keys 0..i); "
        "causal_lower_right(T_q, T_k) is bottom-right (query i sees keys 0..i + T_k - T_q). "
        "A row whose cells are all masked (bool all False, or float all -inf) comes out as "
        "ZEROS, not NaN, on this CPU, with both the default dispatch and the math backend "
        "(see sdpa_backends). attn_mask together with is_causal=True: the default CPU dispatch "
        "(FLASH_ATTENTION, the CPU flash kernel, for these float64 inputs: "
        "sdpa_backends.default_choice) accepts it and applies both (equal to tril & mask); the "
        "math backend refuses it with RuntimeError.",
        "cross_attention": "Chapter 3 MultiHeadAttention's W_query applied to the first 3 "
        "tokens, W_key/W_value to all six, heads split as the book does, SDPA, heads joined, "
        "out_proj. With is_causal=True (top-left) the result equals the module's own rows 0-2 "
        "(max_abs_diff_vs_module_rows_0_2).",
    }
    doc = {
        "source": f"torch {torch.__version__}",
        "script": "tests/data/record_torch_beyond.py",
        "book": {
            "repo": BOOK_REPO,
            "commit": BOOK_COMMIT,
            "files_sha256": BOOK_FILES,
            "classes_source_sha256": SOURCES,
        },
        "conventions": "float32 construction after torch.manual_seed(seed), .double(), eval, "
        "float64 forward with batch 1. queries/keys/values are the projections before the head "
        "split ((T, width)); attn_scores are raw q.k (H, T, T), unscaled, null where masked; "
        "attn_weights are after the softmax of scores / sqrt(head_dim), 0.0 in masked cells "
        "(null only across a row where every cell is masked: the SDPA cases' rows whose "
        "softmax is NaN); heads_context is "
        "out_proj's input; context_vecs the output. visible_keys[i] lists the key columns "
        "query i sees.",
        "notes": notes,
        "inputs": {"six_tokens": nested(six), "t12": nested(t12)},
        "cases": cases,
        "kv_cache_decoding": decode,
        "sdpa": {
            "seed": 11,
            "draws": "torch.manual_seed(11); q = randn(4, 6, 3); k4 = randn(4, 6, 3); "
            "v4 = randn(4, 6, 3); k2 = randn(2, 6, 3); v2 = randn(2, 6, 3) (float64, in "
            "this order); each call is on (1, H, T, d) tensors",
            "q": nested(q),
            "k4": nested(k4),
            "v4": nested(v4),
            "k2": nested(k2),
            "v2": nested(v2),
            "masks": {
                "bool_tt": bools(mask_tt),
                "bool_htt": bools(mask_htt),
                "float_mask": nested(float_mask),
                "custom": bools(custom),
                "row_false": bools(row_false),
                "float_row_inf": nested(float_row_inf),
            },
            "cases": sdpa,
        },
        "sdpa_backends": backends,
        "cross_attention": cross,
    }
    sys.stdout.write(dumps(doc) + "\n")


def dumps(obj, indent=0):
    """JSON with one space of indent per level and every list of numbers on one line."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, allow_nan=False)
        items = [pad + dumps(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(obj, allow_nan=False)


if __name__ == "__main__":
    main()

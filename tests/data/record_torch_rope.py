"""Records rotary position embeddings (RoPE) and attention score modifiers as the book's
code and its references compute them, for tests/data/torch_rope.json (torch 2.13.0+cpu).

Run where torch is installed, with a checkout of rasbt/LLMs-from-scratch at commit
28c65cdfbc3338e2e040016eea4b7fdf556e4d57 (the commit of book_ch03.json):

    python tests/data/record_torch_rope.py /path/to/LLMs-from-scratch \\
        [--alibi /path/to/attention_with_linear_biases] [--transformers] > tests/data/torch_rope.json

--alibi names a checkout of ofirpress/attention_with_linear_biases (commit a35aaca1, the one
Hugging Face's BLOOM code cites): the ALiBi slopes are then also taken from the paper's own
`get_slopes` (without it, from the closed form 2^(-8(i+1)/n), which differs from the paper's
Python floats in the last bit for 12 heads). --transformers imports Hugging Face transformers 5.24.0 (it must be importable,
e.g. from PYTHONPATH) and runs its reference functions on the same inputs (`hf_checks`).
The committed JSON was recorded with both.

Nothing public is copied into this file: each function or class of the book is read, verbatim,
from the checkout (every file is checked against the SHA-256 below, so another commit is
refused; notebooks' code cells and the fenced Python blocks of a README are parsed, and only
the named top-level definitions are executed, with `torch`, `nn` and `math` in scope). The same
holds for the ALiBi paper's `get_slopes`. Intermediates are recorded from outside, without
changing a line: forward hooks on the layers, a recording wrapper put in the executed code's
namespace in place of `apply_rope` (it calls the book's function and keeps its input and
output), and a TorchFunctionMode that keeps the results of chosen torch calls (torch.cos's
argument gives the angles; masked_fill's result the raw scores; softmax's result the weights).

The score modifiers (soft-capping, ALiBi, attention sinks, QK-norm, scale) are small formulas
written out in this file (`attend`), each checked against the reference implementation it
describes when --transformers is given.

Conventions (as tests/data/record_torch_beyond.py): the six tokens are the book's decimal
literals as float64; the second input is torch.manual_seed(7); torch.randn(12, 8, float64).
Modules: torch.manual_seed(seed), the class in float32, .double(), eval, batch of 1, float64
input. Every tensor is written with full float64 precision (float32 values exactly, as their
float64 value); masked cells are null.
"""

import argparse
import ast
import hashlib
import json
import math
import pathlib
import re
import sys
import textwrap
import types

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

BOOK_REPO = "rasbt/LLMs-from-scratch"
BOOK_COMMIT = "28c65cdfbc3338e2e040016eea4b7fdf556e4d57"
BOOK_FILES = {  # SHA-256 of each file at BOOK_COMMIT
    "pkg/llms_from_scratch/llama3.py": "ed93a70d644985c146190e56ef565ce9e766e540b69d4eefde5d3cbe1ee9cfc7",
    "pkg/llms_from_scratch/kv_cache/llama3.py": "f4bcc1ceb58be753f2590eabfeca7543d19bd28618906d44d30326d7069dc62d",
    "pkg/llms_from_scratch/qwen3.py": "b0f65a6b11245c42cf35b4f56c9032766ecd9305ce20cd8e24ba96d2f59b00e0",
    "pkg/llms_from_scratch/kv_cache/qwen3.py": "874b21f6b41d493ce039dc1c5fbffb6140bd9169feb715f7bb4931e73da99e66",
    "pkg/llms_from_scratch/ch03.py": "54d6710139851f5e1b25a074cfdd5b38e2bd70ec923bdf0984f9fc68ad7c7374",
    "ch05/07_gpt_to_llama/standalone-llama32.ipynb": "3610359a446b979bb679daa0238512d231e62972f7ebe0f51000bac7b6d373c1",
    "ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb": "196fae5d32de4bce1afe252196763437c22358cd3f37755e14ee044546343600",
    "ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb": "b03c639a8277d310d3dfccc2dccfcbfcb66669c8d7b8184b7f0d291e6e81ada6",
    "ch05/15_tiny-aya/standalone-tiny-aya.ipynb": "038c89d172748e3a0ebd5adc7e32cafeb90de5ef75dc4745592e203f28d4720b",
    "ch05/15_tiny-aya/standalone-tiny-aya-plus-kv-cache.ipynb": "188019cecd5fe19c44f601e3c7033fbab9898a2561c131987f7e132b24684d48",
    "ch05/16_qwen3.5/qwen3.5.ipynb": "6e2a84f99634e0b0cc529e5df36895fee13bdd796ff70ab32dd8faeebd17199d",
    "ch05/17_gemma4/standalone-gemma4.ipynb": "8614c41d71eb1e19fa0a556ba1a9e63a3620094e3c6230598d874ab1a720e351",
    "ch04/08_deltanet/README.md": "f96cb4607dba889551288dcfe4bd306ec5fc7ee0a042aff3fe60872d7e1be3bb",
}
ALIBI_REPO = "ofirpress/attention_with_linear_biases"
ALIBI_COMMIT = "a35aaca144e0eb6b789dfcb46784c4b8e31b7983"
ALIBI_FILE = "fairseq/models/transformer.py"
ALIBI_SHA256 = "faaf4b53c07fa69dec09a6b3faff279b72c3bc5fb5b018629a95471337dc0e87"
HF_VERSION = "5.24.0"
HF_FILES = {  # SHA-256 of each module file of transformers 5.24.0 (the PyPI wheel) that is used
    "modeling_rope_utils.py": "2563c5391dd01aeebed93f253c07a62cc0941f8137e3cd0c6e95646694d0b0f9",
    "models/llama/modeling_llama.py": "372c7cbc56a0d265b43ab5acf96b0e3bc4cdd01010ef64106558206e51258432",
    "models/qwen3_next/modeling_qwen3_next.py": "c9b4f565a72bd1ce838542fefdd00787bfb1911caae018a000b61927c4b68a86",
    "models/glm/modeling_glm.py": "d96e08b8319e3ea4c80bc78e5869fdafa86b63cc0f1bfe637f7b2c977e082310",
    "models/cohere/modeling_cohere.py": "34864b8dc73b83712af3e4801a5906df097072960408f95c571fa50363d53bef",
    "models/gemma2/modeling_gemma2.py": "4fa43309bff79ffb5f52d22631b8e373b824a40ca3f2b4a4378c9f5e68ec70b8",
    "models/gpt_oss/modeling_gpt_oss.py": "5ab213bfd382d77832a565f65626ac7f9fe989a793b17c39359153e7dc6a0848",
    "models/bloom/modeling_bloom.py": "0a14634a29150cf2950865b31e3b0f0f1d6ef61ffc4e68a0f49ac3e8069c475d",
    "models/qwen3/modeling_qwen3.py": "49acd3901cf143ef59bdedecde6dde2389b3b2b36e82edfda7d0bd8e2f2b14d4",
}
# Hugging Face's snapshots of inverse frequencies, tests/utils/test_modeling_rope_utils.py of
# huggingface/transformers (commit 087e800256786f75d7392f947c17dfb5fac2dc3b), written there with
# 5 significant digits and compared with torch.testing.assert_close (float32: rtol 1.3e-6,
# atol 1e-5). Config: LlamaConfig() defaults, hidden_size 4096, num_attention_heads 32
# (head_dim 128), rope_theta 10000.0.
HF_SNAPSHOT_SOURCE = {
    "repo": "huggingface/transformers",
    "path": "tests/utils/test_modeling_rope_utils.py",
    "commit": "087e800256786f75d7392f947c17dfb5fac2dc3b",
}
# fmt: off
HF_DEFAULT_EXPECTED = [  # test_default_rope_numerically: EXPECTED_INV_FREQ
    1.0000e00, 8.6596e-01, 7.4989e-01, 6.4938e-01, 5.6234e-01, 4.8697e-01,
    4.2170e-01, 3.6517e-01, 3.1623e-01, 2.7384e-01, 2.3714e-01, 2.0535e-01,
    1.7783e-01, 1.5399e-01, 1.3335e-01, 1.1548e-01, 1.0000e-01, 8.6596e-02,
    7.4989e-02, 6.4938e-02, 5.6234e-02, 4.8697e-02, 4.2170e-02, 3.6517e-02,
    3.1623e-02, 2.7384e-02, 2.3714e-02, 2.0535e-02, 1.7783e-02, 1.5399e-02,
    1.3335e-02, 1.1548e-02, 1.0000e-02, 8.6596e-03, 7.4989e-03, 6.4938e-03,
    5.6234e-03, 4.8697e-03, 4.2170e-03, 3.6517e-03, 3.1623e-03, 2.7384e-03,
    2.3714e-03, 2.0535e-03, 1.7783e-03, 1.5399e-03, 1.3335e-03, 1.1548e-03,
    1.0000e-03, 8.6596e-04, 7.4989e-04, 6.4938e-04, 5.6234e-04, 4.8697e-04,
    4.2170e-04, 3.6517e-04, 3.1623e-04, 2.7384e-04, 2.3714e-04, 2.0535e-04,
    1.7783e-04, 1.5399e-04, 1.3335e-04, 1.1548e-04,
]
# fmt: on
# fmt: off
HF_LLAMA3_EXPECTED = [  # test_llama3_rope_numerically: EXPECTED_INV_FREQ ("Check 3")
    1.0000e00, 8.6596e-01, 7.4989e-01, 6.4938e-01, 5.6234e-01, 4.8697e-01,
    4.2170e-01, 3.6517e-01, 3.1623e-01, 2.7384e-01, 2.3714e-01, 2.0535e-01,
    1.7783e-01, 1.5399e-01, 1.3335e-01, 1.1548e-01, 1.0000e-01, 8.6596e-02,
    7.4989e-02, 6.4938e-02, 5.6234e-02, 4.8697e-02, 4.2170e-02, 3.6517e-02,
    3.1623e-02, 2.7384e-02, 2.3714e-02, 2.0535e-02, 1.7783e-02, 1.5399e-02,
    1.3335e-02, 1.0730e-02, 7.7785e-03, 5.6009e-03, 3.9991e-03, 2.8248e-03,
    1.9675e-03, 1.3449e-03, 8.9549e-04, 5.7363e-04, 3.4539e-04, 2.7384e-04,
    2.3714e-04, 2.0535e-04, 1.7783e-04, 1.5399e-04, 1.3335e-04, 1.1548e-04,
    1.0000e-04, 8.6596e-05, 7.4989e-05, 6.4938e-05, 5.6234e-05, 4.8697e-05,
    4.2170e-05, 3.6517e-05, 3.1623e-05, 2.7384e-05, 2.3714e-05, 2.0535e-05,
    1.7783e-05, 1.5399e-05, 1.3335e-05, 1.1548e-05,
]
# fmt: on
LLAMA31_FREQ = {  # Llama 3.1: the book's LLAMA31_CONFIG_8B (converting-llama2-to-llama3.ipynb)
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_context_length": 8192,
}
LLAMA32_FREQ = {**LLAMA31_FREQ, "factor": 32.0}  # the book's LLAMA32_CONFIG_1B / 3B

SOURCES = {}  # "path:name" -> SHA-256 of the definition's source text as executed


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def checked_text(root, path, pinned):
    raw = (root / path).read_bytes()
    if sha256(raw) != pinned:
        sys.exit(f"{path}: SHA-256 {sha256(raw)} is not the pinned file's {pinned}")
    return raw.decode("utf-8")


def python_units(path, text):
    """The pieces of Python source in a file: the file, a notebook's code cells, or the
    fenced ```python blocks of a Markdown file."""
    if path.endswith(".py"):
        yield text
    elif path.endswith(".ipynb"):
        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code":
                src = cell["source"]
                yield "".join(src) if isinstance(src, list) else src
    elif path.endswith(".md"):
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            yield m.group(1)
    else:
        raise ValueError(path)


def book_defs(root, path, names):
    """A namespace holding the top-level functions/classes `names` of a book file, each defined
    by executing its verbatim source (all in one namespace, so they find each other)."""
    text = checked_text(root, path, BOOK_FILES[path])
    found = {}
    for unit in python_units(path, text):
        try:
            tree = ast.parse(unit)
        except SyntaxError:  # notebook cells with shell or magic lines
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                assert node.name not in found, (path, node.name)
                found[node.name] = ast.get_source_segment(unit, node)
    namespace = {"torch": torch, "nn": nn, "math": math, "__name__": "book"}
    for name in names:
        source = found[name]
        SOURCES[f"{path}:{name}"] = sha256(source.encode("utf-8"))
        exec(compile(source, f"{path}:{name}", "exec"), namespace)
    namespace["__sources__"] = found
    return namespace


def alibi_get_slopes(checkout):
    """The ALiBi paper's get_slopes (nested in a method of fairseq's TransformerDecoder),
    executed verbatim (dedented) from the checkout."""
    text = checked_text(checkout, ALIBI_FILE, ALIBI_SHA256)
    nodes = [
        n
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.FunctionDef) and n.name == "get_slopes"
    ]
    assert len(nodes) == 1
    source = textwrap.dedent(ast.get_source_segment(text, nodes[0], padded=True))
    SOURCES[f"{ALIBI_REPO}@{ALIBI_COMMIT[:8]}:{ALIBI_FILE}:get_slopes"] = sha256(
        source.encode("utf-8")
    )
    namespace = {"math": math}
    exec(compile(source, ALIBI_FILE, "exec"), namespace)
    return namespace["get_slopes"]


class Calls(TorchFunctionMode):
    """Keeps (name, args, result) of every torch call whose __name__ is in `names`."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)
        self.calls = []

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if name in self.names:
            kept = out.detach().clone() if isinstance(out, torch.Tensor) else out
            self.calls.append((name, args, kept))
        return out

    def of(self, name):
        return [c for c in self.calls if c[0] == name]


def nested(t):
    """A tensor as nested lists of floats, -inf as null."""
    if t.dim() == 0:
        v = float(t)
        assert not math.isnan(v)
        return None if v == -math.inf else v
    return [nested(row) for row in t]


def weights_of(module):
    """state_dict order, shapes, SHA-256 of the float32 bytes (row-major), before .double()."""
    out = []
    for name, tensor in module.state_dict().items():
        assert tensor.dtype == torch.float32
        out.append(
            {
                "name": name,
                "shape": list(tensor.shape),
                "sha256_float32": sha256(tensor.detach().contiguous().numpy().tobytes()),
            }
        )
    return out


def build(cls, seed, **kwargs):
    torch.manual_seed(seed)
    module = cls(**kwargs)
    weights = weights_of(module)
    module = module.double()
    module.eval()
    return module, weights


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def max_diff(a, b):
    return float((a.double() - b.double()).abs().max())


# --------------------------------------------------------------------------------------------
# 1. RoPE parameters


def rope_tables(fn, context_length, **kwargs):
    """cos, sin and what compute_rope_params computed on the way: the angles (torch.cos's
    argument), inv_freq (= angles at position 1, exact), and with freq_config the torch.where
    conditions and the wavelengths."""
    with Calls({"cos", "where", "__rdiv__"}) as calls:
        cos, sin = fn(context_length=context_length, **kwargs)
    angles = calls.of("cos")[0][1][0].detach().clone()
    half = angles.shape[1] // 2
    assert torch.equal(angles[:, :half], angles[:, half:])  # split-halves layout
    out = {"cos": cos, "sin": sin, "angles_full": angles}
    wheres = calls.of("where")
    if wheres:
        assert len(wheres) == 2
        out["low_band"] = wheres[0][1][0]  # wavelen > low_freq_wavelen: inv_freq / factor
        out["medium_band"] = wheres[1][1][0]  # smoothed
        out["smoothed_inv_freq"] = wheres[1][1][1]
        out["wavelen"] = calls.of("__rdiv__")[1][2]  # 2 * pi / inv_freq
    return out


def rope_params_case(
    name, source, fn, head_dim, theta, context_length, freq_config=None, dtype=None
):
    kwargs = {"head_dim": head_dim, "theta_base": theta}
    if freq_config is not None:
        kwargs["freq_config"] = freq_config
    if dtype is not None:
        kwargs["dtype"] = dtype
    r = rope_tables(fn, context_length, **kwargs)
    angles = r["angles_full"][:, : head_dim // 2]
    inv_freq = angles[1]
    case = {
        "name": name,
        "source": source,
        "call": {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in kwargs.items()}
        | {"context_length": context_length},
        "inv_freq_dtype": "float32",
        "angles_dtype": str(angles.dtype),
        "cos_dtype": str(r["cos"].dtype),
        "inv_freq": nested(inv_freq),
        "angles": nested(angles),
        "cos": nested(r["cos"]),
        "sin": nested(r["sin"]),
    }
    if freq_config is not None:
        band = [
            "low (inv_freq / factor)"
            if bool(r["low_band"][i])
            else ("medium (smoothed)" if bool(r["medium_band"][i]) else "high (unchanged)")
            for i in range(head_dim // 2)
        ]
        case["band"] = band
        case["wavelen"] = nested(r["wavelen"])
        case["smoothed_inv_freq"] = nested(r["smoothed_inv_freq"])
    return case, r


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("book", type=pathlib.Path)
    parser.add_argument("--alibi", type=pathlib.Path)
    parser.add_argument("--transformers", action="store_true")
    args = parser.parse_args()
    root = args.book

    LLAMA = "pkg/llms_from_scratch/llama3.py"
    LLAMA_KV = "pkg/llms_from_scratch/kv_cache/llama3.py"
    QWEN = "pkg/llms_from_scratch/qwen3.py"
    QWEN_KV = "pkg/llms_from_scratch/kv_cache/qwen3.py"
    CH03 = "pkg/llms_from_scratch/ch03.py"
    NB_L32 = "ch05/07_gpt_to_llama/standalone-llama32.ipynb"
    NB_L2L3 = "ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb"
    NB_G2L2 = "ch05/07_gpt_to_llama/converting-gpt-to-llama2.ipynb"
    NB_AYA = "ch05/15_tiny-aya/standalone-tiny-aya.ipynb"
    NB_AYA_KV = "ch05/15_tiny-aya/standalone-tiny-aya-plus-kv-cache.ipynb"
    NB_Q35 = "ch05/16_qwen3.5/qwen3.5.ipynb"
    NB_G4 = "ch05/17_gemma4/standalone-gemma4.ipynb"
    DELTANET = "ch04/08_deltanet/README.md"

    llama = book_defs(root, LLAMA, ["compute_rope_params", "apply_rope", "GroupedQueryAttention"])
    llama_kv = book_defs(
        root, LLAMA_KV, ["compute_rope_params", "apply_rope", "GroupedQueryAttention"]
    )
    qwen = book_defs(
        root, QWEN, ["compute_rope_params", "apply_rope", "RMSNorm", "GroupedQueryAttention"]
    )
    qwen_kv = book_defs(
        root, QWEN_KV, ["compute_rope_params", "apply_rope", "RMSNorm", "GroupedQueryAttention"]
    )
    ch03 = book_defs(root, CH03, ["MultiHeadAttention"])
    nb_l32 = book_defs(root, NB_L32, ["compute_rope_params", "apply_rope"])
    nb_l2l3 = book_defs(root, NB_L2L3, ["precompute_rope_params"])
    nb_g2l2 = book_defs(root, NB_G2L2, ["precompute_rope_params", "compute_rope", "permute"])
    aya = book_defs(root, NB_AYA, ["compute_rope_params", "apply_rope"])
    aya_kv = book_defs(root, NB_AYA_KV, ["compute_rope_params", "apply_rope"])
    q35 = book_defs(root, NB_Q35, ["compute_rope_params", "apply_rope", "RMSNorm"])
    g4 = book_defs(root, NB_G4, ["compute_rope_params", "apply_rope", "Gemma4RMSNorm"])
    gated = book_defs(root, DELTANET, ["GatedMultiHeadAttention"])

    # which definitions are the same code (equal syntax trees) in different files
    def ast_equal(a, name_a, b, name_b=None):
        ta = ast.parse(a["__sources__"][name_a]).body[0]
        tb = ast.parse(b["__sources__"][name_b or name_a]).body[0]
        tb.name = ta.name
        return ast.dump(ta) == ast.dump(tb)

    same = {
        "compute_rope_params: llama3.py == kv_cache/llama3.py": ast_equal(
            llama, "compute_rope_params", llama_kv
        ),
        "compute_rope_params: llama3.py == standalone-llama32.ipynb": ast_equal(
            llama, "compute_rope_params", nb_l32
        ),
        "apply_rope: llama3.py == standalone-llama32.ipynb": ast_equal(llama, "apply_rope", nb_l32),
        "apply_rope: llama3.py == qwen3.py": ast_equal(llama, "apply_rope", qwen),
        "compute_rope_params: qwen3.py == kv_cache/qwen3.py": ast_equal(
            qwen, "compute_rope_params", qwen_kv
        ),
        "apply_rope: kv_cache/llama3.py == kv_cache/qwen3.py": ast_equal(
            llama_kv, "apply_rope", qwen_kv
        ),
        "GroupedQueryAttention.__init__: llama3.py == kv_cache/llama3.py": ast.dump(
            ast.parse(llama["__sources__"]["GroupedQueryAttention"]).body[0].body[0]
        )
        == ast.dump(ast.parse(llama_kv["__sources__"]["GroupedQueryAttention"]).body[0].body[0]),
        "GroupedQueryAttention.__init__: qwen3.py == kv_cache/qwen3.py": ast.dump(
            ast.parse(qwen["__sources__"]["GroupedQueryAttention"]).body[0].body[0]
        )
        == ast.dump(ast.parse(qwen_kv["__sources__"]["GroupedQueryAttention"]).body[0].body[0]),
        "RMSNorm: qwen3.py == kv_cache/qwen3.py": ast_equal(qwen, "RMSNorm", qwen_kv),
        "compute_rope_params: tiny-aya == tiny-aya-plus-kv-cache": ast_equal(
            aya, "compute_rope_params", aya_kv
        ),
        "compute_rope: converting-gpt-to-llama2 == apply_rope: llama3.py (renamed)": ast_equal(
            llama, "apply_rope", nb_g2l2, "compute_rope"
        ),
    }

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

    # ---------------------------------------------------------------- 1. RoPE parameters
    rope_params = []
    tables = {}  # (head_dim, theta, freq name, dtype name) -> rope_tables result
    for hd in (4, 8, 16):
        for theta in (10_000, 500_000):
            for dname, dtype in (("float32", None), ("float64", torch.float64)):
                case, r = rope_params_case(
                    f"hd{hd}_theta{theta}_{dname}",
                    LLAMA,
                    llama["compute_rope_params"],
                    hd,
                    theta,
                    12,
                    dtype=dtype,
                )
                rope_params.append(case)
                tables[(hd, theta, None, dname)] = r
    for hd in (64, 128):
        for fname, freq in (("llama31", LLAMA31_FREQ), ("llama32", LLAMA32_FREQ)):
            dtypes = [("float32", None)] + (
                [("float64", torch.float64)] if (hd, fname) == (64, "llama31") else []
            )
            for dname, dtype in dtypes:
                case, r = rope_params_case(
                    f"hd{hd}_theta500000_{fname}_{dname}",
                    LLAMA,
                    llama["compute_rope_params"],
                    hd,
                    500_000,
                    12,
                    freq_config=freq,
                    dtype=dtype,
                )
                plain = rope_tables(
                    llama["compute_rope_params"], 12, head_dim=hd, theta_base=500_000
                )["angles_full"][1, : hd // 2]
                case["inv_freq_without_freq_config"] = nested(plain)
                case["ratio_unscaled_over_scaled"] = nested(
                    plain.double() / r["angles_full"][1, : hd // 2].double()
                )
                rope_params.append(case)
                tables[(hd, 500_000, fname, dname)] = r
    # the same tables from the other copies of the code
    variants = []
    for hd, theta, freq, label in [
        (8, 500_000, None, "hd8_theta500000"),
        (64, 500_000, LLAMA31_FREQ, "hd64_theta500000_llama31"),
    ]:
        ref = tables[(hd, theta, None if freq is None else "llama31", "float32")]
        for src, fn, extra in [
            (LLAMA_KV, llama_kv["compute_rope_params"], {"freq_config": freq}),
            (NB_L32, nb_l32["compute_rope_params"], {"freq_config": freq}),
            (NB_L2L3, nb_l2l3["precompute_rope_params"], {"freq_config": freq}),
        ] + (
            [
                (QWEN, qwen["compute_rope_params"], {}),
                (NB_G2L2, nb_g2l2["precompute_rope_params"], {}),
                (NB_Q35, q35["compute_rope_params"], {}),
                (NB_G4, g4["compute_rope_params"], {}),
            ]
            if freq is None
            else []
        ):
            kw = {k: v for k, v in extra.items() if v is not None}
            cos, sin = fn(head_dim=hd, theta_base=theta, context_length=12, **kw)
            variants.append(
                {
                    "case": label,
                    "source": src,
                    "function": fn.__name__,
                    "cos_dtype": str(cos.dtype),
                    "equal_to_llama3_py_float32": bool(
                        torch.equal(cos, ref["cos"]) and torch.equal(sin, ref["sin"])
                    ),
                    "max_abs_diff": max(max_diff(cos, ref["cos"]), max_diff(sin, ref["sin"])),
                }
            )
    # float32 trigonometry: torch's float32 cos/sin against the correctly rounded value
    trig = {}
    for key, r in tables.items():
        if key[3] != "float32":
            continue
        a = r["angles_full"]
        cr_cos = torch.cos(a.double()).float()
        cr_sin = torch.sin(a.double()).float()
        trig["_".join(str(k) for k in key[:3] if k is not None)] = {
            "cells": a.numel(),
            "cos_cells_not_correctly_rounded": int((r["cos"] != cr_cos).sum()),
            "sin_cells_not_correctly_rounded": int((r["sin"] != cr_sin).sum()),
            "max_abs_diff_vs_correctly_rounded": max(
                max_diff(r["cos"], cr_cos), max_diff(r["sin"], cr_sin)
            ),
        }
    # far positions: float32 angles (position * inv_freq rounded to float32) vs float64 angles
    far = []
    pos_rows = [100, 1000, 4095, 8191]
    for dname, dtype in (("float32", None), ("float64", torch.float64)):
        kw = {"dtype": dtype} if dtype is not None else {}
        r = rope_tables(
            llama["compute_rope_params"],
            8192,
            head_dim=64,
            theta_base=500_000,
            freq_config=LLAMA31_FREQ,
            **kw,
        )
        far.append(
            {
                "call": {
                    "head_dim": 64,
                    "theta_base": 500_000,
                    "freq_config": LLAMA31_FREQ,
                    "context_length": 8192,
                    "dtype": dname if dtype is not None else "default (float32)",
                },
                "positions": pos_rows,
                "angles": nested(r["angles_full"][pos_rows, :32]),
                "cos": nested(r["cos"][pos_rows]),
                "sin": nested(r["sin"][pos_rows]),
            }
        )
    far_note = (
        "With the default dtype the angle position*inv_freq is a float32 product; with "
        "dtype=torch.float64 it is the float64 product of the same float32 inv_freq. At position "
        "8191 the cos tables differ by up to "
        + repr(max_diff(torch.tensor(far[0]["cos"]), torch.tensor(far[1]["cos"])))
    )

    # Hugging Face snapshots through the book's function
    def book_inv_freq(head_dim, theta, freq=None):
        kw = {"freq_config": freq} if freq else {}
        return rope_tables(
            llama["compute_rope_params"], 2, head_dim=head_dim, theta_base=theta, **kw
        )["angles_full"][1, : head_dim // 2]

    hf_freq = {
        "factor": 10.0,
        "low_freq_factor": 1,
        "high_freq_factor": 4,
        "original_context_length": 2048,
    }
    snapshots = []
    for test, expected, freq in [
        ("test_default_rope_numerically", HF_DEFAULT_EXPECTED, None),
        ("test_llama3_rope_numerically", HF_LLAMA3_EXPECTED, hf_freq),
    ]:
        mine = book_inv_freq(128, 10_000.0, freq)
        exp = torch.tensor(expected, dtype=torch.float32)
        try:
            torch.testing.assert_close(mine, exp)
            close = True
        except AssertionError:
            close = False
        snapshots.append(
            {
                "test": test,
                **HF_SNAPSHOT_SOURCE,
                "hf_config": "LlamaConfig(): hidden_size 4096, num_attention_heads 32 (head_dim 128), "
                "rope_theta 10000.0"
                + (
                    "; rope_scaling {rope_type: llama3, factor: 10.0, "
                    "original_max_position_embeddings: 2048, low_freq_factor: 1, high_freq_factor: 4}"
                    if freq
                    else "; no scaling"
                ),
                "book_call": {"head_dim": 128, "theta_base": 10000.0, "freq_config": freq},
                "expected_inv_freq_as_written": expected,
                "book_inv_freq": nested(mine),
                "max_abs_diff": max_diff(mine, exp),
                "max_rel_diff": float(((mine.double() - exp.double()) / exp.double()).abs().max()),
                "assert_close_float32_defaults_passes": close,
            }
        )
        assert close, test

    # ------------------------------------------------------ 2. split-halves vs interleaved
    torch.manual_seed(3)
    xq, xk = {}, {}
    for hd in (4, 8, 16):
        xq[hd] = torch.randn(2, 12, hd, dtype=torch.float64)
        xk[hd] = torch.randn(2, 12, hd, dtype=torch.float64)

    def evens_then_odds(n):
        return list(range(0, n, 2)) + list(range(1, n, 2))

    def interleaved_float64(x, cos_split, sin_split):
        """Interleaved RoPE (pairs 2i, 2i+1) in float64, by the book's split-halves apply_rope on
        the dims reordered evens-then-odds and put back: the same products and sums per cell."""
        n = x.shape[-1]
        P = evens_then_odds(n)
        inv = [P.index(i) for i in range(n)]
        y = llama["apply_rope"](x[..., P][None], cos_split, sin_split)[0]
        return y[..., inv]

    layouts = []
    for hd in (4, 8, 16):
        for theta in (10_000, 500_000):
            split_tab = tables[(hd, theta, None, "float32")]
            cos_i, sin_i = aya["compute_rope_params"](
                head_dim=hd, theta_base=theta, context_length=12
            )
            with Calls({"cos"}) as c:
                aya["compute_rope_params"](head_dim=hd, theta_base=theta, context_length=12)
            angles_i = c.of("cos")[0][1][0]
            q, k = xq[hd], xk[hd]
            q_split = llama["apply_rope"](q[None], split_tab["cos"], split_tab["sin"])[0]
            k_split = llama["apply_rope"](k[None], split_tab["cos"], split_tab["sin"])[0]
            q_int_book = aya["apply_rope"](q[None], cos_i, sin_i)[0]
            k_int_book = aya["apply_rope"](k[None], cos_i, sin_i)[0]
            q_int = interleaved_float64(q, split_tab["cos"], split_tab["sin"])
            k_int = interleaved_float64(k, split_tab["cos"], split_tab["sin"])
            # the interleaved tables are the split tables' columns in another order
            order = [i // 2 for i in range(hd)]
            assert torch.equal(cos_i, split_tab["cos"][:, order])
            P = evens_then_odds(hd)
            s_split = q_split @ k_split.transpose(1, 2)
            s_int = q_int @ k_int.transpose(1, 2)
            q_sp = llama["apply_rope"](q[..., P][None], split_tab["cos"], split_tab["sin"])[0]
            k_sp = llama["apply_rope"](k[..., P][None], split_tab["cos"], split_tab["sin"])[0]
            s_perm = q_sp @ k_sp.transpose(1, 2)
            layouts.append(
                {
                    "name": f"hd{hd}_theta{theta}",
                    "head_dim": hd,
                    "theta_base": theta,
                    "q": f"rope_inputs.q_hd{hd}",
                    "k": f"rope_inputs.k_hd{hd}",
                    "split_cos": f"rope_params hd{hd}_theta{theta}_float32 cos",
                    "interleaved_angles": nested(angles_i),
                    "interleaved_cos": nested(cos_i),
                    "interleaved_sin": nested(sin_i),
                    "q_split": nested(q_split),
                    "k_split": nested(k_split),
                    "q_interleaved_book": nested(q_int_book),
                    "q_interleaved_book_dtype": str(q_int_book.dtype),
                    "k_interleaved_book": nested(k_int_book),
                    "q_interleaved_float64": nested(q_int),
                    "k_interleaved_float64": nested(k_int),
                    "max_abs_diff_book_interleaved_vs_float64": max(
                        max_diff(q_int_book, q_int), max_diff(k_int_book, k_int)
                    ),
                    "max_abs_diff_split_vs_interleaved_same_q": max_diff(q_split, q_int),
                    "scores_split": nested(s_split),
                    "scores_interleaved": nested(s_int),
                    "max_abs_diff_scores_split_vs_interleaved": max_diff(s_split, s_int),
                    "max_abs_diff_scores_interleaved_vs_split_on_evens_then_odds": max_diff(
                        s_int, s_perm
                    ),
                    "split_on_evens_then_odds_equals_interleaved_reordered": bool(
                        torch.equal(q_sp, q_int[..., P]) and torch.equal(k_sp, k_int[..., P])
                    ),
                }
            )
            assert layouts[-1]["split_on_evens_then_odds_equals_interleaved_reordered"]
            assert (
                layouts[-1]["max_abs_diff_scores_interleaved_vs_split_on_evens_then_odds"] < 1e-12
            )
            assert layouts[-1]["max_abs_diff_split_vs_interleaved_same_q"] > 1e-3
    # the book's permute (converting-gpt-to-llama2): Meta's pair-adjacent Q/K rows -> split halves
    eye = torch.arange(16, dtype=torch.float64)[:, None].expand(16, 3).clone()
    perm_rows = nb_g2l2["permute"](eye, 2, 16, 3)[:, 0].long().tolist()
    assert perm_rows == evens_then_odds(8) + [8 + i for i in evens_then_odds(8)]

    # ----------------------------------------------------------- 3. partial rotation
    partial = []
    for hd, factor in ((8, 0.5), (16, 0.25)):
        for theta in (10_000, 1_000_000):
            q = xq[hd]
            with Calls({"cos"}) as c:
                cos_p, sin_p = q35["compute_rope_params"](
                    head_dim=hd, theta_base=theta, context_length=12, partial_rotary_factor=factor
                )
            ang_p = c.of("cos")[0][1][0]
            rot = cos_p.shape[-1]
            out_q35 = q35["apply_rope"](q[None], cos_p, sin_p)[0]
            # interleaved partial (GLM's layout): the first rot dims in pairs (0,1), (2,3), ...
            out_int = torch.cat(
                [interleaved_float64(q[..., :rot], cos_p, sin_p), q[..., rot:]], dim=-1
            )
            with Calls({"cos"}) as c:
                cos_g, sin_g = g4["compute_rope_params"](
                    head_dim=hd,
                    theta_base=theta,
                    context_length=12,
                    rope_type="proportional",
                    partial_rotary_factor=factor,
                )
            ang_g = c.of("cos")[0][1][0]
            out_g4 = g4["apply_rope"](q[None], cos_g, sin_g)[0]
            changed_q35 = [d for d in range(hd) if not torch.equal(out_q35[..., d], q[..., d])]
            changed_g4 = [d for d in range(hd) if not torch.equal(out_g4[..., d], q[..., d])]
            changed_int = [d for d in range(hd) if not torch.equal(out_int[..., d], q[..., d])]
            partial.append(
                {
                    "name": f"hd{hd}_f{factor}_theta{theta}",
                    "head_dim": hd,
                    "partial_rotary_factor": factor,
                    "theta_base": theta,
                    "x": f"rope_inputs.q_hd{hd}",
                    "qwen35_split": {
                        "source": NB_Q35,
                        "rotary_dim": rot,
                        "inv_freq": nested(ang_p[1, : rot // 2]),
                        "cos": nested(cos_p),
                        "sin": nested(sin_p),
                        "out": nested(out_q35),
                        "dims_changed": changed_q35,
                        "pairs": [[i, i + rot // 2] for i in range(rot // 2)],
                    },
                    "interleaved_partial_float64": {
                        "layout": "GLM (HF modeling_glm.apply_rotary_pos_emb): first rotary_dim dims, "
                        "pairs (2i, 2i+1), same inv_freq as qwen35_split; computed here in float64 "
                        "with the book's split apply_rope on reordered dims",
                        "out": nested(out_int),
                        "dims_changed": changed_int,
                        "pairs": [[2 * i, 2 * i + 1] for i in range(rot // 2)],
                    },
                    "gemma4_proportional": {
                        "source": NB_G4,
                        "rope_angles": int(factor * hd // 2),
                        "inv_freq": nested(ang_g[1, : hd // 2]),
                        "cos": nested(cos_g),
                        "sin": nested(sin_g),
                        "out": nested(out_g4),
                        "dims_changed": changed_g4,
                        "pairs": [[i, i + hd // 2] for i in range(int(factor * hd // 2))],
                    },
                    "max_abs_diff_qwen35_vs_interleaved": max_diff(out_q35, out_int),
                    "max_abs_diff_qwen35_vs_gemma4": max_diff(out_q35, out_g4),
                }
            )

    # ------------------------------------------------------------------ 4. offsets
    offsets = []
    P0 = 5
    for label, ns, cparams, hd, theta, freq in [
        ("split_llama3_kv", llama_kv, llama_kv, 8, 500_000, None),
        ("split_llama3_kv_llama31", llama_kv, llama_kv, 8, 500_000, LLAMA31_FREQ),
        ("interleaved_tiny_aya_kv", aya_kv, aya_kv, 8, 500_000, None),
        ("split_qwen3_kv", qwen_kv, qwen_kv, 16, 1_000_000, None),
    ]:
        kw = {"freq_config": freq} if freq else {}
        cos, sin = cparams["compute_rope_params"](
            head_dim=hd, theta_base=theta, context_length=12, **kw
        )
        x = xq[hd][None]
        full = ns["apply_rope"](x, cos, sin)
        part = ns["apply_rope"](x[:, :, P0:], cos, sin, offset=P0)
        wrong = ns["apply_rope"](x[:, :, P0:], cos, sin)
        offsets.append(
            {
                "name": label,
                "source": {"llama3": LLAMA_KV, "tiny": NB_AYA_KV, "qwen3": QWEN_KV}[
                    label.split("_")[1]
                ],
                "head_dim": hd,
                "theta_base": theta,
                "freq_config": freq,
                "x": f"rope_inputs.q_hd{hd} (2 heads, positions 0..11)",
                "offset": P0,
                "full_positions_0_11": nested(full[0]),
                "offset_call_positions_5_11": nested(part[0]),
                "max_abs_diff_offset_vs_full_rows_5_11": max_diff(part, full[:, :, P0:]),
                "without_offset_positions_0_6": nested(wrong[0]),
                "max_abs_diff_without_offset_vs_full_rows_5_11": max_diff(wrong, full[:, :, P0:]),
            }
        )
        assert offsets[-1]["max_abs_diff_offset_vs_full_rows_5_11"] == 0.0

    # ------------------------------------------------- 5. attention with RoPE (modules)
    def run_rope_module(ns, module, x, mask, cos, sin, **fwd):
        seen = {}
        handles = []

        def keep(key, from_input=False):
            def hook(_m, inputs, output):
                seen[key] = (inputs[0] if from_input else output).detach().clone()[0]

            return hook

        for layer, key in [("W_query", "queries"), ("W_key", "keys"), ("W_value", "values")]:
            handles.append(getattr(module, layer).register_forward_hook(keep(key)))
        handles.append(module.out_proj.register_forward_hook(keep("heads_context", True)))
        for layer, key in [("q_norm", "queries_normed"), ("k_norm", "keys_normed")]:
            if getattr(module, layer, None) is not None:
                handles.append(getattr(module, layer).register_forward_hook(keep(key)))
        rope_calls = []
        original = ns["apply_rope"]

        def recording_apply_rope(x_, cos_, sin_, *a, **kw):
            out = original(x_, cos_, sin_, *a, **kw)
            rope_calls.append((x_.detach().clone()[0], out.detach().clone()[0]))
            return out

        ns["apply_rope"] = recording_apply_rope
        try:
            with torch.no_grad(), Calls({"masked_fill", "masked_fill_", "softmax"}) as calls:
                out = module(x.unsqueeze(0), mask, cos, sin, **fwd)
        finally:
            ns["apply_rope"] = original
            for h in handles:
                h.remove()
        if isinstance(out, tuple):
            out, seen["next_cache"] = out
        H, G, hd = module.num_heads, module.num_kv_groups, module.head_dim
        Tn = x.shape[0]
        q_pre = seen.get("queries_normed", seen["queries"].view(Tn, H, hd).transpose(0, 1))
        k_pre = seen.get("keys_normed", seen["keys"].view(Tn, G, hd).transpose(0, 1))
        assert len(rope_calls) == 2
        for x_in, x_out in rope_calls:
            if x_in.shape == q_pre.shape and torch.equal(x_in, q_pre):
                seen["queries_rope_in"], seen["queries_rope_out"] = x_in, x_out
            elif x_in.shape == k_pre.shape and torch.equal(x_in, k_pre):
                seen["keys_rope_in"], seen["keys_rope_out"] = x_in, x_out
        seen["rope_call_order"] = [
            "queries" if torch.equal(c[0], seen["queries_rope_in"]) else "keys" for c in rope_calls
        ]
        fills = calls.of("masked_fill") + calls.of("masked_fill_")
        assert len(fills) == 1
        seen["attn_scores"] = fills[0][2][0]
        soft = calls.of("softmax")
        assert len(soft) == 1
        seen["attn_weights"] = soft[0][2][0]
        seen["context_vecs"] = out.detach()[0]
        return seen

    def rope_self_check(module, seen, cos, sin, offset=0):
        """Rotation, scores, weights, context and output re-derived from what was recorded."""
        H, G, hd = module.num_heads, module.num_kv_groups, module.head_dim
        Tq = seen["queries_rope_in"].shape[1]
        c, s = cos[offset : offset + Tq], sin[offset : offset + Tq]
        worst = 0.0
        for key in ("queries", "keys"):
            x_in = seen[f"{key}_rope_in"]
            mine = x_in * c + rotate_half(x_in) * s
            worst = max(worst, max_diff(mine, seen[f"{key}_rope_out"]))
        q = seen["queries_rope_out"]
        k_all = seen["keys_all"] if "keys_all" in seen else seen["keys_rope_out"]
        v_all = (
            seen["values_all"]
            if "values_all" in seen
            else seen["values"].view(-1, G, hd).transpose(0, 1)
        )
        heads = []
        for h in range(H):
            g = h // (H // G)
            sc = q[h] @ k_all[g].T
            filled = seen["attn_scores"][h]
            ok = torch.isfinite(filled)
            worst = max(worst, float((sc[ok] - filled[ok]).abs().max()))
            w = torch.softmax(filled / hd**0.5, dim=-1)
            worst = max(worst, max_diff(w, seen["attn_weights"][h]))
            heads.append(w @ v_all[g])
        joined = torch.cat(heads, dim=1)
        worst = max(worst, max_diff(joined, seen["heads_context"]))
        with torch.no_grad():
            worst = max(worst, max_diff(module.out_proj(joined), seen["context_vecs"]))
        return worst

    def causal(T):
        return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    def rms_float64(x, scale, eps=1e-6):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * scale

    attention = []
    modules_by_name = {}
    llama_cases = [
        ("llama3_six_d16_h4_g2", 123, "six_tokens", 3, 16, 4, 2),
        ("llama3_six_d8_h4_g2", 123, "six_tokens", 3, 8, 4, 2),
        ("llama3_t12_d16_h4_g2", 42, "t12", 8, 16, 4, 2),
        ("llama3_t12_d16_h2_g2", 42, "t12", 8, 16, 2, 2),
    ]
    for base, seed, inp, d_in, d_out, heads, groups in llama_cases:
        for fname, freq, rope_dtype in [
            ("", None, None),
            ("_llama31", LLAMA31_FREQ, None),
        ] + (
            [("_llama31_rope_float64", LLAMA31_FREQ, torch.float64)]
            if base == "llama3_t12_d16_h2_g2"
            else []
        ):
            name = base + fname
            x = inputs[inp]
            T = x.shape[0]
            hd = d_out // heads
            args_ = {"d_in": d_in, "d_out": d_out, "num_heads": heads, "num_kv_groups": groups}
            module, weights = build(llama["GroupedQueryAttention"], seed, **args_)
            kw = {"freq_config": freq} if freq else {}
            if rope_dtype is not None:
                kw["dtype"] = rope_dtype
            cos, sin = llama["compute_rope_params"](
                head_dim=hd, theta_base=500_000, context_length=T, **kw
            )
            seen = run_rope_module(llama, module, x, causal(T), cos, sin)
            check = rope_self_check(module, seen, cos, sin)
            assert check < 1e-12, (name, check)
            case = {
                "name": name,
                "class": "GroupedQueryAttention",
                "source": LLAMA,
                "args": args_,
                "seed": seed,
                "input": inp,
                "rope": {
                    "function": f"{LLAMA}:compute_rope_params",
                    "call": {
                        "head_dim": hd,
                        "theta_base": 500_000,
                        "context_length": T,
                        "freq_config": freq,
                        "dtype": str(rope_dtype) if rope_dtype else "default (torch.float32)",
                    },
                    "cos_dtype": str(cos.dtype),
                    "cos": nested(cos),
                    "sin": nested(sin),
                },
                "mask": "torch.triu(ones(T, T, bool), diagonal=1), as Llama3Model.forward builds it",
                "weights": weights,
                "queries": nested(seen["queries"]),
                "keys": nested(seen["keys"]),
                "values": nested(seen["values"]),
                "rope_call_order": seen["rope_call_order"],
                "queries_heads_before_rope": nested(seen["queries_rope_in"]),
                "queries_heads_after_rope": nested(seen["queries_rope_out"]),
                "keys_heads_before_rope": nested(seen["keys_rope_in"]),
                "keys_heads_after_rope": nested(seen["keys_rope_out"]),
                "attn_scores": nested(seen["attn_scores"]),
                "attn_weights": nested(seen["attn_weights"]),
                "heads_context": nested(seen["heads_context"]),
                "context_vecs": nested(seen["context_vecs"]),
                "self_check": check,
            }
            attention.append(case)
            modules_by_name[name] = (module, seen, cos, sin)
    # rope in float64 vs float32 tables, same weights
    a32 = modules_by_name["llama3_t12_d16_h2_g2_llama31"][1]["context_vecs"]
    a64 = modules_by_name["llama3_t12_d16_h2_g2_llama31_rope_float64"][1]["context_vecs"]
    rope_dtype_effect = max_diff(a32, a64)

    qwen_cases = [
        ("qwen3_six_h4_g2_hd4_qknorm", 123, "six_tokens", 3, 4, 2, 4, True),
        ("qwen3_six_h4_g2_hd4", 123, "six_tokens", 3, 4, 2, 4, False),
        ("qwen3_t12_h4_g2_hd4_qknorm", 42, "t12", 8, 4, 2, 4, True),
        ("qwen3_t12_h2_g1_hd8_qknorm", 42, "t12", 8, 2, 1, 8, True),
        ("qwen3_t12_h4_g2_default_hd_qknorm", 42, "t12", 8, 4, 2, None, True),
    ]
    for name, seed, inp, d_in, heads, groups, head_dim, qk_norm in qwen_cases:
        for variant in ("", "_norm_float64") if qk_norm else ("",):
            x = inputs[inp]
            T = x.shape[0]
            args_ = {
                "d_in": d_in,
                "num_heads": heads,
                "num_kv_groups": groups,
                "head_dim": head_dim,
                "qk_norm": qk_norm,
            }
            module, weights = build(qwen["GroupedQueryAttention"], seed, **args_)
            if variant:
                # the book's own switch: RMSNorm(qwen3_compatible=False) computes in the input dtype
                module.q_norm.qwen3_compatible = False
                module.k_norm.qwen3_compatible = False
            hd = module.head_dim
            cos, sin = qwen["compute_rope_params"](
                head_dim=hd, theta_base=1_000_000, context_length=T
            )
            seen = run_rope_module(qwen, module, x, causal(T), cos, sin)
            check = rope_self_check(module, seen, cos, sin)
            assert check < 1e-12, (name, check)
            case = {
                "name": name + variant,
                "class": "GroupedQueryAttention",
                "source": QWEN,
                "args": args_,
                "seed": seed,
                "input": inp,
                "rope": {
                    "function": f"{QWEN}:compute_rope_params",
                    "call": {
                        "head_dim": hd,
                        "theta_base": 1_000_000,
                        "context_length": T,
                        "dtype": "default (torch.float32)",
                    },
                    "cos_dtype": str(cos.dtype),
                    "cos": nested(cos),
                    "sin": nested(sin),
                },
                "mask": "torch.triu(ones(T, T, bool), diagonal=1), as Qwen3Model.forward builds it",
                "weights": weights,
                "queries": nested(seen["queries"]),
                "keys": nested(seen["keys"]),
                "values": nested(seen["values"]),
            }
            if qk_norm:
                q_heads = seen["queries"].view(T, heads, hd).transpose(0, 1)
                k_heads = seen["keys"].view(T, groups, hd).transpose(0, 1)
                qs = module.q_norm.scale.detach()
                ks = module.k_norm.scale.detach()
                q64 = rms_float64(q_heads, qs)
                k64 = rms_float64(k_heads, ks)
                case.update(
                    {
                        "rmsnorm": {
                            "eps": module.q_norm.eps,
                            "qwen3_compatible": module.q_norm.qwen3_compatible,
                            "q_norm_scale": nested(qs),
                            "k_norm_scale": nested(ks),
                            "max_abs_diff_vs_float64_formula": max(
                                max_diff(seen["queries_normed"], q64),
                                max_diff(seen["keys_normed"], k64),
                            ),
                        },
                        "queries_heads_normed": nested(seen["queries_normed"]),
                        "keys_heads_normed": nested(seen["keys_normed"]),
                    }
                )
            case.update(
                {
                    "rope_call_order": seen["rope_call_order"],
                    "queries_heads_before_rope": nested(seen["queries_rope_in"]),
                    "queries_heads_after_rope": nested(seen["queries_rope_out"]),
                    "keys_heads_before_rope": nested(seen["keys_rope_in"]),
                    "keys_heads_after_rope": nested(seen["keys_rope_out"]),
                    "attn_scores": nested(seen["attn_scores"]),
                    "attn_weights": nested(seen["attn_weights"]),
                    "heads_context": nested(seen["heads_context"]),
                    "context_vecs": nested(seen["context_vecs"]),
                    "self_check": check,
                }
            )
            attention.append(case)
            modules_by_name[name + variant] = (module, seen, cos, sin)
    norm_dtype_effect = {
        name: max_diff(
            modules_by_name[name][1]["context_vecs"],
            modules_by_name[name + "_norm_float64"][1]["context_vecs"],
        )
        for name, *_ in qwen_cases
        if name.endswith("qknorm")
    }
    # state_dict orders, asserted
    llama_sd = [w["name"] for w in attention[0]["weights"]]
    qwen_sd = [
        w["name"]
        for w in next(c for c in attention if c["name"] == "qwen3_six_h4_g2_hd4_qknorm")["weights"]
    ]
    assert llama_sd == ["W_key.weight", "W_value.weight", "W_query.weight", "out_proj.weight"], (
        llama_sd
    )
    assert qwen_sd == [
        "W_query.weight",
        "W_key.weight",
        "W_value.weight",
        "out_proj.weight",
        "q_norm.scale",
        "k_norm.scale",
    ], qwen_sd

    # KV-cache decoding with RoPE offsets through the book's cached classes
    decoding = []
    for name, ns, cls_args, seed, hd, theta, freq in [
        (
            "llama3_kv_t12_d16_h4_g2_llama31",
            llama_kv,
            {"d_in": 8, "d_out": 16, "num_heads": 4, "num_kv_groups": 2},
            42,
            4,
            500_000,
            LLAMA31_FREQ,
        ),
        (
            "qwen3_kv_t12_h4_g2_hd4_qknorm",
            qwen_kv,
            {"d_in": 8, "num_heads": 4, "num_kv_groups": 2, "head_dim": 4, "qk_norm": True},
            42,
            4,
            1_000_000,
            None,
        ),
    ]:
        module, weights = build(ns["GroupedQueryAttention"], seed, **cls_args)
        kw = {"freq_config": freq} if freq else {}
        cos, sin = ns["compute_rope_params"](head_dim=hd, theta_base=theta, context_length=12, **kw)
        full = run_rope_module(ns, module, t12, causal(12), cos, sin)
        full_ref = modules_by_name[
            "llama3_t12_d16_h4_g2_llama31"
            if name.startswith("llama")
            else "qwen3_t12_h4_g2_hd4_qknorm"
        ]
        entry = {
            "name": name,
            "class": "GroupedQueryAttention",
            "source": LLAMA_KV if name.startswith("llama") else QWEN_KV,
            "args": cls_args,
            "seed": seed,
            "input": "t12",
            "weights": weights,
            "same_weights_and_output_as": full_ref
            and (
                "llama3_t12_d16_h4_g2_llama31"
                if name.startswith("llama")
                else "qwen3_t12_h4_g2_hd4_qknorm"
            ),
            "max_abs_diff_full_vs_uncached_class": max_diff(
                full["context_vecs"], full_ref[1]["context_vecs"]
            ),
            "runs": [],
        }
        assert entry["max_abs_diff_full_vs_uncached_class"] == 0.0
        for schedule, sizes in {"5+1x7": [5] + [1] * 7, "1x12": [1] * 12}.items():
            cache, start, rows, steps = None, 0, [], []
            for size in sizes:
                end = start + size
                mask = torch.triu(torch.ones(end, end, dtype=torch.bool), diagonal=1)[
                    start:end, :end
                ]
                seen = run_rope_module(
                    ns,
                    module,
                    t12[start:end],
                    mask[None, None],
                    cos,
                    sin,
                    start_pos=start,
                    cache=cache,
                )
                cache = seen["next_cache"]
                seen["keys_all"] = cache[0][0]
                seen["values_all"] = cache[1][0]
                check = rope_self_check(module, seen, cos, sin, offset=start)
                assert check < 1e-12, (name, schedule, start, check)
                steps.append(
                    {
                        "tokens": [start, end],
                        "start_pos": start,
                        "queries_heads_after_rope": nested(seen["queries_rope_out"]),
                        "new_keys_heads_after_rope": nested(seen["keys_rope_out"]),
                        "cache_len": cache[0].shape[2],
                        "context_rows": nested(seen["context_vecs"]),
                        "self_check": check,
                    }
                )
                rows.append(seen["context_vecs"])
                start = end
            entry["runs"].append(
                {
                    "schedule": schedule,
                    "steps": steps,
                    "max_abs_diff_vs_full": max_diff(torch.cat(rows), full["context_vecs"]),
                }
            )
            assert entry["runs"][-1]["max_abs_diff_vs_full"] < 1e-12
        decoding.append(entry)

    # ------------------------------------------------------------ 6. score modifiers
    torch.manual_seed(11)
    sq = torch.randn(4, 6, 8, dtype=torch.float64)
    sk = torch.randn(4, 6, 8, dtype=torch.float64)
    sv = torch.randn(4, 6, 8, dtype=torch.float64)
    torch.manual_seed(12)
    bq = torch.randn(12, 6, 8, dtype=torch.float64)
    bk = torch.randn(12, 6, 8, dtype=torch.float64)
    bv = torch.randn(12, 6, 8, dtype=torch.float64)
    torch.manual_seed(13)
    rand_q_w = 1.0 + 0.5 * torch.randn(8, dtype=torch.float64)
    rand_k_w = 1.0 + 0.5 * torch.randn(8, dtype=torch.float64)

    def attend(
        q, k, v, *, scale=None, softcap=None, bias=None, sinks=None, window=None, causal_mask=True
    ):
        """The pipeline: raw = q k^T; scaled = raw * scale; capped = C tanh(scaled / C);
        biased = capped + bias; masked (-inf where j > i, or i - j >= window); softmax over the
        keys (with one extra logit column per head when sinks are given, dropped afterwards);
        output = weights @ v."""
        Hh, Tq, d = q.shape
        if scale is None:
            scale = 1 / math.sqrt(d)
        raw = q @ k.transpose(1, 2)
        st = {"raw_scores": raw, "scaled_scores": raw * scale}
        cur = st["scaled_scores"]
        if softcap is not None:
            cur = softcap * torch.tanh(cur / softcap)
            st["capped_scores"] = cur
        if bias is not None:
            cur = cur + bias
            st["biased_scores"] = cur
        Tk = k.shape[1]
        i = torch.arange(Tq)[:, None]
        j = torch.arange(Tk)[None, :]
        masked = torch.zeros(Tq, Tk, dtype=torch.bool)
        if causal_mask:
            masked |= j > i
        if window is not None:
            masked |= (i - j) >= window
        cur = cur.masked_fill(masked, -math.inf)
        st["masked_scores"] = cur
        if sinks is not None:
            col = sinks.view(Hh, 1, 1).expand(Hh, Tq, 1)
            combined = torch.cat([cur, col], dim=-1)
            combined = combined - combined.max(dim=-1, keepdim=True).values
            probs = torch.softmax(combined, dim=-1)
            w = probs[..., :-1]
            st["sink_mass"] = probs[..., -1]
        else:
            w = torch.softmax(cur, dim=-1)
        st["attn_weights"] = w
        st["row_sums"] = w.sum(dim=-1)
        st["output"] = w @ v
        return st

    def alibi_bias(slopes, T):
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        return -slopes.view(-1, 1, 1) * (i - j).to(torch.float64)

    # ALiBi slopes
    if args.alibi:
        get_slopes = alibi_get_slopes(args.alibi)
        slopes_src = f"{ALIBI_REPO} commit {ALIBI_COMMIT}, {ALIBI_FILE}: get_slopes (verbatim)"
    else:
        get_slopes = None
        slopes_src = None
    slope_table = {}
    for n in (4, 8, 6, 12):
        # the closed form: 2^(-8 i / n) for a power of two n; otherwise those of the largest power
        # of two m < n, then every other slope of 2m
        m = 2 ** math.floor(math.log2(n))
        closed = [2.0 ** (-8.0 * (i + 1) / m) for i in range(m)] + [
            2.0 ** (-8.0 * (i + 1) / (2 * m)) for i in range(0, 2 * (n - m), 2)
        ]
        entry = {"num_heads": n, "closed_form": closed}
        if get_slopes is not None:
            paper = get_slopes(n)
            entry["paper_get_slopes_python_floats"] = paper
            entry["paper_as_torch_Tensor_float32"] = torch.Tensor(paper).double().tolist()
            entry["max_abs_diff_paper_vs_closed_form"] = max(
                abs(a - b) for a, b in zip(paper, closed, strict=True)
            )
        slope_table[str(n)] = entry
    slopes64 = {
        n: torch.tensor(
            slope_table[str(n)].get(
                "paper_get_slopes_python_floats", slope_table[str(n)]["closed_form"]
            ),
            dtype=torch.float64,
        )
        for n in (4, 8, 6, 12)
    }

    def book_rms(x, w, float64=False):
        norm = qwen["RMSNorm"](8, eps=1e-6, qwen3_compatible=not float64).double()
        with torch.no_grad():
            norm.scale.copy_(w)
            return norm(x)

    ones8 = torch.ones(8, dtype=torch.float64)
    sinks4 = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    g4norm = g4["Gemma4RMSNorm"](8, eps=1e-6).double()
    g4vnorm = g4["Gemma4RMSNorm"](8, eps=1e-6, with_scale=False).double()
    cos_q3, sin_q3 = qwen["compute_rope_params"](head_dim=8, theta_base=1_000_000, context_length=6)
    cos_g4, sin_g4 = g4["compute_rope_params"](head_dim=8, theta_base=10_000.0, context_length=6)

    modifier_cases = []

    def add_mod(name, notes, st, q=sq, k=sk, v=sv, extra=None):
        rec = {"name": name, "notes": notes}
        if extra:
            rec.update(extra)
        for key in (
            "raw_scores",
            "scaled_scores",
            "capped_scores",
            "biased_scores",
            "masked_scores",
            "attn_weights",
            "sink_mass",
            "row_sums",
            "output",
        ):
            if key in st:
                rec[key] = nested(st[key])
        modifier_cases.append(rec)
        return st

    add_mod("causal", "plain causal attention, scale 1/sqrt(8)", attend(sq, sk, sv))
    add_mod("no_mask", "no mask at all, scale 1/sqrt(8)", attend(sq, sk, sv, causal_mask=False))
    for C in (50.0, 2.0):
        add_mod(
            f"softcap_{C:g}",
            f"Gemma 2 eager attention (HF transformers {HF_VERSION} models/gemma2/modeling_gemma2.py "
            f"eager_attention_forward): scaled = q k^T * scaling, then {C:g} * tanh(scaled / {C:g}), "
            "then the causal mask is added, then softmax (scaling = query_pre_attn_scalar**-0.5, here "
            "8**-0.5; Gemma2Config defaults: attn_logit_softcapping 50.0, query_pre_attn_scalar 256)",
            attend(sq, sk, sv, softcap=C),
            extra={"softcap": C},
        )
    add_mod(
        "softcap_2_no_mask",
        "soft-capping with C = 2 and no mask",
        attend(sq, sk, sv, softcap=2.0, causal_mask=False),
        extra={"softcap": 2.0},
    )
    for n in (4, 8, 6, 12):
        qq, kk, vv = (sq, sk, sv) if n == 4 else (bq[:n], bk[:n], bv[:n])
        bias = alibi_bias(slopes64[n], 6)
        add_mod(
            f"alibi_h{n}",
            "ALiBi: bias[h, i, j] = -slope_h * (i - j) added to the scaled scores (after q k^T / sqrt(d)), "
            "then the causal mask, then softmax. slopes: alibi_slopes["
            + str(n)
            + "] (the paper's, float64)",
            attend(qq, kk, vv, bias=bias),
            extra={
                "num_heads": n,
                "inputs": "score_inputs q, k, v"
                if n == 4
                else f"score_inputs q12, k12, v12 [:{n}]",
                "slopes": slopes64[n].tolist(),
                "bias": nested(bias),
            },
        )
    add_mod(
        "sinks",
        f"gpt-oss attention sinks (HF transformers {HF_VERSION} models/gpt_oss/modeling_gpt_oss.py "
        "eager_attention_forward; module.sinks is an nn.Parameter of num_attention_heads): "
        "one logit per head (sinks) appended as an extra softmax column to the "
        "masked scaled scores, the row max subtracted, softmax, the sink column dropped: rows sum to "
        "1 - sink_mass",
        attend(sq, sk, sv, sinks=sinks4),
        extra={"sinks": sinks4.tolist()},
    )
    add_mod(
        "sinks_window3",
        "gpt-oss sinks with a sliding window of 3 (query i sees keys i-2..i), as its sliding layers",
        attend(sq, sk, sv, sinks=sinks4, window=3),
        extra={"sinks": sinks4.tolist(), "window": 3},
    )
    add_mod(
        "sinks_minus_inf",
        "sink logits of -inf give plain causal attention (sink_mass 0)",
        attend(sq, sk, sv, sinks=torch.full((4,), -math.inf, dtype=torch.float64)),
        extra={"sinks": [None] * 4},
    )
    for wname, wq, wk in (("unit", ones8, ones8), ("random", rand_q_w, rand_k_w)):
        for f64 in (False, True):
            qn = book_rms(sq, wq, f64)
            kn = book_rms(sk, wk, f64)
            add_mod(
                f"qk_norm_{wname}" + ("_float64" if f64 else ""),
                "QK-norm: the book's Qwen3 RMSNorm (pkg/llms_from_scratch/qwen3.py, eps 1e-6) on each "
                "head's q and k over head_dim, weights shared by all heads: "
                "x * rsqrt(mean(x^2) + eps) * scale; "
                + (
                    "qwen3_compatible=False: in float64"
                    if f64
                    else "qwen3_compatible=True (the default, as in the Qwen3 model): x cast to float32, normalised "
                    "in float32, times the float64 scale, then back to float64"
                )
                + "; then scale 1/sqrt(8), causal mask, softmax",
                attend(qn, kn, sv),
                extra={
                    "q_weight": wq.tolist(),
                    "k_weight": wk.tolist(),
                    "q_normed": nested(qn),
                    "k_normed": nested(kn),
                },
            )
    qn = book_rms(sq, ones8)
    kn = book_rms(sk, ones8)
    qr = qwen["apply_rope"](qn[None], cos_q3, sin_q3)[0]
    kr = qwen["apply_rope"](kn[None], cos_q3, sin_q3)[0]
    add_mod(
        "qwen3_qk_norm_rope",
        "Qwen3's order: RMSNorm (unit weight, float32 inside) on q and k, then split-halves RoPE "
        "(qwen3.py compute_rope_params(8, theta 1e6, context 6), float32 tables), then scale 1/sqrt(8), "
        "causal mask, softmax",
        attend(qr, kr, sv),
        extra={"q_rotated": nested(qr), "k_rotated": nested(kr)},
    )
    for scale, label in ((1.0, "scale_1"), (0.25, "scale_0.25"), (1 / 12, "scale_1_over_12")):
        add_mod(
            label,
            f"scores multiplied by {scale!r} instead of 1/sqrt(8); causal; softmax",
            attend(sq, sk, sv, scale=scale),
            extra={"scale": scale},
        )
    with torch.no_grad():
        gq = g4["apply_rope"](g4norm(sq)[None], cos_g4, sin_g4)[0]
        gk = g4["apply_rope"](g4norm(sk)[None], cos_g4, sin_g4)[0]
        gv = g4vnorm(sv)
    add_mod(
        "gemma4_like",
        "Gemma 4's order (ch05/17_gemma4 Gemma4Attention; HF Gemma4TextAttention has scaling = 1.0): "
        "the book's Gemma4RMSNorm on q and k (unit weight: x * (mean(x^2) + eps)^-0.5 * weight, computed "
        "in float32 via x.float() and cast back), Gemma4RMSNorm(with_scale=False) on v, split RoPE "
        "(its compute_rope_params(8, theta 10000, context 6), float32 tables), NO scaling (scale 1.0), "
        "causal mask, softmax (float64 here; the book's class takes softmax(scores.float()) and fills "
        "masked cells with finfo.min, which in a float64 run would round the weights to float32)",
        attend(gq, gk, gv, scale=1.0),
        extra={
            "q_prepared": nested(gq),
            "k_prepared": nested(gk),
            "v_prepared": nested(gv),
            "scale": 1.0,
        },
    )

    # ------------------------------------------------- 6b. the book's gated attention
    gated_cases = []
    Ch03MHA = ch03["MultiHeadAttention"]
    for name, seed, inp, d_in, d_out, heads in [
        ("gated_six_d4_h2", 123, "six_tokens", 3, 4, 2),
        ("gated_t12_d16_h4", 42, "t12", 8, 16, 4),
    ]:
        x = inputs[inp]
        T = x.shape[0]
        args_ = {
            "d_in": d_in,
            "d_out": d_out,
            "context_length": T,
            "dropout": 0.0,
            "num_heads": heads,
            "qkv_bias": False,
        }
        module, weights = build(gated["GatedMultiHeadAttention"], seed, **args_)
        seen = {}
        handles = []

        def keep(key, from_input=False, store=seen):
            def hook(_m, inputs_, output):
                store[key] = (inputs_[0] if from_input else output).detach().clone()[0]

            return hook

        for layer, key in [
            ("W_query", "queries"),
            ("W_gate", "gate"),
            ("W_key", "keys"),
            ("W_value", "values"),
        ]:
            handles.append(getattr(module, layer).register_forward_hook(keep(key)))
        handles.append(module.dropout.register_forward_hook(keep("attn_weights", True)))
        handles.append(module.out_proj.register_forward_hook(keep("gated_context", True)))
        with torch.no_grad(), Calls({"masked_fill_", "sigmoid", "__mul__", "mul"}) as calls:
            out = module(x.unsqueeze(0))
        for h in handles:
            h.remove()
        fills = calls.of("masked_fill_")
        assert len(fills) == 1
        filled = fills[0][2][0]
        fill_value = torch.finfo(filled.dtype).min
        assert int((filled == fill_value).sum()) == heads * T * (T - 1) // 2
        sig = calls.of("sigmoid")
        assert len(sig) == 1
        sig_out = sig[0][2]
        pre = [
            c
            for c in calls.of("__mul__") + calls.of("mul")
            if len(c[1]) == 2
            and isinstance(c[1][1], torch.Tensor)
            and torch.equal(c[1][1], sig_out)
        ]
        assert len(pre) == 1
        context_before_gate = pre[0][1][0].detach()[0]
        hd = d_out // heads
        # self-check
        worst = 0.0
        heads_out = []
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            s = seen["queries"][:, sl] @ seen["keys"][:, sl].T
            ok = filled[h] != fill_value
            worst = max(worst, float((s[ok] - filled[h][ok]).abs().max()))
            w = torch.softmax(s.masked_fill(~ok, -math.inf) / hd**0.5, dim=-1)
            worst = max(worst, max_diff(w, seen["attn_weights"][h]))
            heads_out.append(w @ seen["values"][:, sl])
        joined = torch.cat(heads_out, dim=1)
        worst = max(worst, max_diff(joined, context_before_gate))
        worst = max(worst, max_diff(joined * torch.sigmoid(seen["gate"]), seen["gated_context"]))
        with torch.no_grad():
            worst = max(worst, max_diff(module.out_proj(seen["gated_context"]), out[0]))
        assert worst < 1e-12, (name, worst)
        ref, ref_weights = build(
            Ch03MHA, seed, d_in=d_in, d_out=d_out, context_length=T, dropout=0.0, num_heads=heads
        )
        gated_cases.append(
            {
                "name": name,
                "class": "GatedMultiHeadAttention",
                "source": DELTANET + " (the fenced code block under 'Gated Attention')",
                "args": args_,
                "seed": seed,
                "input": inp,
                "weights": weights,
                "same_sha256_as_ch03_MultiHeadAttention_same_seed": [
                    w["name"]
                    for w in weights
                    if any(
                        r["name"] == w["name"] and r["sha256_float32"] == w["sha256_float32"]
                        for r in ref_weights
                    )
                ],
                "queries": nested(seen["queries"]),
                "gate_logits": nested(seen["gate"]),
                "gate": nested(sig_out[0]),
                "keys": nested(seen["keys"]),
                "values": nested(seen["values"]),
                "attn_scores": nested(filled.masked_fill(filled == fill_value, -math.inf)),
                "attn_scores_fill_value": fill_value,
                "attn_weights": nested(seen["attn_weights"]),
                "heads_context_before_gate": nested(context_before_gate),
                "heads_context_gated": nested(seen["gated_context"]),
                "context_vecs": nested(out.detach()[0]),
                "self_check": worst,
            }
        )

    # --------------------------------------------------------- optional: Hugging Face
    hf = {
        "skipped": "run with --transformers to compare with Hugging Face transformers " + HF_VERSION
    }
    if args.transformers:
        hf = hf_checks(
            tables=tables,
            rope_params=rope_params,
            xq=xq,
            xk=xk,
            layouts=layouts,
            partial=partial,
            llama=llama,
            aya=aya,
            q35=q35,
            g4=g4,
            qwen=qwen,
            attend=attend,
            sq=sq,
            sk=sk,
            sv=sv,
            bq=bq,
            bk=bk,
            bv=bv,
            sinks4=sinks4,
            slopes64=slopes64,
            slope_table=slope_table,
            book_rms=book_rms,
            rand_q_w=rand_q_w,
            interleaved_float64=interleaved_float64,
            modifier_cases=modifier_cases,
            hf_freq=hf_freq,
            book_inv_freq=book_inv_freq,
        )

    notes = build_notes(
        rope_dtype_effect=rope_dtype_effect,
        norm_dtype_effect=norm_dtype_effect,
        far_note=far_note,
        perm_rows=perm_rows,
    )
    doc = {
        "source": f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()})",
        "script": "tests/data/record_torch_rope.py",
        "book": {
            "repo": BOOK_REPO,
            "commit": BOOK_COMMIT,
            "files_sha256": BOOK_FILES,
        },
        "alibi_paper_code": None
        if not args.alibi
        else {
            "repo": ALIBI_REPO,
            "commit": ALIBI_COMMIT,
            "file": ALIBI_FILE,
            "sha256": ALIBI_SHA256,
        },
        "definitions_source_sha256": SOURCES,
        "same_code": same,
        "same_code_note": "equal syntax trees (comments and spacing ignored). The kv_cache copies of "
        "compute_rope_params differ only in writing positions[:, None] * inv_freq[None, :] for "
        "positions.unsqueeze(1) * inv_freq.unsqueeze(0); their tables are equal "
        "(rope_params_other_copies).",
        "conventions": "Modules: torch.manual_seed(seed), the class built in float32, .double(), eval, "
        "batch of 1, float64 input. cos/sin tables are the book's compute_rope_params(...) with its "
        "default dtype (float32) unless a case says otherwise, as the book's models build them; "
        "applied to float64 q/k they promote to float64. Per-head tensors are (heads, T, head_dim); "
        "queries/keys/values are the projections before the head split (T, width); attn_scores are "
        "raw q.k (H, T, T), unscaled, null where masked; attn_weights after the softmax; heads_context "
        "is out_proj's input; context_vecs the output. 'rope_inputs' q_hdN/k_hdN are (2 heads, 12 "
        "positions, N).",
        "notes": notes,
        "inputs": {"six_tokens": nested(six), "t12": nested(t12)},
        "rope_inputs": {
            "draws": "torch.manual_seed(3); for N in (4, 8, 16): q_hdN = randn(2, 12, N); k_hdN = randn(2, 12, N) "
            "(float64, in this order)",
            **{f"q_hd{hd}": nested(xq[hd]) for hd in (4, 8, 16)},
            **{f"k_hd{hd}": nested(xk[hd]) for hd in (4, 8, 16)},
        },
        "rope_params": rope_params,
        "rope_params_other_copies": variants,
        "rope_far_positions": far,
        "float32_trig": trig,
        "hf_inv_freq_snapshots": snapshots,
        "rope_layouts": {
            "book_permute_rows_hd8_2heads": perm_rows,
            "cases": layouts,
        },
        "partial_rotation": partial,
        "rope_offsets": offsets,
        "attention_with_rope": attention,
        "attention_with_rope_kv_decoding": decoding,
        "score_modifiers": {
            "inputs": {
                "draws": "torch.manual_seed(11); q = randn(4, 6, 8); k = randn(4, 6, 8); v = randn(4, 6, 8); "
                "torch.manual_seed(12); q12 = randn(12, 6, 8); k12 = randn(12, 6, 8); v12 = randn(12, 6, 8); "
                "torch.manual_seed(13); q_weight = 1 + 0.5 * randn(8); k_weight = 1 + 0.5 * randn(8) "
                "(float64, in this order)",
                "q": nested(sq),
                "k": nested(sk),
                "v": nested(sv),
                "q12": nested(bq),
                "k12": nested(bk),
                "v12": nested(bv),
                "q_weight": rand_q_w.tolist(),
                "k_weight": rand_k_w.tolist(),
            },
            "pipeline": attend.__doc__.split("\n\n")[0].replace("\n        ", " "),
            "alibi_slopes_source": slopes_src,
            "alibi_slopes": slope_table,
            "cases": modifier_cases,
        },
        "gated_attention": gated_cases,
        "hf_checks": hf,
    }
    sys.stdout.write(dumps(doc) + "\n")


def hf_checks(**c):
    """Hugging Face transformers' own functions on the same inputs: largest differences."""
    import transformers
    from transformers import modeling_rope_utils
    from transformers.models.bloom import modeling_bloom
    from transformers.models.cohere import modeling_cohere
    from transformers.models.gemma2 import modeling_gemma2
    from transformers.models.glm import modeling_glm
    from transformers.models.gpt_oss import modeling_gpt_oss
    from transformers.models.llama import modeling_llama
    from transformers.models.qwen3 import modeling_qwen3
    from transformers.models.qwen3_next import modeling_qwen3_next

    if transformers.__version__ != HF_VERSION:
        sys.exit(f"transformers {transformers.__version__}, not {HF_VERSION}")
    base = pathlib.Path(transformers.__file__).parent
    for rel, pinned in HF_FILES.items():
        got = sha256((base / rel).read_bytes())
        if got != pinned:
            sys.exit(f"transformers/{rel}: SHA-256 {got} is not {pinned}")
    out = {"transformers": HF_VERSION, "files_sha256": HF_FILES}
    llama = c["llama"]

    # inverse frequencies: default and llama3
    inv = []
    for hd, theta, freq, label in [
        (4, 10_000, None, "hd4_theta10000"),
        (8, 500_000, None, "hd8_theta500000"),
        (16, 10_000, None, "hd16_theta10000"),
        (128, 10_000.0, None, "hd128_theta10000 (snapshot config)"),
        (64, 500_000, LLAMA31_FREQ, "hd64_llama31"),
        (128, 500_000, LLAMA31_FREQ, "hd128_llama31"),
        (64, 500_000, LLAMA32_FREQ, "hd64_llama32"),
        (128, 500_000, LLAMA32_FREQ, "hd128_llama32"),
        (128, 10_000.0, c["hf_freq"], "hd128_snapshot_llama3 (factor 10, original 2048)"),
    ]:
        rp = {"rope_type": "default" if freq is None else "llama3", "rope_theta": float(theta)}
        if freq:
            rp.update(
                {
                    "factor": freq["factor"],
                    "low_freq_factor": freq["low_freq_factor"],
                    "high_freq_factor": freq["high_freq_factor"],
                    "original_max_position_embeddings": freq["original_context_length"],
                }
            )
        cfg = transformers.LlamaConfig(
            hidden_size=hd * 4,
            num_attention_heads=4,
            head_dim=hd,
            max_position_embeddings=131072,
            rope_parameters=rp,
        )
        if freq is None:
            hf_inv, _ = modeling_llama.LlamaRotaryEmbedding.compute_default_rope_parameters(cfg)
        else:
            hf_inv, _ = modeling_rope_utils.ROPE_INIT_FUNCTIONS["llama3"](cfg, None)
        mine = c["book_inv_freq"](hd, theta, freq)
        inv.append(
            {
                "case": label,
                "bitwise_equal": bool(torch.equal(hf_inv, mine)),
                "max_abs_diff": max_diff(hf_inv, mine),
                "cells_differing": int((hf_inv != mine).sum()),
                "cells": hf_inv.numel(),
            }
        )
    out["inv_freq_book_vs_hf"] = inv

    # split-halves apply: HF llama apply_rotary_pos_emb with the book's tables
    rows = []
    for hd in (4, 8, 16):
        t = c["tables"][(hd, 500_000, None, "float32")]
        q, k = c["xq"][hd][None], c["xk"][hd][None]
        cos, sin = t["cos"][None], t["sin"][None]
        hq, hk = modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)
        bq = llama["apply_rope"](q, t["cos"], t["sin"])
        bk = llama["apply_rope"](k, t["cos"], t["sin"])
        rows.append(
            {
                "head_dim": hd,
                "bitwise_equal": bool(torch.equal(hq, bq) and torch.equal(hk, bk)),
                "max_abs_diff": max(max_diff(hq, bq), max_diff(hk, bk)),
            }
        )
    out["split_apply_llama_vs_book"] = rows

    # interleaved: GLM (float64, partial factor 1) and Cohere (float32 inside) vs this file / tiny-aya
    rows = []
    for lay in c["layouts"]:
        hd, theta = lay["head_dim"], lay["theta_base"]
        t = c["tables"][(hd, theta, None, "float32")]
        q, k = c["xq"][hd][None], c["xk"][hd][None]
        gq, gk = modeling_glm.apply_rotary_pos_emb(q, k, t["cos"][None], t["sin"][None])
        mine_q = torch.tensor(lay["q_interleaved_float64"], dtype=torch.float64)[None]
        mine_k = torch.tensor(lay["k_interleaved_float64"], dtype=torch.float64)[None]
        cos_i = torch.tensor(lay["interleaved_cos"], dtype=torch.float32)[None]
        sin_i = torch.tensor(lay["interleaved_sin"], dtype=torch.float32)[None]
        cq, _ = modeling_cohere.apply_rotary_pos_emb(q, k, cos_i, sin_i)
        book_q = torch.tensor(lay["q_interleaved_book"], dtype=torch.float64)[None]
        rows.append(
            {
                "case": lay["name"],
                "glm_vs_float64_bitwise_equal": bool(
                    torch.equal(gq, mine_q) and torch.equal(gk, mine_k)
                ),
                "glm_vs_float64_max_abs_diff": max(max_diff(gq, mine_q), max_diff(gk, mine_k)),
                "cohere_vs_tiny_aya_bitwise_equal": bool(torch.equal(cq, book_q)),
                "cohere_vs_tiny_aya_max_abs_diff": max_diff(cq, book_q),
            }
        )
    out["interleaved"] = rows

    # partial rotation: Qwen3-Next (split) and GLM (interleaved); proportional inv_freq
    rows = []
    for p in c["partial"]:
        hd, f, theta = p["head_dim"], p["partial_rotary_factor"], p["theta_base"]
        stub = types.SimpleNamespace(
            rope_parameters={
                "rope_theta": float(theta),
                "partial_rotary_factor": f,
                "rope_type": "default",
            },
            head_dim=hd,
            hidden_size=hd,
            num_attention_heads=1,
            standardize_rope_params=lambda: None,
        )
        hf_inv, _ = modeling_qwen3_next.Qwen3NextRotaryEmbedding.compute_default_rope_parameters(
            stub
        )
        pos = torch.arange(12, dtype=torch.float32)
        freqs = pos[:, None] * hf_inv[None]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None], emb.sin()[None]
        q, k = c["xq"][hd][None], c["xk"][hd][None]
        nq, _ = modeling_qwen3_next.apply_rotary_pos_emb(q, k, cos, sin)
        glq, _ = modeling_glm.apply_rotary_pos_emb(q, k, cos, sin)
        mine = torch.tensor(p["qwen35_split"]["out"], dtype=torch.float64)[None]
        mine_int = torch.tensor(p["interleaved_partial_float64"]["out"], dtype=torch.float64)[None]
        prop_inv, _ = modeling_rope_utils._compute_proportional_rope_parameters(stub)
        g4_inv = torch.tensor(p["gemma4_proportional"]["inv_freq"], dtype=torch.float32)
        rows.append(
            {
                "case": p["name"],
                "hf_inv_freq_over_rotary_dim": hf_inv.double().tolist(),
                "inv_freq_equal_to_qwen35": bool(
                    torch.equal(
                        hf_inv, torch.tensor(p["qwen35_split"]["inv_freq"], dtype=torch.float32)
                    )
                ),
                "qwen3_next_apply_vs_qwen35_bitwise_equal": bool(torch.equal(nq, mine)),
                "qwen3_next_apply_vs_qwen35_max_abs_diff": max_diff(nq, mine),
                "glm_apply_vs_interleaved_partial_bitwise_equal": bool(torch.equal(glq, mine_int)),
                "glm_apply_vs_interleaved_partial_max_abs_diff": max_diff(glq, mine_int),
                "hf_proportional_inv_freq": prop_inv.double().tolist(),
                "proportional_equal_to_gemma4_book": bool(torch.equal(prop_inv, g4_inv)),
            }
        )
    out["partial_rotation"] = rows

    # score modifiers through HF's eager attention functions
    sq, sk, sv = c["sq"], c["sk"], c["sv"]
    by = {m["name"]: m for m in c["modifier_cases"]}
    T = 6
    causal_add = torch.zeros(T, T, dtype=torch.float64).masked_fill(
        torch.triu(torch.ones(T, T, dtype=torch.bool), 1), torch.finfo(torch.float64).min
    )[None, None]
    rows = {}
    for C in (50.0, 2.0):
        mod = types.SimpleNamespace(num_key_value_groups=1, head_dim=8, training=False)
        o, w = modeling_gemma2.eager_attention_forward(
            mod, sq[None], sk[None], sv[None], causal_add, scaling=8**-0.5, softcap=C
        )
        ref_w = torch.tensor(by[f"softcap_{C:g}"]["attn_weights"], dtype=torch.float64)
        ref_o = torch.tensor(by[f"softcap_{C:g}"]["output"], dtype=torch.float64)
        masked = torch.tensor(
            [
                [[(-math.inf if v is None else v) for v in r] for r in hh]
                for hh in by[f"softcap_{C:g}"]["masked_scores"]
            ],
            dtype=torch.float64,
        )
        w32 = torch.softmax(masked, dim=-1, dtype=torch.float32).to(torch.float64)
        rows[f"gemma2_softcap_{C:g}"] = {
            "max_abs_diff_weights": max_diff(w[0], ref_w),
            "max_abs_diff_output": max_diff(o[0].transpose(0, 1), ref_o),
            "why": "HF's eager softmax runs in float32 (softmax(..., dtype=torch.float32).to(query.dtype))",
            "max_abs_diff_weights_vs_these_masked_scores_softmaxed_in_float32": max_diff(w[0], w32),
        }
    for label, window in (("sinks", None), ("sinks_window3", 3)):
        mask = causal_add.clone()
        if window:
            i = torch.arange(T)[:, None]
            j = torch.arange(T)[None, :]
            mask = mask.masked_fill(((i - j) >= window)[None, None], torch.finfo(torch.float64).min)
        mod = types.SimpleNamespace(
            num_key_value_groups=1, head_dim=8, training=False, sinks=c["sinks4"]
        )
        o, w = modeling_gpt_oss.eager_attention_forward(
            mod, sq[None], sk[None], sv[None], mask, scaling=8**-0.5
        )
        rows[f"gpt_oss_{label}"] = {
            "max_abs_diff_weights": max_diff(
                w[0], torch.tensor(by[label]["attn_weights"], dtype=torch.float64)
            ),
            "max_abs_diff_output": max_diff(
                o[0].transpose(0, 1), torch.tensor(by[label]["output"], dtype=torch.float64)
            ),
        }
    # ALiBi: BLOOM's slopes (float32) and its bias slope * j (key position only)
    alibi_rows = {}
    for n in (4, 8, 6, 12):
        hf_s = modeling_bloom._get_alibi_slopes(n, torch.device("cpu"))
        paper = c["slopes64"][n]
        bias = modeling_bloom.build_alibi_tensor(
            torch.ones(1, T, dtype=torch.long), n, torch.float64
        )
        qq, kk, vv = (sq, sk, sv) if n == 4 else (c["bq"][:n], c["bk"][:n], c["bv"][:n])
        w_bloom = c["attend"](qq, kk, vv, bias=bias.view(n, 1, T))["attn_weights"]
        ref_w = torch.tensor(by[f"alibi_h{n}"]["attn_weights"], dtype=torch.float64)
        alibi_rows[str(n)] = {
            "bloom_slopes_float32": hf_s.double().tolist(),
            "bloom_slopes_equal_to_paper_rounded_to_float32": bool(
                torch.equal(hf_s, paper.float())
            ),
            "max_abs_diff_bloom_slopes_vs_paper_float64": max_diff(hf_s, paper),
            "bloom_bias_row": bias.view(n, T).tolist(),
            "max_abs_diff_weights_bloom_bias_vs_minus_slope_i_minus_j": max_diff(w_bloom, ref_w),
        }
    rows["alibi"] = alibi_rows
    # Qwen3RMSNorm vs the book's RMSNorm (float32 inside in both)
    hfn = modeling_qwen3.Qwen3RMSNorm(8, eps=1e-6).double()
    with torch.no_grad():
        hfn.weight.copy_(c["rand_q_w"])
        rows["qwen3_rmsnorm_vs_book_random_weight_max_abs_diff"] = max_diff(
            hfn(sq), c["book_rms"](sq, c["rand_q_w"])
        )
    out["score_modifiers"] = rows
    return out


def build_notes(rope_dtype_effect, norm_dtype_effect, far_note, perm_rows):
    return {
        "rope_formula": "compute_rope_params(head_dim, theta_base=10_000, context_length=4096, "
        "freq_config=None, dtype=torch.float32) (pkg/llms_from_scratch/llama3.py; qwen3.py has no "
        "freq_config): inv_freq = 1.0 / (theta_base ** (torch.arange(0, head_dim, 2, dtype=dtype)"
        "[: head_dim // 2].float() / head_dim)) -- ALWAYS float32, whatever dtype, because of .float(): "
        "inv_freq[i] = float32(theta ** float32(2i / head_dim)), the power taken in float32 (Python "
        "number ** float32 tensor). positions = torch.arange(context_length, dtype=dtype); angles = "
        "positions[:, None] * inv_freq[None, :] ((context_length, head_dim // 2); float32 product with "
        "the default dtype, float64 product of the float32 inv_freq with dtype=torch.float64); angles "
        "= torch.cat([angles, angles], dim=1) (split-halves layout: column i and i + head_dim/2 share "
        "angle i); cos = torch.cos(angles), sin = torch.sin(angles) in that dtype. inv_freq in the "
        "file = angles at position 1 (exact).",
        "rope_apply": "apply_rope(x, cos, sin[, offset=0 in kv_cache/*.py]): x (b, heads, T, head_dim); "
        "x1 = x[..., :head_dim//2], x2 = x[..., head_dim//2:]; cos/sin rows offset..offset+T-1; "
        "rotated = cat(-x2, x1); out = (x * cos) + (rotated * sin), then .to(x.dtype). So dim i < h = "
        "head_dim/2 becomes x_i cos(p w_i) - x_{i+h} sin(p w_i) and dim i + h becomes x_{i+h} cos(p w_i) "
        "+ x_i sin(p w_i). With float32 tables and float64 x the products are float64 (the float32 "
        "cos/sin promote exactly). The Llama 3 GQA rotates keys first, then queries; Qwen3 queries "
        "first (rope_call_order); both rotate every head with the same table rows 0..T-1 (no offset "
        "without a cache). Positions are 0-based: token 0 is not rotated (cos 1, sin 0).",
        "freq_config": "Llama 3.1 scaling (freq_config: factor, low_freq_factor, high_freq_factor, "
        "original_context_length), in float32 on inv_freq before the angles: low_freq_wavelen = "
        "original_context_length / low_freq_factor; high_freq_wavelen = original_context_length / "
        "high_freq_factor; wavelen = 2 * torch.pi / inv_freq; wavelen > low_freq_wavelen -> inv_freq / "
        "factor ('low' band); high_freq_wavelen <= wavelen <= low_freq_wavelen -> (1 - s) * (inv_freq / "
        "factor) + s * inv_freq with s = (original_context_length / wavelen - low_freq_factor) / "
        "(high_freq_factor - low_freq_factor) ('medium'); wavelen < high_freq_wavelen -> unchanged "
        "('high'). Each case's band, wavelen and smoothed_inv_freq are what the book's torch.where "
        "calls saw. The book's Llama 3.2 configs use factor 32, Llama 3.1 factor 8; both with low 1, "
        "high 4, original 8192.",
        "hf_snapshot": "Hugging Face's test_llama3_rope_numerically snapshot (hf_inv_freq_snapshots) is "
        "NOT for Llama 3.1's settings: LlamaConfig() defaults (head_dim 128, rope_theta 10000) with "
        "rope_scaling factor 10, original_max_position_embeddings 2048, low_freq_factor 1, "
        "high_freq_factor 4; its values are written with 5 significant digits and compared by "
        "torch.testing.assert_close (float32 rtol 1.3e-6, atol 1e-5). The book's compute_rope_params "
        "with the same settings passes that comparison (max_abs_diff).",
        "layouts": "Split halves (the book's llama3/qwen3/gemma/qwen3.5, HF Llama): pairs (i, i + "
        "head_dim/2), tables cat([a, a]). Interleaved (Meta's original, Cohere/tiny-aya, GLM): pairs "
        "(2i, 2i + 1), tables repeat_interleave(a, 2) (cos[:, 2i] = cos[:, 2i+1] = cos(p w_i)); "
        "out[2i] = x[2i] cos - x[2i+1] sin, out[2i+1] = x[2i+1] cos + x[2i] sin, with the SAME w_i = "
        "theta^(-2i/head_dim). The book's tiny-aya apply_rope computes in float32 (x.float()) and "
        "casts back, so its float64 results carry float32 rounding (q_interleaved_book, "
        "max_abs_diff_book_interleaved_vs_float64); q_interleaved_float64 is the exact float64 "
        "interleaved rotation. On the same q, k the two layouts give different vectors and "
        "different scores; interleaved RoPE of x equals split RoPE of x reordered evens-then-odds "
        "(x[..., [0, 2, 4, ..., 1, 3, 5, ...]]), reordered back, bit for bit, so scores agree to "
        "rounding. The book's permute(w, n_heads, out_dim, in_dim) (converting-gpt-to-llama2) "
        "reorders each head's Q/K weight rows that way (book_permute_rows_hd8_2heads = "
        + repr(perm_rows)
        + "), turning Meta's checkpoint into split-halves form.",
        "partial": "Partial rotation. Qwen3.5 (book ch05/16_qwen3.5, = HF Qwen3-Next/Qwen3.5 "
        "apply_rotary_pos_emb): rotary_dim = int(head_dim * partial_rotary_factor), made even and at "
        "least 2 (max(2, r - r % 2)); inv_freq = 1 / theta^(arange(0, rotary_dim, 2) / rotary_dim) "
        "(exponent over rotary_dim); tables (T, rotary_dim) in split layout; only dims [0, rotary_dim) "
        "rotate, pairs (i, i + rotary_dim/2); dims rotary_dim.. pass through unchanged. GLM (HF) does "
        "the same dims and inv_freq but interleaved pairs (2i, 2i+1). Gemma 4 'proportional' (book "
        "ch05/17_gemma4, = HF _compute_proportional_rope_parameters): rope_angles = int(factor * "
        "head_dim // 2); inv_freq_i = 1 / theta^(2i / head_dim) (exponent over the FULL head_dim) for "
        "i < rope_angles, then zeros up to head_dim/2; tables over the full head_dim in split layout; "
        "so the rotating pairs are (i, i + head_dim/2) for i < rope_angles, i.e. dims {0..rope_angles-1} "
        "and {head_dim/2 .. head_dim/2 + rope_angles - 1} -- other dims than Qwen3.5's, with other "
        "frequencies (dims_changed in each case).",
        "offsets": "apply_rope(x[..., P:, :], cos, sin, offset=P) takes table rows P..P+T-1 and equals "
        "rows P.. of the full call bit for bit (rope_offsets); the cached GQA classes pass "
        "offset=start_pos for the new queries and keys; cached keys are stored already rotated. "
        "Without the offset the rows differ (positions restart at 0).",
        "llama3_gqa": "pkg/llms_from_scratch/llama3.py GroupedQueryAttention(d_in, d_out, num_heads, "
        "num_kv_groups, dtype=None): construction order W_key (d_in -> num_kv_groups*head_dim), W_value "
        "(same), W_query (d_in -> d_out), out_proj (d_out -> d_out); NO biases anywhere, no dropout, no "
        "mask buffer (forward(x, mask, cos, sin) takes the mask; True = masked). head_dim = d_out // "
        "num_heads; num_kv_groups is the number of KV heads; head h uses KV head h // (num_heads // "
        "num_kv_groups) (repeat_interleave). Order: project, split heads, RoPE on keys then queries, "
        "repeat K/V, scores = q k^T, masked_fill(-inf), softmax(scores / sqrt(head_dim)), @ V, join, "
        "out_proj. Same construction order as ch04/04_gqa's class (without its qkv_bias option).",
        "qwen3_gqa": "pkg/llms_from_scratch/qwen3.py GroupedQueryAttention(d_in, num_heads, "
        "num_kv_groups, head_dim=None, qk_norm=False, dtype=None): construction order W_query (d_in -> "
        "num_heads*head_dim), W_key, W_value (d_in -> num_kv_groups*head_dim), out_proj (num_heads*"
        "head_dim -> d_in: back to d_in, not d_out), then q_norm, k_norm = RMSNorm(head_dim, eps=1e-6) "
        "(scale = torch.ones, no draws; state_dict names q_norm.scale, k_norm.scale). No biases. "
        "head_dim=None means d_in // num_heads. Order: project, split heads, q_norm/k_norm per head "
        "(over head_dim, one weight vector shared by all heads), RoPE on queries then keys, repeat "
        "K/V, scores, masked_fill(-inf), softmax(scores / sqrt(head_dim)), @ V, join, out_proj.",
        "qwen3_rmsnorm_dtype": "The book's Qwen3 RMSNorm (qwen3_compatible=True, the default) casts x "
        "to float32, computes x * rsqrt(mean(x^2) + eps) in float32, multiplies by scale (float64 "
        "after .double(), so that product is float64) and casts to the input dtype: float64 q/k come "
        "out with float32 rounding. The '_norm_float64' cases flip the book's own qwen3_compatible "
        "switch to False (all float64); largest context_vecs difference per case: "
        + repr(norm_dtype_effect)
        + ". HF's Qwen3RMSNorm does the same float32 step "
        "(hf_checks.score_modifiers).",
        "rope_dtype": "The book's models build cos/sin in float32 (default dtype); the "
        "'_rope_float64' case uses dtype=torch.float64 for the same module: context_vecs differ by "
        + repr(rope_dtype_effect)
        + ". "
        + far_note
        + ". torch's float32 cos/sin (SLEEF, vectorised, "
        "this CPU) are not always the correctly rounded float32 of the exact value (float32_trig); "
        "the tables here are torch's exact float32 values.",
        "kv_decoding": "The kv_cache classes (pkg/llms_from_scratch/kv_cache/llama3.py, qwen3.py) "
        "construct in the same order as the uncached ones (same weights for the same seed) and, fed "
        "5 tokens then one at a time (or one at a time), reproduce the full causal output "
        "(max_abs_diff_vs_full); mask for a step = triu(ones(end, end), 1)[start:end, :end], as their "
        "models build it.",
        "score_modifier_pipeline": "Where each modifier sits (score_modifiers.pipeline): raw = q k^T; "
        "scaled = raw * scale (1/sqrt(head_dim) unless the case says: Gemma 2 uses "
        "query_pre_attn_scalar**-0.5, Gemma 4 1.0); soft-capping C * tanh(scaled / C) AFTER scaling "
        "and BEFORE the mask (HF modeling_gemma2.eager_attention_forward: attn_weights / softcap, "
        "tanh, * softcap, then + attention_mask); ALiBi bias -slope_h * (i - j) added to the scaled "
        "scores before the mask (BLOOM and the paper add slope_h * j, the key position only; per row "
        "that differs by the constant slope_h * i, which softmax ignores: same weights to rounding, "
        "hf_checks); then the mask (-inf); attention sinks (HF modeling_gpt_oss.eager_attention_forward) "
        "append each head's sink logit as one more column of the masked scaled scores, subtract the "
        "row max, softmax, drop the sink column: rows sum to 1 - sink_mass; the sink logit is "
        "compared with the SCALED scores and is not scaled itself. QK-norm acts on q and k per head "
        "before RoPE and before the scores (Qwen3, Gemma 3/4, OLMo 2 per-head); Gemma 4 also "
        "normalises v without a weight and uses scale 1.0.",
        "alibi_slopes": "ALiBi slopes (paper's get_slopes): for n a power of two, slope_i = "
        "2^(-8 (i+1) / n), i = 0..n-1 (start = ratio = 2^(-8/n)); otherwise the n' = 2^floor(log2 n) "
        "slopes of n', then the slopes of 2n' at even indices 0, 2, 4, ... for the remaining n - n' "
        "heads (6 heads: 1/4, 1/16, 1/64, 1/256, 1/2, 1/8; 12 heads: 2^-1..2^-8, then 2^-0.5, 2^-1.5, "
        "2^-2.5, 2^-3.5). The paper's code makes Python floats (float64) and then torch.Tensor "
        "(float32); BLOOM computes float32 powers of a float32 base (bloom_slopes_float32).",
        "gated_attention": "ch04/08_deltanet README's GatedMultiHeadAttention(d_in, d_out, "
        "context_length, dropout, num_heads, qkv_bias=False): construction order W_query, W_gate "
        "(d_in -> d_out), W_key, W_value, out_proj (d_out -> d_out WITH bias), dropout; a mask buffer "
        "triu(ones(context_length, context_length), 1). So with the same seed W_query equals chapter "
        "3's but W_key, W_value and out_proj do not (W_gate is drawn in between; "
        "same_sha256_as_ch03_MultiHeadAttention_same_seed). Forward: gate = W_gate(x) (no "
        "activation yet); ordinary chapter 3 multi-head attention except that masked cells are "
        "filled with torch.finfo(dtype).min, not -inf (attn_scores_fill_value; weights there are "
        "exactly 0 after the softmax of min / sqrt(head_dim)); the joined heads (T, d_out) are "
        "multiplied elementwise by sigmoid(gate) (one gate value per output feature, the gate's "
        "column h*head_dim + j multiplies head h's feature j), then out_proj. The Qwen3.5 / "
        "Qwen3-Next full-attention layer instead takes the gate from W_query (2*d_out outputs, per "
        "head [query | gate] halves) and applies it at the same place.",
    }


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

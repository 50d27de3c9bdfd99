"""Records torch's seeded draws for tests/data/torch_draws.json (torch 2.13.0+cpu).

Run where torch is installed: python tests/data/record_torch_draws.py > tests/data/torch_draws.json
The tests compare attn's numpy draws with these, bit for bit, without torch.
"""

import hashlib
import json
import sys

import torch

cases = []
for seed, d_in, d_out, bias in [
    (0, 3, 2, False),
    (123, 7, 5, True),
    (789, 64, 48, True),
    (2**40 + 5, 768, 64, False),
    (-7, 1, 1, True),
    (42, 100, 300, True),
]:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(d_in, d_out, bias=bias)
    after = torch.rand(1).item()
    blob = layer.weight.detach().numpy().tobytes() + (
        layer.bias.detach().numpy().tobytes() if bias else b""
    )
    cases.append(
        {
            "kind": "linear",
            "seed": seed,
            "d_in": d_in,
            "d_out": d_out,
            "bias": bias,
            "sha256_float32": hashlib.sha256(blob).hexdigest(),
            "next_rand": after,
            "first_weights": layer.weight.detach().flatten()[:4].tolist(),
        }
    )
for seed, lo, hi, n in [
    (5, -0.3, 0.7, 5000),
    (6, 2.5, 3.0, 5000),
    (7, -1e-3, 1e-3, 5000),
    (8, -123.456, 7.0, 5000),
]:
    torch.manual_seed(seed)
    t = torch.empty(n).uniform_(lo, hi)
    cases.append(
        {
            "kind": "uniform",
            "seed": seed,
            "low": lo,
            "high": hi,
            "n": n,
            "sha256_float32": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
        }
    )
for seed, p, shape in [
    (123, 0.5, [6, 6]),
    (1, 0.1, [3, 50, 50]),
    (2, 0.45, [1000]),
    (3, 0.9, [40, 40]),
    (4, 0.0, [5, 5]),
    (9, 1.0, [5, 5]),
]:
    torch.manual_seed(seed)
    out = torch.nn.Dropout(p)(torch.ones(*shape))
    after = torch.rand(1).item()
    kept = (out != 0).numpy()
    cases.append(
        {
            "kind": "dropout",
            "seed": seed,
            "p": p,
            "shape": shape,
            "sha256_keep": hashlib.sha256(kept.tobytes()).hexdigest(),
            "kept_value": float(out.max().item()) if kept.any() else 0.0,
            "next_rand": after,
        }
    )
json.dump(
    {"source": f"torch {torch.__version__}", "script": "see tests/data/README.md", "cases": cases},
    sys.stdout,
    indent=1,
)

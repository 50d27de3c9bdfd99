"""Runs the book's three KV-cache memory estimators, for tests/data/book_kv_memory.json.

Run with any Python 3 (the scripts need only argparse and math), with a checkout of
rasbt/LLMs-from-scratch at commit 28c65cdfbc3338e2e040016eea4b7fdf556e4d57:

    python tests/data/record_kv_memory.py /path/to/LLMs-from-scratch > tests/data/book_kv_memory.json

The scripts are not copied here: each is loaded verbatim from the checkout (checked by
SHA-256, so another commit is refused) with runpy, under a name other than __main__, and
its own main() is then called with sys.argv set to each argument list below, its stdout
and stderr captured line by line. The byte counts are the return values of the script's
own calculation functions as main() calls them (calc_kv_bytes_total, calc_mla_bytes_total,
estimate_totals are wrapped to keep what they return), so nothing of their arithmetic is
repeated here. A run that argparse refuses ends in SystemExit (exit code 2, usage on
stderr); a run whose main() raises is recorded with the exception (run as a script it
would print a traceback ending in that line and exit with status 1).
"""

import contextlib
import hashlib
import io
import json
import os
import pathlib
import runpy
import sys

BOOK_REPO = "rasbt/LLMs-from-scratch"
BOOK_COMMIT = "28c65cdfbc3338e2e040016eea4b7fdf556e4d57"
SCRIPTS = {  # SHA-256 of each file at BOOK_COMMIT, and the functions whose results are kept
    "ch04/04_gqa/memory_estimator_gqa.py": (
        "955289d2ed4f2810e6ca6078090945159d3fae5e06685031a4cd1e9eb7594ab5",
        ["calc_kv_bytes_total"],
    ),
    "ch04/06_swa/memory_estimator_swa.py": (
        "da47347545252a0a4064902f19fd408c4056773c884198a21c7556bf4774a3b6",
        ["estimate_totals"],
    ),
    "ch04/05_mla/memory_estimator_mla.py": (
        "4817cfaf2714202a8cd59347d431de0948bf5da0f6d167cf2c117a26bacd321b",
        ["calc_kv_bytes_total", "calc_mla_bytes_total"],
    ),
}
ISSUE = "--emb_dim 4096 --n_heads 32 --n_layers 32 --context_length 32768 --n_kv_groups 4"
RUNS = [
    # script, label, argv
    ("gqa", "no arguments", ""),
    (
        "gqa",
        "required only (context 1024, batch 1, fp16 by default)",
        "--emb_dim 4096 --n_heads 32 --n_layers 32 --n_kv_groups 4",
    ),
    ("gqa", "the issue's (README's) example", ISSUE + " --batch_size 1 --dtype bf16"),
    ("gqa", "fp32, batch 2", ISSUE + " --batch_size 2 --dtype fp32"),
    (
        "gqa",
        "group size 32: one KV head (MQA)",
        ISSUE.replace("groups 4", "groups 32") + " --dtype bf16",
    ),
    ("gqa", "group size 1: GQA = MHA", ISSUE.replace("groups 4", "groups 1") + " --dtype bf16"),
    (
        "gqa",
        "emb_dim / n_heads not whole (head_dim = ceil(2048 / 24) = 86)",
        "--context_length 8192 --emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4",
    ),
    (
        "gqa",
        "fp8, batch 4",
        "--emb_dim 4096 --n_heads 32 --n_layers 32 --context_length 8192 "
        "--n_kv_groups 4 --batch_size 4 --dtype fp8",
    ),
    ("gqa", "group size that does not divide n_heads", ISSUE.replace("groups 4", "groups 5")),
    ("swa", "no arguments", ""),
    (
        "swa",
        "required only (context 1024, ratio 1:0 = all SWA, fp16)",
        "--sliding_window_size 1024 --emb_dim 4096 --n_heads 32 --n_layers 32 --n_kv_groups 4",
    ),
    (
        "swa",
        "the issue's (README's) example",
        ISSUE + " --batch_size 1 --dtype bf16 --sliding_window_size 1024 --swa_ratio 5:1",
    ),
    (
        "swa",
        "fp32, batch 2, ratio 1:5",
        ISSUE + " --batch_size 2 --dtype fp32 --sliding_window_size 1024 --swa_ratio 1:5",
    ),
    (
        "swa",
        "window larger than the context (effective window = context)",
        "--emb_dim 4096 --n_heads 32 --n_layers 32 --context_length 2048 --n_kv_groups 4 "
        "--sliding_window_size 4096 --swa_ratio 5:1",
    ),
    (
        "swa",
        "ratio 0:1 (no SWA layer)",
        ISSUE + " --dtype bf16 --sliding_window_size 1024 --swa_ratio 0:1",
    ),
    (
        "swa",
        "26 layers at 3:1 (a partial block: 20 SWA, 6 full)",
        "--emb_dim 2560 --n_heads 8 --n_layers 26 --context_length 131072 --n_kv_groups 2 "
        "--sliding_window_size 512 --swa_ratio 3:1 --dtype bf16",
    ),
    ("swa", "ratio not of the form a:b", ISSUE + " --sliding_window_size 1024 --swa_ratio 5-1"),
    ("mla", "no arguments", ""),
    (
        "mla",
        "the issue's example (no --dtype: fp16)",
        "--context_length 8192 --emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4 "
        "--latent_dim 1024",
    ),
    (
        "mla",
        "the README's example (--batch_size 1 --dtype bf16)",
        "--context_length 8192 --emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4 "
        "--batch_size 1 --dtype bf16 --latent_dim 1024",
    ),
    (
        "mla",
        "latent 512, fp32, batch 2",
        "--context_length 8192 --emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4 "
        "--batch_size 2 --dtype fp32 --latent_dim 512",
    ),
    (
        "mla",
        "latent 576, 128 heads, group size 1",
        "--context_length 32768 --emb_dim 7168 --n_heads 128 --n_layers 61 --n_kv_groups 1 "
        "--dtype bf16 --latent_dim 576",
    ),
    (
        "mla",
        "required only (context 1024, batch 1, fp16)",
        "--emb_dim 768 --n_heads 12 --n_layers 12 --n_kv_groups 3 --latent_dim 64",
    ),
]
SCRIPT_OF = {
    "gqa": "ch04/04_gqa/memory_estimator_gqa.py",
    "swa": "ch04/06_swa/memory_estimator_swa.py",
    "mla": "ch04/05_mla/memory_estimator_mla.py",
}
# the labels of calc_kv_bytes_total / calc_mla_bytes_total's results, in main()'s call order
CALL_NAMES = {"gqa": ["total_mha", "total_gqa"], "mla": ["total_mha", "total_gqa", "total_mla"]}


def run(root, script, argv):
    path = root / SCRIPT_OF[script]
    digest, functions = SCRIPTS[SCRIPT_OF[script]]
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        sys.exit(f"{path} is not the file at {BOOK_COMMIT}")
    # run_path returns a copy of the module's globals: main() looks names up in its own
    namespace = runpy.run_path(str(path), run_name="book_estimator")["main"].__globals__
    calls = []
    for name in functions:

        def wrapped(*args, _f=namespace[name], _name=name, **kwargs):
            result = _f(*args, **kwargs)
            calls.append(
                {"function": _name, "args": list(args), "kwargs": kwargs, "result": result}
            )
            return result

        namespace[name] = wrapped
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [path.name, *argv]
    os.environ["COLUMNS"] = "80"  # argparse wraps its usage to this width
    exit_code, exception = 0, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            namespace["main"]()
    except SystemExit as exc:
        exit_code = exc.code
    except Exception as exc:  # recorded, as the script would print it
        exit_code, exception = 1, f"{type(exc).__name__}: {exc}"
    finally:
        sys.argv = saved
    stdout = out.getvalue().split("\n")
    assert stdout[-1] == ""  # every printed line ends in a newline
    entry = {
        "script": SCRIPT_OF[script],
        "argv": argv,
        "exit_code": exit_code,
        "stdout": stdout[:-1],
        "stderr": err.getvalue().splitlines(),
    }
    if exception:
        entry["exception"] = exception
    if exit_code == 0:
        printed = {}
        for line in entry["stdout"]:
            if ": " in line:
                key, _, value = line.partition(": ")
                printed[key.strip()] = value.strip()
        entry["printed"] = printed
        assert len(calls) == (1 if script == "swa" else len(CALL_NAMES[script]))
        if script == "swa":
            (call,) = calls
            entry["bytes"] = call["result"]
            entry["estimate_totals_kwargs"] = call["kwargs"]
        else:
            entry["bytes"] = {
                label: call["result"] for label, call in zip(CALL_NAMES[script], calls, strict=True)
            }
            entry["calls"] = calls
    return entry


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[1])
    runs = []
    for script, label, argv in RUNS:
        entry = {"label": label, **run(root, script, argv.split())}
        runs.append(entry)

    def find(script, label):
        return next(r for r in runs if r["script"] == SCRIPT_OF[script] and r["label"] == label)

    gqa = find("gqa", "the issue's (README's) example")["printed"]
    assert (gqa["MHA total KV cache"], gqa["GQA total KV cache"]) == ("17.18 GB", "4.29 GB")
    swa = find("swa", "the issue's (README's) example")["printed"]
    assert (swa["MHA + SWA (ratio 5:1)"], swa["GQA + SWA (ratio 5:1)"]) == ("3.14 GB", "0.78 GB")
    mla = find("mla", "the issue's example (no --dtype: fp16)")["printed"]
    assert (mla["MHA total KV cache"], mla["GQA total KV cache"], mla["MLA total KV cache"]) == (
        "3.25 GB",
        "0.81 GB",
        "0.81 GB",
    )
    doc = {
        "source": f"the book's memory estimator scripts, run with Python {sys.version.split()[0]}",
        "script": "tests/data/record_kv_memory.py",
        "book": {
            "repo": BOOK_REPO,
            "commit": BOOK_COMMIT,
            "files_sha256": {path: digest for path, (digest, _) in SCRIPTS.items()},
        },
        "notes": {
            "n_kv_groups": "In all three scripts --n_kv_groups is the GROUP SIZE (query heads "
            "per KV head): n_kv_heads = n_heads // n_kv_groups, and it must divide n_heads "
            "(ValueError otherwise). The GroupedQueryAttention class's num_kv_groups is the "
            "other way round: the NUMBER of KV heads.",
            "formulas": "head_dim = math.ceil(emb_dim / n_heads) (rounded UP, e.g. 2048 / 24 -> "
            "86); MHA/GQA bytes = batch * context_length * head_dim * n_kv_heads * 2 (K and V) "
            "* bytes_per_elem * n_layers; MLA bytes = batch * context_length * n_layers * "
            "latent_dim * bytes_per_elem (one latent per token and layer, no factor 2); SWA "
            "layers use min(context_length, sliding_window_size) tokens; 'a:b' puts a SWA "
            "layers then b full layers in each block of a+b, and the remainder r of "
            "n_layers % (a+b) gives min(a, r) SWA and max(0, r - a) full layers. dtype bytes: "
            "fp32 4, bf16 2, fp16 2, fp8 1, int8 1 (default fp16).",
            "printing": "GB = bytes / 1000**3 printed with '{:,.2f} GB' (decimal gigabytes, "
            "two decimals, thousands separators); ratios '{:,.2f}x', savings '{:,.2f}%'. The "
            "SWA script's printed lines differ from its README's example output (README: "
            "'Distributed layers     : 27 SWA, 5 FULL', 'MHA + SWA (Ratio: 5:1) :', 'MHA + GQA "
            "(Ratio: 5:1) :'; script: 'Layer ratio (SWA:Full) : 5:1 -> 27 SWA, 5 Full', 'MHA + "
            "SWA (ratio 5:1)  :', 'GQA + SWA (ratio 5:1)  :'); the figures agree. The SWA "
            "script ends with an empty line. The MLA README's example passes --dtype bf16 "
            "where the issue's command does not (fp16): same bytes, other dtype line.",
            "no_arguments": "Every script requires arguments (emb_dim, n_heads, n_layers, "
            "n_kv_groups; latent_dim for MLA, sliding_window_size for SWA): with none, "
            "argparse prints its usage and exits with status 2.",
        },
        "runs": runs,
    }
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

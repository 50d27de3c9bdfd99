"""Record what the book's KV-cache memory estimators print, for `attn kv-memory`'s tests.

The three scripts of rasbt/LLMs-from-scratch, copied verbatim into one folder:

    ch04/04_gqa/memory_estimator_gqa.py   (MHA vs GQA)
    ch04/05_mla/memory_estimator_mla.py   (MHA vs GQA vs MLA)
    ch04/06_swa/memory_estimator_swa.py   (MHA/GQA with sliding-window layers)

are run with plain Python (they need nothing but the standard library) on each argument
set below, and their exact stdout is written to book_kv_memory_scripts.json:

    python tests/data/record_book_kv_memory_scripts.py SCRIPTS_DIR --commit 28c65cdf

Mind the scripts' --n_kv_groups: it is the GROUP SIZE (query heads per key/value head:
n_kv_heads = n_heads // n_kv_groups), while the book's GroupedQueryAttention class, and
attn's --kv-groups, count the key/value heads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

SCRIPTS = {
    "gqa": "memory_estimator_gqa.py",
    "mla": "memory_estimator_mla.py",
    "swa": "memory_estimator_swa.py",
}
BOOK_PATHS = {
    "gqa": "ch04/04_gqa/memory_estimator_gqa.py",
    "mla": "ch04/05_mla/memory_estimator_mla.py",
    "swa": "ch04/06_swa/memory_estimator_swa.py",
}

# The book's GPT_CONFIG_124M (chapter 4) for the sizes the scripts require; the rest at
# the scripts' own defaults (context 1024, batch 1, fp16).
GPT2 = "--emb_dim 768 --n_heads 12 --n_layers 12"
# The configuration the GQA and SWA READMEs quote.
QUOTED = "--emb_dim 4096 --n_heads 32 --n_layers 32 --context_length 32768 --n_kv_groups 4"
# The MLA README's configuration (its order of arguments).
MLA_QUOTED = (
    "--context_length 8192 --emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4 "
    "--batch_size 1 --dtype bf16 --latent_dim 1024"
)
SWA_QUOTED = f"{QUOTED} --batch_size 1 --dtype bf16 --sliding_window_size 1024 --swa_ratio 5:1"

# (id, script, its command line); a later repeat of an argument wins, as in argparse
CASES: list[tuple[str, str, str]] = [
    ("gqa-defaults", "gqa", f"{GPT2} --n_kv_groups 4"),
    ("gqa-defaults-groups-1", "gqa", f"{GPT2} --n_kv_groups 1"),
    ("gqa-defaults-groups-12", "gqa", f"{GPT2} --n_kv_groups 12"),
    ("gqa-quoted", "gqa", f"{QUOTED} --batch_size 1 --dtype bf16"),
    ("gqa-quoted-fp32", "gqa", f"{QUOTED} --dtype fp32"),
    ("gqa-quoted-fp16", "gqa", f"{QUOTED} --dtype fp16"),
    ("gqa-quoted-fp8", "gqa", f"{QUOTED} --dtype fp8"),
    ("gqa-quoted-int8", "gqa", f"{QUOTED} --dtype int8"),
    ("gqa-quoted-batch-2", "gqa", f"{QUOTED} --batch_size 2 --dtype bf16"),
    ("gqa-quoted-mqa", "gqa", f"{QUOTED} --n_kv_groups 32 --dtype bf16"),
    ("gqa-llama3-8b", "gqa", f"{QUOTED} --context_length 8192 --dtype bf16"),
    ("gqa-head-dim-rounded-up", "gqa", "--emb_dim 2048 --n_heads 24 --n_layers 48 --n_kv_groups 4"),
    (
        "gqa-tiny",
        "gqa",
        "--emb_dim 1 --n_heads 1 --n_layers 1 --n_kv_groups 1 --context_length 1 --dtype int8",
    ),
    ("mla-quoted", "mla", MLA_QUOTED),
    ("mla-quoted-fp32", "mla", f"{MLA_QUOTED} --dtype fp32"),
    ("mla-quoted-batch-2", "mla", f"{MLA_QUOTED} --batch_size 2"),
    ("mla-quoted-latent-512", "mla", f"{MLA_QUOTED} --latent_dim 512"),
    ("mla-defaults", "mla", f"{GPT2} --n_kv_groups 4 --latent_dim 256"),
    ("swa-quoted", "swa", SWA_QUOTED),
    ("swa-quoted-fp32", "swa", f"{SWA_QUOTED} --dtype fp32"),
    ("swa-quoted-batch-2", "swa", f"{SWA_QUOTED} --batch_size 2"),
    (
        "swa-quoted-window-4096-1-1",
        "swa",
        f"{SWA_QUOTED} --sliding_window_size 4096 --swa_ratio 1:1",
    ),
    ("swa-quoted-ratio-1-5", "swa", f"{SWA_QUOTED} --swa_ratio 1:5"),
    ("swa-quoted-ratio-0-1", "swa", f"{SWA_QUOTED} --swa_ratio 0:1"),
    (
        "swa-plot-config",  # the SWA README's plot, at a 128k context
        "swa",
        "--emb_dim 4096 --n_heads 48 --n_layers 36 --n_kv_groups 4 --batch_size 1 --dtype bf16 "
        "--sliding_window_size 2048 --swa_ratio 5:1 --context_length 131072",
    ),
    ("swa-defaults", "swa", f"{GPT2} --n_kv_groups 4 --sliding_window_size 256"),
    (
        "swa-window-beyond-context",
        "swa",
        f"{GPT2} --n_kv_groups 3 --sliding_window_size 4096 --swa_ratio 5:1",
    ),
    (
        "swa-remainder-layers",
        "swa",
        "--emb_dim 2048 --n_heads 24 --n_layers 26 --n_kv_groups 6 --context_length 10000 "
        "--sliding_window_size 700 --swa_ratio 3:2",
    ),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", type=Path, help="the folder holding the three scripts")
    parser.add_argument("--commit", required=True, help="the book repository's commit")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).with_name("book_kv_memory_scripts.json"),
    )
    args = parser.parse_args()

    cases = []
    for case_id, script, command_line in CASES:
        arguments = command_line.split()
        done = subprocess.run(
            [sys.executable, str(args.scripts / SCRIPTS[script]), *arguments],
            capture_output=True,
            text=True,
            check=True,
        )
        cases.append({"id": case_id, "script": script, "args": arguments, "stdout": done.stdout})
    record = {
        "what": (
            "The exact stdout of the book's KV-cache memory estimators, run with plain "
            "Python on each argument set; recorded by record_book_kv_memory_scripts.py"
        ),
        "source": {
            "repository": "https://github.com/rasbt/LLMs-from-scratch",
            "commit": args.commit,
            "scripts": {
                name: {"path": BOOK_PATHS[name], "sha256": sha256(args.scripts / file)}
                for name, file in SCRIPTS.items()
            },
        },
        "python": platform.python_version(),
        "note": (
            "--n_kv_groups is the scripts' group size: n_kv_heads = n_heads // n_kv_groups; "
            "attn kv-memory --kv-groups counts the key/value heads"
        ),
        "cases": cases,
    }
    args.out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases written to {args.out}")


if __name__ == "__main__":
    main()

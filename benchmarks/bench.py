"""attn's benchmarks: start-up, long-sequence attention, and input loading.

Run by hand (never in CI); every measurement runs in a process of its own, because
numpy's and torch's thread pools distort each other in one process:

    python benchmarks/bench.py                      # everything (about half an hour)
    python benchmarks/bench.py --quick              # n <= 4096 and d = 64: a minute
    python benchmarks/bench.py --only startup io    # some sections
    python benchmarks/bench.py --only beyond        # GQA, MLA, window at n = 65 536
    python benchmarks/bench.py --torch-python /path/to/python-with-torch

torch is no dependency of attn: SDPA is measured only when `--torch-python` (or the
python running this script) can import it. The tables print as Markdown, as the
README shows them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "sample_inputs" / "your_journey.json"

# ---------------------------------------------------------------- workers (child processes)


def _attention_worker(impl: str, n: int, d: int, causal: bool, dtype: str) -> dict[str, Any]:
    """One attention computation, in this process: seconds and a checksum."""
    import numpy as np

    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
    scale = d**-0.5
    if impl == "torch":
        import torch

        q, k, v = (torch.from_numpy(m)[None, None] for m in (Q, K, V))
        start = time.perf_counter()
        with torch.no_grad():
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        seconds = time.perf_counter() - start
        result = out[0, 0].numpy()
    elif impl == "naive":
        start = time.perf_counter()
        scores = (Q @ K.T) * scale  # (n, n): the textbook form
        if causal:
            scores[np.triu_indices(n, 1)] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        result = scores @ V
        seconds = time.perf_counter() - start
    else:
        from attncli import engine
        from attncli.masks import Mask

        start = time.perf_counter()
        result = engine.fast_context(Q, K, V, scale, np.arange(n), Mask(causal))
        seconds = time.perf_counter() - start
    probe = [0, n // 2, n - 1]
    return {"seconds": seconds, "probe": result[probe].astype(float).tolist()}


def _load_worker(kind: str, path: str) -> dict[str, Any]:
    import numpy as np

    import attncli  # imported before the clock starts, like numpy: loading is timed

    start = time.perf_counter()
    if kind == "loadtxt":
        array = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 65))
        rows = array.shape[0]
    elif kind == "json.load":  # what a script would do, checking nothing
        with open(path, encoding="utf-8") as handle:
            array = np.array(json.load(handle)["embeddings"], dtype=np.float64)
        rows = array.shape[0]
    else:
        rows = len(attncli.load(path).tokens)
    return {"seconds": time.perf_counter() - start, "rows": rows}


def _worker(argv: list[str]) -> None:
    if argv[0] == "attention":
        impl, n, d, causal, dtype = (
            argv[1],
            int(argv[2]),
            int(argv[3]),
            argv[4] == "causal",
            argv[5],
        )
        out = _attention_worker(impl, n, d, causal, dtype)
    elif argv[0] == "inputs":
        out = _inputs_worker(int(argv[1]), Path(argv[2]))
    else:
        out = _load_worker(argv[1], argv[2])
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


# ---------------------------------------------------------------- the runner


def _run(python: str, *args: str) -> dict[str, Any] | None:
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        print(f"  ({' '.join(args)} failed: {last})", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median_walls(commands: list[list[str]], runs: int) -> list[float]:
    """The median wall time of each command, run in turn (A, B, C, A, B, C, ...) so that
    another load on the machine weighs on all of them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for command, kept in zip(commands, times, strict=True):
            start = time.perf_counter()
            # `attn` alone shows the help and exits 2: only the time matters here
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            kept.append(time.perf_counter() - start)
    return [statistics.median(kept) for kept in times]


def _can_import(python: str, module: str) -> bool:
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def startup(runs: int) -> None:
    attn = shutil.which("attn")
    if attn is None:
        print("`attn` is not on PATH; install attncli first (pip install .)\n")
        return
    # (label, command, target as a ratio to `import numpy`); --version's is Python's start
    rows: list[tuple[str, list[str], str]] = [
        ('`python -c "import numpy"`', [sys.executable, "-c", "import numpy"], ""),
        ("`python -c pass`", [sys.executable, "-c", "pass"], ""),
        (
            "`attn context your_journey.json -f json`",
            [attn, "context", str(SAMPLE), "-f", "json"],
            "≤ 1.5",
        ),
        (
            "`attn context your_journey.json -f table`",
            [attn, "context", str(SAMPLE), "-f", "table"],
            "≤ 2.0",
        ),
        ("`attn --help`", [attn, "--help"], "≤ 2.0"),
        ("`attn context --help`", [attn, "context", "--help"], "≤ 2.0"),
        ("`attn explain --help`", [attn, "explain", "--help"], "≤ 2.0"),
        ("`attn --version`", [attn, "--version"], "≈ `python -c pass`"),
    ]
    medians = _median_walls([command for _, command, _ in rows], runs)
    numpy, python = medians[0], medians[1]
    print(f"### Start-up (median of {runs} interleaved runs, whole processes)\n")
    print(
        '| command | median | ratio to `python -c "import numpy"` | ratio to `python -c pass` | target |'
    )
    print("|---|---|---|---|---|")
    for (label, _, target), median in zip(rows, medians, strict=True):
        print(
            f"| {label} | {median * 1000:.0f} ms | {median / numpy:.2f} | {median / python:.2f} | {target} |"
        )
    print()


def attention(
    sizes: list[int], dims: list[int], torch_python: str | None, naive_limit: int
) -> None:
    print("### Attention: context vectors, one head (seconds; peak RSS of the process)\n")
    header = "| n | d | mask | dtype | attn (blocked) | naive numpy | torch SDPA | attn / torch | max diff vs naive |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    ratios = []
    for n in sizes:
        for d in dims:
            for mask in ("plain", "causal"):
                for dtype in ("float32", "float64"):
                    args = [str(n), str(d), mask, dtype]
                    ours = _run(sys.executable, "attention", "attn", *args)
                    itemsize = 4 if dtype == "float32" else 8
                    naive = None
                    if n * n * itemsize <= naive_limit:
                        naive = _run(sys.executable, "attention", "naive", *args)
                    torch = (
                        _run(torch_python, "attention", "torch", *args) if torch_python else None
                    )
                    ratio = ours["seconds"] / torch["seconds"] if ours and torch else None
                    if ratio is not None:
                        ratios.append((n, d, mask, dtype, ratio))
                    diff = _max_diff(ours, naive) if ours and naive else None
                    print(
                        f"| {n} | {d} | {mask} | {dtype} | {_cell(ours)} | "
                        f"{_cell(naive) if n * n * itemsize <= naive_limit else 'n×n needs ' + _gib(n * n * itemsize)} | "
                        f"{_cell(torch)} | {f'{ratio:.2f}' if ratio else '–'} | "
                        f"{f'{diff:.1e}' if diff is not None else '–'} |",
                        flush=True,
                    )
    if ratios:
        print()
        for n in sorted({r[0] for r in ratios}):
            for d in sorted({r[1] for r in ratios if r[0] == n}):
                group = [r[4] for r in ratios if r[0] == n and r[1] == d]
                mean = math.exp(sum(math.log(r) for r in group) / len(group))
                print(
                    f"- n = {n}, d = {d}: attn / torch SDPA, geometric mean of {len(group)} cases: **{mean:.2f}**"
                )
    print()


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    pairs = zip(a["probe"], b["probe"], strict=True)
    return max(abs(x - y) for row_a, row_b in pairs for x, y in zip(row_a, row_b, strict=True))


def _cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "failed"
    return f"{result['seconds']:.2f} s, {result['peak_rss_mb']:.0f} MiB"


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.0f} GiB"


def _inputs_worker(rows: int, folder: Path) -> dict[str, Any]:
    """emb.csv, emb.json and emb.npy of `rows` x 64, written into `folder`."""
    import numpy as np

    matrix = np.random.default_rng(0).normal(size=(rows, 64))
    tokens = [f"tok{i}" for i in range(rows)]
    with (folder / "emb.csv").open("w", encoding="utf-8") as handle:
        handle.write("token," + ",".join(f"d{k + 1}" for k in range(64)) + "\n")
        for token, row in zip(tokens, matrix.tolist(), strict=True):
            handle.write(token + "," + ",".join(map(repr, row)) + "\n")
    (folder / "emb.json").write_text(
        json.dumps({"tokens": tokens, "embeddings": matrix.tolist()}), encoding="utf-8"
    )
    np.save(folder / "emb.npy", matrix)
    return {"rows": rows}


def io_loading(rows: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="attn-bench-"))
    try:
        # Written by a process of its own: a child's peak RSS counts its parent's (Linux
        # keeps the high-water mark across fork and exec), and the texts are 600 MiB.
        if _run(sys.executable, "inputs", str(rows), str(folder)) is None:
            return
        csv_path, json_path, npy_path = (folder / f"emb.{ext}" for ext in ("csv", "json", "npy"))
        cases = [
            ("`np.loadtxt(emb.csv, usecols=1..64)`", "loadtxt", csv_path),
            ("attn: emb.csv", "attn", csv_path),
            ("`json.load` + `np.array` (emb.json, nothing checked)", "json.load", json_path),
            ("attn: emb.json", "attn", json_path),
            ("attn: emb.npy", "attn", npy_path),
        ]
        results: list[list[dict[str, Any]]] = [[] for _ in cases]
        for _ in range(3):  # in turn, like the start-up: a load elsewhere weighs on all
            for (_, kind, path), kept in zip(cases, results, strict=True):
                result = _run(sys.executable, "load", kind, str(path))
                if result is not None:
                    kept.append(result)
        seconds = [statistics.median(r["seconds"] for r in kept) for kept in results]
        peaks = [statistics.median(r["peak_rss_mb"] for r in kept) for kept in results]
        print(f"### Loading {rows} x 64 (median of 3 interleaved runs, each in its own process)\n")
        print("| input | seconds | ratio to `np.loadtxt` on the CSV | peak RSS |")
        print("|---|---|---|---|")
        for (label, _, _), median, peak in zip(cases, seconds, peaks, strict=True):
            print(f"| {label} | {median:.2f} | {median / seconds[0]:.2f} | {peak:.0f} MiB |")
        print()
    finally:
        shutil.rmtree(folder)


def _timed(command: list[str]) -> tuple[float, float]:
    """Seconds and peak resident MiB of one whole process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed ({status})")
    return seconds, usage.ru_maxrss / 1024


def beyond(n: int) -> None:
    """`attn context` on n tokens of 64 dimensions (d_out 64, causal) with each of the
    later chapters' variants: time and peak memory of the whole process."""
    import numpy as np

    attn = shutil.which("attn")
    if attn is None:
        print("`attn` is not on PATH; install attncli first (pip install .)\n")
        return
    folder = Path(tempfile.mkdtemp(prefix="attn-bench-"))
    try:
        source = folder / "tokens.npy"
        np.save(source, np.random.default_rng(0).normal(size=(n, 64)))
        base = [attn, "context", str(source), "-m", "causal", "--init", "linear", "--d-out", "64"]
        variants = [
            ("one head (chapter 3)", []),
            ("--window 512", ["--window", "512"]),
            ("--heads 8", ["--heads", "8"]),
            ("--heads 8 --kv-groups 2", ["--heads", "8", "--kv-groups", "2"]),
            ("--heads 8 --latent-dim 32", ["--heads", "8", "--latent-dim", "32"]),
        ]
        print(f"### Beyond chapter 3: `attn context` on {n} x 64, causal, d_out 64\n")
        print("| variant | seconds | peak RSS | input + output |")
        print("|---|---|---|---|")
        for label, extra in variants:
            out = folder / "out.npy"
            seconds, rss = _timed([*base, *extra, "-f", "npy", "-o", str(out)])
            sizes = (source.stat().st_size + out.stat().st_size) / 2**20
            print(f"| {label} | {seconds:.2f} | {rss:.0f} MiB | {sizes:.0f} MiB |")
        print()
    finally:
        shutil.rmtree(folder)


def _machine() -> str:
    blas = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return (
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"OPENBLAS_CORETYPE={blas}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["startup", "attention", "io", "beyond"],
        help="sections to run",
    )
    parser.add_argument(
        "--torch-python", help="a python that can import torch (default: this one, if it can)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="sequence lengths (default 1024 4096 16384 65536)"
    )
    parser.add_argument("--dims", type=int, nargs="*", help="head dimensions (default 64 768)")
    args = parser.parse_args()
    sections = set(args.only or ["startup", "attention", "io", "beyond"])
    torch_python = args.torch_python or (
        sys.executable if _can_import(sys.executable, "torch") else None
    )
    if torch_python and not _can_import(torch_python, "torch"):
        print(f"{torch_python} cannot import torch; SDPA is left out", file=sys.stderr)
        torch_python = None
    sizes = args.sizes or ([1024, 4096] if args.quick else [1024, 4096, 16384, 65536])
    dims = args.dims or ([64] if args.quick else [64, 768])
    print(f"Measured on: {_machine()}\n")
    if "startup" in sections:
        startup(runs=11 if args.quick else 31)
    if "attention" in sections:
        attention(sizes, dims, torch_python, naive_limit=4 * 2**30)
    if "io" in sections:
        io_loading(10_000 if args.quick else 100_000)
    if "beyond" in sections:
        beyond(4096 if args.quick else 65536)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        main()

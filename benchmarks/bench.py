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
import contextlib
import importlib
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
    """One attention computation, in this process: seconds, and the largest difference
    of three rows from the textbook computation in float64 on the same inputs."""
    import numpy as np

    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
    scale = d**-0.5
    if impl == "torch":
        import torch  # type: ignore[import-not-found]

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
    worst = 0.0
    chunks = [slice(i, i + 8192) for i in range(0, n, 8192)]  # no n x d float64 copies
    for row in (0, n // 2, n - 1):  # the direct computation, in float64, row by row
        q = Q[row].astype(np.float64)
        scores = np.concatenate([K[c].astype(np.float64) @ q for c in chunks]) * scale
        if causal:
            scores[row + 1 :] = -np.inf
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        direct = sum(weights[c] @ V[c].astype(np.float64) for c in chunks)
        worst = max(worst, float(np.max(np.abs(direct - result[row]))))
    return {"seconds": seconds, "max_diff": worst}


def _breakdown_worker(dtype: str, d: int) -> dict[str, Any]:
    """Where the engine's time goes: its tile loop taken apart, one thread, n = 4096,
    nanoseconds of one core per (query, key) pair for each step."""
    import numpy as np

    from attncli import blas, engine

    n = 4096
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
    rows, width = engine.tile_shape(d, Q.dtype.itemsize)
    S = np.empty((rows, width), dtype=dtype)
    part = np.empty((rows, d), dtype=dtype)
    totals = np.zeros(rows, dtype=dtype)
    spent = {"Q K^T": 0.0, "exp": 0.0, "row sums": 0.0, "weights V": 0.0}
    clock = time.perf_counter
    with blas.single_threaded():
        for start in range(0, n, rows):
            q = Q[start : start + rows] * np.dtype(dtype).type(d**-0.5)
            for t0 in range(0, n, width):
                a = clock()
                np.matmul(q, K[t0 : t0 + width].T, out=S)
                b = clock()
                np.exp(S, out=S)
                c = clock()
                totals += S.sum(axis=1)
                e = clock()
                np.matmul(S, V[t0 : t0 + width], out=part)
                f = clock()
                spent["Q K^T"] += b - a
                spent["exp"] += c - b
                spent["row sums"] += e - c
                spent["weights V"] += f - e
    return {step: seconds / n**2 * 1e9 for step, seconds in spent.items()}


def _bound_worker(dtype: str) -> dict[str, Any]:
    """The machine's rates for attention's two kinds of work, in this process: a large
    matrix product on every core (numpy's BLAS, its own threads) and exp() on arrays
    that stay in cache, one thread per core (numpy lets go of the GIL in exp)."""
    import threading

    import numpy as np

    rng = np.random.default_rng(0)
    size = 4096
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)
    C = np.empty_like(A)
    np.matmul(A, B, out=C)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        best = min(best, time.perf_counter() - start)
    flops = 2 * size**3 / best
    cores = len(os.sched_getaffinity(0))
    chunk, repeats = 1 << 15, 3000
    times: list[float] = []

    def exps() -> None:
        x = rng.standard_normal(chunk).astype(dtype)
        y = np.empty_like(x)
        start = time.perf_counter()
        for _ in range(repeats):
            np.exp(x, out=y)
        times.append(time.perf_counter() - start)

    threads = [threading.Thread(target=exps) for _ in range(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"flops": flops, "exps": cores * chunk * repeats / max(times)}


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
    elif argv[0] == "bound":
        out = _bound_worker(argv[1])
    elif argv[0] == "breakdown":
        out = _breakdown_worker(argv[1], int(argv[2]))
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


# The cases issue 14 sets goals for: (n, d) x mask x dtype.
GOAL_CASES = [
    (n, d, mask, dtype)
    for n, d in ((65536, 64), (16384, 768))
    for mask in ("causal", "plain")
    for dtype in ("float64", "float32")
]
QUICK_CASES = [(4096, 64, mask, "float64") for mask in ("causal", "plain")]


def _cpu_ticks() -> tuple[float, float]:
    """Seconds of CPU time every process has used so far on all cores, and the time
    the hypervisor took from this machine (steal), from /proc/stat."""
    fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _measure(python: str, *args: str, source: str | None = None) -> dict[str, Any] | None:
    """One worker as a whole process: what it reports, plus its wall time, peak RSS,
    and how many cores other processes kept busy meanwhile (and the steal). With
    `source`, attncli is imported from that checkout (an earlier version, say)."""
    env = dict(os.environ, PYTHONPATH=source) if source else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy_before, steal_before = _cpu_ticks()
        start = time.perf_counter()
        process = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker", *args],
            stdout=out,
            stderr=err,
            env=env,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        busy_after, steal_after = _cpu_ticks()
        process.returncode = status  # reaped above
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if status != 0:
        last = (stderr.strip().splitlines() or ["(no message)"])[-1]
        print(f"  ({' '.join(args)} failed: {last})", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    own = usage.ru_utime + usage.ru_stime
    result["wall"] = wall
    result["other_cores"] = max(0.0, (busy_after - busy_before - own) / wall)
    result["steal"] = (steal_after - steal_before) / wall
    return result


class _BusyCore:
    """Another process busy on one core for the duration (a pure-Python loop)."""

    def __enter__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def __exit__(self, *_: object) -> None:
        self.process.kill()
        self.process.wait()


def _spread(values: list[float], digits: int = 2) -> str:
    """median (min–max)"""
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def attention(
    cases: list[tuple[int, int, str, str]],
    runs: int,
    torch_python: str | None,
    under_load: bool,
    before: str | None = None,
) -> None:
    """attn's engine beside torch's SDPA on the same inputs, each run a process of its
    own, attn and torch taking turns (and with --under-load, each case again with
    another process busy on one core), with the machine's bound for each case."""
    loads = [False, True] if under_load else [False]
    bounds = {}
    for dtype in sorted({case[3] for case in cases}):
        bound = _run(sys.executable, "bound", dtype)
        if bound:
            bounds[dtype] = bound
    found: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    impls = ["attn", "torch"] if torch_python else ["attn"]
    if before:
        impls.insert(1, "before")
    for run in range(runs):
        for case in cases:
            n, d, mask, dtype = case
            for loaded in loads:
                order = impls if run % 2 == 0 else impls[::-1]
                for impl in order:
                    if loaded and impl == "before":
                        continue  # the earlier version is compared quiet only
                    python = torch_python if impl == "torch" else sys.executable
                    assert python is not None
                    kind = "attn" if impl == "before" else impl
                    args = ("attention", kind, str(n), str(d), mask, dtype)
                    with _BusyCore() if loaded else contextlib.nullcontext():
                        result = _measure(
                            python, *args, source=before if impl == "before" else None
                        )
                    if result:
                        found.setdefault((case, impl, loaded), []).append(result)
                    print(
                        f"  run {run + 1}/{runs}: {case} {impl}{' under load' if loaded else ''}: "
                        f"{result['wall'] if result else float('nan'):.2f} s",
                        file=sys.stderr,
                    )
    print(f"### Attention: context vectors, one head ({runs} runs each, medians (min–max))\n")
    print("Whole processes (start, inputs, work, a check of three rows against float64) and, in")
    print("brackets, the work alone. Bound: the case's products at the BLAS's measured peak on")
    rates = ", ".join(
        f"{dtype}: {rate['flops'] / 1e9:.0f} GF/s and {rate['exps'] / 1e9:.2f} G exp/s"
        for dtype, rate in bounds.items()
    )
    print(f"every core plus its exp() at the in-cache rate on every core ({rates}).\n")
    header = (
        "| n | d | mask | dtype | attn s | torch SDPA s | attn / torch | work alone: attn / torch "
        "| % of bound | max diff from float64 | peak RSS attn / torch | other load (cores) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for case in cases:
        _attention_row(case, found, bounds, loaded=False)
    if before:
        print(f"\nThe same runs, attn before and after (before: {before}):\n")
        print("| n | d | mask | dtype | before s | after s | after / before | before / torch |")
        print("|---|---|---|---|---|---|---|---|")
        for case in cases:
            old = found.get((case, "before", False), [])
            new = found.get((case, "attn", False), [])
            theirs = found.get((case, "torch", False), [])
            print(
                f"| {case[0]} | {case[1]} | {case[2]} | {case[3]} | "
                f"{_spread([r['wall'] for r in old])} | {_spread([r['wall'] for r in new])} | "
                f"{_spread(_ratios(new, old, 'wall'))} | {_spread(_ratios(old, theirs, 'wall'))} |"
            )
    if under_load:
        print("\nWith another process busy on one core (`python -c 'while True: pass'`):\n")
        header = "| n | d | mask | dtype | attn s | torch SDPA s | attn / torch | loaded ratio / quiet ratio |"
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        for case in cases:
            _loaded_row(case, found)
    print()


def _ratios(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[float]:
    """Run-by-run ratios (runs pair up in the order they were taken)."""
    return [x[key] / y[key] for x, y in zip(a, b, strict=False)]


def _attention_row(
    case: tuple[int, int, str, str],
    found: dict[tuple[Any, ...], list[dict[str, Any]]],
    bounds: dict[str, dict[str, float]],
    loaded: bool,
) -> None:
    n, d, mask, dtype = case
    ours = found.get((case, "attn", loaded), [])
    theirs = found.get((case, "torch", loaded), [])
    pairs = n * (n + 1) // 2 if mask == "causal" else n * n  # (query, key) pairs computed
    bound = bounds.get(dtype)
    share = "–"
    if bound and ours:
        seconds = 4 * pairs * d / bound["flops"] + pairs / bound["exps"]
        share = f"{100 * seconds / statistics.median(r['seconds'] for r in ours):.0f} %"
    whole = _ratios(ours, theirs, "wall")
    work = _ratios(ours, theirs, "seconds")
    rss = (
        f"{statistics.median(r['peak_rss_mb'] for r in ours):.0f} / "
        f"{statistics.median(r['peak_rss_mb'] for r in theirs):.0f} MiB"
        if ours and theirs
        else "–"
    )
    diff = max((r["max_diff"] for r in ours), default=math.nan)
    others = [r["other_cores"] for r in ours + theirs]
    print(
        f"| {n} | {d} | {mask} | {dtype} | {_spread([r['wall'] for r in ours])} "
        f"| {_spread([r['wall'] for r in theirs])} | **{_spread(whole)}** | {_spread(work)} "
        f"| {share} | {diff:.1e} | {rss} | {_spread(others)} |",
        flush=True,
    )


def _loaded_row(
    case: tuple[int, int, str, str], found: dict[tuple[Any, ...], list[dict[str, Any]]]
) -> None:
    n, d, mask, dtype = case
    quiet = _ratios(
        found.get((case, "attn", False), []), found.get((case, "torch", False), []), "wall"
    )
    ours = found.get((case, "attn", True), [])
    theirs = found.get((case, "torch", True), [])
    loaded = _ratios(ours, theirs, "wall")
    change = (
        f"{statistics.median(loaded) / statistics.median(quiet):.2f}" if loaded and quiet else "–"
    )
    print(
        f"| {n} | {d} | {mask} | {dtype} | {_spread([r['wall'] for r in ours])} "
        f"| {_spread([r['wall'] for r in theirs])} | **{_spread(loaded)}** | {change} |",
        flush=True,
    )


def breakdown(torch_python: str | None) -> None:
    """The engine's tile loop taken apart on one core, beside the machine's exp() and
    torch's whole SDPA per (query, key) pair."""
    print("### Where the time goes (one core, n = 4096, ns per (query, key) pair)\n")
    header = "| d | dtype | Q K^T | exp | row sums | weights V | sum | torch SDPA, both cores x 2 |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for d in (64, 768):
        for dtype in ("float64", "float32"):
            steps = _run(sys.executable, "breakdown", dtype, str(d))
            if not steps:
                continue
            steps.pop("peak_rss_mb", None)
            theirs = "–"
            if torch_python:
                result = _run(torch_python, "attention", "torch", "4096", str(d), "plain", dtype)
                if result:
                    theirs = f"{2 * result['seconds'] / 4096**2 * 1e9:.2f}"
            cells = " | ".join(f"{value:.2f}" for value in steps.values())
            print(f"| {d} | {dtype} | {cells} | {sum(steps.values()):.2f} | {theirs} |")
    print()


def grid(sizes: list[int], dims: list[int], torch_python: str | None, naive_limit: int) -> None:
    """Every size x head width x mask x dtype once, beside the naive numpy form."""
    print("### Attention grid: context vectors, one head (seconds; peak RSS of the process)\n")
    header = "| n | d | mask | dtype | attn (blocked) | naive numpy | torch SDPA | attn / torch | max diff from float64 |"
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
                    diff = ours["max_diff"] if ours else None
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
    """The CPU, cores, memory and numpy's BLAS: what the figures depend on."""
    import numpy as np

    model = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    features = importlib.import_module("numpy._core._multiarray_umath").__cpu_features__
    simd = "AVX-512" if features.get("AVX512F") else "AVX2" if features.get("AVX2") else "SSE"
    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB, {simd}; "
        f"Python {platform.python_version()}, numpy {np.__version__} with {blas['name']} "
        f"{blas['version']}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["startup", "attention", "breakdown", "grid", "io", "beyond"],
        help="sections to run",
    )
    parser.add_argument(
        "--torch-python", help="a python that can import torch (default: this one, if it can)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="sequence lengths (default 1024 4096 16384 65536)"
    )
    parser.add_argument("--dims", type=int, nargs="*", help="head dimensions (default 64 768)")
    parser.add_argument(
        "--runs", type=int, help="runs of each attention case (default 5, --quick 1)"
    )
    parser.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also run the attention cases with attncli from this checkout (an earlier version)",
    )
    parser.add_argument(
        "--under-load",
        action="store_true",
        help="run each attention case again with another process busy on one core",
    )
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
        runs = args.runs or (1 if args.quick else 5)
        cases = QUICK_CASES if args.quick else GOAL_CASES
        attention(cases, runs, torch_python, args.under_load, args.before)
    if "breakdown" in sections:
        breakdown(torch_python)
    if "grid" in sections:
        grid(sizes, dims, torch_python, naive_limit=4 * 2**30)
    if "io" in sections:
        io_loading(10_000 if args.quick else 100_000)
    if "beyond" in sections:
        beyond(4096 if args.quick else 65536)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        main()

"""Blocked attention equals the direct computation, across block boundaries."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attncli import AttentionParams, Embeddings, attention, blas, compute, engine
from attncli.masks import Mask
from attncli.rng import DropoutStream, TorchGenerator


def embeddings(T: int, d: int, seed: int = 0, scale: float = 1.0) -> Embeddings:
    matrix = np.random.default_rng(seed).normal(size=(T, d)) * scale
    return Embeddings(tuple(f"t{i}" for i in range(T)), matrix)


def small_tiles(monkeypatch: pytest.MonkeyPatch, rows: int, keys: int) -> None:
    """Tiles of `rows` x `keys` float64 scores (twice the keys in float32), handed to
    several worker threads however little the work."""
    monkeypatch.setattr(engine, "TILE_ROWS", rows)
    monkeypatch.setattr(engine, "TILE_BYTES", rows * keys * 8)
    monkeypatch.setattr(engine, "_THREADED_WORK", 0)
    monkeypatch.setattr(engine, "workers", lambda: 3)


@pytest.fixture(params=[1, 3, 8, 256], ids=lambda b: f"block{b}")
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Force blocks of this many rows, and tiles of as many rows by one or two more
    keys, on three threads (T is rarely a multiple of either)."""
    monkeypatch.setattr(engine, "MAX_BLOCK_ROWS", request.param)
    small_tiles(monkeypatch, request.param, request.param % 2 + 1)
    return int(request.param)


CASES = [
    {"mode": "plain"},
    {"mode": "trainable", "d_out": 4},
    {"mode": "causal", "d_out": 4},
    {"mode": "causal", "init": "linear", "d_out": 4, "heads": 2},
    {"mode": "causal", "init": "linear", "d_out": 4, "heads": 2, "qkv_bias": True},
    {"mode": "trainable", "init": "linear", "d_out": 2, "heads": 2, "wrapper": True},
    {"mode": "causal", "init": "linear", "d_out": 4, "heads": 2, "dropout": 0.3},
    {"mode": "trainable", "dropout": 0.5, "dropout_seed": 7},
]


@pytest.mark.parametrize("T", [1, 2, 7, 33])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_blocked_context_equals_direct(block: int, T: int, case: dict) -> None:
    emb = embeddings(T, 5)
    params = AttentionParams(**case)
    direct = compute(emb, params).context_vecs
    blocked = attention.context(attention.prepare(emb, params))
    np.testing.assert_allclose(blocked, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_one_query_row_equals_that_row(block: int, case: dict) -> None:
    emb = embeddings(11, 3)
    params = AttentionParams(**case)
    full = attention.context(attention.prepare(emb, params))
    for i in (0, 5, 10):
        one = attention.context(attention.prepare(emb, params), query=i)
        np.testing.assert_allclose(one[0], full[i], rtol=1e-12, atol=1e-12)
        row = compute(emb, params, query=i)
        np.testing.assert_allclose(row.context_vecs[0], full[i], rtol=1e-12, atol=1e-12)


def test_exact_rows_in_blocks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = embeddings(20, 4)
    params = AttentionParams(mode="causal", init="linear", d_out=4, heads=2, dropout=0.2)
    whole = compute(emb, params)
    monkeypatch.setattr(engine, "MAX_BLOCK_ROWS", 3)
    pieces = compute(emb, params)
    np.testing.assert_array_equal(pieces.dropout_keep, whole.dropout_keep)
    np.testing.assert_allclose(pieces.attn_weights, whole.attn_weights, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(pieces.context_vecs, whole.context_vecs, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("budget", [None, 4000], ids=["augmented", "two-more-passes"])
@pytest.mark.parametrize("causal", [False, True])
def test_both_forms_of_the_fast_kernel(
    budget: int | None, causal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocked kernel, used with dropout and when the BLAS is not one attn can hold
    to one thread (here: none found): short inputs keep [K | 1] and [V | 1] copies;
    long ones (here: a tiny budget) subtract the shift and sum the rows in passes of
    their own. Same numbers."""
    monkeypatch.setattr(engine, "_THREADED_WORK", 0)
    monkeypatch.setattr(blas, "_controls_once", lambda: None)
    rng = np.random.default_rng(5)
    Q, K, V = (rng.normal(size=(30, 4)) for _ in range(3))
    rows = np.arange(30)
    fast = engine.fast_context(Q, K, V, 0.5, rows, Mask(causal), budget=budget)
    exact = engine.exact_rows(Q, K, V, 0.5, rows, Mask(causal))[3]
    np.testing.assert_allclose(fast, exact, rtol=1e-12, atol=1e-14)
    keep = rng.random((30, 30)) < 0.7
    fast = engine.fast_context(
        Q, K, V, 0.5, rows, Mask(causal), lambda r: keep[r], 1 / 0.7, budget=budget
    )
    exact = engine.exact_rows(Q, K, V, 0.5, rows, Mask(causal), keep, 1 / 0.7)[3]
    np.testing.assert_allclose(fast, exact, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("threads", [False, True])
def test_a_loose_shift_falls_back_to_the_exact_row(
    threads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key of huge norm that no query points at makes |q| max|k| far above every
    score: exp() would underflow to 0 for the whole row, so the row is done exactly
    (and a worker thread says nothing of the overflow: warnings are errors here)."""
    if threads:
        small_tiles(monkeypatch, 1, 2)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1e4], [1.0, 1.0]])
    Q, K, V = X[[0, 1]], X, X
    out = engine.fast_context(Q, K, V, 1.0, np.array([0, 1]), Mask())
    direct = engine.exact_rows(Q, K, V, 1.0, np.array([0, 1]), Mask())[3]
    np.testing.assert_allclose(out, direct, rtol=1e-12)
    assert np.isfinite(out).all()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 6),
    st.sampled_from(["plain", "trainable", "causal"]),
    st.floats(0.01, 30.0),
    st.integers(1, 9),
)
def test_blocked_equals_direct_on_random_inputs(
    T: int, d: int, mode: str, scale: float, block: int
) -> None:
    emb = embeddings(T, d, seed=T * 7 + d, scale=scale)
    params = AttentionParams(mode=mode)
    direct = compute(emb, params).context_vecs
    Q, K, V = attention.prepare(emb, params).head(0)
    prepared = attention.prepare(emb, params)
    rows = np.arange(T)
    blocked = engine.fast_context(
        Q, K, V, prepared.scale, rows, prepared.mask, budget=block * T * 17
    )
    np.testing.assert_allclose(blocked, direct, rtol=1e-12, atol=1e-12 * max(1.0, scale))


def test_float32_follows_float64_to_float32_precision() -> None:
    emb = embeddings(50, 8)
    for mode in ("plain", "causal"):
        f64 = attention.context(attention.prepare(emb, AttentionParams(mode=mode)))
        f32 = attention.context(attention.prepare(emb, AttentionParams(mode=mode, dtype="float32")))
        assert f32.dtype == np.float32
        np.testing.assert_allclose(f32, f64, rtol=2e-5, atol=2e-6)


def test_dropout_stream_hands_out_rows_as_one_draw_would() -> None:
    T, H = 6, 2
    whole = TorchGenerator(5).dropout_keep(H * T * T, 0.4).reshape(H, T, T)
    stream = DropoutStream(TorchGenerator(5), T, 0.4)
    np.testing.assert_array_equal(stream.keep(0, np.array([1, 2])), whole[0, 1:3])
    np.testing.assert_array_equal(stream.keep(1, np.array([0, 4, 5])), whole[1, [0, 4, 5]])
    np.testing.assert_array_equal(stream.keep(0, np.array([0])), whole[0, :1])  # replayed


MASKS = {
    "plain": Mask(),
    "causal": Mask(causal=True),
    "window": Mask(causal=True, window=5),
    "offset": Mask(causal=True, offset=7),
    "cross-top-left": Mask(causal=True, offset=-4),
}


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("rows", "keys"), [(1, 1), (4, 3), (16, 64)])
def test_tiles_on_threads_equal_the_direct_computation(
    name: str, dtype: type, rows: int, keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles of every shape, masks seen by some rows of a tile only, rows that see no
    key (zero weights, zero context), scores far enough up to need the shift."""
    small_tiles(monkeypatch, rows, keys)
    rng = np.random.default_rng(len(name) * rows + keys)
    n, T = 37, 41
    mask = MASKS[name]
    for size in (1.0, 6.0):  # the second: |q| max|k| far past the no-shift bound
        Q = (rng.normal(size=(n, 5)) * size).astype(dtype)
        K = (rng.normal(size=(T, 5)) * size).astype(dtype)
        V = rng.normal(size=(T, 3)).astype(dtype)
        wanted = engine.exact_rows(
            *(m.astype(np.float64) for m in (Q, K, V)), 0.5, np.arange(n), mask
        )[3]
        got = engine.fast_context(Q, K, V, 0.5, np.arange(n), mask)
        assert got.dtype == dtype
        tolerance = 1e-12 if dtype is np.float64 else 2e-5
        np.testing.assert_allclose(got, wanted, rtol=tolerance, atol=tolerance)


def test_the_blas_runs_one_thread_during_the_work_and_as_many_as_before_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controls = blas._controls_once()
    if controls is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS")
    _, getter = controls
    before = getter()
    seen: list[int] = []
    block = engine._context_block

    def watched(*args: object) -> None:
        seen.append(getter())
        block(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_context_block", watched)
    monkeypatch.setattr(engine, "_THREADED_WORK", 0)
    Q = np.random.default_rng(1).normal(size=(600, 8))
    engine.fast_context(Q, Q, Q, 0.3, np.arange(600), Mask(causal=True))
    assert seen
    assert set(seen) == {1}
    assert getter() == before


def test_an_error_in_a_worker_thread_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raised where the work was asked for, once every worker has stopped."""
    small_tiles(monkeypatch, 2, 2)
    block = engine._context_block
    main = threading.get_ident()

    def failing(*args: object) -> None:
        if threading.get_ident() != main:
            raise MemoryError("no room for a tile")
        block(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_context_block", failing)
    Q = np.random.default_rng(1).normal(size=(50, 4))
    before = threading.active_count()
    with pytest.raises(MemoryError, match="no room for a tile"):
        engine.fast_context(Q, Q, Q, 0.3, np.arange(50), Mask())
    assert threading.active_count() == before


def test_progress_is_heard_in_the_calling_thread_and_ends_at_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small_tiles(monkeypatch, 4, 8)
    heard: list[tuple[int, int]] = []
    Q = np.random.default_rng(2).normal(size=(90, 4))
    engine.fast_context(
        Q,
        Q,
        Q,
        0.3,
        np.arange(90),
        Mask(),
        progress=lambda done: heard.append((done, threading.get_ident())),
    )
    assert {ident for _, ident in heard} == {threading.get_ident()}
    counts = [done for done, _ in heard]
    assert counts == sorted(counts)
    assert counts[-1] == 90


def test_a_signal_while_a_worker_starts_reaches_the_caller_as_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (or SIGTERM's SystemExit) landing inside Thread.start(), before the thread
    says it has started, is what the caller sees, not join()'s complaint about a thread
    not started (the command line turned that into exit 70)."""
    monkeypatch.setattr(engine, "_THREADED_WORK", 0)
    monkeypatch.setattr(engine, "workers", lambda: 2)

    def interrupted(self: threading.Thread) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    Q = np.random.default_rng(3).normal(size=(600, 4))
    with pytest.raises(KeyboardInterrupt):
        engine.fast_context(Q, Q, Q, 0.3, np.arange(600), Mask())

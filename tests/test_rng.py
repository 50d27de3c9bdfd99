"""Seeded draws equal torch's bit for bit (test vectors from torch_rng.md and torch itself)."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attncli import AttnError
from attncli.rng import SEED_MAX, SEED_MIN, TorchGenerator, dropout_scale, fused_multiply_add_f32

from .conftest import BOOK, DATA

TORCH_EDGES = json.loads((DATA / "torch_seed_edges.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("seed", "first_outputs"),
    [
        (123, [0xB24BCDFE, 0xB6843D6D, 0x49406D7E, 0x6DB04542]),
        (789, [0x52C61233, 0x21E5468E, 0x3AF1799E]),
        (0, [0x8C7F0AAC, 0x97C4AA2F]),
    ],
)
def test_raw_stream_matches_mt19937_test_vectors(seed: int, first_outputs: list[int]) -> None:
    assert TorchGenerator(seed).raw32(len(first_outputs)).tolist() == first_outputs


def test_three_rand_calls_are_the_books_weights_bit_for_bit() -> None:
    weights = BOOK["weights"]["trainable_seed123_torch_rand"]
    gen = TorchGenerator(123)
    for name in ("W_query", "W_key", "W_value"):
        drawn = gen.rand(3, 2)
        assert drawn.dtype == np.float32
        # bit for bit: the reference holds float32 values printed as doubles
        np.testing.assert_array_equal(drawn, np.array(weights[name], dtype=np.float32))


@pytest.mark.parametrize("case", TORCH_EDGES["cases"], ids=lambda case: str(case["seed"]))
def test_seeds_across_torchs_whole_range(case: dict) -> None:
    drawn = TorchGenerator(case["seed"]).rand(2, 3)
    np.testing.assert_array_equal(drawn, np.array(case["rand_2x3"], dtype=np.float32))


@pytest.mark.parametrize("seed", [SEED_MAX + 1, SEED_MIN - 1])
def test_seeds_torch_rejects_are_usage_errors(seed: int) -> None:
    assert seed in [case["seed"] for case in TORCH_EDGES["rejected"]]
    with pytest.raises(AttnError) as caught:
        TorchGenerator(seed)
    assert caught.value.status == 2
    # the library names its parameter; the command line, its flag
    assert caught.value.message.startswith(f"seed={seed} is out of range")
    assert caught.value.for_command_line().startswith(f"--seed {seed} is out of range")


@given(
    seed=st.integers(SEED_MIN, SEED_MAX),
    shapes=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=4),
)
def test_draws_continue_one_stream(seed: int, shapes: list[tuple[int, int]]) -> None:
    """Several rand calls in a row equal one long call cut into pieces (row-major)."""
    gen = TorchGenerator(seed)
    pieces = [gen.rand(rows, cols).ravel() for rows, cols in shapes]
    total = sum(rows * cols for rows, cols in shapes)
    np.testing.assert_array_equal(np.concatenate(pieces), TorchGenerator(seed).rand(1, total)[0])


@given(seed=st.integers(SEED_MIN, SEED_MAX))
def test_rand_is_in_unit_interval_on_a_2_to_the_minus_24_grid(seed: int) -> None:
    drawn = TorchGenerator(seed).rand(4, 4).astype(np.float64)
    assert ((drawn >= 0) & (drawn < 1)).all()
    np.testing.assert_array_equal(drawn * 2**24, np.round(drawn * 2**24))


# ---------------------------------------------------------------- uniform_, nn.Linear, dropout

DRAWS = json.loads((DATA / "torch_draws.json").read_text(encoding="utf-8"))


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


@pytest.mark.parametrize(
    "case", DRAWS["cases"], ids=lambda c: f"{c['kind']}-{c['seed']}-{c.get('p', c.get('d_in', ''))}"
)
def test_draws_equal_torchs_bit_for_bit(case: dict) -> None:
    gen = TorchGenerator(case["seed"])
    if case["kind"] == "linear":
        weight, bias = gen.linear(case["d_in"], case["d_out"], case["bias"])
        assert weight.shape == (case["d_out"], case["d_in"])
        assert weight.ravel()[:4].tolist() == case["first_weights"]
        blob = weight.tobytes() + (bias.tobytes() if bias is not None else b"")
        assert hashlib.sha256(blob).hexdigest() == case["sha256_float32"]
    elif case["kind"] == "uniform":
        values = gen.uniform(1, case["n"], case["low"], case["high"])[0]
        assert sha256(values) == case["sha256_float32"]
        return
    else:
        keep = gen.dropout_keep(int(np.prod(case["shape"])), case["p"]).reshape(case["shape"])
        assert sha256(keep) == case["sha256_keep"]
        expected_value = dropout_scale(case["p"]) if case["p"] < 1 else 0.0
        assert expected_value == case["kept_value"]
    # the stream continues where torch's does
    assert float(gen.rand(1, 1)[0, 0]) == case["next_rand"]


def test_dropout_scale_is_torchs_float32_reciprocal() -> None:
    assert dropout_scale(0.5) == 2.0
    assert dropout_scale(0.45) == float(np.float32(1) / np.float32(0.55))
    assert dropout_scale(0.45) != 1 / 0.55  # why the float32 detail matters


@pytest.mark.parametrize(
    ("k", "span"),
    [(16358627, 6.112982475769968e-08), (13692479, 7.303279403458873e-08)],
)
def test_fused_multiply_add_settles_a_float64_tie(k: int, span: float) -> None:
    """x * y + z lands within half a float64 ulp of a float32 midpoint: rounding to float64
    first makes a tie that round-half-even would settle the wrong way about half the time.
    The exact (Fraction) result decides what a true FMA gives."""
    x = np.array([k * 2.0**-24])
    y = np.float64(np.float32(span))
    exact = Fraction(k, 2**24) * Fraction(float(y)) + 1
    got = fused_multiply_add_f32(x, y, np.float64(1.0))[0]
    below = np.float32(1.0)
    above = np.nextafter(below, np.float32(2.0))
    nearest = min((below, above), key=lambda c: abs(Fraction(float(c)) - exact))
    assert got == nearest
    assert (
        abs(Fraction(float(got)) - exact) < abs(Fraction(float(above)) - Fraction(float(below))) / 2
    )

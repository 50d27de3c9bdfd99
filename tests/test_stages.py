"""The attention stages: exact softmax, the causal mask, and the properties attention has."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attncli import AttentionParams, Embeddings, compute, stages
from attncli.masks import Mask

CAUSAL = Mask(causal=True)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def embeddings_strategy(max_tokens: int = 8, max_dim: int = 5) -> st.SearchStrategy[np.ndarray]:
    shapes = st.tuples(st.integers(1, max_tokens), st.integers(1, max_dim))
    return shapes.flatmap(lambda shape: arrays(np.float64, shape, elements=finite))


def as_embeddings(matrix: np.ndarray) -> Embeddings:
    return Embeddings(tuple(f"t{i}" for i in range(len(matrix))), matrix)


def test_softmax_matches_its_definition() -> None:
    scores = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
    by_definition = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(stages.softmax(scores), by_definition, rtol=1e-15)


def test_softmax_of_large_finite_scores_is_exact_and_stable() -> None:
    # exp(1000) overflows; the max-subtracted form still gives exp(0)/(exp(0)+exp(-1)).
    weights = stages.softmax(np.array([[1000.0, 999.0], [-5000.0, -5000.0]]))
    expected_first = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(weights[0], [expected_first, 1 - expected_first], rtol=1e-15)
    np.testing.assert_array_equal(weights[1], [0.5, 0.5])


def test_masked_entries_get_exactly_zero_weight() -> None:
    scores = stages.mask(np.ones((3, 3)), CAUSAL.hidden(np.arange(3), 0, 3))
    weights = stages.softmax(scores)
    np.testing.assert_array_equal(weights, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_causal_mask_for_one_row_is_that_row_of_the_full_mask() -> None:
    full = np.triu(np.ones((6, 6), dtype=bool), k=1)  # the book's mask
    np.testing.assert_array_equal(CAUSAL.hidden(np.arange(6), 0, 6), full)
    for i in range(6):
        np.testing.assert_array_equal(CAUSAL.hidden(np.array([i]), 0, 6)[0], full[i])


@given(embeddings_strategy(), st.sampled_from(["plain", "trainable", "causal"]))
def test_weight_rows_are_probability_distributions(matrix: np.ndarray, mode: str) -> None:
    result = compute(as_embeddings(matrix), AttentionParams(mode=mode))
    assert (result.attn_weights[0] >= 0).all()
    np.testing.assert_allclose(result.attn_weights[0].sum(axis=1), 1.0, rtol=1e-12)


@given(embeddings_strategy(), st.integers(1, 4), st.integers(0, 2**32))
def test_causal_weights_above_the_diagonal_are_zero(
    matrix: np.ndarray, d_out: int, seed: int
) -> None:
    result = compute(as_embeddings(matrix), AttentionParams(mode="causal", d_out=d_out, seed=seed))
    upper = np.triu_indices(len(matrix), k=1)
    assert (result.attn_weights[0][upper] == 0).all()
    assert np.isneginf(result.attn_scores[0][upper]).all()


@given(embeddings_strategy(), st.randoms(use_true_random=False))
def test_plain_attention_is_permutation_equivariant(matrix: np.ndarray, rnd) -> None:  # type: ignore[no-untyped-def]
    order = list(range(len(matrix)))
    rnd.shuffle(order)
    original = compute(as_embeddings(matrix))
    permuted = compute(as_embeddings(matrix[order]))
    np.testing.assert_allclose(
        permuted.attn_scores[0], original.attn_scores[0][np.ix_(order, order)], atol=1e-12
    )
    np.testing.assert_allclose(
        permuted.attn_weights[0], original.attn_weights[0][np.ix_(order, order)], atol=1e-12
    )
    np.testing.assert_allclose(permuted.context_vecs, original.context_vecs[order], atol=1e-12)


@settings(max_examples=50)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=finite),
    st.floats(-1e3, 1e3),
)
def test_adding_a_constant_to_every_score_leaves_the_weights(
    scores: np.ndarray, shift: float
) -> None:
    np.testing.assert_allclose(
        stages.softmax(stages.scale(scores + shift, 0.5)),
        stages.softmax(stages.scale(scores, 0.5)),
        atol=1e-12,
    )


@given(embeddings_strategy())
def test_one_query_row_equals_that_row_of_the_full_computation(matrix: np.ndarray) -> None:
    full = compute(as_embeddings(matrix), AttentionParams(mode="causal"))
    for i in range(len(matrix)):
        row = compute(as_embeddings(matrix), AttentionParams(mode="causal"), query=i)
        # BLAS may sum a single row in another order than a matrix: equal to rounding,
        # which is relative to the size of the terms, not of their (cancelling) sum
        finite = full.attn_scores[0][np.isfinite(full.attn_scores[0])]
        atol = 1e-12 * (1.0 + float(np.abs(finite).max()))
        np.testing.assert_array_equal(
            np.isneginf(row.attn_scores[0][0]), np.isneginf(full.attn_scores[0][i])
        )
        np.testing.assert_allclose(
            row.attn_scores[0][0], full.attn_scores[0][i], rtol=1e-13, atol=atol
        )
        np.testing.assert_allclose(
            row.attn_weights[0][0], full.attn_weights[0][i], rtol=1e-12, atol=1e-300
        )
        np.testing.assert_allclose(
            row.context_vecs[0], full.context_vecs[i], rtol=1e-12, atol=1e-12
        )


def test_explain_walks_every_stage_in_the_books_order() -> None:
    """A stage is added once, in stages.STAGES: explain's JSON and its panels walk the
    same list, so neither can miss it or show it out of order."""
    from attncli import explain
    from attncli.render import explain as render_explain

    names = [stage.name for stage in stages.STAGES]
    assert names[0] == "projections"
    assert names[-1] == "out_proj"
    assert list(explain.STEP_DATA) == names
    assert list(render_explain.PANELS) == names

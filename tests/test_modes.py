"""The book's numbers through the library (chapter 3, sections 3.3.1 to 3.4.2)."""

from __future__ import annotations

import numpy as np
import pytest

from attncli import AttentionParams, AttnError, Mode, book_example, compute

from .conftest import BOOK, expected

JOURNEY = 1  # "journey", the book's query x^(2)
ATOL = 1e-6  # float32 torch against float64 numpy


def plain():  # type: ignore[no-untyped-def]
    return compute(book_example())


def trainable():  # type: ignore[no-untyped-def]
    return compute(book_example(), AttentionParams(mode=Mode.TRAINABLE))


def test_the_built_in_example_is_the_books_input() -> None:
    emb = book_example()
    assert list(emb.tokens) == BOOK["inputs"]["tokens"]
    np.testing.assert_array_equal(emb.matrix, BOOK["inputs"]["matrix"])


def test_section_3_3_1_scores_for_journey() -> None:
    np.testing.assert_allclose(
        plain().attn_scores[0][JOURNEY], expected("dot_scores_query2"), atol=ATOL
    )
    assert plain().attn_scores[0][0, JOURNEY] == pytest.approx(expected("dot_x1_x2")[0], abs=ATOL)


def test_section_3_3_1_softmax_weights_and_context_for_journey() -> None:
    np.testing.assert_allclose(
        plain().attn_weights[0][JOURNEY], expected("torch_softmax_query2")[0], atol=ATOL
    )
    np.testing.assert_allclose(
        plain().attn_weights[0][JOURNEY], expected("softmax_naive_query2")[0], atol=ATOL
    )
    np.testing.assert_allclose(
        plain().context_vecs[JOURNEY], expected("context_vec_z2_simple"), atol=ATOL
    )


def test_section_3_3_2_all_scores_weights_and_context_vectors() -> None:
    result = plain()
    np.testing.assert_allclose(result.attn_scores[0], expected("attn_scores_matmul"), atol=ATOL)
    np.testing.assert_allclose(result.attn_scores[0], expected("attn_scores_loop"), atol=ATOL)
    np.testing.assert_allclose(result.attn_weights[0], expected("attn_weights_all"), atol=ATOL)
    np.testing.assert_allclose(
        result.attn_weights[0].sum(axis=1), expected("attn_weights_row_sums"), atol=ATOL
    )
    np.testing.assert_allclose(result.context_vecs, expected("all_context_vecs"), atol=ATOL)


def test_section_3_4_1_trainable_weights_step_by_step() -> None:
    result = trainable()
    weights = BOOK["weights"]["trainable_seed123_torch_rand"]
    assert result.projections is not None
    np.testing.assert_array_equal(result.projections.W_query, weights["W_query"])
    np.testing.assert_array_equal(result.projections.W_key, weights["W_key"])
    np.testing.assert_array_equal(result.projections.W_value, weights["W_value"])
    np.testing.assert_allclose(result.queries[JOURNEY], expected("trainable_query_2"), atol=ATOL)
    np.testing.assert_allclose(result.keys, expected("derived_keys"), atol=ATOL)
    np.testing.assert_allclose(result.values, expected("derived_values"), atol=ATOL)
    assert result.attn_scores[0][JOURNEY, JOURNEY] == pytest.approx(
        expected("trainable_attn_score_22"), abs=ATOL
    )
    np.testing.assert_allclose(
        result.attn_scores[0][JOURNEY], expected("trainable_attn_scores_2"), atol=ATOL
    )
    np.testing.assert_allclose(
        result.attn_weights[0][JOURNEY], expected("trainable_attn_weights_2"), atol=ATOL
    )
    np.testing.assert_allclose(
        result.context_vecs[JOURNEY], expected("trainable_context_vec_2"), atol=ATOL
    )
    assert result.scale == 2**-0.5  # 1/sqrt(d_k), d_k = 2


def test_section_3_4_2_self_attention_v1() -> None:
    np.testing.assert_allclose(
        trainable().context_vecs, expected("SelfAttention_v1_seed123"), atol=ATOL
    )


def test_causal_mode_masks_the_trainable_scores_and_renormalises() -> None:
    """Section 3.5.1: masking the scores with -inf before the softmax equals zeroing the
    weights above the diagonal and renormalising each row."""
    full = trainable()
    causal = compute(book_example(), AttentionParams(mode=Mode.CAUSAL))
    lower = np.tril(np.ones((6, 6), dtype=bool))
    np.testing.assert_array_equal(causal.attn_scores[0][lower], full.attn_scores[0][lower])
    assert np.isneginf(causal.attn_scores[0][~lower]).all()
    masked_simple = full.attn_weights[0] * lower
    renormalised = masked_simple / masked_simple.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(causal.attn_weights[0], renormalised, rtol=1e-14)
    # the last token sees every token, so its row is unchanged
    np.testing.assert_allclose(
        causal.context_vecs[-1], expected("SelfAttention_v1_seed123")[-1], atol=ATOL
    )
    assert causal.context_vecs[0] == pytest.approx(full.values[0])  # the first sees only itself


@pytest.mark.parametrize("d_out", [0, -3])
def test_d_out_below_one_is_a_usage_error(d_out: int) -> None:
    with pytest.raises(AttnError) as caught:
        compute(book_example(), AttentionParams(mode=Mode.TRAINABLE, d_out=d_out))
    assert caught.value.status == 2


def test_scores_that_overflow_float64_are_an_error_not_nan() -> None:
    from attncli import Embeddings

    huge = Embeddings(("a", "b"), np.array([[1e200, 0.0], [1.0, 1e200]]), "huge.json")
    with pytest.raises(AttnError, match=r"huge\.json: the attention scores overflow float64"):
        compute(huge)

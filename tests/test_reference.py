"""The copy of the book's reference numbers in tests/data stays the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import BOOK_FILE

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "book_ch03.json"


@pytest.mark.skipif(not SHARED.exists(), reason="no shared workspace folder next to the checkout")
def test_copy_matches_shared_reference() -> None:
    assert BOOK_FILE.read_bytes() == SHARED.read_bytes()


def test_reference_holds_the_books_inputs(book: dict) -> None:
    assert book["inputs"]["tokens"] == ["Your", "journey", "starts", "with", "one", "step"]
    assert len(book["inputs"]["matrix"]) == 6

"""The copy of the book's reference numbers in tests/data is the project's reference file,
byte for byte: its SHA-256 is recorded in tests/data/README.md beside where it came from,
so the check needs nothing outside the checkout."""

from __future__ import annotations

import hashlib
import re

from .conftest import BOOK_FILE, DATA


def test_copy_is_the_recorded_reference() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"`book_ch03\.json`.*?SHA-256\s+`([0-9a-f]{64})`", readme, re.DOTALL)
    assert recorded is not None, "tests/data/README.md records the copy's SHA-256"
    assert hashlib.sha256(BOOK_FILE.read_bytes()).hexdigest() == recorded.group(1)


def test_reference_holds_the_books_inputs(book: dict) -> None:
    assert book["inputs"]["tokens"] == ["Your", "journey", "starts", "with", "one", "step"]
    assert len(book["inputs"]["matrix"]) == 6

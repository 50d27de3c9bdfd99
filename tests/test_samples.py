"""Every file in sample_inputs/ loads and runs through every command and mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attncli import load

from .conftest import SAMPLES, Invoke, expected

SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".csv", ".tsv"))


def test_there_are_samples() -> None:
    assert len(SAMPLE_FILES) >= 4


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["plain", "trainable", "causal"])
def test_each_sample_runs_in_each_mode(attn: Invoke, path: Path, mode: str) -> None:
    emb = load(path)
    for command in ("scores", "weights", "context"):
        result = attn(command, str(path), "-m", mode, "-f", "json")
        assert result.exit_code == 0, result.stderr
        parsed = json.loads(result.stdout)
        assert parsed["tokens"] == list(emb.tokens)
        assert len(parsed["values"]) == len(emb.tokens)


@pytest.mark.parametrize(
    ("name", "head"), [("book_3_6_first_head.tsv", 0), ("book_3_6_second_head.json", 1)]
)
def test_section_3_6_heads_reproduce_the_per_head_products(
    attn: Invoke, name: str, head: int
) -> None:
    """Section 3.6.2 multiplies each head's 3x4 matrix by its transpose: plain scores."""
    values = json.loads(attn("scores", str(SAMPLES / name), "-f", "json").stdout)["values"]
    np.testing.assert_allclose(values, expected("per_head_matmul")[head], atol=1e-6)

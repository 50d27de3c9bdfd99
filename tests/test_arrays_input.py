"""The readers of `--mask FILE` and `--qkv FILE` (attncli/inputs/mask_file.py and
qkv_file.py, over arrays.py): every valid form, and every refusal with its message, as
a library call (the CLI wires them in separately). Files are written with numpy and json in tmp_path; the hostile ones of
tests/data/invalid are read as masks and as queries, keys and values too."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import AttnError
from attncli.errors import ExitStatus
from attncli.inputs import reading
from attncli.inputs.mask_file import MaskArray, load_mask
from attncli.inputs.qkv_file import QKV, load_qkv

from .conftest import DATA

INVALID = DATA / "invalid"
CAUSAL = np.tril(np.ones((6, 6), dtype=bool))  # (T, T): True where a query may attend


def refused(read: Callable[[], Any], fragment: str, status: int = ExitStatus.BAD_DATA) -> str:
    """`read` raises an AttnError of `status` whose one-line message holds `fragment`."""
    with pytest.raises(AttnError) as info:
        read()
    message = info.value.message
    assert info.value.status == status, message
    assert "\n" not in message, message
    assert fragment in message, message
    return message


def save_npy(path: Path, array: Any) -> str:
    np.save(path, array)
    return str(path)


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def write_text(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def additive(allowed: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """The float mask torch would build from a boolean one: 0 where allowed, -inf not."""
    return np.where(allowed, 0.0, -np.inf).astype(dtype)


# ---------------------------------------------------------------- masks that are read


@pytest.mark.parametrize(
    ("shape", "heads", "read_heads"),
    [
        ((6, 6), 1, 1),
        ((6, 6), 2, 1),  # one matrix for every head
        ((1, 6, 6), 2, 1),
        ((2, 6, 6), 2, 2),
        ((1, 2, 6, 6), 2, 2),  # torch's (batch 1, heads, T, T)
        ((1, 1, 6, 6), 3, 1),  # Hugging Face's (batch, 1, T_q, T_k)
    ],
)
def test_boolean_masks_of_every_shape(
    tmp_path: Path, shape: tuple[int, ...], heads: int, read_heads: int
) -> None:
    stored = np.broadcast_to(CAUSAL, shape).copy()
    mask = load_mask(save_npy(tmp_path / "mask.npy", stored), 6, 6, heads)
    assert isinstance(mask, MaskArray)
    assert mask.bias is None
    assert mask.source == str(tmp_path / "mask.npy")
    assert mask.allowed.dtype == np.bool_
    assert mask.allowed.shape == (read_heads, 6, 6)
    assert mask.heads == read_heads
    assert mask.allowed.flags.c_contiguous
    assert (mask.allowed == CAUSAL).all()


def test_each_head_keeps_its_own_mask(tmp_path: Path) -> None:
    per_head = np.stack([CAUSAL, CAUSAL.T, np.eye(6, dtype=bool)])  # (3, 6, 6)
    mask = load_mask(save_npy(tmp_path / "m.npy", per_head), 6, 6, heads=3)
    assert (mask.allowed == per_head).all()


def test_cross_attention_masks_have_a_row_per_query_and_a_column_per_key(tmp_path: Path) -> None:
    stored = np.random.default_rng(1).random((2, 3, 5)) < 0.5  # (heads, T_q, T_k)
    mask = load_mask(save_npy(tmp_path / "m.npy", stored), n_queries=3, n_keys=5, heads=2)
    assert mask.allowed.shape == (2, 3, 5)
    assert (mask.allowed == stored).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_masks_are_added_with_minus_inf_hiding(tmp_path: Path, dtype: Any) -> None:
    stored = additive(CAUSAL, dtype)
    stored[3, 1] = -2.5  # a finite bias: the key stays visible
    mask = load_mask(save_npy(tmp_path / "m.npy", stored), 6, 6)
    assert mask.bias is not None
    assert mask.bias.dtype == np.float64
    assert mask.bias.shape == mask.allowed.shape == (1, 6, 6)
    assert mask.bias.flags.c_contiguous
    assert (mask.bias[0] == stored.astype(np.float64)).all()  # every value exactly
    assert (mask.allowed[0] == CAUSAL).all()
    assert (mask.allowed == (mask.bias != -np.inf)).all()


def test_a_float_mask_without_minus_inf_hides_nothing(tmp_path: Path) -> None:
    """ALiBi-like biases: every key stays visible, each score moved by its bias."""
    positions = np.arange(6)
    slopes = np.array([0.5, 0.25])[:, None, None]
    bias = -slopes * np.abs(positions[:, None] - positions[None, :])  # (2, 6, 6)
    mask = load_mask(save_npy(tmp_path / "alibi.npy", bias), 6, 6, heads=2)
    assert mask.allowed.all()
    assert mask.bias is not None
    assert (mask.bias == bias).all()


@pytest.mark.parametrize("fill", [0.0, 1.0, -1e9, np.finfo(np.float32).min])
def test_uniform_float_masks_are_biases(tmp_path: Path, fill: float) -> None:
    """All zeros (torch's "no mask" float mask), all ones (a shift the softmax ignores),
    and the large finite negatives of Hugging Face's masks are biases, hiding nothing."""
    mask = load_mask(save_npy(tmp_path / "m.npy", np.full((6, 6), fill)), 6, 6)
    assert mask.allowed.all()
    assert mask.bias is not None
    assert (mask.bias == fill).all()


def test_rows_that_hide_every_key_are_allowed(tmp_path: Path) -> None:
    stored = CAUSAL.copy()
    stored[2] = False
    assert not load_mask(save_npy(tmp_path / "b.npy", stored), 6, 6).allowed[0, 2].any()
    floats = load_mask(save_npy(tmp_path / "f.npy", additive(stored)), 6, 6)
    assert not floats.allowed[0, 2].any()
    everything = load_mask(save_npy(tmp_path / "none.npy", np.zeros((6, 6), bool)), 6, 6)
    assert not everything.allowed.any()


def test_fortran_order_and_big_endian_masks(tmp_path: Path) -> None:
    stored = np.asfortranarray(additive(CAUSAL).astype(">f4"))
    mask = load_mask(save_npy(tmp_path / "m.npy", stored), 6, 6)
    assert mask.bias is not None
    assert mask.bias.flags.c_contiguous
    assert (mask.allowed[0] == CAUSAL).all()
    fortran_bool = load_mask(save_npy(tmp_path / "b.npy", np.asfortranarray(CAUSAL[:, :5])), 6, 5)
    assert (fortran_bool.allowed[0] == CAUSAL[:, :5]).all()
    assert fortran_bool.allowed.flags.c_contiguous


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
@pytest.mark.parametrize("member", ["mask", "arr_0", "anything"])
def test_npz_archives_of_one_array(tmp_path: Path, save: Any, member: str) -> None:
    path = tmp_path / "m.npz"
    save(path, **{member: CAUSAL})
    assert (load_mask(str(path), 6, 6).allowed[0] == CAUSAL).all()
    save(path, **{member: additive(CAUSAL, np.float32)})
    assert (load_mask(path, 6, 6).allowed[0] == CAUSAL).all()  # a Path works too


def test_json_boolean_masks(tmp_path: Path) -> None:
    rows = CAUSAL.tolist()
    for value in (rows, {"mask": rows}, [rows], [[rows]]):
        mask = load_mask(write_json(tmp_path / "m.json", value), 6, 6)
        assert mask.bias is None
        assert (mask.allowed[0] == CAUSAL).all()


def test_json_float_masks_written_by_python_json(tmp_path: Path) -> None:
    """json.dumps writes -inf as -Infinity (Python's extension of JSON): read as hidden."""
    stored = additive(CAUSAL)
    stored[4, 0] = -0.75
    path = tmp_path / "m.json"
    path.write_text(json.dumps(stored.tolist()), encoding="utf-8")
    assert "-Infinity" in path.read_text(encoding="utf-8")
    mask = load_mask(path, 6, 6)
    assert mask.bias is not None
    assert (mask.bias[0] == stored).all()
    assert (mask.allowed[0] == CAUSAL).all()


@pytest.mark.parametrize(
    "hidden", ["null", "-Infinity", '"-inf"', '"-Infinity"', '"-INF"', '" -inf "']
)
def test_json_spellings_of_minus_inf(tmp_path: Path, hidden: str) -> None:
    path = write_text(tmp_path / "m.json", f"[[0, {hidden}], [-1.5, 2]]")
    mask = load_mask(path, 2, 2)
    assert mask.bias is not None
    assert mask.bias.tolist() == [[[0.0, -np.inf], [-1.5, 2.0]]]
    assert mask.allowed.tolist() == [[[True, False], [True, True]]]


def test_an_all_null_json_mask_hides_everything(tmp_path: Path) -> None:
    mask = load_mask(write_text(tmp_path / "m.json", "[[null, null]]"), 1, 2)
    assert not mask.allowed.any()
    assert mask.bias is not None
    assert (mask.bias == -np.inf).all()


def test_a_mask_is_known_by_its_content_not_its_name(tmp_path: Path) -> None:
    as_json = write_json(tmp_path / "json_named.npy", CAUSAL.tolist())
    as_npy = tmp_path / "npy_named.json"
    with as_npy.open("wb") as handle:
        np.save(handle, CAUSAL)
    for path in (as_json, str(as_npy)):
        assert (load_mask(path, 6, 6).allowed[0] == CAUSAL).all()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("kind", ["npy", "npz", "json"])
def test_a_mask_from_a_named_pipe_is_read_once(tmp_path: Path, kind: str) -> None:
    """`--mask <(...)`: a pipe, which numpy.load would open twice."""
    source = tmp_path / f"m.{kind}"
    if kind == "npy":
        np.save(source, CAUSAL)
    elif kind == "npz":
        np.savez(source, mask=CAUSAL)
    else:
        write_json(source, CAUSAL.tolist())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        mask = load_mask(str(fifo), 6, 6)
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    assert (mask.allowed[0] == CAUSAL).all()


masks = st.integers(1, 3).flatmap(
    lambda heads: st.tuples(
        st.just(heads),
        st.integers(1, 5),
        st.integers(1, 5),
        st.booleans(),
        st.integers(0, 2**32 - 1),
    )
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(masks)
def test_json_and_npy_read_the_same_mask(tmp_path: Path, case: tuple[int, ...]) -> None:
    heads, n_queries, n_keys, boolean, seed = case
    rng = np.random.default_rng(seed)
    allowed = rng.random((heads, n_queries, n_keys)) < 0.6
    stored: np.ndarray = allowed
    if not boolean:
        stored = np.where(allowed, rng.normal(size=allowed.shape), -np.inf)
        stored[0, 0, 0] = 0.5  # never only 0s and 1s
    from_npy = load_mask(save_npy(tmp_path / "m.npy", stored), n_queries, n_keys, heads)
    from_json = load_mask(
        write_json(tmp_path / "m.json", stored.tolist()), n_queries, n_keys, heads
    )
    for mask in (from_npy, from_json):
        assert mask.allowed.shape == (heads, n_queries, n_keys)
        if boolean:
            assert mask.bias is None
            assert (mask.allowed == allowed).all()
        else:
            assert mask.bias is not None
            assert (mask.bias == stored).all()
            assert (mask.allowed == (stored != -np.inf)).all()


# ---------------------------------------------------------------- masks that are refused


@pytest.mark.parametrize(
    ("shape", "heads", "n_queries", "message"),
    [
        (
            (5, 6),
            1,
            6,
            "m.npy: shape (5, 6), but attention here needs (6, 6): one row per query token, "
            "one column per key token",
        ),
        (
            (5, 6),
            2,
            6,
            "m.npy: shape (5, 6), but attention here needs (6, 6) or (2, 6, 6): one row per "
            "query token, one column per key token (and one matrix per head, or one for "
            "every head)",
        ),
        ((3, 6, 6), 2, 6, "m.npy: shape (3, 6, 6), but attention here needs (6, 6) or (2, 6, 6)"),
        ((2, 6, 6), 1, 6, "m.npy: shape (2, 6, 6), but attention here needs (6, 6):"),
        ((6, 3), 1, 3, "m.npy: shape (6, 3), but attention here needs (3, 6):"),  # transposed
        ((36,), 1, 6, "m.npy: shape (36,), but attention here needs (6, 6)"),
        ((1, 1, 1, 6, 6), 1, 6, "m.npy: shape (1, 1, 1, 6, 6), but attention here needs (6, 6)"),
        ((2, 1, 5, 6), 1, 6, "m.npy: shape (2, 1, 5, 6), but attention here needs (6, 6)"),
        (
            (2, 1, 6, 6),
            1,
            6,
            "m.npy: shape (2, 1, 6, 6) is a batch of 2 masks, and attn computes one "
            "sequence; save one of them, e.g. mask[0], of shape (1, 6, 6)",
        ),
    ],
)
def test_masks_of_the_wrong_shape_name_the_shape_needed(
    tmp_path: Path, shape: tuple[int, ...], heads: int, n_queries: int, message: str
) -> None:
    path = save_npy(tmp_path / "m.npy", np.ones(shape, dtype=bool))
    refused(lambda: load_mask(path, n_queries, 6, heads), message)


def test_the_shape_is_refused_from_the_header_before_the_data(tmp_path: Path) -> None:
    """A header declaring a huge mask of the wrong shape: refused by its shape, unread."""
    path = tmp_path / "m.npy"
    header = {"descr": "|b1", "fortran_order": False, "shape": (1 << 20, 1 << 20)}
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
    refused(lambda: load_mask(path, 6, 6), "shape (1048576, 1048576), but attention here needs")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.tril(np.ones((6, 6), dtype=np.int64)),
            "m.npy: the mask holds int64 values, which could mean either kind of mask; save "
            "booleans (True where a query may attend: mask.astype(bool)) or floats added to "
            "the scores (-inf where a key is hidden)",
        ),
        (np.ones((6, 6), dtype=np.uint8), "the mask holds uint8 values, which could mean either"),
        (np.ones((6, 6), dtype=np.complex128), "the mask holds complex128 values; save booleans"),
        (np.full((6, 6), "a"), "the mask holds <U1 values; save booleans"),
        (np.zeros((6, 6), "datetime64[D]"), "the mask holds datetime64[D] values; save booleans"),
        (np.full((6, 6), None), "the array holds Python objects (it needs pickle"),
    ],
)
def test_masks_of_the_wrong_dtype(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = save_npy(tmp_path / "m.npy", array)
    refused(lambda: load_mask(path, 6, 6), message)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_long_double_masks_are_refused(tmp_path: Path) -> None:
    path = save_npy(tmp_path / "m.npy", np.zeros((6, 6), np.longdouble))
    refused(
        lambda: load_mask(path, 6, 6), f"holds {np.dtype(np.longdouble)} values; save it as float64"
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (np.inf, "inf")])
def test_nan_and_plus_inf_in_a_float_mask_are_refused_by_index(
    tmp_path: Path, dtype: Any, value: float, shown: str
) -> None:
    stored = additive(CAUSAL, dtype)
    stored[4, 2] = value
    path = save_npy(tmp_path / "m.npy", stored)
    refused(
        lambda: load_mask(path, 6, 6),
        f"m.npy: mask[4, 2] is {shown}; a float mask holds finite numbers, and -inf where a "
        "key is hidden",
    )


def test_nan_in_an_archive_names_the_member(tmp_path: Path) -> None:
    stored = np.zeros((2, 6, 6))
    stored[1, 0, 5] = np.nan
    path = tmp_path / "m.npz"
    np.savez(path, arr_0=stored)
    refused(lambda: load_mask(path, 6, 6, heads=2), "m.npz: arr_0[1, 0, 5] is nan;")


def test_a_float_mask_of_zeros_and_ones_is_ambiguous(tmp_path: Path) -> None:
    """torch.ones(T, T).tril() as a float mask adds 1 to some scores and hides nothing:
    almost always meant as a boolean mask."""
    path = save_npy(tmp_path / "m.npy", np.tril(np.ones((6, 6))))
    refused(
        lambda: load_mask(path, 6, 6),
        "m.npy: the mask holds only 0s and 1s as numbers, which a float mask adds to the "
        "scores (as torch does), hiding no key; if 1 means a query may attend, save it as "
        "booleans: mask.astype(bool); a float mask hides a key with -inf",
    )
    as_json = write_json(tmp_path / "m.json", np.tril(np.ones((6, 6), int)).tolist())
    refused(
        lambda: load_mask(as_json, 6, 6),
        "if 1 means a query may attend, write true and false;",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[0, NaN], [0, 0]]",
            "m.json: line 1, column 6: NaN is not a value a mask may hold; a float mask holds "
            'finite numbers, and -Infinity, "-inf" or null where a key is hidden',
        ),
        ("[[0, -Infinity],\n [Infinity, 0]]", "m.json: line 2, column 3: Infinity is not a value"),
        ('[[0, "inf"], [0, 0]]', 'm.json: mask[0, 1] is a string ("inf"), not a number; a float'),
        ('[[0, "nan"], [0, 0]]', 'm.json: mask[0, 1] is a string ("nan"), not a number'),
        ('[[0, "-0.5"], [0, 0]]', 'm.json: mask[0, 1] is a string ("-0.5"), not a number'),
        ('[[0, "hidden"], [0, 0]]', 'mask[0, 1] is a string ("hidden"), not a number'),
        ("[[0, {}], [0, 0]]", "m.json: mask[0, 1] is an object, not a number"),
        (
            "[[0, -1e400], [0, 0]]",
            "m.json: mask[0, 1] is a number too large for float64 (beyond ±1.8e308); a float "
            'mask holds finite numbers, and -Infinity, "-inf" or null where a key is hidden',
        ),
        ("[[0, -1" + "0" * 400 + "], [0, 0]]", "mask[0, 1] is a number too large for float64"),
        ("[[0, 1], [0, -" + "9" * 5000 + "]]", "mask[1, 1] is a number too large for float64"),
        (
            "[[true, 1], [true, true]]",
            "m.json: mask[0, 0] is a boolean (true) but mask[0, 1] is a number (1); a mask is all "
            "booleans (true where a query may attend) or all numbers (added to the scores)",
        ),
        (
            "[[0, null], [true, 0]]",
            "mask[1, 0] is a boolean (true) but mask[0, 0] is a number (0);",
        ),
        (
            "[[true, false], [true]]",
            "m.json: mask[1] has 1 item, but mask[0] has 2; every row needs the same length",
        ),
        (
            "[[true, false], true]",
            "m.json: mask[1] is a boolean (true), but mask[0] is a list of 2 items; every row "
            "needs the same depth",
        ),
        ("[[[true, false]], [true, false]]", "mask[1] has 2 items, but mask[0] has 1"),
        ("[0, [true]]", "m.json: mask[1] is a list of 1 items, but mask[0] is a number (0)"),
        ("[true, false]", "m.json: shape (2,), but attention here needs (2, 2)"),
        ("[]", "m.json: shape (0,), but attention here needs (2, 2)"),
        ("[[], []]", "m.json: shape (2, 0), but attention here needs (2, 2)"),
        ('"mask"', 'm.json: the mask is a string ("mask"); expected a list of rows of booleans'),
        ("true", "m.json: the mask is a boolean (true); expected a list of rows"),
        ('{"mask": 3}', "m.json: the mask is a number (3); expected a list of rows"),
        (
            '{"mask": [[true]], "heads": 1}',
            "m.json: a JSON object holding a mask has one key, \"mask\"; this one holds 'mask', "
            "'heads'",
        ),
        ("{}", 'm.json: a JSON object holding a mask has one key, "mask"; this one holds nothing'),
        (
            '{"mask": [[true]], "mask": [[false]]}',
            'm.json: the key "mask" appears twice in one JSON object, where JSON keeps only the '
            "last; keep one",
        ),
        ("[[true, false],\n [true, true]", "m.json: invalid JSON at line 2, column 14"),
        (
            "1,0\n1,1\n",
            "invalid JSON at line 1, column 2: Extra data; give the mask as JSON, .npy or .npz",
        ),
        ("", "m.json is empty; give a mask as .npy, .npz (one array) or JSON"),
        (" \n\t", "m.json holds only whitespace; give a mask as"),
    ],
)
def test_json_masks_that_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write_text(tmp_path / "m.json", text)
    refused(lambda: load_mask(path, 2, 2), message)


def test_the_mask_of_an_archive_is_its_only_array(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, mask=CAUSAL, other=CAUSAL)
    refused(
        lambda: load_mask(path, 6, 6),
        "m.npz: a mask archive holds one array, this one holds 'mask', 'other'; save the mask "
        "alone: numpy.save(path, mask) or numpy.savez(path, mask=mask)",
    )
    np.savez(path)
    refused(lambda: load_mask(path, 6, 6), "a mask archive holds one array, this one holds nothing")


def test_stdin_is_not_a_mask() -> None:
    refused(
        lambda: load_mask("-", 6, 6),
        '"-" (stdin) cannot give the mask: stdin may carry the input already; give a file, '
        "or <(command) for a command's output",
        ExitStatus.BAD_USAGE,
    )


def test_mask_sizes_must_be_positive(tmp_path: Path) -> None:
    path = save_npy(tmp_path / "m.npy", CAUSAL)
    with pytest.raises(ValueError, match="n_keys must be at least 1, not 0"):
        load_mask(path, 6, 0)


# ---------------------------------------------------------------- queries, keys, values read


def save_qkv(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


def random(*shape: int, dtype: Any = np.float64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def test_qkv_of_heads_tokens_and_dimensions(tmp_path: Path) -> None:
    q, k, v = random(2, 6, 4, seed=1), random(2, 6, 4, seed=2), random(2, 6, 4, seed=3)
    path = save_qkv(tmp_path / "qkv.npz", q=q, k=k, v=v)
    qkv = load_qkv(path)
    assert isinstance(qkv, QKV)
    assert qkv.source == path
    assert qkv.dtype == np.float64
    for got, stored in zip((qkv.q, qkv.k, qkv.v), (q, k, v), strict=True):
        assert got.dtype == np.float64
        assert got.flags.c_contiguous
        assert (got == stored).all()
    assert (qkv.heads, qkv.kv_heads, qkv.head_dim, qkv.value_dim) == (2, 2, 4, 4)
    assert (qkv.n_queries, qkv.n_keys) == (6, 6)


def test_one_head_without_a_head_dimension(tmp_path: Path) -> None:
    q, k, v = random(6, 4, seed=1), random(6, 4, seed=2), random(6, 4, seed=3)
    qkv = load_qkv(save_qkv(tmp_path / "qkv.npz", q=q, k=k, v=v))
    assert qkv.q.shape == qkv.k.shape == qkv.v.shape == (1, 6, 4)
    assert (qkv.q[0] == q).all()
    assert (qkv.v[0] == v).all()


def test_a_batch_of_one_as_torch_dumps_it(tmp_path: Path) -> None:
    q = random(1, 4, 6, 8, seed=1)  # (batch, heads, T, d)
    kv = random(1, 2, 6, 8, seed=2)
    qkv = load_qkv(save_qkv(tmp_path / "qkv.npz", q=q, k=kv, v=kv))
    assert qkv.q.shape == (4, 6, 8)
    assert qkv.k.shape == qkv.v.shape == (2, 6, 8)
    assert (qkv.q == q[0]).all()


def test_grouped_query_cross_attention_with_another_value_width(tmp_path: Path) -> None:
    """8 query heads over 2 key/value heads; 3 queries, 5 keys; values of width 7."""
    q, k, v = random(8, 3, 4, seed=1), random(2, 5, 4, seed=2), random(2, 5, 7, seed=3)
    qkv = load_qkv(save_qkv(tmp_path / "qkv.npz", q=q, k=k, v=v))
    assert (qkv.heads, qkv.kv_heads, qkv.head_dim, qkv.value_dim) == (8, 2, 4, 7)
    assert (qkv.n_queries, qkv.n_keys) == (3, 5)


@pytest.mark.parametrize(
    ("dtypes", "held"),
    [
        (("float32", "float32", "float32"), "float32"),
        (("float16", "float16", "float16"), "float16"),
        (("float16", "float32", "float16"), "float32"),
        (("float32", "float64", "float32"), "float64"),
        (("int64", "int64", "int64"), "float64"),
        (("int8", "float32", "float32"), "float64"),
        ((">f4", "<f4", ">f4"), "float32"),
    ],
)
def test_the_dtype_the_file_held_is_kept(
    tmp_path: Path, dtypes: tuple[str, ...], held: str
) -> None:
    arrays = {
        n: random(2, 3, 4, dtype=dt, seed=i)
        for i, (n, dt) in enumerate(zip("qkv", dtypes, strict=True))
    }
    qkv = load_qkv(save_qkv(tmp_path / "qkv.npz", **arrays))
    assert qkv.dtype == np.dtype(held)
    for name in "qkv":
        got = getattr(qkv, name)
        assert got.dtype == np.float64
        assert (got == arrays[name].astype(np.float64)).all()
        if arrays[name].dtype.kind == "f":  # converts back exactly
            assert (got.astype(arrays[name].dtype) == arrays[name]).all()


def test_qkv_in_fortran_order(tmp_path: Path) -> None:
    q = np.asfortranarray(random(2, 6, 4))
    qkv = load_qkv(save_qkv(tmp_path / "qkv.npz", q=q, k=q, v=q))
    assert qkv.q.flags.c_contiguous
    assert (qkv.q == q).all()


def test_compressed_qkv(tmp_path: Path) -> None:
    path = tmp_path / "qkv.npz"
    q = random(2, 6, 4, dtype=np.float32)
    np.savez_compressed(path, v=q, k=q, q=q)  # any order
    assert load_qkv(path).dtype == np.float32


def test_qkv_from_json(tmp_path: Path) -> None:
    q, k, v = random(2, 3, 4, seed=1), random(1, 5, 4, seed=2), random(1, 5, 2, seed=3)
    path = write_json(tmp_path / "qkv.json", {"q": q.tolist(), "k": k.tolist(), "v": v.tolist()})
    qkv = load_qkv(path)
    assert qkv.dtype == np.float64
    assert (qkv.q == q).all()
    assert (qkv.k == k).all()
    assert (qkv.v == v).all()
    two_d = write_text(
        tmp_path / "small.json", '{"v": [[1, 2]], "k": [[0.5, 1]], "q": [[1e-3, -2]]}'
    )
    small = load_qkv(two_d)
    assert small.q.tolist() == [[[0.001, -2.0]]]
    assert small.v.tolist() == [[[1.0, 2.0]]]


def test_qkv_from_json_equals_qkv_from_npz(tmp_path: Path) -> None:
    arrays = {n: random(1, 2, 6, 3, seed=i) for i, n in enumerate("qkv")}
    from_npz = load_qkv(save_qkv(tmp_path / "qkv.npz", **arrays))
    from_json = load_qkv(
        write_json(tmp_path / "qkv.json", {n: a.tolist() for n, a in arrays.items()})
    )
    for name in "qkv":
        assert (getattr(from_npz, name) == getattr(from_json, name)).all()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_qkv_from_a_named_pipe(tmp_path: Path) -> None:
    source = Path(save_qkv(tmp_path / "qkv.npz", q=random(2, 3), k=random(2, 3), v=random(2, 3)))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        qkv = load_qkv(str(fifo))
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    assert qkv.q.shape == (1, 2, 3)


# ---------------------------------------------------------------- queries, keys, values refused

GOOD = (2, 6, 4)  # (heads, T, d)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"q": GOOD, "k": GOOD},
            "qkv.npz: no v; attn reads queries, keys and values named q, k and v "
            "(numpy.savez(path, q=q, k=k, v=v)), and the archive holds 'q', 'k'",
        ),
        ({"query": GOOD, "key": GOOD, "value": GOOD}, "qkv.npz: no q, k or v; attn reads"),
        ({"Q": GOOD, "k": GOOD, "V": GOOD}, "qkv.npz: no q or v; attn reads queries, keys and"),
        (
            {"q": GOOD, "k": GOOD, "v": GOOD, "mask": (6, 6)},
            "qkv.npz: unknown entry 'mask'; the archive holds queries, keys and values named "
            "q, k and v, and nothing else",
        ),
        (
            {"q": GOOD, "k": GOOD, "v": GOOD, "tokens": (6,), "o": GOOD},
            "qkv.npz: unknown entries 'tokens', 'o'; the archive holds",
        ),
        (
            {},
            "qkv.npz: no q, k or v; attn reads queries, keys and values named q, k and v (numpy.savez(path, q=q, k=k, v=v)), and the archive holds nothing",
        ),
    ],
)
def test_qkv_archives_need_q_k_v_and_nothing_else(
    tmp_path: Path, arrays: dict[str, tuple[int, ...]], message: str
) -> None:
    path = save_qkv(tmp_path / "qkv.npz", **{n: np.ones(s) for n, s in arrays.items()})
    refused(lambda: load_qkv(path), message)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        (
            "q",
            (6,),
            "qkv.npz: q: shape (6,); give (T, d) or (heads, T, d), as torch's "
            "scaled_dot_product_attention takes them (a leading batch of 1 may stay)",
        ),
        ("k", (), "qkv.npz: k: shape (); give (T, d) or (heads, T, d)"),
        ("v", (1, 1, 2, 6, 4), "qkv.npz: v: shape (1, 1, 2, 6, 4); give (T, d) or (heads, T, d)"),
        (
            "q",
            (3, 2, 6, 4),
            "qkv.npz: q: shape (3, 2, 6, 4) is a batch of 3 sequences, and attn computes one; "
            "save one of them, e.g. q[0], of shape (2, 6, 4)",
        ),
        ("k", (0, 2, 6, 4), "qkv.npz: k: shape (0, 2, 6, 4); give (T, d) or (heads, T, d)"),
        (
            "q",
            (2, 0, 4),
            "qkv.npz: q: shape (2, 0, 4) holds no numbers; give at least one token and one "
            "dimension",
        ),
        ("v", (2, 6, 0), "qkv.npz: v: shape (2, 6, 0) holds no numbers"),
        ("k", (0, 6, 4), "qkv.npz: k: shape (0, 6, 4) holds no numbers"),
    ],
)
def test_qkv_of_the_wrong_rank_or_empty(
    tmp_path: Path, name: str, shape: tuple[int, ...], message: str
) -> None:
    arrays = {n: np.ones(GOOD) for n in "qkv"}
    arrays[name] = np.ones(shape)
    path = save_qkv(tmp_path / "qkv.npz", **arrays)
    refused(lambda: load_qkv(path), message)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.ones(GOOD, bool),
            "qkv.npz: k: the array holds bool values; give real numbers (floats or integers)",
        ),
        (
            np.ones(GOOD) + 1j,
            "qkv.npz: k: the array holds complex128 values; give real numbers: save array.real",
        ),
        (np.full(GOOD, "a"), "qkv.npz: k: the array holds <U1 values; give real numbers"),
        (np.full(GOOD, b"a"), "qkv.npz: k: the array holds |S1 values; give real numbers"),
        (np.zeros(GOOD, "datetime64[D]"), "qkv.npz: k: the array holds datetime64[D] values"),
        (
            np.zeros(GOOD, "V2"),
            "qkv.npz: k: the array holds |V2 values; give floats (bfloat16? save tensor.float().numpy())",
        ),
        (
            np.full(GOOD, None),
            "qkv.npz: k: the array holds Python objects (it needs pickle, which attn does not run)",
        ),
    ],
)
def test_qkv_that_are_not_real_numbers(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = save_qkv(tmp_path / "qkv.npz", q=np.ones(GOOD), k=array, v=np.ones(GOOD))
    refused(lambda: load_qkv(path), message)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_long_double_qkv_are_refused(tmp_path: Path) -> None:
    path = save_qkv(
        tmp_path / "qkv.npz", q=np.ones(GOOD, np.longdouble), k=np.ones(GOOD), v=np.ones(GOOD)
    )
    refused(
        lambda: load_qkv(path),
        f"qkv.npz: q: the array holds {np.dtype(np.longdouble)} values; save it as float64",
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_qkv_are_refused_by_index(
    tmp_path: Path, dtype: Any, value: float, shown: str
) -> None:
    v = np.ones((1, 2, 6, 4), dtype)
    v[0, 1, 5, 2] = value
    path = save_qkv(tmp_path / "qkv.npz", q=np.ones(GOOD), k=np.ones(GOOD), v=v)
    refused(
        lambda: load_qkv(path),
        f"qkv.npz: v[0, 1, 5, 2] is {shown}, not a finite number; queries, keys and values "
        "must be finite",
    )


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (
            ((3, 6, 4), (2, 6, 4), (2, 6, 4)),
            "qkv.npz: q has 3 heads, k and v 2 (q (3, 6, 4), k (2, 6, 4), v (2, 6, 4)); in "
            "grouped-query attention each key/value head serves the same number of query "
            "heads: give a number of query heads that is a multiple of the key/value heads",
        ),
        (
            ((6, 4), (2, 6, 4), (2, 6, 4)),
            "qkv.npz: q has 1 head, k and v 2 (q (6, 4), k (2, 6, 4), v (2, 6, 4))",
        ),
        (
            ((2, 6, 4), (2, 6, 4), (1, 6, 4)),
            "qkv.npz: k has 2 heads, v 1 (q (2, 6, 4), k (2, 6, 4), v (1, 6, 4)); every key "
            "needs its value: give k and v the same heads and tokens (their last dimensions "
            "may differ)",
        ),
        (
            ((2, 6, 4), (2, 6, 4), (2, 5, 4)),
            "qkv.npz: k has 6 tokens, v 5 (q (2, 6, 4), k (2, 6, 4), v (2, 5, 4)); every key needs its value",
        ),
        (
            ((2, 6, 4), (1, 2, 6, 3), (2, 6, 4)),
            "qkv.npz: q has head_dim 4, k 3 (q (2, 6, 4), k (1, 2, 6, 3), v (2, 6, 4)); a score "
            "is a dot product of a query and a key: give q and k the same last dimension",
        ),
    ],
)
def test_qkv_that_do_not_fit_together(
    tmp_path: Path, shapes: tuple[tuple[int, ...], ...], message: str
) -> None:
    arrays = {n: np.ones(s) for n, s in zip("qkv", shapes, strict=True)}
    path = save_qkv(tmp_path / "qkv.npz", **arrays)
    refused(lambda: load_qkv(path), message)


def test_a_npy_file_is_one_array_not_three(tmp_path: Path) -> None:
    path = save_npy(tmp_path / "q.npy", np.ones(GOOD))
    refused(
        lambda: load_qkv(path),
        "q.npy: a .npy file holds one array; queries, keys and values are three: save them "
        "with numpy.savez(path, q=q, k=k, v=v)",
    )


ROWS = "[[1, 0], [0, 1]]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[1, 0]]",
            'qkv.json: the JSON is a list of 1 items; expected {"q": [...], "k": [...], "v": [...]}',
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}}}',
            'qkv.json: no v; attn reads queries, keys and values named q, k and v ({"q": [...], "k": [...], "v": [...]}), and the JSON object holds \'q\', \'k\'',
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": {ROWS}, "tokens": ["a", "b"]}}',
            "qkv.json: unknown entry 'tokens'; the JSON object holds queries, keys and values "
            "named q, k and v, and nothing else",
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": {ROWS}, "q": {ROWS}}}',
            'qkv.json: the key "q" appears twice in one JSON object, where JSON keeps only the '
            "last; keep one",
        ),
        (
            f'{{"q": 1, "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q is a number (1); give a list of rows of numbers, (T, d) or (heads, T, d)",
        ),
        (
            f'{{"q": {ROWS}, "k": [1, 2], "v": {ROWS}}}',
            "qkv.json: k: shape (2,); give (T, d) or (heads, T, d)",
        ),
        (f'{{"q": {ROWS}, "k": {ROWS}, "v": []}}', "qkv.json: v: shape (0,); give (T, d)"),
        (f'{{"q": [[]], "k": {ROWS}, "v": {ROWS}}}', "qkv.json: q: shape (1, 0) holds no numbers"),
        (
            f'{{"q": [[[{ROWS}]], [[{ROWS}]]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q: shape (2, 1, 1, 2, 2); give (T, d) or (heads, T, d)",
        ),
        (
            f'{{"q": [[1, 0], [0]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q[1] has 1 item, but q[0] has 2; every row needs the same length",
        ),
        (
            f'{{"q": {ROWS}, "k": [[1, 0], 2], "v": {ROWS}}}',
            "qkv.json: k[1] is a number (2), but k[0] is a list of 2 items; every row needs the same depth",
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": [[1, true], [0, 1]]}}',
            "qkv.json: v[0, 1] is a boolean (true), not a number",
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": [[1, null], [0, 1]]}}',
            "qkv.json: v[0, 1] is null, not a number",
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": [[1, "0.5"], [0, 1]]}}',
            'qkv.json: v[0, 1] is a string ("0.5"), not a number; write it without quotes: 0.5',
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": [[1, "-inf"], [0, 1]]}}',
            'qkv.json: v[0, 1] is a string ("-inf"), not a number',
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS}, "v": [[1, {{}}], [0, 1]]}}',
            "qkv.json: v[0, 1] is an object, not a number",
        ),
        (
            f'{{"q": {ROWS}, "k": {ROWS},\n "v": [[1, NaN], [0, 1]]}}',
            "qkv.json: line 2, column 12: NaN is not a number JSON allows; every value must be a finite number",
        ),
        (
            f'{{"q": {ROWS}, "k": [[1, -Infinity], [0, 1]], "v": {ROWS}}}',
            "qkv.json: line 1, column 35: -Infinity is not a number JSON allows",
        ),
        (
            f'{{"q": [[1, 1e400], [0, 1]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q[0, 1] is a number too large for float64 (beyond ±1.8e308); rescale the numbers",
        ),
        (
            f'{{"q": [[1, -1{"0" * 400}], [0, 1]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q[0, 1] is a number too large for float64",
        ),
        (
            f'{{"q": [[1, {"9" * 5000}], [0, 1]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q[0, 1] is a number too large for float64",
        ),
        (
            f'{{"q": [[1, 0, 0]], "k": {ROWS}, "v": {ROWS}}}',
            "qkv.json: q has head_dim 3, k 2 (q (1, 3), k (2, 2), v (2, 2))",
        ),
        (
            '{"q": [[1, 0]], "k": [[1, 0]]',
            "qkv.json: invalid JSON at line 1, column 30: Expecting ',' delimiter; the text ends before the JSON does (cut short?)",
        ),
        (
            "q,k,v\n1,2,3\n",
            "invalid JSON at line 1, column 1: Expecting value; give q, k and v as a JSON object or a .npz archive",
        ),
        (
            "",
            "qkv.json is empty; give queries, keys and values as a .npz archive or a JSON object of q, k and v",
        ),
    ],
)
def test_json_qkv_that_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write_text(tmp_path / "qkv.json", text)
    refused(lambda: load_qkv(path), message)


def test_stdin_is_not_qkv() -> None:
    refused(
        lambda: load_qkv("-"),
        '"-" (stdin) cannot give the queries, keys and values: stdin may carry the input',
        ExitStatus.BAD_USAGE,
    )


# ---------------------------------------------------------------- hostile files

BOTH = {
    "mask": lambda path: load_mask(path, 3, 3),
    "qkv": load_qkv,
}


@pytest.mark.parametrize("reader", sorted(BOTH))
@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "binary_garbage.bin",
            "binary_garbage.json is binary data, not text (it holds NUL bytes); give ",
        ),
        (
            "binary_without_nul.bin",
            "binary_without_nul.json is binary data, not text (240 control bytes in its first 2000); give ",
        ),
        ("utf16_with_bom.csv", "utf16_with_bom.json is UTF-16 text; attn reads UTF-8"),
        (
            "utf16_without_bom.json",
            "utf16_without_bom.json looks like UTF-16 text without a byte-order mark",
        ),
        (
            "latin1.csv",
            "latin1.json: line 2, byte 12: not UTF-8 text (byte 0xe9; Latin-1 or Windows-1252?)",
        ),
        ("truncated.json", "truncated.json: invalid JSON at line 3, column 1"),
        ("empty.json", "empty.json is empty; give "),
        (
            "repeated_key.json",
            'repeated_key.json: the key "embeddings" appears twice in one JSON object',
        ),
        ("nan_literal.json", "nan_literal.json: line 2, column 24: NaN is not a"),
    ],
)
def test_hostile_text_named_json(tmp_path: Path, reader: str, name: str, message: str) -> None:
    """The files of tests/data/invalid, given a .json name: binary data and broken text
    are refused from their first bytes, as INPUT's are."""
    path = tmp_path / (Path(name).stem + ".json")
    shutil.copyfile(INVALID / name, path)
    refused(lambda: BOTH[reader](str(path)), message)


@pytest.mark.parametrize(
    ("name", "mask_message", "qkv_message"),
    [
        (
            "truncated.npy",
            "truncated.npy: cut short: its header declares (3, 3) float64 values (72 B), but "
            "only 52 B follow; copy or save it again",
            "truncated.npy: a .npy file holds one array; queries, keys and values are three",
        ),
        (
            "objects.npy",
            "objects.npy: the array holds Python objects (it needs pickle, which attn does not run)",
            "objects.npy: a .npy file holds one array",
        ),
        (
            "pickled.npz",
            "pickled.npz: embeddings: the array holds Python objects (it needs pickle",
            "pickled.npz: no q, k or v; attn reads queries, keys and values named q, k and v",
        ),
        (
            "declares_8_tib.npz",
            "declares_8_tib.npz: its arrays would unpack to 8.0 TiB (from 110 B in the archive), "
            "more than the",
            "declares_8_tib.npz: no q, k or v",
        ),
        ("booleans.npy", None, "booleans.npy: a .npy file holds one array"),
        (
            "complex.npy",
            "complex.npy: shape (1, 2), but attention here needs (3, 3)",
            "complex.npy: a .npy file",
        ),
        (
            "byte_tokens.npz",
            "byte_tokens.npz: a mask archive holds one array, this one holds 'embeddings', 'tokens'",
            "byte_tokens.npz: no q, k or v",
        ),
        (
            "json_named.npy",
            "json_named.npy: a JSON object holding a mask has one key, \"mask\"; this one holds 'tokens', 'embeddings'",
            "json_named.npy: no q, k or v;",
        ),
        (
            "csv_named.npz",
            "csv_named.npz: invalid JSON at line 1",
            "csv_named.npz: invalid JSON at line 1",
        ),
    ],
)
def test_hostile_numpy_files(name: str, mask_message: str | None, qkv_message: str) -> None:
    path = str(INVALID / name)
    shape = np.load(path).shape if name == "booleans.npy" else (3, 3)
    if mask_message is None:  # a valid boolean mask, if of the right shape
        assert load_mask(path, *shape).bias is None
    else:
        refused(lambda: load_mask(path, 3, 3), mask_message)
    refused(lambda: load_qkv(path), qkv_message)


def bomb(path: Path, names: tuple[str, ...], huge: str) -> None:
    """A .npz whose directory says member `huge` unpacks to 8 TiB (as
    tests/data/invalid/declares_8_tib.npz was made)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(f"{name}.npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ones((2, 3)))
            if name == huge:
                archive.filelist[-1].file_size = 8 << 40


def test_a_qkv_zip_bomb_is_refused_before_anything_is_inflated(tmp_path: Path) -> None:
    path = tmp_path / "qkv.npz"
    bomb(path, ("q", "k", "v"), huge="k")
    assert path.stat().st_size < 2000
    refused(lambda: load_qkv(path), "qkv.npz: its arrays would unpack to 8.0 TiB (from ")


def test_a_qkv_header_declaring_more_than_the_member_holds(tmp_path: Path) -> None:
    path = tmp_path / "qkv.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name in "qkv":
            with archive.open(f"{name}.npy", "w") as member:
                if name == "v":  # a header of (4096, 4096, 4096) float64 and no data
                    header = {"descr": "<f8", "fortran_order": False, "shape": (4096,) * 3}
                    np.lib.format.write_array_header_1_0(member, header)
                else:
                    np.lib.format.write_array(member, np.ones((2, 3)))
    refused(
        lambda: load_qkv(path),
        "qkv.npz: v: cut short: its header declares (4096, 4096, 4096) float64 values "
        "(512.0 GiB), but only 0 B follow; copy or save it again",
    )


def test_a_cut_short_archive(tmp_path: Path) -> None:
    path = tmp_path / "qkv.npz"
    np.savez(path, q=np.ones(GOOD), k=np.ones(GOOD), v=np.ones(GOOD))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(lambda: load_qkv(path), "qkv.npz: not a readable .npz archive (")
    refused(lambda: load_mask(path, 6, 6), "qkv.npz: not a readable .npz archive (")


def test_a_damaged_npy_header(tmp_path: Path) -> None:
    path = tmp_path / "m.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<<}\n")
    refused(lambda: load_mask(path, 6, 6), "m.npy: a damaged .npy header (")


def test_widening_to_float64_is_checked_against_free_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A float16 or float32 array takes 2 to 4 times its bytes as float64: refused when
    free memory cannot hold the copy (the file's own bytes fit)."""
    mask = save_npy(tmp_path / "m.npy", np.zeros((64, 64), np.float16))  # 8 KiB as float16
    halves = {n: np.ones((64, 64), np.float16) for n in "qkv"}  # 24 KiB unpacked
    qkv = save_qkv(tmp_path / "qkv.npz", **halves)
    monkeypatch.setattr(reading, "available_memory", lambda: 34_000)
    refused(
        lambda: load_mask(mask, 64, 64),
        "m.npy: as float64 the array takes 36.0 KiB ((64, 64) values), more than the 33.2 KiB "
        "of memory free; give fewer tokens",
    )
    monkeypatch.setattr(reading, "available_memory", lambda: 30_000)
    refused(
        lambda: load_qkv(qkv),
        "qkv.npz: q: as float64 the array takes 32.0 KiB ((64, 64) values), more than",
    )


def test_boolean_masks_and_float64_need_no_copy_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask = save_npy(tmp_path / "m.npy", np.ones((64, 64), bool))
    monkeypatch.setattr(reading, "available_memory", lambda: 10_000)
    assert load_mask(mask, 64, 64).allowed.all()


@pytest.mark.parametrize("reader", sorted(BOTH))
def test_missing_files_and_folders(tmp_path: Path, reader: str) -> None:
    refused(
        lambda: BOTH[reader](str(tmp_path / "nothing.npz")),
        "nothing.npz: no such file; check the path",
    )
    refused(lambda: BOTH[reader](str(tmp_path)), "is a directory; give ")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("reader", sorted(BOTH))
def test_endless_devices_are_refused_from_their_first_bytes(reader: str) -> None:
    refused(
        lambda: BOTH[reader]("/dev/zero"), "/dev/zero is binary data, not text (it holds NUL bytes)"
    )


def test_indices_count_in_the_files_own_order_for_fortran_arrays(tmp_path: Path) -> None:
    """A column-major array's bad value is named by its index, not its place on disk."""
    q = np.asfortranarray(np.ones(GOOD))
    q[1, 2, 0] = np.nan
    path = save_qkv(tmp_path / "qkv.npz", q=q, k=np.ones(GOOD), v=np.ones(GOOD))
    refused(lambda: load_qkv(path), "qkv.npz: q[1, 2, 0] is nan, not a finite number")
    mask = np.asfortranarray(np.zeros((4, 5)))
    mask[3, 1] = np.inf
    refused(
        lambda: load_mask(save_npy(tmp_path / "m.npy", mask), 4, 5), "m.npy: mask[3, 1] is inf;"
    )

"""`attn check THEIRS`: every form THEIRS may take (JSON, CSV, .npy, .npz, printed
tensors, stdin), the shapes a stage may have, and every way THEIRS can be bad: one line
on stderr, nothing on stdout, never a traceback; and a difference never mistaken for an
error (both exit 1: a report on stdout, or `attn: error:` alone)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attncli import AttentionParams, book_example, compute
from attncli.inputs import reading
from attncli.inputs.theirs import Precision, load_theirs

from .conftest import DATA, Invoke
from .test_errors import FLAG_CHOICES

RIGHT = compute(book_example())  # plain attention on the book's six tokens
WEIGHTS = RIGHT.attn_weights[0]  # (6, 6)
CONTEXT = RIGHT.context_vecs  # (6, 3)
CAUSAL = compute(book_example(), AttentionParams(mode="causal", heads=2, d_out=4))


def _run(attn: Invoke, *args: str, input: str | bytes | None = None) -> Any:
    return attn("check", *args, input=input, terminal=input is None)


def _report(attn: Invoke, *args: str, status: int = 0, input: str | bytes | None = None) -> Any:
    result = _run(attn, *args, "-f", "json", input=input)
    assert (result.exit_code, result.stderr) == (status, ""), result.stderr
    return json.loads(result.stdout)


def _error(attn: Invoke, *args: str, status: int, fragment: str) -> None:
    result = _run(attn, *args)
    assert result.exit_code == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attn: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr, result.stderr


# ---------------------------------------------------------------- forms of THEIRS


def test_json_objects_by_the_books_names_too(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps({"attn_weights": WEIGHTS.tolist(), "context_vecs": CONTEXT.tolist()}), "utf-8"
    )
    report = _report(attn, str(path))
    assert [s["stage"] for s in report["stages"]] == ["weights", "context"]
    path.write_text(json.dumps({"weights": [[1.0]], "attn_weights": [[1.0]]}), "utf-8")
    _error(attn, str(path), status=1, fragment='both "weights" and its book name "attn_weights"')
    path.write_text(json.dumps({"weigths": WEIGHTS.tolist()}), "utf-8")
    _error(attn, str(path), status=1, fragment="'weigths'; a JSON object of your numbers holds")
    _error(attn, str(path), "--stage", "weights", status=2, fragment="drop --stage")


def test_the_tokens_theirs_names_must_be_the_inputs(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    tokens = list(book_example().tokens)
    path.write_text(json.dumps({"tokens": tokens, "weights": WEIGHTS.tolist()}), "utf-8")
    _report(attn, str(path))
    path.write_text(json.dumps({"tokens": list("abcdef"), "weights": WEIGHTS.tolist()}), "utf-8")
    _error(attn, str(path), status=1, fragment="was made from the tokens 'a', 'b', 'c'")
    other = tmp_path / "other.csv"
    other.write_text("a,1,2,3\nb,4,5,6\nc,7,8,9\nd,1,1,1\ne,2,2,2\nf,3,3,3\n", "utf-8")
    made = attn("weights", str(other), "-f", "json", terminal=True)
    path.write_bytes(made.stdout_bytes)
    _error(attn, str(path), status=1, fragment="was made from the tokens 'a', 'b', 'c'")


def test_attns_other_outputs_are_refused(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "explain.json"
    path.write_bytes(attn("explain", "-f", "json", terminal=True).stdout_bytes)
    _error(attn, str(path), status=1, fragment="the output of `attn explain`, which attn check")


def test_a_bare_matrix_needs_its_stage(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps(WEIGHTS.tolist()), "utf-8")
    _error(attn, str(path), status=2, fragment="(a 6×6 matrix: --stage scores or weights?)")
    assert _report(attn, str(path), "--stage", "weights")["status"] == "matches"
    _error(attn, str(path), "--stage", "wieghts", status=2, fragment="'wieghts'")


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("token,Your,journey,starts,with,one,step\n{rows}", "CSV text"),  # attn's CSV
        (",0,1,2,3,4,5\n{rows}", "CSV text"),  # pandas' to_csv, its index column
        ("{numbers}", "CSV text"),  # no header, no tokens
        ("{tabs}", "TSV text"),
        ("{spaces}", "numbers in columns"),  # numpy.savetxt
    ],
)
def test_tables_of_numbers(attn: Invoke, tmp_path: Path, text: str, form: str) -> None:
    tokens = book_example().tokens
    numbers = [[repr(v) for v in row] for row in WEIGHTS.tolist()]
    filled = text.format(
        rows="".join(f"{t},{','.join(r)}\n" for t, r in zip(tokens, numbers, strict=True)),
        numbers="".join(",".join(r) + "\n" for r in numbers),
        tabs="".join("\t".join(r) + "\n" for r in numbers),
        spaces="".join(" ".join(r) + "\n" for r in numbers),
    )
    if filled.startswith(",0"):
        filled = filled.replace("Your,", "0,").replace("journey,", "1,")
    path = tmp_path / "w.txt"
    path.write_text(filled, "utf-8")
    report = _report(attn, str(path), "--stage", "weights")
    assert report["theirs"]["form"] == form
    assert report["stages"][0]["precision"] == "float64"


def test_attns_csv_of_several_heads(attn: Invoke, tmp_path: Path) -> None:
    flags = ["-m", "causal", "--heads", "2", "--d-out", "4"]
    path = tmp_path / "w.csv"
    path.write_bytes(attn("weights", *flags, "-f", "csv", terminal=True).stdout_bytes)
    report = _report(attn, str(path), "--stage", "weights", *flags)
    assert report["stages"][0]["shape"] == [2, 6, 6]
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join([lines[0], *lines[7:], *lines[1:7]]), "utf-8")  # head 1 first
    _error(attn, str(path), "--stage", "weights", *flags, status=1, fragment="must count 0, 1")


def test_csv_that_is_refused(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("0.1,0.2\n0.3\n", "utf-8")
    _error(attn, str(path), "--stage", "weights", status=1, fragment="line 2 has 1 cells")
    path.write_text("0.1,0.2\n0.3,zero\n", "utf-8")
    _error(attn, str(path), "--stage", "weights", status=1, fragment="line 2, column 2: 'zero'")
    path.write_text("a,b\n", "utf-8")
    _error(attn, str(path), "--stage", "weights", status=1, fragment="only a header row")


def test_numpy_files(attn: Invoke, tmp_path: Path) -> None:
    for dtype, precision in ((np.float64, "float64"), (np.float32, "float32")):
        path = tmp_path / "w.npy"
        np.save(path, WEIGHTS.astype(dtype))
        report = _report(attn, str(path), "--stage", "weights")
        assert report["stages"][0]["precision"] == precision
    np.save(path, WEIGHTS.astype(np.float16))
    report = _report(attn, str(path), "--stage", "weights")
    assert (report["status"], report["stages"][0]["precision"]) == ("matches", "float16")
    archive = tmp_path / "mine.npz"
    np.savez(archive, attn_weights=WEIGHTS, context=CONTEXT)
    assert _report(attn, str(archive))["theirs"]["form"] == "a .npz archive of stages"
    _error(attn, str(archive), "--stage", "weights", status=2, fragment="drop --stage")
    np.savez(archive, w=WEIGHTS)
    _error(attn, str(archive), status=1, fragment="holds 'w'; name its arrays by stage")


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.ones((6, 6), dtype=bool), "bool values; save the numbers, not a mask"),
        (np.ones((6, 6), dtype=complex), "save array.real"),
        (np.ones((6, 6), dtype=np.longdouble), "save it as float64"),
        (np.ones((2, 2, 2, 2, 2)), "5 dimensions"),
        (np.ones((0, 6)), "holds no numbers"),
    ],
)
def test_numpy_arrays_that_are_refused(
    attn: Invoke, tmp_path: Path, array: np.ndarray, fragment: str
) -> None:
    if array.dtype == np.longdouble and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("long double is double here")
    path = tmp_path / "w.npy"
    np.save(path, array)
    _error(attn, str(path), "--stage", "weights", status=1, fragment=fragment)


TENSOR = """tensor([[0.2098, 0.2006, 0.1981, 0.1242, 0.1220, 0.1452],
        [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581],
        [0.1390, 0.2369, 0.2326, 0.1242, 0.1108, 0.1565],
        [0.1435, 0.2074, 0.2046, 0.1462, 0.1263, 0.1720],
        [0.1526, 0.1958, 0.1975, 0.1367, 0.1879, 0.1295],
        [0.1385, 0.2184, 0.2128, 0.1420, 0.0988, 0.1896]])"""


@pytest.mark.parametrize(
    ("text", "form", "precision"),
    [
        (TENSOR, "a printed tensor", "4 decimals"),
        (TENSOR[:-1] + ", grad_fn=<SoftmaxBackward0>)", "a printed tensor", "4 decimals"),
        (TENSOR[:-1] + ", dtype=torch.float64)", "a printed tensor", "4 decimals"),
        ("Parameter containing:\n" + TENSOR, "a printed tensor", "4 decimals"),
        (TENSOR.replace("tensor(", "array(")[:-1] + ", dtype=float32)", "a printed numpy array",
         "4 decimals"),
        (TENSOR.replace("tensor(", "").replace(",", " ")[:-1], "a printed array", "4 decimals"),
        ("tensor([" + ",\n".join("[" + ", ".join(f"{v:.4e}" for v in row) + "]" for row in WEIGHTS)
         + "])", "a printed tensor", "5 significant digits"),
    ],
)  # fmt: skip
def test_printed_tensors(
    attn: Invoke, tmp_path: Path, text: str, form: str, precision: str
) -> None:
    path = tmp_path / "pasted.txt"
    path.write_text(text, "utf-8")
    report = _report(attn, str(path), "--stage", "weights")
    assert report["theirs"]["form"] == form
    assert report["stages"][0]["precision"] == precision
    assert report["status"] == "matches"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tensor([[0.2098, 0.2006, ..., 0.1452]])", "printed summarized ('...'"),
        ("tensor([[0.2, 0.3]])\ntensor([[0.2, 0.3]])", "holds more than one tensor"),
        ("tensor([[0.2, 0.3]]", "tensor(...) is not closed"),
        ("tensor([[0.2, 0.3], [0.4, oops]])", "line 1, column 27: 'oops' is not a number"),
        ("[[0.2 0.3]\n [0.4 0.5]", "the text ends inside the array (1 '[' not closed)"),
        ("[[0.2 0.3]] [[0.4]]", "'[[0.4]]' after the numbers"),
        ("[[0.2, 0.3], [0.4]]", "weights[1] has 1 item, but weights[0] has 2"),
        ("[[0.2 0.3]\n [0.4]]", "the array[1] has 1 item, but the array[0] has 2"),
    ],
)
def test_printed_text_that_is_refused(
    attn: Invoke, tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "pasted.txt"
    path.write_text(text, "utf-8")
    _error(attn, str(path), "--stage", "weights", status=1, fragment=fragment)


def test_stdin_gives_theirs_and_the_input_is_the_books(attn: Invoke) -> None:
    """With THEIRS on stdin and no INPUT, the input is the book's six tokens, not stdin."""
    result = attn("check", "-", "--stage", "weights", "-f", "json", input=TENSOR)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["theirs"]["source"] == "<stdin>"
    result = attn("check", "-", "-", "--stage", "weights", input=TENSOR)
    assert result.exit_code == 2
    assert "THEIRS and INPUT both read stdin" in result.stderr
    result = attn("check", "-", "--stage", "weights", input="")
    assert (result.exit_code, result.stdout) == (1, "")
    assert "stdin is empty; paste your numbers" in result.stderr
    data = np.lib.format.header_data_from_array_1_0(WEIGHTS)
    assert data["shape"] == (6, 6)
    import io

    buffer = io.BytesIO()
    np.save(buffer, WEIGHTS)
    result = attn("check", "-", "--stage", "weights", "-f", "json", input=buffer.getvalue())
    assert result.exit_code == 0, result.stderr


def test_non_finite_numbers_are_compared(attn: Invoke, tmp_path: Path) -> None:
    """-inf (null, -Infinity, "-inf" in a tensor) where the right scores are masked;
    NaN where the right numbers are not is a difference, said where."""
    flags = ["-m", "causal", "--heads", "2", "--d-out", "4"]
    scores = CAUSAL.attn_scores  # (2, 6, 6), -inf where masked
    path = tmp_path / "s.json"
    path.write_text(json.dumps(np.where(np.isinf(scores), None, scores).tolist()), "utf-8")
    assert _report(attn, str(path), "--stage", "scores", *flags)["status"] == "matches"
    path.write_text(json.dumps(scores.tolist()), "utf-8")  # Python's json: -Infinity
    assert _report(attn, str(path), "--stage", "scores", *flags)["status"] == "matches"
    weights = CAUSAL.attn_weights.copy()
    weights[0, 0] = np.nan
    path.write_text(json.dumps({"weights": weights.tolist()}), "utf-8")
    report = _report(attn, str(path), *flags, status=1)
    stage = report["stages"][0]
    assert (stage["differing"], stage["nonfinite_differing"]) == (6, 6)
    assert stage["theirs_there"] == "nan"
    assert stage["where"]["query"]["token"] == "Your"


# ---------------------------------------------------------------- shapes


def test_the_forms_a_stage_may_take(attn: Invoke, tmp_path: Path) -> None:
    flags = ["-m", "causal", "--init", "linear", "--heads", "4", "--d-out", "8",
             "--kv-groups", "2"]  # fmt: skip
    result = compute(
        book_example(),
        AttentionParams(mode="causal", init="linear", heads=4, d_out=8, kv_groups=2),
    )
    keys = result.keys  # (6, 4): 2 key/value heads of 2
    per_head = keys.reshape(6, 2, 2).transpose(1, 0, 2)  # (2, 6, 2)
    per_query_head = np.repeat(per_head, 2, axis=0)  # (4, 6, 2)
    forms = []
    for array in (keys, per_head, per_query_head, keys[np.newaxis], per_head[np.newaxis]):
        path = tmp_path / "k.npy"
        np.save(path, array)
        stage = _report(attn, str(path), "--stage", "keys", *flags)["stages"][0]
        forms.append((stage["form"], stage["batch"]))
    assert forms == [
        ("joined", None),
        ("per head", None),
        ("per query head", None),
        ("joined", 1),
        ("per head", 1),
    ]
    np.save(path, np.tile(per_head, (2, 1, 1)))  # torch's repeat: wrong, and named
    report = _report(attn, str(path), "--stage", "keys", *flags, status=1)
    assert [m["code"] for m in report["diagnoses"][0]["mistakes"]] == ["repeat_not_interleave"]


@pytest.mark.parametrize(
    ("shape", "stage", "flags", "fragment"),
    [
        ((6, 5), "weights", [], "shape (6, 5), but weights here are (6, 6): one row per query token (6 in the built-in example), one column per key (6)"),
        ((6, 6), "weights", ["-m", "causal", "--heads", "2", "--d-out", "4"], "weights here are (2, 6, 6)"),
        ((6, 4), "context", ["-m", "causal"], "made with another --d-out? (here --d-out 2, --heads 1)"),
        ((5, 2), "queries", ["-m", "causal"], "one row per token (6 in the built-in example)"),
        ((6,), "weights", [], "shape (6,), but weights here are (6, 6)"),
    ],
)  # fmt: skip
def test_wrong_shapes_name_the_shape_needed(
    attn: Invoke, tmp_path: Path, shape: tuple[int, ...], stage: str, flags: list[str],
    fragment: str,
) -> None:  # fmt: skip
    path = tmp_path / "x.npy"
    np.save(path, np.full(shape, 0.1))
    _error(attn, str(path), "--stage", stage, *flags, status=1, fragment=fragment)


def test_query_rows_and_their_conflicts(attn: Invoke, tmp_path: Path) -> None:
    made = attn("weights", "-q", "journey", "-f", "json", terminal=True)
    path = tmp_path / "row.json"
    path.write_bytes(made.stdout_bytes)
    assert _report(attn, str(path))["query"] == {"index": 1, "token": "journey"}
    _error(attn, str(path), "-q", "starts", status=2, fragment="drop --query")
    np.save(tmp_path / "row.npy", WEIGHTS[1])
    _error(attn, str(tmp_path / "row.npy"), "--stage", "weights", status=1,
           fragment="shape (6,), but weights here are (6, 6)")  # fmt: skip
    assert _report(attn, str(tmp_path / "row.npy"), "--stage", "weights", "-q", "1")["query"]


# ---------------------------------------------------------------- hostile files


INVALID = sorted(p for p in (DATA / "invalid").iterdir() if p.name != "cases.json")


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
@pytest.mark.parametrize("stage", [[], ["--stage", "weights"]])
def test_every_hostile_file_as_theirs(attn: Invoke, path: Path, stage: list[str]) -> None:
    """Whatever the file: a report (exit 0 or 1, stdout the report) or one line of error
    (exit 1 or 2, stdout empty); never a crash."""
    result = _run(attn, str(path), *stage, "-f", "json")
    assert result.exit_code in (0, 1, 2), result.stderr
    if result.stdout:
        assert result.stderr == ""
        assert json.loads(result.stdout)["command"] == "check"
    else:
        assert result.stderr.startswith("attn: error: ")
        assert result.stderr.count("\n") == 1, result.stderr
        assert "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty; give your numbers"),
        (b"  \n\t\n", "holds only whitespace"),
        (b"\x00\x01\x02binary", "is binary data, not text"),
        ("\ufeff[[0.2]]".encode("utf-16"), "UTF-16 text"),
        (b"[[0.2, 0.3],\n [0.4,", "the text ends inside the array"),
        (b'{"weights": [[0.2, 0.3], [0.4', "the text ends before the JSON does (cut short?)"),
        (b'{"weights": [[0.2, "x"]]}', 'weights[0, 1] is a string ("x"), not a number'),
        (b'{"weights": [[true]]}', "weights[0, 0] is a boolean (true), not a number"),
        (b'{"weights": 3}', "weights is a number (3); give a list of rows"),
        (b'{"weights": []}', "holds no numbers"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (6, 6), }",
         "a damaged .npy header"),
    ],
)  # fmt: skip
def test_broken_files(attn: Invoke, tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "theirs"
    path.write_bytes(content)
    stage = [] if content.startswith(b"{") else ["--stage", "weights"]
    _error(attn, str(path), *stage, status=1, fragment=fragment)


def test_a_npy_file_cut_short(attn: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, WEIGHTS)
    path.write_bytes(path.read_bytes()[:-100])
    _error(
        attn,
        str(path),
        "--stage",
        "weights",
        status=1,
        fragment="cut short: its header declares (6, 6)",
    )


def test_missing_and_unreadable_files(attn: Invoke, tmp_path: Path) -> None:
    _error(attn, str(tmp_path / "nope.json"), status=1, fragment="no such file; check the path")
    _error(attn, str(tmp_path), status=1, fragment="is a directory")
    _error(attn, "/dev/zero", "--stage", "weights", status=1, fragment="is binary data")


def test_a_file_beyond_free_memory(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": WEIGHTS.tolist()}), "utf-8")
    monkeypatch.setattr(reading, "available_memory", lambda: 100)
    _error(attn, str(path), status=1, fragment="of memory free to parse it")


def test_an_input_too_long_to_check(
    attn: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attncli.cli import check as cli_check

    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": WEIGHTS.tolist()}), "utf-8")
    monkeypatch.setattr(cli_check, "available_memory", lambda: 1_000)
    _error(attn, str(path), status=1, fragment="attn check for 6 tokens needs about")


# ---------------------------------------------------------------- exit status and flags


def test_a_difference_is_never_mistaken_for_an_error(attn: Invoke, tmp_path: Path) -> None:
    """Both exit 1; a difference has its report on stdout (JSON "status": "differs") and
    nothing on stderr, an error nothing on stdout and one `attn: error:` line."""
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"weights": (WEIGHTS.T).tolist()}), "utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"weights": [[0.1, 0.2], [0.3]]}', "utf-8")
    for fmt in ("json", "table"):
        differs = _run(attn, str(wrong), "-f", fmt)
        failed = _run(attn, str(bad), "-f", fmt)
        assert differs.exit_code == failed.exit_code == 1
        assert differs.stdout
        assert not differs.stderr
        assert not failed.stdout
        assert failed.stderr.startswith("attn: error: ")
    assert json.loads(_run(attn, str(wrong), "-f", "json").stdout)["status"] == "differs"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["-f", "csv"], "attn check writes a report (-f table, svg, html) or one JSON object"),
        (["-f", "npy"], "attn check writes a report"),
        (["-f", "markdown"], "attn check writes a report"),
        (["--prefill", "2"], "--prefill has no effect on `attn check`"),
        (["--seed", "7"], "--seed has no effect in plain mode"),
        (["--precision", "3", "-f", "json"], "--precision only rounds tables"),
    ],
)
def test_usage_errors(attn: Invoke, tmp_path: Path, flags: list[str], fragment: str) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": WEIGHTS.tolist()}), "utf-8")
    _error(attn, str(path), *flags, status=2, fragment=fragment)


def test_check_without_theirs_is_a_usage_error(attn: Invoke) -> None:
    result = attn("check", terminal=True)
    assert (result.exit_code, result.stdout) == (2, "")
    assert "Missing argument 'THEIRS'" in result.stderr


def test_dropout_is_checked_not_refused(attn: Invoke, tmp_path: Path) -> None:
    flags = ["-m", "causal", "--init", "linear", "--dropout", "0.5"]
    made = attn("weights", *flags, "-f", "json", terminal=True)
    path = tmp_path / "w.json"
    path.write_bytes(made.stdout_bytes)
    assert _report(attn, str(path), *flags)["status"] == "matches"


def test_the_precision_of_numbers_as_written() -> None:
    from attncli.inputs.theirs import _precision

    assert _precision(["0.25", "0.5"], np.array([0.25, 0.5]), False) == Precision("decimals", 2)
    assert _precision(["1.0", "0.0"], np.array([1.0, 0.0]), False) == Precision("whole")
    assert _precision(["1.", "0."], np.array([1.0, 0.0]), True) == Precision("whole")
    # one number changed after rounding does not make the rest full precision
    literals = ["0.2555", "0.25570000000000004", "0.1234"]
    assert _precision(literals, np.zeros(3), False) == Precision("decimals", 4)
    full = [repr(float(np.float32(v))) for v in (0.1, 0.2, 0.3)]
    values = np.array([float(np.float32(v)) for v in (0.1, 0.2, 0.3)])
    assert _precision(full, values, False) == Precision("float32")


def test_load_theirs_is_the_librarys(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"attn_weights": WEIGHTS.tolist()}), "utf-8")
    theirs = load_theirs(path)
    assert [g.stage for g in theirs.given] == ["weights"]
    np.testing.assert_array_equal(theirs.given[0].array, WEIGHTS)


# ---------------------------------------------------------------- fuzzing


def _theirs_files() -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="attn-check-fuzz-"))
    files = {
        "right.json": json.dumps({"weights": WEIGHTS.tolist(), "context": CONTEXT.tolist()}),
        "dim0.json": json.dumps({"weights": WEIGHTS.T.tolist()}),
        "bare.json": json.dumps(WEIGHTS.tolist()),
        "tensor.txt": TENSOR,
        "heads.json": json.dumps({"weights": CAUSAL.attn_weights.tolist()}),
    }
    for name, text in files.items():
        (folder / name).write_text(text, "utf-8")
    return [str(folder / name) for name in files]


THEIRS_FILES = _theirs_files()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(THEIRS_FILES),
    st.lists(st.sampled_from([*FLAG_CHOICES, ["--stage", "weights"], ["--stage", "keys"]]),
             max_size=4),
    st.booleans(),
)  # fmt: skip
def test_random_flag_combinations_never_crash(
    attn: Invoke, theirs: str, flags: list[list[str]], terminal: bool
) -> None:
    argv = ["check", theirs, *(part for flag in flags for part in flag)]
    result = attn(*argv, terminal=terminal)
    assert result.exit_code in (0, 1, 2), (argv, result.stderr)
    assert "internal error" not in result.stderr, argv
    if result.stderr:
        assert result.stderr.startswith("attn: error: ")
        assert result.stdout == ""
    else:
        assert result.stdout


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=7) | st.dictionaries(
        st.sampled_from(["weights", "scores", "context", "keys", "tokens", "attn_weights",
                         "command", "values", "query", "x"]),
        children, max_size=4),
    max_leaves=40,
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values, st.booleans())
def test_random_json_is_read_or_refused(attn: Invoke, value: Any, with_stage: bool) -> None:
    path = Path(THEIRS_FILES[0]).parent / "fuzz.json"
    path.write_text(json.dumps(value), "utf-8")
    stage = ["--stage", "weights"] if with_stage else []
    result = attn("check", str(path), *stage, "-f", "json", terminal=True)
    assert result.exit_code in (0, 1, 2)
    assert "internal error" not in result.stderr, (value, result.stderr)
    if result.stderr:
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet="[](),.-+e 0123456789\nnaifte_=<>dgrsor", max_size=60))
def test_random_text_is_read_or_refused(attn: Invoke, text: str) -> None:
    path = Path(THEIRS_FILES[0]).parent / "fuzz.txt"
    path.write_text(text, "utf-8")
    result = attn("check", str(path), "--stage", "weights", "-f", "json", terminal=True)
    assert result.exit_code in (0, 1, 2)
    assert "internal error" not in result.stderr, (text, result.stderr)


@pytest.mark.parametrize("command", ["queries", "keys", "values", "scores", "weights", "context"])
def test_cross_attention_and_a_models_qkv(attn: Invoke, tmp_path: Path, command: str) -> None:
    """Keys and values of other tokens (--kv), and a model's q, k, v (--qkv)."""
    samples = Path(__file__).parent.parent / "sample_inputs"
    flags = [str(samples / "your_journey_first_three.csv"), "--kv",
             str(samples / "your_journey.json"), "-m", "causal", "--init", "linear"]  # fmt: skip
    for fmt in ("json", "csv"):
        path = tmp_path / f"theirs.{fmt}"
        path.write_bytes(attn(command, *flags, "-f", fmt, terminal=True).stdout_bytes)
        stage = ["--stage", command] if fmt == "csv" else []
        assert _report(attn, str(path), *stage, *flags)["status"] == "matches"
    if command in ("queries", "keys", "values"):
        return
    qkv = tmp_path / "qkv.npz"
    rng = np.random.default_rng(0)
    np.savez(qkv, q=rng.normal(size=(2, 4, 3)), k=rng.normal(size=(1, 4, 3)),
             v=rng.normal(size=(1, 4, 3)))  # fmt: skip
    path = tmp_path / "theirs.json"
    path.write_bytes(attn(command, "--qkv", str(qkv), "-m", "causal", "-f", "json").stdout_bytes)
    assert _report(attn, str(path), "--qkv", str(qkv), "-m", "causal")["status"] == "matches"

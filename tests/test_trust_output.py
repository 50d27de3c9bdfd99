"""Data goes where the user sent it, whatever stdout, stderr and -o are, and however attn
is stopped. These run attn as a whole process (`python -m attncli`, the console script's
own entry), because what is tested is the process: its file descriptors, terminals,
signals and environment."""

from __future__ import annotations

import json
import os
import pty
import resource
import select
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import BOOK, Invoke
from .test_errors import assert_one_line_error

ATTN = [sys.executable, "-m", "attncli"]
ROOT = os.geteuid() == 0
# A job long enough for the progress bar (5 000 tokens: 25 million scores).
BIG_TOKENS = 5000


def run(
    *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*ATTN, *args],
        capture_output=kwargs.pop("capture_output", True),
        stdin=kwargs.pop("stdin", subprocess.DEVNULL),
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
        **kwargs,
    )


def one_line_error(stderr: bytes, fragment: str) -> None:
    text = stderr.decode()
    assert text.startswith("attn: error: "), text
    assert text.count("\n") == 1, text
    assert fragment in text, text


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.npy"
    np.save(path, np.random.default_rng(0).random((BIG_TOKENS, 8)))
    return path


@pytest.fixture(scope="module")
def long_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokens enough for a CSV of scores well past a pipe's or a small file's size."""
    path = tmp_path_factory.mktemp("long") / "long.npy"
    np.save(path, np.random.default_rng(0).random((600, 8)))
    return path


def book_context() -> list[list[float]]:
    matrix = np.array(BOOK["inputs"]["matrix"])
    scores = matrix @ matrix.T
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    context: list[list[float]] = (weights @ matrix).tolist()
    return context


# ---------------------------------------------------------------- the progress bar


def run_with_stderr_on_a_terminal(command: str) -> tuple[int, str]:
    """`sh -c COMMAND` with stderr (only) on a pseudo-terminal: what attn drew there."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["sh", "-c", command], stdin=subprocess.DEVNULL, stderr=slave, env=os.environ
    )
    os.close(slave)
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    return process.wait(timeout=60), drawn.decode(errors="replace")


def test_the_progress_bar_never_takes_the_data_off_a_redirected_stdout(
    big_npy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    command = " ".join([*ATTN, "context", str(big_npy), ">", str(out)])
    status, drawn = run_with_stderr_on_a_terminal(command)
    assert status == 0, drawn
    assert "attn context" in drawn  # the bar was drawn, on the terminal (stderr)
    assert "{" not in drawn  # and no data with it
    assert json.loads(out.read_text())["shape"] == [BIG_TOKENS, 8]


def test_the_progress_bar_never_takes_the_data_off_a_pipe(big_npy: Path, tmp_path: Path) -> None:
    shape = tmp_path / "shape.txt"
    reader = f"{sys.executable} -c 'import json, sys; print(json.load(sys.stdin)[\"shape\"])'"
    command = " ".join([*ATTN, "context", str(big_npy), "|", reader, ">", str(shape)])
    status, drawn = run_with_stderr_on_a_terminal(command)
    assert status == 0, drawn
    assert shape.read_text().strip() == f"[{BIG_TOKENS}, 8]"


# ---------------------------------------------------------------- -o and what it names


@pytest.fixture
def null_device(tmp_path: Path) -> str:
    """A character device to write into. As root, a private twin of /dev/null (so that a
    regression cannot replace the machine's own); otherwise /dev/null, which a normal
    user cannot replace anyway."""
    if not ROOT:
        return os.devnull
    path = tmp_path / "null"
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return str(path)


def test_o_into_a_character_device_writes_into_it(attn: Invoke, null_device: str) -> None:
    done = attn("context", "-o", null_device, terminal=True)
    assert (done.exit_code, done.stdout, done.stderr) == (0, "", "")
    assert stat.S_ISCHR(os.stat(null_device).st_mode)  # still the device, not a file


def test_o_into_a_named_pipe_writes_into_it(attn: Invoke, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = attn("context", "-o", str(fifo), terminal=True)  # no extension: JSON, as into any pipe
    if reader.is_alive() and not received:  # attn never opened it: release the reader
        with open(fifo, "wb"):
            pass
    reader.join(timeout=60)
    assert (done.exit_code, done.stderr) == (0, "")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    values = np.array(json.loads(received[0])["values"])
    np.testing.assert_allclose(values, book_context(), rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file


def test_o_into_a_named_pipe_whose_reader_leaves_exits_141_quietly(
    long_npy: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def read_a_little() -> None:
        with open(fifo, "rb") as pipe:
            pipe.read(100)

    reader = threading.Thread(target=read_a_little, daemon=True)
    reader.start()
    done = run("scores", str(long_npy), "-f", "csv", "-o", str(fifo))
    reader.join(timeout=60)
    assert (done.returncode, done.stderr) == (141, b"")


def test_o_dev_stdout_appends_to_what_stdout_is(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    log.write_text("earlier\n")
    with open(log, "ab") as stdout:
        done = run("context", "-o", "/dev/stdout", stdout=stdout, capture_output=False)
    assert done.returncode == 0
    earlier, document = log.read_text().split("\n", 1)
    assert earlier == "earlier"  # not truncated: written into the open descriptor
    assert json.loads(document)["command"] == "context"  # JSON: stdout is not a terminal


def test_o_dev_fd_writes_into_that_descriptor(attn: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "fd.json"
    with open(target, "wb") as handle:
        done = attn("context", "-o", f"/dev/fd/{handle.fileno()}", terminal=True)
    assert (done.exit_code, done.stderr) == (0, "")
    assert json.loads(target.read_text())["shape"] == [6, 3]
    unused = max(os.listdir("/proc/self/fd"), key=int)
    closed = attn("context", "-o", f"/dev/fd/{int(unused) + 100}", terminal=True)
    assert_one_line_error(closed, 1, "cannot write it (no such open file descriptor)")


def test_o_through_a_symbolic_link_replaces_its_target_and_keeps_the_link(
    attn: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    real = tmp_path / "results" / "weights.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    done = attn("weights", "-o", str(link), terminal=True)
    assert (done.exit_code, done.stderr) == (0, "")
    assert link.is_symlink()
    assert link.resolve() == real
    assert json.loads(real.read_text())["command"] == "weights"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["weights.json"]
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "results" / "new-target.json")
    assert attn("weights", "-o", str(dangling), terminal=True).exit_code == 0
    assert dangling.is_symlink()
    assert json.loads((tmp_path / "results" / "new-target.json").read_text())["shape"] == [6, 6]


def test_o_keeps_the_mode_and_owner_of_the_file_it_replaces(attn: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    target.chmod(0o604)
    if ROOT:
        os.chown(target, 1234, 5678)
    assert attn("context", "-o", str(target), terminal=True).exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
    assert target.read_text().startswith("token,d1,d2,d3\n")
    if ROOT:
        assert (target.stat().st_uid, target.stat().st_gid) == (1234, 5678)


def test_o_refuses_a_read_only_file_whoever_runs_it(attn: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "keep.json"
    target.write_text("precious")
    target.chmod(0o444)
    done = attn("context", "-o", str(target), terminal=True)
    assert_one_line_error(done, 1, f"-o {target}: the file is read-only (mode -r--r--r--)")
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


@pytest.mark.skipif(not ROOT, reason="making a device node needs root")
def test_o_refuses_a_block_device(attn: Invoke, tmp_path: Path) -> None:
    device = tmp_path / "disk"
    os.mknod(device, stat.S_IFBLK | 0o600, os.makedev(7, 250))  # no such loop device
    done = attn("context", "-o", str(device), terminal=True)
    assert_one_line_error(done, 1, "is a block device; attn writes to files, character devices")


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_during_o_removes_the_temporary_file(
    big_npy: Path, tmp_path: Path, signum: int, status: int
) -> None:
    target = tmp_path / "scores.csv"
    target.write_text("the previous result")
    process = subprocess.Popen(
        [*ATTN, "scores", str(big_npy), "-o", str(target)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "no temporary file"
        assert process.poll() is None, "attn ended before it wrote anything"
        time.sleep(0.005)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout, stderr) == (status, b"", b"")
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
    assert target.read_text() == "the previous result"


def test_a_file_size_limit_is_an_error_not_a_kill(long_npy: Path, tmp_path: Path) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = run("scores", str(long_npy), "-o", str(tmp_path / "s.csv"), preexec_fn=limit)
    assert done.returncode == 1
    one_line_error(done.stderr, "s.csv: cannot write it (File too large)")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- Ctrl-C at any moment

# Sends this very process a SIGINT at one moment of attn's start: when the N-th module
# starts importing after attn has put its signal handler in place (before that, only
# the interpreter and the console script's two lines have run), or a named one. A
# Ctrl-C from the keyboard arrives the same way, at whatever Python is doing.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os, signal, sys

    _when = os.environ.get("ATTN_TEST_SIGINT_AT", "")
    _state = {"armed": False, "count": 0}

    def _hook(event, args):
        if event != "import" or not _when:
            return
        name = args[0]
        if not _state["armed"]:
            _state["armed"] = signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            if not _state["armed"]:
                return
        _state["count"] += 1
        if _when == name or _when == str(_state["count"]):
            _state["armed"] = False
            globals()["_when"] = ""
            os.kill(os.getpid(), signal.SIGINT)

    sys.addaudithook(_hook)
    """
)


@pytest.fixture(scope="module")
def interrupting_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


MOMENTS = ["1", "3", "30", "numpy._core._multiarray_umath", "datetime", "attncli.attention"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_c_at_any_moment_of_start_up_exits_130_quietly(
    interrupting_site: Path, moment: str
) -> None:
    env = {"PYTHONPATH": str(interrupting_site), "ATTN_TEST_SIGINT_AT": moment}
    done = run("context", "-f", "json", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"", b"")


@pytest.mark.parametrize("moment", ["typer", "rich.console"])
def test_ctrl_c_while_the_help_loads_exits_130_quietly(
    interrupting_site: Path, moment: str
) -> None:
    env = {"PYTHONPATH": str(interrupting_site), "ATTN_TEST_SIGINT_AT": moment}
    done = run("context", "--help", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"", b"")


def test_ctrl_c_while_computing_exits_130_quietly(big_npy: Path) -> None:
    for delay in (0.15, 0.3):
        process = subprocess.Popen(
            [*ATTN, "scores", str(big_npy), "-f", "csv"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        # 130, or killed by SIGINT before Python installed any handler (a shell shows 130)
        assert process.returncode in (130, -signal.SIGINT), stderr
        assert stderr == b""


# ---------------------------------------------------------------- closed, full and narrow


@pytest.mark.parametrize(
    "args",
    [
        ["weights", "-m", "causal", "-f", "table"],
        ["explain", "-f", "table"],
        ["context", "--help"],
        ["--version"],
        ["weights", "-f", "markdown"],
    ],
)
def test_a_closed_pipe_exits_141_quietly(args: list[str]) -> None:
    process = subprocess.Popen(
        [*ATTN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (141, b"")


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["context", "-f", "json"], "the output"),
        (["context", "-f", "table"], "the table"),
        (["scores", "--help"], "the help"),
        (["--version"], "the version"),
    ],
)
def test_writing_to_a_full_or_closed_stdout_is_one_line_of_error(
    args: list[str], what: str
) -> None:
    with open("/dev/full", "wb") as full:
        done = run(*args, stdout=full, stderr=subprocess.PIPE, capture_output=False)
    assert done.returncode == 1
    one_line_error(done.stderr, f"cannot write {what} to stdout (No space left on device)")
    closed = subprocess.run(
        ["sh", "-c", " ".join([*ATTN, *args]) + " >&-"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert closed.returncode == 1
    one_line_error(closed.stderr, f"cannot write {what}: stdout is closed")


def test_with_stderr_closed_an_error_is_still_its_exit_status() -> None:
    closed = subprocess.run(
        ["sh", "-c", " ".join([*ATTN, "weights", "--seed", "7"]) + " 2>&-"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert (closed.returncode, closed.stdout) == (2, b"")


def test_an_ascii_terminal_gets_escapes_and_files_get_utf8(tmp_path: Path) -> None:
    tokens = tmp_path / "t.csv"
    tokens.write_text("token,a\nné,1\nçà,2\n", encoding="utf-8")
    env = {"PYTHONIOENCODING": "ascii"}
    table = run("weights", str(tokens), "-f", "table", env=env)
    assert table.returncode == 0, table.stderr
    assert b"n\\xe9" in table.stdout  # shown escaped, not a crash
    data = run("weights", str(tokens), "-f", "csv", env=env)
    assert data.stdout.decode("utf-8").splitlines()[0] == "token,né,çà"  # the exact text
    error = run("weights", "-m", "trainable", "--d-out", "0", env=env)
    assert error.returncode == 2
    one_line_error(error.stderr, "d_out \\u2265 1")
    for args in (["explain", "-f", "table"], ["--help"], ["context", "--help"]):
        done = run(*args, env=env)
        assert (done.returncode, done.stderr) == (0, b"")
        done.stdout.decode("ascii")


# ---------------------------------------------------------------- help and completion


def test_help_shows_no_value_beside_a_switch(attn: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = attn("context", "--help").stdout
    assert "--qkv-bias" in text
    assert "--wrapper" in text
    assert "<bool>" not in text
    for switch in ("--qkv-bias", "--wrapper", "--debug"):
        line = next(line for line in text.splitlines() if f" {switch} " in line)
        after = line.split(switch, 1)[1].split()
        assert after[0][0].isupper(), line  # the help text follows, no value's label
    assert "<bool>" not in attn("--help").stdout


def _help(args: list[str], named: list[str] | None, monkeypatch: pytest.MonkeyPatch) -> str:
    """What Typer prints for `attn ARGS`, from the app built for `named` (None: all)."""
    import io

    import typer.main

    from attncli.cli.typer_app import build_app

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    command = typer.main.get_command(build_app(lambda parsed: None, named))
    command.main(args=args, prog_name="attn", standalone_mode=False)
    return out.getvalue()


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        *(
            [name, "--help"]
            for name in ("scores", "explain", "decode", "check", "kv-memory", "rope")
        ),
        ["--", "context", "--help"],
        ["--help", "context"],
    ],
)
def test_help_of_the_commands_named_is_the_whole_apps(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typer gets the flags of the commands a command line names, not of the others (it
    can run no other): the help is the same, to the byte, and the others have none."""
    import typer.main

    from attncli.cli.typer_app import build_app

    monkeypatch.setenv("COLUMNS", "100")
    whole = _help(args, None, monkeypatch)
    assert whole.count("Usage: attn") == 1
    assert _help(args, args, monkeypatch) == whole
    group = typer.main.get_command(build_app(lambda parsed: None, args))
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert bool(command.params) == (name in args), name


def test_what_the_help_leaves_out_still_works_when_asked_for() -> None:
    """typer.rich_utils is imported for the help with stand-ins for rich's Markdown and
    Traceback: they hand over to the real classes when used (markup mode "markdown",
    pretty tracebacks), and anything importing those modules afterwards gets them."""
    code = textwrap.dedent(
        """
        import io, sys
        from attncli.cli.entry import run_main
        sys.stdout = io.StringIO()
        run_main(["context", "--help"])
        sys.stdout = sys.__stdout__
        assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules
        from typer import rich_utils
        text = rich_utils.Markdown("**x**")
        import rich.markdown, rich.traceback
        assert type(text) is rich.markdown.Markdown
        try:
            raise ValueError("shown")
        except ValueError as exc:
            shown = rich_utils.Traceback.from_exception(type(exc), exc, exc.__traceback__)
        assert type(shown) is rich.traceback.Traceback
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


@pytest.mark.parametrize(
    ("words", "cursor", "expected"),
    [
        ("attn weights {input} --query ", 4, ["alpha", "alps", "beta"]),  # INPUT before
        ("attn weights -q al {input}", 3, ["alpha", "alps"]),  # INPUT after the cursor
        ("attn weights -m causal {input} -q b", 6, ["beta"]),
        ("attn weights -q al - ", 3, []),  # stdin: nothing to read while completing
    ],
)
def test_query_completion_offers_the_tokens_of_input(
    attn: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    words: str,
    cursor: int,
    expected: list[str],
) -> None:
    tokens = tmp_path / "ab.csv"
    tokens.write_text("token,x\nalpha,1\nalps,2\nbeta,3\n", encoding="utf-8")
    monkeypatch.setenv("_ATTN_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words.format(input=tokens))
    monkeypatch.setenv("COMP_CWORD", str(cursor))
    done = attn()
    assert (done.exit_code, done.stderr) == (0, "")
    assert done.stdout.split() == expected


# ---------------------------------------------------------------- hostile environments

COMMANDS = (
    ["weights", "-m", "causal", "-f", "table"],
    ["explain", "-m", "causal", "--heads", "2", "--d-out", "4", "-f", "table"],
    ["context", "-f", "csv"],
    ["weights", "-q", "nope"],
    ["--help"],
)


def assert_no_crash(args: list[str], status: int, stdout: str, stderr: str) -> None:
    assert status in (0, 1, 2), (args, stderr)
    assert "Traceback" not in stderr, (args, stderr)
    assert "Warning" not in stderr, (args, stderr)
    if status:
        assert (stdout, stderr.count("\n")) == ("", 1), (args, stderr)
    else:
        assert stdout.strip(), (args, stderr)
        assert stderr == "", (args, stderr)


@pytest.mark.parametrize(
    "env",
    [
        {"COLUMNS": "0"},
        {"COLUMNS": "abc"},
        {"COLUMNS": "7"},
        {"LINES": "0"},
        {"TERM": "dumb"},
        {"NO_COLOR": "1", "FORCE_COLOR": "1"},
        {"ATTN_DEBUG": "no"},
        {"HOME": "/nonexistent", "TMPDIR": "/nonexistent"},
    ],
    ids=str,
)
def test_hostile_environments_never_crash_attn(
    attn: Invoke, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args in COMMANDS:
        done = attn(*args, terminal=True)
        assert_no_crash(args, done.exit_code, done.stdout, done.stderr)


@pytest.mark.parametrize(
    "env", [{"LC_ALL": "C", "LANG": "C"}, {"PYTHONIOENCODING": "latin-1"}], ids=str
)
def test_hostile_locales_never_crash_attn(env: dict[str, str]) -> None:
    for args in (COMMANDS[1], COMMANDS[3]):
        done = run(*args, env=env)
        stdout, stderr = (done.stdout.decode(errors="replace"), done.stderr.decode())
        assert_no_crash(args, done.returncode, stdout, stderr)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the engine's threads need two cores")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_engine_runs_on_threads_stops_it_quietly(
    tmp_path: Path, signum: int, status: int
) -> None:
    """The engine's worker threads leave with the main one: the signal lands between two
    tiles, the others stop at their next tile, and nothing is written."""
    source = tmp_path / "long.npy"
    np.save(source, np.random.default_rng(0).random((16000, 8)))
    target = tmp_path / "out.json"
    heads = ["-m", "causal", "--d-out", "64", "--heads", "8"]
    process = subprocess.Popen(
        [*ATTN, "context", str(source), *heads, "-o", str(target)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Until then the process has its own thread and OpenBLAS's; a third is the engine's.
    deadline = time.monotonic() + 60
    while len(os.listdir(f"/proc/{process.pid}/task")) < 3:
        assert time.monotonic() < deadline, "the engine never started a worker thread"
        assert process.poll() is None, "attn ended before its engine started"
        time.sleep(0.01)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout, stderr) == (status, b"", b"")
    assert list(tmp_path.iterdir()) == [source]

"""The house shows its flow: which module may import which, inside the package and out.

Layers, lowest first. A module imports only modules of its own layer or of lower ones,
never a higher one (counting imports made inside functions too), and the imports
among all modules form no cycle. rich and typer stay at the edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "attncli"

LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"version", "errors", "choices"}),
    ("values", {"embeddings", "rng", "masks", "heads", "stages", "rope", "modifiers"}),
    ("settings", {"params", "kv_memory", "rotation"}),
    ("input text", {"inputs.reading", "inputs.text"}),
    (
        "input formats",
        {
            "inputs.json_text",
            "inputs.csv_text",
            "inputs.numpy_files",
            "inputs.arrays",
            "inputs.mask_file",
            "inputs.qkv_file",
            "inputs.printed",
            "inputs.theirs",
        },
    ),
    ("inputs", {"inputs"}),
    ("weights files", {"inputs.weights"}),
    ("engine", {"blas", "engine"}),
    ("limits", {"limits"}),
    ("attention", {"attention"}),
    ("explain", {"explain"}),
    ("decoding", {"decoding"}),
    ("recipe", {"recipe"}),
    ("mistakes", {"mistakes"}),
    ("checking", {"checking"}),
    (
        "render",
        {
            "render",
            "render.view",
            "render.data",
            "render.markdown",
            "render.table",
            "render.fit",
            "render.picture",
            "render.explain",
            "render.decoding",
            "render.formats",
            "render.kv_memory",
            "render.check",
            "render.rotation",
        },
    ),
    (
        "command line",
        {
            "cli",
            "cli.signals",
            "cli.output",
            "cli.options",
            "cli.typer_app",
            "cli.app",
            "cli.runner",
            "cli.kv_memory",
            "cli.check",
            "cli.rotation",
            "cli.entry",
        },
    ),
    ("package", {"__init__", "__main__"}),
]
LAYER_OF = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}

# The third-party packages each module may import at all (numpy is everyone's).
THIRD_PARTY: dict[str, set[str]] = {
    **{module: {"numpy"} for module in LAYER_OF},
    **{module: {"numpy", "rich"} for module in LAYERS[LAYER_OF["render.view"]][1]},
    "cli.output": {"rich"},
    "cli.typer_app": {"typer"},
    "cli.signals": set(),
    "cli.entry": set(),
    "cli.options": set(),
    "cli.runner": set(),
    "choices": set(),
    "cli.kv_memory": set(),
    "cli.rotation": set(),
    "cli": set(),
    "__init__": set(),
    "__main__": set(),
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(modules of the package, third-party packages) that module `name` imports,
    anywhere in it (inside functions too)."""
    path = MODULES[name]
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__" or name == "__main__":
        package = []
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top = (node.module or "").split(".")[0]
                if top == "attncli":
                    inside.update(_resolve(node.module.split(".")[1:], node, package))
                else:
                    outside.add(top)
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            inside.update(_resolve(target, node, package))
    return {m for m in inside if m in MODULES and m != name}, outside - STDLIB - {"attncli"}


def _resolve(target: list[str], node: ast.ImportFrom, package: list[str]) -> set[str]:
    """`from TARGET import a, b`: the modules it names (TARGET, or TARGET.a if that is
    a module of the package)."""
    base = ".".join(target) if target else "__init__"
    found = set()
    for alias in node.names:
        sub = ".".join([*target, alias.name])
        found.add(sub if sub in MODULES else base)
    return found


def test_every_module_is_in_the_map() -> None:
    assert set(MODULES) == set(LAYER_OF)


@pytest.mark.parametrize("name", sorted(LAYER_OF))
def test_each_module_imports_only_its_layer_and_below(name: str) -> None:
    inside, outside = _imports(name)
    upward = sorted(m for m in inside if LAYER_OF[m] > LAYER_OF[name])
    assert not upward, f"{name} ({LAYERS[LAYER_OF[name]][0]}) imports {upward} from above"
    assert outside <= THIRD_PARTY[name], f"{name} imports {outside - THIRD_PARTY[name]}"


def test_the_imports_form_no_cycle() -> None:
    graph = {name: _imports(name)[0] for name in MODULES}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for imported in sorted(graph[name]):
            if state.get(imported) == 1:
                cycle = [*path[path.index(imported) :], imported]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if imported not in state:
                visit(imported, [*path, imported])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_json_output_does_not_load_rich() -> None:
    """Tables need rich; JSON and CSV do not, and start faster without it."""
    code = (
        "import sys, io; from attncli import book_example, compute; from attncli.render.data import to_json; "
        "to_json(compute(book_example()), 'weights'); print('rich' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def _loaded_by(argv: list[str]) -> tuple[set[str], str]:
    """The modules `attn ARGV` loads (beyond those of `python -c pass`), and its output."""
    code = (
        "import sys; before = set(sys.modules); from attncli.cli.entry import run_main; "
        f"run_main({argv!r}); print(sorted(set(sys.modules) - before))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    *shown, loaded = result.stdout.splitlines()
    return set(ast.literal_eval(loaded)), "\n".join(shown)


def test_version_loads_the_entry_alone() -> None:
    """`attn --version` answers from the entry, its signals and output, and the error
    type: neither numpy, Typer and rich, nor typing (a fifth of its start-up)."""
    loaded, shown = _loaded_by(["--version"])
    assert shown.startswith("attn ")
    assert not loaded & {"numpy", "typer", "rich", "typing"}
    ours = {name for name in loaded if name.split(".")[0] == "attncli"}
    assert ours <= {
        "attncli",
        "attncli.version",
        "attncli.errors",
        "attncli.cli",
        "attncli.cli.entry",
        "attncli.cli.signals",
        "attncli.cli.output",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        [],
        ["context", "--help"],
        ["check", "-h"],
        ["kv-memory", "--help"],
        ["rope", "--help"],
        ["context", "--no-such-flag"],
    ],
)
def test_help_and_mistakes_load_only_what_they_use(argv: list[str]) -> None:
    """Help is Typer's and rich's alone: numpy would double its start-up, pydantic
    (which recent Typer releases validate values with) has no value to check, and
    rich's Markdown and tracebacks (markdown-it, pygments) draw nothing of attn's."""
    loaded, _ = _loaded_by(argv)
    assert "typer" in loaded
    unused = {"numpy", "pydantic", "rich.markdown", "rich.traceback", "markdown_it", "pygments"}
    assert not loaded & unused


def test_every_package_folder_is_a_package() -> None:
    """pyproject.toml finds attncli's packages by their __init__.py: a folder of modules
    without one would work from the checkout and be missing from `pip install .`."""
    for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__" or not any(folder.glob("*.py")):
            continue
        assert (folder / "__init__.py").exists(), f"{folder} has modules but no __init__.py"

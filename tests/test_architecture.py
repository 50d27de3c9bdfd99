"""The module map of DESIGN.md holds: data flows one way, and rich/typer stay at the edge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "attncli"
# module -> the third-party packages it may import at all
ALLOWED = {
    "errors": {"numpy"},
    "core": {"numpy"},
    "engine": {"numpy"},
    "options": set(),
    "rng": {"numpy"},
    "loading": {"numpy"},
    "json_input": {"numpy"},
    "csv_input": {"numpy"},
    "numpy_input": {"numpy"},
    "reading": set(),
    "modes": {"numpy"},
    "attention": {"numpy"},
    "weights_file": {"numpy"},
    "render": {"numpy", "rich"},
    "render_explain": {"numpy", "rich"},
    "render_table": {"numpy", "rich"},
    "explain": {"numpy"},
    "cli": {"numpy", "rich"},
    "output": {"rich"},
    "typer_app": {"typer"},
    "__init__": set(),
    "__main__": set(),
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - STDLIB


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_each_module_imports_only_what_its_layer_may(module: str) -> None:
    assert imported_packages(PACKAGE / f"{module}.py") <= ALLOWED[module]


def test_every_module_is_in_the_map() -> None:
    assert {path.stem for path in PACKAGE.glob("*.py")} == set(ALLOWED)


def test_json_output_does_not_load_rich() -> None:
    """Tables need rich; JSON and CSV do not, and start faster without it."""
    code = (
        "import sys, io; from attncli import book_example, compute; from attncli.render import to_json; "
        "to_json(compute(book_example()), 'weights'); print('rich' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"

"""The generated stubs, and what headless code loads at run time.

The import rules themselves (DESIGN.md's layering) are import-linter contracts in
pyproject.toml, checked by `make lint`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "edge_runner"


def _imports(folder: Path) -> set[tuple[str, str]]:
    found = set()
    for path in folder.rglob("*.py"):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


def test_nothing_imports_the_folder_name_tui() -> None:
    """`tui` is only the folder's name: installed, the package is edge_runner_tui (a bare `tui`
    would collide with other projects'), so an import of `tui` works in a checkout and nowhere
    else; inside tui/ the modules import each other relatively. (An AST check, not an
    import-linter contract: tests/, tools/ and bench/ are not packages the linter reads.)"""
    folders = ("edge_runner", "tui", "tests", "tools", "bench")
    bad = [
        (where, module)
        for folder in folders
        for where, module in _imports(ROOT / folder)
        if module == "tui" or module.startswith("tui.")
    ]
    assert bad == []


def test_generated_stubs_are_fresh() -> None:
    """The committed stubs match tunnel.proto (regenerate with `make proto`)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runner_import_stays_headless() -> None:
    """Importing the runner loads no web server, TUI, GPU or torch stack."""
    code = (
        "import sys, edge_runner.runner, edge_runner.backends.python_model;"
        "print(','.join(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.strip().split(","))
    for heavy in (
        "fastapi",
        "uvicorn",
        "starlette",
        "textual",
        "pynvml",
        "torch",
        "edge_runner.control",
    ):
        assert heavy not in modules, heavy


def test_client_import_is_light() -> None:
    """`edge-runner predict` needs neither grpc nor the server stack."""
    code = "import sys, edge_runner.client, edge_runner.cli.calls; print(','.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.strip().split(","))
    for heavy in ("grpc", "fastapi", "uvicorn", "edge_runner.control", "edge_runner.runner"):
        assert heavy not in modules, heavy

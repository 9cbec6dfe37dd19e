"""Import rules of DESIGN.md, the generated stubs, and what headless code loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("control", ("edge_runner.runner", "textual", "pynvml", "torch")),
        ("runner", ("edge_runner.control", "fastapi", "uvicorn", "starlette", "textual", "torch")),
        ("models", ("edge_runner.control", "edge_runner.runner", "grpc", "fastapi")),
    ],
)
def test_sides_never_import_each_other(package: str, forbidden: tuple[str, ...]) -> None:
    """control and runner meet only through the protocol; models stay transport-free."""
    bad = [
        (where, module)
        for where, module in _imports(PACKAGE / package)
        if module.startswith(forbidden)
    ]
    assert bad == []


def test_only_telemetry_gpu_imports_pynvml() -> None:
    """NVML stays behind one module (DESIGN.md's import rules)."""
    users = {where for where, module in _imports(PACKAGE) if module.split(".")[0] == "pynvml"}
    assert users == {"edge_runner/telemetry/gpu.py"}


def test_only_tui_imports_textual() -> None:
    """The dashboard is the tui/ folder, installed as edge_runner_tui; edge_runner/ reaches it
    only through `edge-runner dashboard`, and never imports Textual itself."""
    assert [where for where, module in _imports(PACKAGE) if module.startswith("textual")] == []
    users = {where for where, module in _imports(PACKAGE) if module.startswith("edge_runner_tui")}
    assert users == {"edge_runner/cli/dashboard_cmd.py"}


def test_nothing_imports_the_folder_name_tui() -> None:
    """`tui` is only the folder's name: installed, the package is edge_runner_tui (a bare `tui`
    would collide with other projects'), so an import of `tui` works in a checkout and nowhere
    else; inside tui/ the modules import each other relatively."""
    folders = ("edge_runner", "tui", "tests", "tools", "bench")
    bad = [
        (where, module)
        for folder in folders
        for where, module in _imports(ROOT / folder)
        if module == "tui" or module.startswith("tui.")
    ]
    assert bad == []


def test_the_dashboard_is_a_client() -> None:
    """tui/ reads the daemons through their clients: it imports no control plane, runner or
    tunnel code, so it can never run a daemon in-process."""
    bad = [
        (where, module)
        for where, module in _imports(ROOT / "tui")
        if module.startswith(("edge_runner.control", "edge_runner.runner", "grpc", "fastapi"))
    ]
    assert bad == []


def test_protocol_is_sans_io() -> None:
    """protocol/ imports only the stubs, the error tree and the stdlib — no asyncio or grpc."""
    allowed_ours = ("edge_runner.proto", "edge_runner.errors", "edge_runner.protocol")
    for where, module in _imports(PACKAGE / "protocol"):
        assert not module.startswith(("asyncio", "grpc", "socket", "websockets")), where
        if module.startswith("edge_runner"):
            assert module.startswith(allowed_ours), (where, module)


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

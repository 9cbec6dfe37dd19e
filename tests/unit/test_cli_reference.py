"""docs/cli.md is generated from the parser (tools/gen_cli_reference.py) and kept current."""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from edge_runner.cli._parser_tree import command_tree
from edge_runner.cli.main import build_parser
from tests.conftest import MS, ROOT

DOC = ROOT / "docs" / "cli.md"
REGENERATE = ".venv/bin/python tools/gen_cli_reference.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """tools/gen_cli_reference.py, imported from its path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "gen_cli_reference", ROOT / "tools" / "gen_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(generator: ModuleType) -> str:
    """The reference as the generator writes it now."""
    return str(generator.render())


def test_cli_reference_is_current(rendered: str) -> None:
    """docs/cli.md matches what the parser generates (else: run the generator)."""
    current = DOC.read_text() if DOC.exists() else ""
    if current != rendered:
        diff = "\n".join(
            list(
                difflib.unified_diff(
                    current.splitlines(), rendered.splitlines(), "docs/cli.md", "generated", n=1
                )
            )[:40]
        )
        pytest.fail(f"docs/cli.md is stale: run `{REGENERATE}`\n{diff}")


def test_every_command_has_a_section(rendered: str) -> None:
    """Each command and subcommand of the parser has its heading and its usage line."""
    for command in command_tree(build_parser()).walk():
        title = " ".join(("edge-runner", *command.path))
        assert f"\n## `{title}`\n" in rendered, title
        assert f"usage: {title}" in rendered, title


def test_options_defaults_and_help_are_listed(rendered: str) -> None:
    """Options appear with their help and defaults; hidden ones (--ready-fd) do not."""
    up = rendered.split("\n## `edge-runner up`\n", 1)[1].split("\n## ", 1)[0]
    assert "| `--port PORT` |" in up
    assert "| `7070` |" in up
    assert "| `model_path` | model folder (default .) (optional) | `.` |" in up
    assert "--ready-fd" not in rendered
    assert "| `-o, --output {table,json}` | output format | `table` |" in rendered


def test_no_runnable_blocks(rendered: str) -> None:
    """Usage goes in ```text blocks: the doc test would run a ```sh block."""
    fences = re.findall(r"^```(\S*)$", rendered, flags=re.MULTILINE)
    assert set(fences) <= {"text", ""}
    assert "```sh" not in rendered


def test_output_does_not_depend_on_the_terminal(generator: ModuleType) -> None:
    """The generator fixes the width: COLUMNS=40 or 300 gives the same text."""
    old = os.environ.get("COLUMNS")
    try:
        os.environ["COLUMNS"] = "40"
        narrow = generator.render()
        os.environ["COLUMNS"] = "300"
        wide = generator.render()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    assert narrow == wide


def test_generator_handles_odd_parsers(generator: ModuleType) -> None:
    """Aliases, raw descriptions, pipes in help, %(default)s and epilogs render cleanly."""
    parser = argparse.ArgumentParser(prog="edge-runner", description="Top.")
    sub = parser.add_subparsers(metavar="COMMAND")
    raw = sub.add_parser(
        "thing",
        aliases=["th"],
        help="a | thing",
        description="line one\n  line two",
        epilog="example:\n  edge-runner thing --n 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    raw.add_argument("--n", type=int, default=3, help="how many (default %(default)s)")
    raw.add_argument("--tag", action="append", help="a|b")
    text = generator.render(parser)
    assert "Also spelled: `th`." in text
    assert "```text\nline one\n  line two\n```" in text
    assert "| `--n N` | how many (default 3) | `3` |" in text
    assert "| `--tag TAG` | a\\|b (repeatable) |  |" in text
    assert "- [`edge-runner thing`](#edge-runner-thing) — a \\| thing" in text
    assert "```text\nexample:\n  edge-runner thing --n 3\n```" in text


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    """`--check` exits 1 with the command to run when the file differs, 0 when it matches."""
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    tool = [sys.executable, str(ROOT / "tools" / "gen_cli_reference.py")]
    run = subprocess.run(
        [*tool, "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=20_000 * MS,
    )
    assert run.returncode == 1
    assert f"run `{REGENERATE}`" in run.stderr
    write = subprocess.run(
        [*tool, "--output", str(stale)], capture_output=True, text=True, timeout=20_000 * MS
    )
    assert write.returncode == 0, write.stderr
    again = subprocess.run(
        [*tool, "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        timeout=20_000 * MS,
    )
    assert again.returncode == 0, again.stderr

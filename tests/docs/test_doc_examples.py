"""Every command block in the docs runs, so the examples cannot rot.

A ```sh block runs in bash (``set -eo pipefail``: the first failing command fails the test), a
```python block in the venv's Python, a ```yaml / ```json block must parse. Blocks without a
language, or ```text, are output and are not run. A block that cannot run on a test machine
(systemctl, pipx, a package index, a GPU, a LAN address, a full-screen UI) is preceded by
``<!-- doctest: skip: <reason> -->``, and this test reports it as skipped with that reason.

All blocks of all documents share one sandbox, as a reader in one terminal would: ``HOME`` is a
temp dir, the cwd is a temp dir with the repo's ``examples/`` and ``.venv`` linked in, the venv is
first on ``PATH``, and ``edge-runner up examples/hello`` runs (free ports; its `local` context is
active). Blocks of one document run in order, so one can use what an earlier one made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import MS, ROOT

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(p for p in (ROOT / "packaging").glob("**/*.md")),
    ROOT / "bench" / "README.md",
]
FENCE = re.compile(r"^```(\S*)\s*$")
SKIP = re.compile(r"^<!--\s*doctest:\s*skip:\s*(.+?)\s*-->\s*$")
#: commands for Windows: shown to be run, but not on these machines, so they must be marked
WINDOWS_LANGS = {"bat", "cmd", "powershell", "ps1", "pwsh"}
RUN_LANGS = {"sh", "bash", "shell", "python", "py", "yaml", "yml", "json", *WINDOWS_LANGS}
OUTPUT_LANGS = {"", "text", "console", "toml", "ini", "dockerfile", "systemd", "xml"}


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and why it is skipped (if so)."""

    doc: Path
    line: int
    lang: str
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, with the skip marker on the line before each (if any)."""
    out: list[Block] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{doc}:{start + 1}: a fenced block is never closed"
        previous = lines[start - 1] if start else ""
        skip = SKIP.match(previous)
        text = "\n".join(lines[start + 1 : end]) + "\n"
        out.append(Block(doc, start + 1, lang, text, skip.group(1) if skip else None))
        i = end + 1
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]
RUNNABLE = [b for b in ALL if b.lang in RUN_LANGS]


def test_every_block_has_a_known_language() -> None:
    """A block's language says whether it runs; an unknown one would be silently ignored."""
    unknown = [f"{b.id} ```{b.lang}" for b in ALL if b.lang not in RUN_LANGS | OUTPUT_LANGS]
    assert not unknown, f"add these languages to RUN_LANGS or OUTPUT_LANGS: {unknown}"


def test_skip_markers_sit_on_runnable_blocks() -> None:
    """A skip marker before an output block is a mistake (it hides nothing and explains nothing)."""
    stray = [b.id for b in ALL if b.skip and b.lang not in RUN_LANGS]
    assert not stray


class Sandbox:
    """The reader's terminal: a temp HOME and cwd, the venv on PATH, `edge-runner up` running."""

    def __init__(self, base: Path) -> None:
        self.home = base / "home"
        self.env_file = base / "env"
        self.cwd = base / "work"
        self.home.mkdir()
        self.cwd.mkdir()
        for name in ("examples", ".venv"):
            (self.cwd / name).symlink_to(ROOT / name)
        venv_bin = Path(sys.executable).parent
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EDGE_RUNNER_", "XDG_", "OLLAMA_", "OPENAI_"))
        }
        self.env.update(
            HOME=str(self.home),
            PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            XDG_RUNTIME_DIR=str(base / "xdg-run"),
            EDGE_RUNNER_SECRET_BACKEND="file",
            PYTHONPATH=str(ROOT),
            COLUMNS="100",
            EDITOR="true",  # `context edit`: a reader who saves without a change
        )
        (base / "xdg-run").mkdir(mode=0o700)
        self.up = subprocess.Popen(
            [sys.executable, "-m", "edge_runner", "up", "examples/hello", "--port", "0"]
            + ["--grpc-port", "0"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.up.stdout is not None
        for line in self.up.stdout:
            if "Ctrl-C" in line:
                break
        else:
            raise AssertionError(f"`edge-runner up` exited early: {self.up.wait()}")
        # Keep reading so a chatty `up` never blocks on a full pipe.
        threading.Thread(target=self.up.stdout.read, daemon=True).start()

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        """Run one block to completion."""
        if block.lang in {"python", "py"}:
            argv = [sys.executable, "-c", block.text]
        else:
            # What the block exports stays for the next blocks, as in the reader's shell.
            script = f"set -eo pipefail\n{block.text}\nenv -0 > {shlex.quote(str(self.env_file))}\n"
            argv = ["bash", "-c", script]
        proc = subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: nothing it starts outlives it
        )
        try:
            out, err = proc.communicate(timeout=60_000 * MS)
        except subprocess.TimeoutExpired:
            out, err = "", "timed out: a doc block must not run for a minute\n"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if argv[0] == "bash" and proc.returncode == 0:
            self._keep_exports()
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def _keep_exports(self) -> None:
        entries = self.env_file.read_bytes().split(b"\0")
        env = dict(e.decode().partition("=")[::2] for e in entries if b"=" in e)
        for name in ("PWD", "OLDPWD", "SHLVL", "_"):
            env.pop(name, None)
        self.env = env

    def close(self) -> None:
        """Ctrl-C `up`, as the reader would."""
        if self.up.poll() is None:
            os.killpg(self.up.pid, signal.SIGINT)
            try:
                self.up.wait(15_000 * MS)
            except subprocess.TimeoutExpired:
                os.killpg(self.up.pid, signal.SIGKILL)
                self.up.wait()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for every block of every document."""
    box = Sandbox(tmp_path_factory.mktemp("docs"))
    yield box
    box.close()


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_doc_block_runs(block: Block, sandbox: Sandbox) -> None:
    """The block runs without error (or parses, for data)."""
    if block.skip:
        pytest.skip(block.skip)
    assert block.lang not in WINDOWS_LANGS, (
        f"{block.id}: Windows commands cannot run here; precede the block with "
        "`<!-- doctest: skip: REASON -->`"
    )
    if block.lang in {"yaml", "yml"}:
        assert list(yaml.safe_load_all(block.text)), f"{block.id}: empty YAML"
        return
    if block.lang == "json":
        json.loads(block.text)
        return
    result = sandbox.run(block)
    assert result.returncode == 0, (
        f"{block.id} failed (exit {result.returncode}):\n{block.text}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )

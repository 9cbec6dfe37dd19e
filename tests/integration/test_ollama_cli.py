"""The Ollama and upstream commands as a user runs them: runner, up, model init, chat.

Real processes and ports; Ollama is the labelled fake, as a server in this process or, where
the runner must start ``ollama serve`` itself, as a fake ``ollama`` binary on PATH
(tests/fakes/ollama_serve.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_runner.backends.factory import backend_for_folder
from edge_runner.backends.ollama import OllamaBackend
from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.cli.main import main
from edge_runner.client import Client
from edge_runner.errors import ModelFolderError
from tests.conftest import MS, ROOT, Stack, spawn_ready, stop_process, wait_for, write_model
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.integration.test_cli import CLI, UpProcess, run_cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=0.5)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A fake Ollama with llama3.2 pulled and qwen2.5 to pull."""
    with FakeOllama(models={"llama3.2": FakeModel(), "qwen2.5": FakeModel(present=False)}) as f:
        yield f


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    """A folder holding an `ollama` executable that runs the fake Ollama."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "ollama"
    script.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m tests.fakes.ollama_serve "$@"\n'
    )
    script.chmod(0o755)
    return folder


def _runner_env(stack: Stack, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        EDGE_RUNNER_API_BASE=stack.api_base,
        EDGE_RUNNER_PAT=stack.token,
        EDGE_RUNNER_TIME_SCALE="0.1",
        **extra,
    )


def _online(stack: Stack, model_id: str) -> bool:
    with Client(stack.api_base, stack.token) as client:
        return any(m["id"] == model_id and m["status"] == "online" for m in client.models())


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [True, False])
def test_runner_starts_ollama_serve_and_stops_it(
    stack: Stack, fake_binary: Path, er_home: Path, tmp_path: Path, verbose: bool
) -> None:
    """No Ollama answers: the runner starts `ollama serve` (logs shown with -v) and stops it.

    The child gets none of edge-runner's variables: the token in EDGE_RUNNER_PAT stays ours.
    """
    port = _free_port()
    env = _runner_env(stack, PATH=f"{fake_binary}{os.pathsep}{os.environ['PATH']}")
    args = ["runner", "--ollama", "llama3.2", "--ollama-host", f"127.0.0.1:{port}"]
    log = tmp_path / "runner.log"
    with log.open("wb") as err:
        proc, ready = spawn_ready([*args, *(["--verbose"] if verbose else [])], env, stderr=err)
        try:
            assert ready["models"] == ["llama3.2"] and ready["backend"] == "ollama"
            assert _answers(port)
            wait_for(lambda: _online(stack, "llama3.2"), "llama3.2 to be ready")
            with Client(stack.api_base, stack.token) as client:
                assert client.predict("llama3.2", prompt="hi") == "echo: hi"
        finally:
            assert stop_process(proc) == 0
    assert not _answers(port), "the `ollama serve` child outlived its runner"
    shown = log.read_text()
    listening = f"Listening on 127.0.0.1:{port}"
    if verbose:
        assert listening in shown
        assert "edge-runner variables: []" in shown  # no token reached the child
    else:
        assert listening not in shown
        assert listening in next(er_home.rglob("ollama-serve.log")).read_text()


@pytest.mark.slow
def test_no_ollama_and_no_binary_is_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    """Nothing answers and no binary: exit 2 naming the host tried and how to install."""
    port = _free_port()
    env = _runner_env(stack, PATH=str(tmp_path))  # no ollama here
    result = subprocess.run(
        [*CLI, "runner", "--ollama", "llama3.2", "--ollama-host", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30_000 * MS,
    )
    assert result.returncode == 2
    assert f"no Ollama answers at http://127.0.0.1:{port}" in result.stderr
    assert "ollama.com/download" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_up_with_ollama_prints_progress_and_serves(
    fake: FakeOllama, er_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --ollama` pulls what is missing, shows the progress, and serves both models."""
    monkeypatch.setenv("OLLAMA_HOST", fake.url)
    fake.hold_pull.set()  # the download stays under way until the test has seen it
    up = UpProcess("--ollama", "llama3.2,qwen2.5")
    lines: list[str] = []
    assert up.proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(up.proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        banner = "\n".join(up.banner)
        assert f"serving llama3.2, qwen2.5 from Ollama at {fake.url}" in banner
        assert "edge-runner chat llama3.2" in banner
        wait_for(lambda: any("qwen2.5 is downloading: " in line for line in lines), "progress")
        fake.hold_pull.clear()
        wait_for(lambda: any("qwen2.5 is ready" in line for line in lines), "qwen2.5 ready")
        result = run_cli("predict", "qwen2.5", "--prompt", "hi there", env=dict(os.environ))
        assert result.returncode == 0 and result.stdout.strip() == "echo: hi there"
    finally:
        assert up.stop() == 0
    reader.join(5)
    up.close()
    assert not any("--pool-size" in line for line in lines)  # the default pool fits Ollama


def test_model_init_python_folder_serves(stack: Stack, tmp_path: Path) -> None:
    """`model init DIR` writes a folder that loads and answers."""
    folder = tmp_path / "mine"
    assert main(["model", "init", str(folder)]) == 0
    assert main(["model", "init", str(folder)]) == 2  # never overwritten without --force
    assert main(["model", "init", str(folder), "--force"]) == 0
    stack.start_runner(backend=PythonModelBackend(folder))
    with Client(stack.api_base, stack.token) as client:
        assert client.predict("mine", text="you") == "Hello, you!"
        assert "".join(client.generate("mine", text="x", n=2)) == "0: Hello, x!\n1: Hello, x!\n"


def test_model_init_ollama_folder_serves_from_config(
    stack: Stack, fake: FakeOllama, tmp_path: Path
) -> None:
    """--toolkit ollama: config.yaml alone names the model, host and context length."""
    folder = tmp_path / "ol"
    port = fake.url.rsplit(":", 1)[1]
    argv = ["model", "init", str(folder), "--toolkit", "ollama", "--model-name", "qwen2.5"]
    assert main([*argv, "--port", port, "--context-length", "16000"]) == 0
    assert not (folder / "1").exists()
    backend = backend_for_folder(folder, probe_interval=50 * MS)
    assert isinstance(backend, OllamaBackend) and backend.num_ctx == 16000
    stack.start_runner(backend=backend)
    wait_for(lambda: _online(stack, "qwen2.5"), "the pulled model to be ready")
    with Client(stack.api_base, stack.token) as client:
        assert client.predict("qwen2.5", prompt="hey") == "echo: hey"
    chat = [body for path, body in fake.requests if path == "/api/generate" and "prompt" in body]
    assert chat[-1]["options"]["num_ctx"] == 16000


def test_model_init_openai_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--toolkit openai writes a folder for an upstream; its key comes from a variable."""
    folder = tmp_path / "up"
    argv = ["model", "init", str(folder), "--toolkit", "openai", "--model-name", "Qwen/Qwen2.5"]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v1"]) == 0
    backend = backend_for_folder(folder)
    assert isinstance(backend, OpenAIUpstreamBackend)
    assert backend.base_url == "http://127.0.0.1:9/v1"
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("# api_key_env", "api_key_env"))
    with pytest.raises(ModelFolderError, match=r"\$UPSTREAM_API_KEY, which is not set"):
        backend_for_folder(folder)
    monkeypatch.setenv("UPSTREAM_API_KEY", "k")
    assert isinstance(backend_for_folder(folder), OpenAIUpstreamBackend)
    assert main(["model", "init", str(tmp_path / "x"), "--toolkit", "openai"]) == 2


@pytest.mark.parametrize(
    ("toolkit", "fragment"),
    [
        ("toolkit: ollama", "`toolkit` must be a mapping"),
        (
            "toolkit: {provider: tgi}",
            "toolkit.provider must be one of ollama, vllm, sglang, lmstudio, llamacpp, "
            "huggingface, openai, got 'tgi'",
        ),
        ("toolkit: {model: x}", "toolkit.provider must be one of"),
        ("toolkit: {provider: [vllm]}", "toolkit.provider must be one of"),
        ("toolkit: {provider: ollama, base_url: x}", "unknown toolkit key(s) base_url"),
        ("toolkit: {provider: vllm, keep_alive: 5m}", "unknown toolkit key(s) keep_alive"),
        ("toolkit: {provider: huggingface, context_length: 9}", "unknown toolkit key(s) context"),
        ("toolkit: {provider: ollama, context_length: lots}", "context_length must be a positive"),
        ("toolkit: {provider: vllm, context_length: 0}", "context_length must be a positive"),
        ("toolkit: {provider: sglang, context_length: true}", "context_length must be a positive"),
        ("toolkit: {provider: ollama, model: 3}", "toolkit.model must be a string"),
        ("toolkit: {provider: openai}", "toolkit.base_url (http://HOST:PORT/v1) or toolkit.port"),
        ("toolkit: {provider: ollama, port: '8000'}", "toolkit.port must be an integer 1-65535"),
        ("toolkit: {provider: vllm, port: 70000}", "toolkit.port must be an integer 1-65535"),
        ("toolkit: {provider: lmstudio, port: 0}", "toolkit.port must be an integer 1-65535"),
        ("toolkit: {provider: llamacpp, port: true}", "toolkit.port must be an integer"),
        (
            "toolkit: {provider: ollama, port: 1, host: 'h:2'}",
            "toolkit.port and toolkit.host both say where the server is",
        ),
        (
            "toolkit: {provider: vllm, port: 1, base_url: 'http://h:2/v1'}",
            "toolkit.port and toolkit.base_url both say where the server is",
        ),
        ("toolkit: {provider: vllm, api_key_env: NOPE_UNSET}", "$NOPE_UNSET, which is not set"),
    ],
)
def test_bad_toolkit_sections_name_the_field(tmp_path: Path, toolkit: str, fragment: str) -> None:
    """A malformed toolkit section is a ModelFolderError naming the file and the field."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.yaml").write_text(f"model: {{id: bad}}\n{toolkit}\n")
    with pytest.raises(ModelFolderError) as caught:
        backend_for_folder(folder)
    assert fragment in str(caught.value) and "config.yaml" in str(caught.value)


@pytest.mark.slow
def test_chat_keeps_the_conversation(stack: Stack, fake: FakeOllama) -> None:
    """`edge-runner chat` streams answers, sends the history each turn, /clear forgets it."""
    stack.start_runner(backend=OllamaBackend(fake.url, ["llama3.2"]))
    wait_for(lambda: _online(stack, "llama3.2"), "llama3.2 to be ready")
    result = subprocess.run(
        [*CLI, "chat", "llama3.2", "--system", "be brief"],
        input='hi\nagain\n/clear\n"""two\nlines"""\n/?\n/nope\n/bye\nnever sent\n',
        capture_output=True,
        text=True,
        env=_runner_env(stack),
        timeout=30_000 * MS,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["echo: hi", "echo: again", "Cleared the conversation."]
    assert lines[3] == "echo: two lines"
    assert "/bye" in result.stdout and "Unknown command '/nope'" in result.stdout
    chats = [body["messages"] for path, body in fake.requests if path == "/api/chat"]
    chats = [m for m in chats if m]  # not the empty load request
    assert [m["role"] for m in chats[1]] == ["system", "user", "assistant", "user"]
    assert chats[1][2]["content"] == "echo: hi"
    assert [m["content"] for m in chats[2]] == ["be brief", "two\nlines"]
    assert len(chats) == 3


@pytest.mark.slow
def test_chat_refuses_unknown_and_non_chat_models(stack: Stack, tmp_path: Path) -> None:
    """An unknown model and one without chat are one clear line each."""
    plain = write_model(
        tmp_path,
        "plain",
        "    @ModelClass.method\n    def predict(self) -> str:\n        return 'x'\n",
    )
    stack.start_runner(plain)
    env = _runner_env(stack)
    unknown = subprocess.run(
        [*CLI, "chat", "nope"], input="", capture_output=True, text=True, env=env
    )
    assert unknown.returncode == 2 and "no model 'nope'" in unknown.stderr
    no_chat = subprocess.run(
        [*CLI, "chat", "plain"], input="", capture_output=True, text=True, env=env
    )
    assert no_chat.returncode == 2 and "does not chat (its methods: predict)" in no_chat.stderr


@pytest.mark.slow
def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(stack: Stack, fake: FakeOllama) -> None:
    """Ctrl-C mid-answer closes the stream (Ollama sees it) and the prompt comes back."""
    stack.start_runner(backend=OllamaBackend(fake.url, ["llama3.2"]))
    wait_for(lambda: _online(stack, "llama3.2"), "llama3.2 to be ready")
    fake.hold.set()
    proc = subprocess.Popen(
        [*CLI, "chat", "llama3.2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_runner_env(stack),
    )
    assert proc.stdin is not None
    proc.stdin.write("a b c d\n")
    proc.stdin.flush()
    wait_for(fake.paused.is_set, "the answer to be under way")
    proc.send_signal(signal.SIGINT)
    wait_for(fake.disconnected.is_set, "Ollama to see the request closed")
    fake.hold.clear()
    out, err = proc.communicate("next\n/bye\n", timeout=30_000 * MS)
    assert proc.returncode == 0, err
    assert "[stopped]" in out and out.rstrip().endswith("echo: next")
    chats = [b["messages"] for p, b in fake.requests if p == "/api/chat" and b.get("messages")]
    assert [m["content"] for m in chats[-1]] == ["next"]  # the stopped turn was dropped

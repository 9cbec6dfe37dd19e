"""Toolkit folders for every provider: `model init --toolkit PROVIDER`, the reference's keys,
and a reference-style folder whose 1/model.py runs.

The OpenAI-compatible providers are served against both upstreams of
tests/integration/openai_upstreams.py: the fake (a second control plane) and, marked ``engine``,
llama.cpp's server. Ollama is the labelled fake (tests/fakes/ollama.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

from edge_runner.backends.factory import backend_for_folder
from edge_runner.backends.ollama import OllamaBackend
from edge_runner.backends.openai_upstream import OpenAIUpstreamBackend
from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.backends.toolkit import PROVIDERS
from edge_runner.cli.main import main
from edge_runner.client import Client
from edge_runner.models.config import load_config
from tests.conftest import MS, Stack, wait_for
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.integration.openai_upstreams import Upstream, llama_engine, upstream

__all__ = ["llama_engine", "upstream"]  # the fixtures, imported so pytest finds them here

#: the OpenAI-compatible providers (all but ollama)
UPSTREAM_PROVIDERS = [name for name, p in PROVIDERS.items() if not p.ollama]
KEY_VARIABLE = "TOOLKIT_TEST_KEY"


def _online(stack: Stack, model_id: str) -> bool:
    with Client(stack.api_base, stack.token) as client:
        return any(m["id"] == model_id and m["status"] == "online" for m in client.models())


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_model_init_writes_a_valid_folder_for_every_provider(
    tmp_path: Path, provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every provider's folder loads and builds its backend, at the server's default address,
    and init prints how to start that server."""
    folder = tmp_path / provider
    named = ["--model-name", "tiny"] if PROVIDERS[provider].default_model is None else []
    assert main(["model", "init", str(folder), "--toolkit", provider, *named]) == 0
    out = capsys.readouterr().out
    assert f"edge-runner up {folder}" in out
    config = load_config(folder)
    assert config.raw["toolkit"]["provider"] == provider
    backend = backend_for_folder(folder)
    model = PROVIDERS[provider].default_model or "tiny"
    if provider == "ollama":
        assert isinstance(backend, OllamaBackend)
        assert "starts `ollama serve`" in out
        return
    assert isinstance(backend, OpenAIUpstreamBackend)
    port = PROVIDERS[provider].port or 8000
    assert backend.base_url == f"http://127.0.0.1:{port}/v1"
    if provider != "openai":
        assert f"--port {port}" in out and model in out


@pytest.mark.parametrize(
    ("provider", "start"),
    [
        ("vllm", "vllm serve org/m --port 9001 --max-model-len 4096"),
        ("sglang", "sglang.launch_server --model-path org/m --port 9001 --context-length 4096"),
        ("lmstudio", "lms load org/m --context-length 4096"),
        ("llamacpp", "--alias org/m --port 9001 -c 4096"),
    ],
)
def test_port_and_context_length_land_in_the_folder(
    tmp_path: Path, provider: str, start: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port makes the address, --context-length goes to the printed start command."""
    folder = tmp_path / provider
    argv = ["model", "init", str(folder), "--toolkit", provider, "--model-name", "org/m"]
    assert main([*argv, "--port", "9001", "--context-length", "4096"]) == 0
    assert start in capsys.readouterr().out
    toolkit = load_config(folder).raw["toolkit"]
    assert toolkit["port"] == 9001 and toolkit["context_length"] == 4096
    backend = backend_for_folder(folder)
    assert isinstance(backend, OpenAIUpstreamBackend)
    assert backend.base_url == "http://127.0.0.1:9001/v1"


def test_odd_model_names_stay_one_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model name YAML or the shell would split is quoted in config.yaml and the command."""
    folder = tmp_path / "odd"
    name = "org/m #2: x"
    assert main(["model", "init", str(folder), "--toolkit", "vllm", "--model-name", name]) == 0
    assert "vllm serve 'org/m #2: x' --port 8000" in capsys.readouterr().out
    assert load_config(folder).raw["toolkit"]["model"] == name
    backend = backend_for_folder(folder)
    assert isinstance(backend, OpenAIUpstreamBackend)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--toolkit", "tgi"], "invalid choice"),
        (["--toolkit", "huggingface", "--context-length", "9"], "does not go with"),
        (["--toolkit", "openai", "--context-length", "9", "--model-name", "m"], "not go with"),
        (["--toolkit", "vllm", "--port", "0"], "--port must be 1-65535"),
        (["--toolkit", "vllm", "--port", "8000", "--base-url", "http://h:1/v1"], "give one"),
        (["--toolkit", "ollama", "--base-url", "http://h:1/v1"], "Ollama takes --port"),
        (["--toolkit", "vllm", "--base-url", "http://h:99999/v1"], "not a URL with a valid"),
        (["--toolkit", "sglang", "--context-length", "0"], "must be positive"),
        (["--toolkit", "llamacpp"], "needs --model-name"),
        (["--port", "8000"], "go(es) with --toolkit"),
    ],
)
def test_bad_init_options_exit_2(
    tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options that do not fit the provider are one line on stderr and exit 2."""
    try:
        code = main(["model", "init", str(tmp_path / "x"), *argv])
    except SystemExit as exc:  # argparse's own refusal (an unknown choice)
        code = int(exc.code or 0)
    assert code == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "x" / "config.yaml").exists()


@pytest.mark.parametrize("provider", UPSTREAM_PROVIDERS)
def test_a_generated_folder_serves_through_the_upstream(
    stack: Stack,
    upstream: Upstream,
    provider: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`model init --toolkit PROVIDER --port PORT` of a running server: the folder registers
    the model and answers /v1 chat through edge-runner (openai: --base-url)."""
    folder = tmp_path / provider
    argv = ["model", "init", str(folder), "--toolkit", provider]
    argv += ["--model-name", upstream.chat_model]
    port = urlsplit(upstream.base_url).port
    if provider == "openai":
        argv += ["--base-url", upstream.base_url]
    else:
        argv += ["--port", str(port)]
    assert main(argv) == 0
    config = folder / "config.yaml"
    config.write_text(
        config.read_text().replace(
            "# api_key_env: UPSTREAM_API_KEY", f"api_key_env: {KEY_VARIABLE}"
        )
    )
    monkeypatch.setenv(KEY_VARIABLE, upstream.api_key)
    backend = backend_for_folder(folder, probe_interval=50 * MS)
    assert isinstance(backend, OpenAIUpstreamBackend)
    assert backend.base_url == upstream.base_url
    stack.start_runner(backend=backend)
    model_id = load_config(folder).model_id
    wait_for(lambda: _online(stack, model_id), f"{model_id} to be online")
    client = openai.OpenAI(base_url=f"{stack.api_base}/v1", api_key=stack.token, max_retries=0)
    answer = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "hi there"}], max_tokens=8
    )
    assert answer.choices[0].message.content
    if upstream.name == "fake":
        assert answer.choices[0].message.content == "echo: hi there"


# -- a folder as the reference writes it --------------------------------------------------------

#: config.yaml as `clarifai model init --toolkit ollama --model-name llama3.2 --port P
#: --context-length 16000` leaves it (yaml.dump, sort_keys=False, after its simplification)
REFERENCE_CONFIG = """\
model:
  id: llama3-2
  model_type_id: text-to-text
build_info:
  python_version: '3.12'
  image: ollama/ollama:latest
toolkit:
  provider: ollama
  model: llama3.2
  port: {port}
  context_length: 16000
"""

#: the reference's 1/model.py in its shape (module-level OLLAMA_HOST from PORT, the model name
#: from OLLAMA_MODEL_NAME, a client built in load_model), on a plain ModelClass: the template's
#: OpenAIModelClass and its OpenAI client against Ollama's /v1 are another change's (the fake
#: Ollama answers Ollama's own API)
REFERENCE_MODEL = """\
import os
from typing import Iterator

import httpx

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_utils import Param

if not os.environ.get('OLLAMA_HOST'):
    PORT = '{port}'
    os.environ["OLLAMA_HOST"] = f'127.0.0.1:{{PORT}}'
OLLAMA_HOST = os.environ.get('OLLAMA_HOST')


class OllamaModel(ModelClass):
    client = True
    model = True

    def load_model(self):
        self.model = os.environ.get("OLLAMA_MODEL_NAME", 'llama3.2')
        self.client = httpx.Client(base_url=f"http://{{OLLAMA_HOST}}")
        self.client.get("/api/version").raise_for_status()

    @ModelClass.method
    def predict(
        self,
        prompt: str = "",
        max_tokens: int = Param(default=2048, description="The maximum number of tokens."),
    ) -> str:
        body = {{"model": self.model, "prompt": prompt, "stream": False}}
        return self.client.post("/api/generate", json=body).json()["response"]

    @ModelClass.method
    def generate(self, prompt: str = "") -> Iterator[str]:
        yield self.predict(prompt)
"""


def test_a_reference_ollama_folder_runs_its_model_py(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """config.yaml with a toolkit section, requirements.txt and 1/model.py, as the reference
    writes them, served unchanged: 1/model.py runs (the section configures it), saying so."""
    with FakeOllama(models={"llama3.2": FakeModel()}) as fake:
        port = urlsplit(fake.url).port
        folder = tmp_path / "llama3-2"
        (folder / "1").mkdir(parents=True)
        (folder / "config.yaml").write_text(REFERENCE_CONFIG.format(port=port))
        (folder / "requirements.txt").write_text("clarifai\nopenai\n")
        (folder / "1" / "model.py").write_text(REFERENCE_MODEL.format(port=port))
        monkeypatch.setenv("OLLAMA_HOST", "")  # unset: the code sets it from its PORT
        with caplog.at_level(logging.INFO, logger="edge_runner.backends.factory"):
            backend = backend_for_folder(folder)
        assert isinstance(backend, PythonModelBackend)
        assert "running 1/model.py, which the section configures" in caplog.text
        stack.start_runner(backend=backend)
        with Client(stack.api_base, stack.token) as client:
            assert client.predict("llama3-2", prompt="hi") == "echo: hi"
        assert any(path == "/api/generate" for path, _ in fake.requests)


def test_without_its_model_py_the_reference_folder_is_a_toolkit(
    stack: Stack, tmp_path: Path
) -> None:
    """The same config.yaml alone: edge-runner serves the toolkit (port -> host, the model
    under the folder's id, context_length as num_ctx)."""
    with FakeOllama(models={"llama3.2": FakeModel()}) as fake:
        port = urlsplit(fake.url).port
        folder = tmp_path / "llama3-2"
        folder.mkdir()
        (folder / "config.yaml").write_text(REFERENCE_CONFIG.format(port=port))
        backend = backend_for_folder(folder, probe_interval=50 * MS)
        assert isinstance(backend, OllamaBackend) and backend.num_ctx == 16000
        stack.start_runner(backend=backend)
        wait_for(lambda: _online(stack, "llama3-2"), "llama3-2 to be ready")
        with Client(stack.api_base, stack.token) as client:
            assert client.predict("llama3-2", prompt="hey") == "echo: hey"


def test_no_toolkit_model_serves_llama3_2_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ollama without toolkit.model: llama3.2 (the reference's default) under the folder's
    id, with a warning naming the key that keeps the old meaning (model id = Ollama name)."""
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: {id: qwen3}\ntoolkit: {provider: ollama}\n")
    with caplog.at_level(logging.WARNING):
        backend = backend_for_folder(folder)
    assert isinstance(backend, OllamaBackend)
    assert backend.names == {"qwen3": "llama3.2"}
    assert "set `model: qwen3` under `toolkit:`" in caplog.text

"""Toolkit folders a user writes with `model init --toolkit PROVIDER --port PORT`, served by
`edge-runner up FOLDER` from llama.cpp's server (llama-cpp-python on the tiny model): vLLM,
SGLang, LM Studio, transformers serve and the generic provider cannot run here, but each
generated folder is the same OpenAI-upstream path, so a running engine on its port answers.

tests/integration/test_toolkits.py runs the in-process version against the fake too.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

from edge_runner.backends.toolkit import PROVIDERS
from edge_runner.cli.main import main
from tests.engines.conftest import Engine
from tests.integration.test_cli import UpProcess

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("provider", [name for name, p in PROVIDERS.items() if not p.ollama])
def test_up_serves_a_generated_folder_from_the_engine(
    llama: Engine, provider: str, tmp_path: Path, er_home: Path
) -> None:
    """`model init --toolkit PROVIDER` on the engine's port, then `up FOLDER`: the banner
    names the model and /v1 chat answers, whole and streamed alike."""
    folder = tmp_path / provider
    argv = ["model", "init", str(folder), "--toolkit", provider, "--model-name", llama.model]
    if provider == "openai":
        argv += ["--base-url", llama.base_url]
    else:
        argv += ["--port", str(urlsplit(llama.base_url).port)]
    assert main(argv) == 0
    up = UpProcess(str(folder))
    try:
        assert llama.model in "\n".join(up.banner)
        token = (er_home / "data" / "control" / "admin-token").read_text().strip()
        sdk = openai.OpenAI(base_url=f"{up.api_base}/v1", api_key=token, max_retries=0)
        user = [{"role": "user", "content": "hi"}]
        whole = sdk.chat.completions.create(
            model=llama.model,
            messages=user,  # type: ignore[arg-type]
            max_tokens=8,
            temperature=0,
        )
        answer = whole.choices[0].message.content
        assert isinstance(answer, str) and answer
        chunks = sdk.chat.completions.create(
            model=llama.model,
            messages=user,  # type: ignore[arg-type]
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    finally:
        code = up.stop()
        for pipe in (up.proc.stdout, up.proc.stderr):
            if pipe is not None:
                pipe.close()
    assert code == 0

"""No environment variable or secret leaks into answers or logs, on any surface."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import HELLO, spawn_ready, stop_process

pytestmark = pytest.mark.slow

CANARY = "canary-9f8e7d6c5b4a-do-not-leak"


def test_secrets_and_environment_stay_out_of_answers_and_logs(tmp_path: Path) -> None:
    """A secret planted in both processes' environment, and the token, appear nowhere."""
    env = dict(os.environ, EDGE_RUNNER_LOG_LEVEL="DEBUG", PLANTED_SECRET=CANARY)
    control_log = (tmp_path / "control.log").open("wb")
    control, info = spawn_ready(
        ["control", "--port", "0", "--grpc-port", "0"], env, stderr=control_log.fileno()
    )
    token = Path(info["admin_token_file"]).read_text().strip()
    runner_log = (tmp_path / "runner.log").open("wb")
    runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
    runner, _ = spawn_ready(["runner", str(HELLO)], runner_env, stderr=runner_log.fileno())
    seen: list[str] = []
    base = info["api_base"]
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for method, path, body in (
                ("POST", "/v2/models/hello/predict", {"text": "x"}),
                ("POST", "/v2/models/hello/generate", {"text": "x", "n": 2}),
                ("POST", "/v2/models/hello/predict", {"text": 1}),
                ("POST", "/v2/models/nope/predict", {}),
                ("GET", "/v2/models", None),
                ("GET", "/v2/runners", None),
                ("GET", "/v2/info", None),
                ("GET", "/v2/tokens", None),
                ("GET", "/v1/models", None),
            ):
                r = client.request(method, f"{base}{path}", json=body)
                seen.append(str(r.headers) + r.text)
            bad = httpx.get(f"{base}/v2/models", headers={"Authorization": f"Bearer {CANARY}"})
            seen.append(str(bad.headers) + bad.text)
        chat = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)
        reply = chat.chat.completions.create(
            model="hello", messages=[{"role": "user", "content": "hi"}]
        )
        seen.append(reply.model_dump_json())
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert token not in ps and CANARY not in ps  # not on any command line
    finally:
        stop_process(runner)
        stop_process(control)
        control_log.close()
        runner_log.close()
    logs = (tmp_path / "control.log").read_text() + (tmp_path / "runner.log").read_text()
    assert "DEBUG" in logs  # the logs were as verbose as they get
    for text in [*seen, logs]:
        assert CANARY not in text
        assert token not in text

"""Time to first token and tokens/s through control plane + tunnel vs the Ollama API directly.

Starts three processes on 127.0.0.1 with a throwaway ``EDGE_RUNNER_HOME``: the Ollama-API
server written for the tests (``tests/fakes/ollama_serve.py``: the Ollama binary cannot run on
these machines; it streams an echo of the prompt, one word a token, as fast as it can or at
``--token-delay``), ``edge-runner control``, and ``edge-runner runner --ollama llama3.2``.
Then, one request at a time, it alternates between

- ``direct``: ``POST /api/chat`` (stream) on the Ollama-API server — the baseline;
- ``openai``: ``POST /v1/chat/completions`` (stream) on the control plane, through the tunnel;
- ``native``: ``POST /v2/models/llama3.2/chat`` (SSE) on the control plane, through the tunnel;

and records, per request, the time to the first content token and the token rate after it.
Interleaving (in a shuffled order each round) puts the three paths under the same noise.
"added" is the median over rounds of (path's TTFT - the direct TTFT of the same round).

Usage::

    .venv/bin/python bench/ollama.py                       # 300 rounds, 200-token answers
    .venv/bin/python bench/ollama.py --rounds 1000 --words 50
    .venv/bin/python bench/ollama.py --token-delay 0.01    # a 100 token/s model
    .venv/bin/python bench/ollama.py --json

A benchmark, not a test: it asserts nothing beyond one correct answer per path. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import free_port, model_online, percentile, spawn_ready, until

ROOT = Path(__file__).resolve().parent.parent
MODEL = "llama3.2"


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def _stack(home: Path, token_delay: float) -> Iterator[tuple[str, str, str]]:
    """Fake Ollama, control plane and runner; yields (ollama url, api base, token)."""
    env = dict(os.environ, EDGE_RUNNER_HOME=str(home), EDGE_RUNNER_SECRET_BACKEND="file")
    env.pop("EDGE_RUNNER_PAT", None)
    port = free_port()
    ollama_url = f"http://127.0.0.1:{port}"
    fake_env = dict(
        env,
        PYTHONPATH=str(ROOT),
        OLLAMA_HOST=f"127.0.0.1:{port}",
        FAKE_OLLAMA_MODELS=MODEL,
        FAKE_OLLAMA_TOKEN_DELAY=str(token_delay),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.ollama_serve", "serve"],
            env=fake_env,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        until(lambda: _answers(ollama_url), "the Ollama-API fake")
        control, info = spawn_ready(
            ["control", "--port", "0", "--grpc-port", "0", "--data-dir", str(home / "cp")], env
        )
        procs.append(control)
        token = Path(info["admin_token_file"]).read_text().strip()
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner, _ = spawn_ready(
            ["runner", "--ollama", MODEL, "--ollama-host", ollama_url], runner_env
        )
        procs.append(runner)
        yield ollama_url, str(info["api_base"]), token
    finally:
        _stop(list(reversed(procs)))


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/api/version", timeout=0.5).raise_for_status()
    except httpx.HTTPError:
        return False
    return True


# -- one request per path: (seconds to the first token, tokens after it, seconds after it) --


Sample = tuple[float, int, float]


def _direct(http: httpx.Client, url: str, prompt: str) -> Sample:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    return _measure(
        http.stream("POST", f"{url}/api/chat", json=body),
        lambda line: json.loads(line).get("message", {}).get("content") or "",
    )


def _openai(http: httpx.Client, base: str, prompt: str) -> Sample:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}

    def text(line: str) -> str:
        if not line.startswith("data: {"):
            return ""
        choices = json.loads(line[6:]).get("choices") or [{}]
        return str(choices[0].get("delta", {}).get("content") or "")

    return _measure(http.stream("POST", f"{base}/v1/chat/completions", json=body), text)


def _native(http: httpx.Client, base: str, prompt: str) -> Sample:
    body = {"messages": [{"role": "user", "content": prompt}]}

    def text(line: str) -> str:
        return str(json.loads(line[6:])["output"]) if line.startswith('data: {"index"') else ""

    return _measure(http.stream("POST", f"{base}/v2/models/{MODEL}/chat", json=body), text)


def _measure(request: Any, text: Callable[[str], str]) -> Sample:
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    with request as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line or not text(line):
                continue
            if not tokens:
                first = time.perf_counter()
            tokens += 1
    end = time.perf_counter()
    if not tokens:
        raise SystemExit("a path answered no tokens")
    return first - start, tokens - 1, end - first


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds; return the summary."""
    prompt = " ".join(f"w{i}" for i in range(args.words - 1))  # echo: + words = args.words
    with (
        tempfile.TemporaryDirectory(prefix="edge-bench-") as home,
        _stack(Path(home), args.token_delay) as (ollama_url, base, token),
    ):
        headers = {"Authorization": f"Bearer {token}"}
        paths: dict[str, Callable[[httpx.Client, str], Sample]] = {
            "direct": lambda h, p: _direct(h, ollama_url, p),
            "openai": lambda h, p: _openai(h, base, p),
            "native": lambda h, p: _native(h, base, p),
        }
        samples: dict[str, list[Sample]] = {name: [] for name in paths}
        with httpx.Client(headers=headers, timeout=60) as http:
            until(lambda: model_online(http, base, MODEL), "the runner to bring the model online")
            shuffle = random.Random(7).shuffle
            order = list(paths.items())
            for round_ in range(args.warmup + args.rounds):
                shuffle(order)  # no path always follows the same one
                for name, call in order:
                    time.sleep(args.gap)
                    sample = call(http, prompt)
                    if round_ >= args.warmup:
                        samples[name].append(sample)
    summary: dict[str, Any] = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "rounds": args.rounds,
        "tokens_per_answer": args.words,
        "token_delay_s": args.token_delay,
        "gap_s": args.gap,
        "paths": {},
    }
    direct = [s[0] for s in samples["direct"]]
    for name, rows in samples.items():
        ttft = [s[0] * 1000 for s in rows]
        rates = [s[1] / s[2] for s in rows if s[2] > 0]
        added = [(s[0] - d) * 1000 for s, d in zip(rows, direct, strict=True)]
        summary["paths"][name] = {
            "ttft_p50_ms": round(percentile(ttft, 0.5), 3),
            "ttft_p90_ms": round(percentile(ttft, 0.9), 3),
            "ttft_p99_ms": round(percentile(ttft, 0.99), 3),
            "added_ttft_p50_ms": round(statistics.median(added), 3),
            "tokens_per_s_p50": round(statistics.median(rates)) if rates else 0,
        }
    return summary


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="measured rounds (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="rounds not measured (default 30)")
    parser.add_argument("--words", type=int, default=200, help="tokens per answer (default 200)")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds between tokens (default 0)"
    )
    parser.add_argument(
        "--gap", type=float, default=0.0, help="seconds of rest before each request (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    m = summary["machine"]
    print(
        f"{summary['rounds']} rounds, {summary['tokens_per_answer']} tokens per answer, "
        f"token delay {summary['token_delay_s']:g} s; {m['cpus']} CPUs, Python {m['python']}"
    )
    print("path     TTFT p50   p90      p99      added p50   tokens/s p50")
    for name, row in summary["paths"].items():
        print(
            f"{name:<8} {row['ttft_p50_ms']:>6.2f} ms {row['ttft_p90_ms']:>6.2f} ms "
            f"{row['ttft_p99_ms']:>6.2f} ms {row['added_ttft_p50_ms']:>7.2f} ms "
            f"{row['tokens_per_s_p50']:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

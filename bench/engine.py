"""Time to first token and tokens/s of a real engine (llama.cpp) directly vs through edge-runner.

Starts, on 127.0.0.1 with a throwaway ``EDGE_RUNNER_HOME``: llama.cpp's OpenAI-compatible
server (llama-cpp-python, through the engine tests' own helpers ``tests/engines/``, on the
generated tiny random-weights GGUF model, one thread), ``edge-runner control`` and
``edge-runner runner --openai-upstream URL``. Then, one request at a time, it alternates between

- ``direct``: ``POST /v1/chat/completions`` (stream) on the engine — the baseline;
- ``openai``: the same request on the control plane, through the tunnel and the runner;
- ``native``: ``POST /v2/models/tiny/generate`` (SSE, as ``Client.generate`` sends it) on the
  control plane; the runner turns it into the same streamed chat request;

and, with ``--completions``, ``direct-cmpl`` and ``openai-cmpl``: a streamed ``/v1/completions``
on the engine and on the control plane. Every request asks for ``--max-tokens`` tokens at
temperature 0 with the same prompt, so every path makes the engine do the same work.

TTFT is the time to the first chunk with content (not OpenAI's empty role chunk); tokens are
counted as the chunks with content, and as the engine's ``usage`` where it sends one. The
tiny model's tokens are single bytes, so its text is gibberish and a chunk may hold no text (a
byte that ends no UTF-8 character); the engine's work per token is real. Interleaving (in a
shuffled order each round) puts all paths under the same noise; "added" is (path's TTFT − the
direct TTFT of the same round), p50 and p99 over the rounds. The CPU each process spends per
request is read from /proc before and after each request.

At temperature 0 a whole answer has the same number of chunks every time. An answer with fewer,
or one that failed, was cut short: llama-cpp-python's server ends a running stream whenever
another request arrives (its ``interrupt_requests``, on by default), and the runner's liveness
probe (``GET /v1/models`` every 5 s) is such a request. Rounds with a cut answer are left out of
the timings and counted in the ``cut`` column.

Usage::

    .venv/bin/python bench/engine.py                       # 200 rounds, 32 tokens
    .venv/bin/python bench/engine.py --rounds 500 --max-tokens 8 --completions
    .venv/bin/python bench/engine.py --json

Needs the engine (``make .venv/.installed-engines``). A benchmark, not a test: it stops only
when a process exits; answers cut short are counted, not failed. Loopback only.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]  # common.py, tests.engines
from common import bench_env, cpu_seconds, model_online, percentile, spawn_ready, stop_all, until  # noqa: E402 - sibling module

PROMPT = "tell me a story about the sea"


@dataclass
class Sample:
    """One request: seconds to the first content chunk, content chunks, seconds after the
    first, chunks without text, the engine's completion tokens (None without usage), the
    error that ended it (None if it ended normally), CPU seconds per process."""

    ttft: float
    chunks: int
    rest: float
    empty: int
    usage_tokens: int | None = None
    error: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)


@contextmanager
def _stack(home: Path) -> Iterator[tuple[str, str, str, dict[str, subprocess.Popen[bytes]]]]:
    """Engine, control plane and runner; yields (engine base …/v1, api base, token, procs)."""
    from tests.engines.conftest import start_llama, stop_engine
    from tests.engines.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(home / "tiny.gguf")
    engine = start_llama(model)
    env = bench_env(home / "er")
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        control, info = spawn_ready(["control", "--port", "0", "--grpc-port", "0"], env)
        daemons.append(control)
        token = Path(info["admin_token_file"]).read_text().strip()
        # The token rides in the environment, never on a command line that `ps` shows.
        runner_env = dict(env, EDGE_RUNNER_API_BASE=info["api_base"], EDGE_RUNNER_PAT=token)
        runner, _ = spawn_ready(["runner", "--openai-upstream", engine.base_url], runner_env)
        daemons.append(runner)
        procs = {"engine": engine.proc, "control": control, "runner": runner}
        yield engine.base_url, str(info["api_base"]), token, procs
    finally:
        stop_all(reversed(daemons))
        stop_engine(engine)


# -- one request per path ------------------------------------------------------------------


def _openai_text(line: str) -> tuple[str | None, int | None]:
    """(the chunk's text, None for a line without a choice; the usage's completion tokens)."""
    if not line.startswith("data: {"):
        return None, None
    doc = json.loads(line[6:])
    usage = (doc.get("usage") or {}).get("completion_tokens")
    choices = doc.get("choices") or []
    if not choices:
        return None, usage
    choice = choices[0]
    text = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
    return str(text or ""), usage


def _native_text(line: str) -> tuple[str | None, int | None]:
    if line.startswith('data: {"index"'):
        return str(json.loads(line[6:])["output"]), None
    if line.startswith('data: {"task_id"'):
        usage = json.loads(line[6:]).get("usage") or {}
        return None, usage.get("completion_tokens")
    return None, None


def _measure(request: Any, parse: Callable[[str], tuple[str | None, int | None]]) -> Sample:
    start = time.perf_counter()
    first = 0.0
    chunks = empty = 0
    usage: int | None = None
    error: str | None = None
    try:
        with request as response:
            response.raise_for_status()
            for line in response.iter_lines():
                text, tokens = parse(line) if line else (None, None)
                usage = tokens if tokens is not None else usage
                if text is None:
                    continue
                if not text:
                    empty += 1
                    continue
                if not chunks:
                    first = time.perf_counter()
                chunks += 1
    except httpx.HTTPError as exc:
        error = repr(exc)
    end = time.perf_counter()
    if not chunks:
        return Sample(end - start, 0, 0.0, empty, usage, error or "no content")
    return Sample(first - start, chunks, end - first, empty, usage, error)


def _paths(
    engine: str, base: str, max_tokens: int, completions: bool
) -> dict[str, Callable[[httpx.Client], Sample]]:
    messages = [{"role": "user", "content": PROMPT}]
    chat = {
        "model": "tiny",
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    native = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    cmpl = {k: v for k, v in chat.items() if k != "messages"} | {"prompt": PROMPT}

    def post(url: str, body: dict[str, Any], parse: Any) -> Callable[[httpx.Client], Sample]:
        return lambda http: _measure(http.stream("POST", url, json=body), parse)

    paths = {
        "direct": post(f"{engine}/chat/completions", chat, _openai_text),
        "openai": post(f"{base}/v1/chat/completions", chat, _openai_text),
        "native": post(f"{base}/v2/models/tiny/generate", native, _native_text),
    }
    if completions:
        paths["direct-cmpl"] = post(f"{engine}/completions", cmpl, _openai_text)
        paths["openai-cmpl"] = post(f"{base}/v1/completions", cmpl, _openai_text)
    return paths


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds; return the summary."""
    with (
        tempfile.TemporaryDirectory(prefix="edge-bench-") as home,
        _stack(Path(home)) as (engine, base, token, procs),
    ):
        pids = {name: proc.pid for name, proc in procs.items()} | {"bench": os.getpid()}
        paths = _paths(engine, base, args.max_tokens, args.completions)
        rounds: list[dict[str, Sample]] = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=headers, timeout=60) as http:
            until(lambda: model_online(http, base, "tiny"), "the runner to bring the model online")
            shuffle = random.Random(7).shuffle
            order = list(paths.items())
            for round_ in range(args.warmup + args.rounds):
                shuffle(order)  # no path always follows the same one
                row = {}
                for name, call in order:
                    before = {p: cpu_seconds(pid) for p, pid in pids.items()}
                    sample = call(http)
                    sample.cpu = {p: cpu_seconds(pid) - before[p] for p, pid in pids.items()}
                    row[name] = sample
                gone = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
                if gone:
                    raise SystemExit(f"round {round_}: exited (name: status): {gone}")
                if round_ >= args.warmup:
                    rounds.append(row)
    return _summary(args, list(paths), rounds)


def _summary(
    args: argparse.Namespace, names: list[str], rounds: list[dict[str, Sample]]
) -> dict[str, Any]:
    # A whole answer has the same number of chunks every time (temperature 0); one with fewer,
    # or an error, was cut short, and its round is left out so each added TTFT stays a pair.
    full = {
        name: statistics.mode(r[name].chunks for r in rounds if r[name].error is None)
        for name in names
    }
    kept = [r for r in rounds if all(s.error is None and s.chunks == full[n] for n, s in r.items())]
    summary: dict[str, Any] = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "rounds": args.rounds,
        "rounds_kept": len(kept),
        "max_tokens": args.max_tokens,
        "paths": {},
    }
    for name in names:
        rows = [r[name] for r in kept]
        direct = [r["direct-cmpl" if name.endswith("-cmpl") else "direct"] for r in kept]
        ttft = [s.ttft * 1000 for s in rows]
        added = [(s.ttft - d.ttft) * 1000 for s, d in zip(rows, direct, strict=True)]
        rates = [(s.chunks - 1) / s.rest for s in rows if s.rest > 0]
        usage = [s.usage_tokens for s in rows if s.usage_tokens is not None]
        cut = [r[name] for r in rounds if r[name].error or r[name].chunks != full[name]]
        summary["paths"][name] = {
            "ttft_p50_ms": round(percentile(ttft, 0.5), 2),
            "ttft_p99_ms": round(percentile(ttft, 0.99), 2),
            "added_ttft_p50_ms": round(percentile(added, 0.5), 2),
            "added_ttft_p99_ms": round(percentile(added, 0.99), 2),
            "chunks_per_s_p50": round(statistics.median(rates)) if rates else 0,
            "content_chunks": full[name],
            "empty_chunks_p50": statistics.median(s.empty for s in rows),
            "usage_tokens_p50": statistics.median(usage) if usage else None,
            "usage_sent": f"{len(usage)}/{len(rows)}",
            "cut_short": len(cut),
            "cut_examples": sorted({s.error or f"{s.chunks} chunks" for s in cut})[:3],
            "cpu_ms_per_request": {
                p: round(statistics.fmean(s.cpu[p] for s in rows) * 1000, 2) for p in rows[0].cpu
            },
        }
    return summary


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="measured rounds (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="rounds not measured (default 20)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per answer (default 32)")
    parser.add_argument(
        "--completions", action="store_true", help="also streamed /v1/completions, both ways"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    # `timeout` or a kill: unwind through the finally in _stack, which stops the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    m = summary["machine"]
    print(
        f"{summary['rounds']} rounds ({summary['rounds_kept']} without a cut answer), "
        f"max_tokens {summary['max_tokens']}; "
        f"{m['cpus']} CPUs, Python {m['python']}"
    )
    print(
        "path         TTFT p50  p99       added p50  p99       chunks/s  chunks  empty  usage"
        "         cut  CPU ms/request"
    )
    for name, row in summary["paths"].items():
        cpu = " ".join(f"{p} {v:.1f}" for p, v in row["cpu_ms_per_request"].items())
        print(
            f"{name:<12} {row['ttft_p50_ms']:>6.2f} ms {row['ttft_p99_ms']:>6.2f} ms "
            f"{row['added_ttft_p50_ms']:>6.2f} ms {row['added_ttft_p99_ms']:>6.2f} ms "
            f"{row['chunks_per_s_p50']:>8} {row['content_chunks']:>6} "
            f"{row['empty_chunks_p50']:>6g}  {row['usage_tokens_p50']!s:>4} "
            f"({row['usage_sent']:>7}) {row['cut_short']:>4}  {cpu}"
        )
    for name, row in summary["paths"].items():
        if row["cut_short"]:
            print(f"{name} cut short: {'; '.join(row['cut_examples'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

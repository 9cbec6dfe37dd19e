"""Throughput and latency of a predict call through the tunnel, measured with wrk.

Starts ``edge-runner control`` and ``edge-runner runner bench/echo`` as two subprocesses on
127.0.0.1 (ports chosen by the OS, a throwaway ``EDGE_RUNNER_HOME``), checks one call, warms
up, then for each number of concurrent callers runs::

    wrk -t1 -cN -dDURATION --latency -s SCRIPT http://127.0.0.1:PORT/v2/models/echo/predict

``-t1``: one wrk thread, so the load generator uses at most one core. On a small machine it
still shares the CPUs with the two processes it measures; the ``wrk`` CPU column says how much.

While wrk runs, the script samples ``/proc/<pid>/stat`` (utime + stime) of the control plane
and the runner and prints each as % of one core: that is where the time goes. ``host`` is the
whole machine's busy time on the same scale (100% per core); ``other`` is host minus the three
processes we know, i.e. whatever else ran meanwhile (it makes a noisy run visible).

Usage::

    .venv/bin/python bench/tunnel.py                        # 1, 8, 32 callers, 10 s each
    .venv/bin/python bench/tunnel.py --direct               # also GET /healthz: HTTP stack alone
    .venv/bin/python bench/tunnel.py --connections 1,64 --duration 30s --pool-size 64
    .venv/bin/python bench/tunnel.py --json > result.json
    .venv/bin/python bench/tunnel.py --uvloop               # experiment: children on uvloop
    .venv/bin/python bench/tunnel.py --log-dir /tmp/logs    # keep the children's logs
    .venv/bin/python bench/tunnel.py --batch 32             # also batches of 32 texts
    .venv/bin/python bench/tunnel.py --image 100            # also a 100 KB image → Concepts

``--batch N`` adds a target ``batchN``: each request is a batch predict of N texts (a JSON array
of N argument objects), so each wrk request is N tasks through the tunnel; its rows also give
items/s (req/s times N), which is what to set next to the single predict's req/s.

``--image KB`` adds a target ``imageKBk``: ``POST /v2/models/echo/classify`` with a KB-kilobyte
image (base64 in the JSON body, as every client sends one) answered with a list of three
Concepts. The image is a JPEG when Pillow is installed (noise, so it does not compress), else
random bytes behind a JPEG header: the model never decodes it, so the numbers are the cost of
moving the image through the HTTP API, the checks and the tunnel, and decoding it on the runner.

Needs ``wrk`` (Debian: ``apt-get install wrk``). The admin token reaches the runner and wrk
through their environments only (the wrk Lua script reads it with ``os.getenv``), never a
command line. Errors are wrk's: socket errors (connect, read, write, timeout) plus responses
with status >= 400. This is a benchmark, not a test: it asserts nothing beyond one correct echo.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from edge_runner.testing import NotReady, daemon_env, spawn_ready, stop_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLK_TCK, cpu_seconds  # noqa: E402 - sibling benchmark module

HOST = "127.0.0.1"
ECHO_MODEL = Path(__file__).resolve().parent / "echo"
TOKEN_ENV = "EDGE_RUNNER_BENCH_TOKEN"
RESULT_MARK = "EDGE_BENCH_RESULT "
SETTLE_S = 0.5  # after a load, before the next one: wrk's last requests drain, CPUs go idle

# wrk's done() hook prints one machine-readable line; the --latency text stays for people.
_DONE_LUA = f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{RESULT_MARK}{{"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,'
    .. '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p90_us":%.0f,'
    .. '"p99_us":%.0f,"p999_us":%.0f,"mean_us":%.1f,"max_us":%.0f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


def _predict_lua(body: str) -> str:
    return f"""
local token = os.getenv("{TOKEN_ENV}") or error("{TOKEN_ENV} is not set")
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
{_DONE_LUA}"""


class BenchError(Exception):
    """A problem the person running the benchmark has to fix; printed without a traceback."""


@dataclass(frozen=True)
class Target:
    """One URL to load: the tunnel path or the HTTP stack alone."""

    name: str
    path: str
    lua: str
    #: model calls per request (a batch predict makes one per item)
    items: int = 1


@dataclass
class Result:
    """One wrk run and the CPU the processes spent during it."""

    target: str
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    error_detail: dict[str, int]
    cpu_pct: dict[str, float] = field(default_factory=dict)
    #: model calls per second: req/s times the items of each request
    items_per_s: float = 0.0


# -- processes --------------------------------------------------------------------------------


def _host_busy_seconds() -> float:
    """Busy CPU time of the whole machine, summed over cores, in seconds."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user/nice
    return (total - idle) / CLK_TCK


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _head(path: Path, lines: int = 12) -> str:
    """The first lines of a log: the first warning usually explains the rest."""
    try:
        all_lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    more = (
        f"\n... {len(all_lines) - lines} more line(s) in {path}" if len(all_lines) > lines else ""
    )
    return "\n".join(all_lines[:lines]) + more


@dataclass
class Child:
    """A supervised ``edge-runner`` subprocess whose stderr goes to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path


# --uvloop: the same CLI with uvloop's policy installed first (an experiment; edge-runner
# itself runs on the default asyncio loop)
_UVLOOP_MAIN = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from edge_runner.cli.main import main; sys.exit(main())"
)


def _spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
    uvloop: bool = False,
) -> tuple[Child, dict[str, Any]]:
    """Start ``python -m edge_runner ARGS`` logging to ``log``; wait for its ready line."""
    entry = ("-c", _UVLOOP_MAIN) if uvloop else ("-m", "edge_runner")
    with log.open("wb") as log_file:
        try:
            proc, info = spawn_ready(
                args,
                env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                entry=entry,
                new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
        except NotReady as exc:
            stop_process(exc.proc, 2)
            raise BenchError(f"the {name} {exc}; its log ends with:\n{_tail(log)}") from exc
    return Child(name, proc, log), info


@dataclass
class Stack:
    """The control plane and one runner, both on loopback."""

    api_base: str
    token: str
    control: Child
    runner: Child


@contextlib.contextmanager
def _stack(
    home: Path,
    logs: Path,
    pool_size: int,
    start_timeout: float,
    uvloop: bool = False,
    transport: str = "grpc",
) -> Iterator[Stack]:
    """Run control plane + runner; stop the runner, then the control plane, on any exit."""
    children: list[Child] = []
    show_logs = True
    try:
        control, info = _spawn(
            "control plane",
            ["control", "--host", HOST, "--port", "0", "--grpc-port", "0"],
            daemon_env(home),
            logs / "control.log",
            start_timeout,
            uvloop,
        )
        children.append(control)
        api_base = str(info["api_base"])
        if not api_base.startswith(f"http://{HOST}:"):
            raise BenchError(f"the control plane listens on {api_base}, not on {HOST}")
        token = Path(info["admin_token_file"]).read_text().strip()
        runner, _ = _spawn(
            "runner",
            ["runner", str(ECHO_MODEL), "--pool-size", str(pool_size), "--transport", transport],
            daemon_env(home, EDGE_RUNNER_API_BASE=api_base, EDGE_RUNNER_PAT=token),
            logs / "runner.log",
            start_timeout,
            uvloop,
        )
        children.append(runner)
        yield Stack(api_base, token, control, runner)
    except BenchError:
        show_logs = False  # the error already quotes the log that matters
        raise
    finally:
        # requests wrk left in flight finish first: a runner stopped with results still in
        # its tunnel can strand them, and the control plane then logs cancelled handlers
        time.sleep(SETTLE_S)
        for child in reversed(children):
            stop_process(child.proc, 10)
        for child in children if show_logs else ():
            if head := _head(child.log):
                print(f"-- {child.name} logged (WARNING and up) --\n{head}", file=sys.stderr)


# -- wrk --------------------------------------------------------------------------------------


def _check_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not on PATH; install it (Debian/Ubuntu: `apt-get install wrk`, "
            "macOS: `brew install wrk`) and run again"
        )
    return wrk


def _wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout + out.stderr).strip().splitlines() or ["wrk ?"]
    return first[0].split(" Copyright")[0]


def _run_wrk(
    wrk: str,
    stack: Stack,
    target: Target,
    script: Path,
    connections: int,
    duration_s: int,
    timeout_s: int,
) -> tuple[Result, str]:
    """One wrk run; returns the parsed result and wrk's own text output."""
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(script),
        stack.api_base + target.path,
    ]
    env = dict(os.environ)
    env[TOKEN_ENV] = stack.token
    time.sleep(SETTLE_S)
    pids = {"control": stack.control.proc.pid, "runner": stack.runner.proc.pid}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    host_before, wrk_before = _host_busy_seconds(), _children_cpu_seconds()
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=duration_s + timeout_s + 30)
    finally:
        stop_process(proc, 2)  # Ctrl-C or a hung wrk: don't leave it running
    wall = time.monotonic() - start
    for name, child in (("control plane", stack.control), ("runner", stack.runner)):
        if child.proc.poll() is not None:
            raise BenchError(f"the {name} died during the run; its log:\n{_tail(child.log)}")
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    cpu["wrk"] = _children_cpu_seconds() - wrk_before
    cpu["host"] = _host_busy_seconds() - host_before
    cpu["other"] = max(0.0, cpu["host"] - cpu["control"] - cpu["runner"] - cpu["wrk"])
    text = out.decode(errors="replace")
    marked = [ln for ln in text.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not marked:
        raise BenchError(f"wrk failed (exit {proc.returncode}): {' '.join(cmd)}\n{text}")
    raw = json.loads(marked[-1][len(RESULT_MARK) :])
    errors = {k: int(raw[k]) for k in ("connect", "read", "write", "timeout", "status")}
    seconds = raw["duration_us"] / 1e6
    result = Result(
        target=target.name,
        connections=connections,
        requests=int(raw["requests"]),
        seconds=round(seconds, 3),
        rps=round(raw["requests"] / seconds, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=sum(errors.values()),
        error_detail=errors,
        cpu_pct={name: round(100 * used / wall, 1) for name, used in cpu.items()},
        items_per_s=round(raw["requests"] * target.items / seconds, 1),
    )
    human = "\n".join(ln for ln in text.splitlines() if not ln.startswith(RESULT_MARK))
    return result, human


def _post(stack: Stack, body: object, method: str = "predict") -> Any:
    request = urllib.request.Request(
        f"{stack.api_base}/v2/models/echo/{method}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _call_once(stack: Stack, text: str) -> None:
    """One predict call with urllib: the stack works and echoes before we load it."""
    body = _post(stack, {"text": text})
    if body.get("output") != text:
        raise BenchError(f"the echo model answered {body!r}, expected output {text!r}")


def _batch_items(text: str, n: int) -> list[dict[str, str]]:
    return [{"text": f"{text} {i}"} for i in range(n)]


def _batch_once(stack: Stack, text: str, n: int) -> None:
    """One batch predict: every item echoed, in order, before we load it."""
    items = _batch_items(text, n)
    body = _post(stack, items)
    outputs = [result.get("output") for result in body.get("results", [])]
    if outputs != [item["text"] for item in items]:
        raise BenchError(f"the batch of {len(items)} answered {str(body)[:300]}")


def _image_bytes(kb: int) -> bytes:
    """About ``kb`` KB of JPEG: real (noise, via Pillow) when it is installed."""
    size = kb * 1024
    try:
        import io

        from PIL import Image as PilImage
    except ImportError:
        return (b"\xff\xd8\xff\xe0" + os.urandom(size))[:size]
    side = 64
    while True:  # noise does not compress: grow the picture until the JPEG is big enough
        buffer = io.BytesIO()
        PilImage.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
            buffer, "JPEG", quality=90
        )
        if buffer.tell() >= size:
            return buffer.getvalue()
        side = int(side * 1.2) + 1


def _image_body(kb: int) -> str:
    return json.dumps({"image": {"base64": base64.b64encode(_image_bytes(kb)).decode()}})


def _image_once(stack: Stack, body: str) -> None:
    """One classify call: the concepts come back before we load it."""
    answer = _post(stack, json.loads(body), "classify")
    names = [concept.get("name") for concept in answer.get("output", [])]
    if names != ["cat", "size-mb", "dog"]:
        raise BenchError(f"classify answered {str(answer)[:300]}")


# -- report -----------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# (heading, format); every format renders to exactly the heading's width
_COLUMNS = (
    ("target ", "{:<7}"),
    ("conns", "{:>5}"),
    ("   req/s", "{:>8.0f}"),
    ("items/s", "{:>7.0f}"),
    ("p50 ms", "{:>6.2f}"),
    ("p99 ms", "{:>6.2f}"),
    ("errors", "{:>6}"),
    ("control", "{:>6.0f}%"),
    ("runner", "{:>5.0f}%"),
    ("  wrk", "{:>4.0f}%"),
    (" host", "{:>4.0f}%"),
    ("other", "{:>4.0f}%"),
)


def _header() -> str:
    return "  ".join(heading for heading, _ in _COLUMNS)


def _row(r: Result) -> str:
    values = (
        r.target,
        r.connections,
        r.rps,
        r.items_per_s,
        r.p50_ms,
        r.p99_ms,
        r.errors,
        r.cpu_pct["control"],
        r.cpu_pct["runner"],
        r.cpu_pct["wrk"],
        r.cpu_pct["host"],
        r.cpu_pct["other"],
    )
    return "  ".join(fmt.format(v) for (_, fmt), v in zip(_COLUMNS, values, strict=True))


# -- main -------------------------------------------------------------------------------------


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([smh]?)", text.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 10s, 2m or 10; got {text!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,8,32; got {text!r}") from exc
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 1,8,32; got {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="CPU columns are % of one core during the run (host: the whole machine; "
        "other: host minus control, runner and wrk).",
    )
    parser.add_argument("--connections", type=_counts, default=[1, 8, 32], help="default 1,8,32")
    parser.add_argument("--duration", type=_seconds, default=10, help="per run (default 10s)")
    parser.add_argument("--warmup", type=_seconds, default=3, help="untimed load (default 3s)")
    parser.add_argument("--pool-size", type=int, default=32, help="runner threads (default 32)")
    parser.add_argument(
        "--transport",
        choices=("grpc", "ws"),
        default="grpc",
        help="tunnel transport (default grpc)",
    )
    parser.add_argument(
        "--direct", action="store_true", help="also load GET /healthz (no tunnel, no runner)"
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="experiment: run both children on uvloop (edge-runner uses plain asyncio)",
    )
    parser.add_argument("--text", default="hi", help="the echoed text (default 'hi')")
    parser.add_argument(
        "--image",
        type=int,
        metavar="KB",
        help="also load classify with an image of KB kilobytes (target imageKBk)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="also load batch predicts of N texts (target batchN; items/s = req/s x N)",
    )
    parser.add_argument("--wrk-timeout", type=_seconds, default=10, help="default 10s")
    parser.add_argument("--start-timeout", type=float, default=60, help="s to wait for children")
    parser.add_argument(
        "--log-dir", type=Path, help="keep the children's logs here (default: thrown away)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("-v", "--verbose", action="store_true", help="show wrk's own output")
    return parser


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # same cleanup path as Ctrl-C


def run(args: argparse.Namespace) -> int:
    """Start the stack, run every wrk load, print the table (or JSON)."""
    wrk = _check_wrk()
    body = json.dumps({"text": args.text})
    targets = [Target("predict", "/v2/models/echo/predict", _predict_lua(body))]
    if args.batch:
        if not 1 <= args.batch <= 999_999:
            raise BenchError(f"--batch takes a positive number of texts, got {args.batch}")
        batch = json.dumps(_batch_items(args.text, args.batch))
        targets.append(
            Target(f"batch{args.batch}", "/v2/models/echo/predict", _predict_lua(batch), args.batch)
        )
    image = ""
    if args.image:
        if not 1 <= args.image <= 16 * 1024:
            raise BenchError(f"--image takes a size in KB from 1 to 16384, got {args.image}")
        image = _image_body(args.image)
        targets.append(
            Target(f"image{args.image}k", "/v2/models/echo/classify", _predict_lua(image))
        )
    if args.direct:
        targets.append(Target("healthz", "/healthz", _DONE_LUA))
    log = sys.stderr
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        home = Path(tmp)
        scripts: dict[str, Path] = {}
        for target in targets:
            scripts[target.name] = home / f"{target.name}.lua"
            scripts[target.name].write_text(target.lua)
        m = _machine()
        print(
            f"machine: {m['cpus']} CPU(s) ({m['cpu_model']}), {m['mem_gib']} GiB, "
            f"Python {m['python']}, {_wrk_version(wrk)}",
            file=log,
        )
        print(f"starting control plane + runner (pool {args.pool_size}) in {home}", file=log)
        logs = args.log_dir or home
        logs.mkdir(parents=True, exist_ok=True)
        with _stack(
            home, logs, args.pool_size, args.start_timeout, args.uvloop, args.transport
        ) as stack:
            _call_once(stack, args.text)
            if args.batch:
                _batch_once(stack, args.text, args.batch)
            if image:
                _image_once(stack, image)
            print(f"{stack.api_base}: echo ok; warming up {args.warmup}s", file=log)
            _run_wrk(
                wrk,
                stack,
                targets[0],
                scripts["predict"],
                max(args.connections),
                args.warmup,
                args.wrk_timeout,
            )
            if not args.json:
                print(_header(), flush=True)
            for target in targets:
                for n in args.connections:
                    print(f"{target.name}: {n} connection(s), {args.duration}s ...", file=log)
                    result, human = _run_wrk(
                        wrk, stack, target, scripts[target.name], n, args.duration, args.wrk_timeout
                    )
                    results.append(result)
                    if args.verbose:
                        print(human, file=log)
                    if not args.json:
                        print(_row(result), flush=True)
    if args.json:
        report = {
            "machine": _machine(),
            "wrk": _wrk_version(wrk),
            "command": " ".join(sys.argv),
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "pool_size": args.pool_size,
                "wrk_threads": 1,
                "uvloop": args.uvloop,
                "text": args.text,
                "batch": args.batch,
                "image_kb": args.image,
            },
            "results": [asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: errors a person must act on go to stderr with exit code 2."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # a shell starts background jobs with SIGINT ignored; we still want Ctrl-C/kill -INT to clean up
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; children stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

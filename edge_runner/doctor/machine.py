"""Checks of this machine: NVIDIA GPUs, Ollama, local ports, local runners, Python and extras."""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import importlib.util
import os
import platform
import socket
import sys

import httpx

from edge_runner.doctor._core import Check, Reporter, describe_error
from edge_runner.doctor._env import DEFAULT_PORTS, Env
from edge_runner.errors import ErrorCode

__all__ = [
    "EXTRAS",
    "check_extras",
    "check_nvml",
    "check_ollama",
    "check_ports",
    "check_python",
    "check_runners",
]

_GPU_EXTRA = "pip install 'edge-runner[gpu]'"


def _nvidia_devices() -> bool:
    """Whether this machine shows NVIDIA device nodes (a driver is installed)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/nvidiactl")


def check_nvml(env: Env, r: Reporter) -> Check:
    """NVML answers: bindings installed, driver loaded and matching, GPUs counted."""
    from edge_runner.telemetry.gpu import GpuReader

    reader = GpuReader()
    try:
        report = reader.read()
    finally:
        reader.close()
    note = report.note.removeprefix("no GPU data: ")
    if report.gpus:
        names = ", ".join(f"{g.index}: {g.name}" for g in report.gpus)
        detail = f"driver {report.driver or '?'}, {len(report.gpus)} GPU(s) ({names})"
        if "cannot be read" in note:
            return r.warn(
                f"{detail}; {note}",
                "run `nvidia-smi`; a GPU that fell off the bus needs a reset "
                "(`sudo nvidia-smi -r -i N`) or a reboot",
            )
        return r.ok(f"{detail}; {note}" if note else detail)
    if "bindings are not installed" in note:
        if _nvidia_devices():
            return r.warn(
                "NVIDIA devices exist but the NVML bindings are not installed", _GPU_EXTRA
            )
        return r.skip(f"no NVIDIA GPU here; the NVML bindings are not installed ({_GPU_EXTRA})")
    if "Apple" in note or "AMD" in note:
        return r.skip(note)
    if "libnvidia-ml not found" in note:
        if _nvidia_devices():
            return r.fail(
                "NVIDIA devices exist but libnvidia-ml cannot be loaded",
                "reinstall the NVIDIA driver (its libnvidia-ml.so.1 must be on the loader path; "
                "`ldconfig -p | grep nvidia-ml`)",
            )
        return r.skip("no NVIDIA driver here (libnvidia-ml not found): CPU only")
    if "version mismatch" in note:
        return r.fail(
            f"NVML: {note}: the kernel module and the user-space library are different "
            "driver versions, usually after a driver upgrade without a reboot",
            "reboot, or reload the kernel modules: `sudo rmmod nvidia_uvm nvidia_drm "
            "nvidia_modeset nvidia && sudo modprobe nvidia` (stop GPU processes first)",
        )
    if "not loaded" in note:
        return r.fail(f"NVML: {note}", "load it: `sudo modprobe nvidia`, then check `nvidia-smi`")
    if "no permission" in note:
        return r.fail(
            f"NVML: {note}",
            "add yourself to the group that owns /dev/nvidia* (`ls -l /dev/nvidia*`; often "
            "`sudo usermod -aG video $USER`), then log in again",
        )
    if "no NVIDIA GPU found" in note:
        return r.warn(
            f"driver {report.driver or '?'} loads, but NVML sees no GPU",
            "check `nvidia-smi` and `lspci | grep -i nvidia`; in a container pass the GPUs "
            "(`docker run --gpus all`)",
        )
    return r.fail(f"NVML: {note or 'no GPU data'}", "run `nvidia-smi` to see what the driver says")


def check_ollama(env: Env, r: Reporter) -> Check:
    """Ollama answers at ``$OLLAMA_HOST`` (or the default 127.0.0.1:11434), and its version."""
    from edge_runner.backends.ollama_ready import normalize_host

    configured = os.environ.get("OLLAMA_HOST", "").strip()
    url = normalize_host(configured or None)
    source = f"OLLAMA_HOST={configured}" if configured else "the default address"
    try:
        with httpx.Client(timeout=env.options.http_timeout, trust_env=False) as http:
            answer = http.get(f"{url}/api/version")
            version = answer.json().get("version") if answer.status_code == 200 else None
            models = None
            if version:
                with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
                    models = len(http.get(f"{url}/api/tags").json().get("models", []))
    except httpx.HTTPError as exc:
        if not configured:
            return r.skip(f"no Ollama at {url} and OLLAMA_HOST is unset (not used)")
        return r.warn(
            f"{source}, but nothing answers at {url} ({describe_error(exc)})",
            "start it with `ollama serve` (install: https://ollama.com/download), or fix "
            "OLLAMA_HOST",
        )
    except (ValueError, AttributeError):
        version = None
    if not version:
        return r.warn(
            f"{url} ({source}) answers, but not like Ollama (GET /api/version)",
            "point OLLAMA_HOST at the Ollama server (`export OLLAMA_HOST=127.0.0.1:11434`)",
        )
    pulled = f", {models} model(s) pulled" if models is not None else ""
    return r.ok(f"Ollama {version} at {url} ({source}){pulled}")


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers bind: a port only in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listener(port: int) -> tuple[int | None, str]:
    """``(pid, command line)`` of the process listening on ``port``, as psutil sees it."""
    try:
        import psutil
    except ImportError:
        return None, ""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None, ""
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None, ""
            try:
                return conn.pid, _short_command(psutil.Process(conn.pid).cmdline())
            except (psutil.Error, OSError):
                return conn.pid, ""
    return None, ""


def _short_command(argv: list[str]) -> str:
    """``edge-runner control --host ...`` rather than the interpreter's and script's full paths."""
    if not argv:
        return ""
    if os.path.basename(argv[0]).startswith("python") and len(argv) > 1:
        if not argv[1].startswith("-"):
            argv = argv[1:]
        argv = [os.path.basename(argv[0]), *argv[1:]]
    else:
        argv = [os.path.basename(argv[0]), *argv[1:]]
    text = " ".join(argv)
    return text if len(text) <= 80 else text[:77] + "..."


def _speaks_edge_runner(port: int, timeout: float) -> bool:
    """Whether an edge-runner control plane's HTTP API answers on 127.0.0.1:``port``."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            health = http.get(f"http://127.0.0.1:{port}/healthz")
            info = http.get(f"http://127.0.0.1:{port}/v2/info")
        code = info.json()["error"]["code"] if info.status_code == 401 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return health.status_code == 200 and code == ErrorCode.UNAUTHENTICATED


def check_ports(env: Env, r: Reporter) -> Check:
    """The control plane ports on 127.0.0.1 are free, or held by an edge-runner control plane."""
    ports = env.options.ports
    found: list[str] = []
    strangers: list[str] = []
    ours: set[int] = set()
    for index, port in enumerate(ports):
        kind = "HTTP API" if index == 0 else "gRPC tunnel"
        if _port_free(port):
            found.append(f"{port} ({kind}) free")
            continue
        pid, command = _listener(port)
        if pid is not None and pid in ours:
            found.append(f"{port} ({kind}) held by the same control plane")
            continue
        probe_s = min(1.0, env.options.http_timeout)  # a silent listener must not stall us
        edge = (index == 0 and _speaks_edge_runner(port, probe_s)) or (
            "edge_runner" in command or "edge-runner" in command
        )
        holder = "a process this user cannot see" if pid is None else f"pid {pid}"
        if command:
            holder += f" `{command}`"
        if edge:
            if pid is not None:
                ours.add(pid)
            found.append(f"{port} ({kind}) held by an edge-runner control plane, {holder}")
        else:
            strangers.append(f"{port} ({kind}) is held by {holder}, not by edge-runner")
    if strangers:
        defaults = tuple(ports) == DEFAULT_PORTS
        return r.warn(
            "; ".join([*strangers, *found]),
            "stop that process, or run edge-runner on other ports: `edge-runner up --port "
            "7080 --grpc-port 7081`"
            if defaults
            else "stop that process, or pick other ports with --port/--grpc-port",
        )
    return r.ok("; ".join(found))


def check_runners(env: Env, r: Reporter) -> Check:
    """Runners on this machine (their local API): tunnel state and model states."""
    from edge_runner.local_client import LocalClient, local_runners

    runners = local_runners(env.options.runtime)
    if not runners:
        return r.ok("no runner runs on this machine")
    lines: list[str] = []
    problems: list[tuple[str, str]] = []
    for runner in runners:
        try:
            with LocalClient(runner, timeout=env.options.http_timeout) as client:
                snap = client.snapshot()
        except Exception as exc:  # any failure to read it is the finding
            problems.append(
                (
                    f"{runner.runner_id} (pid {runner.pid}) does not answer on its local API "
                    f"({describe_error(exc)})",
                    f"`edge-runner status --runner {runner.runner_id}`; restart it if it hangs",
                )
            )
            continue
        tunnel = snap.get("tunnel") or {}
        state = str(tunnel.get("state", "?"))
        models = ", ".join(f"{m.get('id')} {m.get('status')}" for m in snap.get("models", []))
        lines.append(f"{runner.runner_id} (pid {runner.pid}): tunnel {state}; {models or 'none'}")
        if state != "connected":
            error = tunnel.get("last_error") or "no error recorded"
            problems.append(
                (
                    f"{runner.runner_id}'s tunnel is {state} to {snap.get('api_base')} ({error})",
                    f"see the control-plane line; `edge-runner logs --runner {runner.runner_id}`",
                )
            )
        for model in snap.get("models", []):
            if model.get("status") == "unavailable":
                problems.append(
                    (
                        f"{runner.runner_id}: model {model.get('id')} is unavailable "
                        f"({model.get('message') or 'no message'})",
                        f"`edge-runner logs --runner {runner.runner_id}` says why",
                    )
                )
    if problems:
        return r.warn(
            "; ".join([p for p, _ in problems] + lines),
            "; ".join(dict.fromkeys(f for _, f in problems)),
        )
    return r.ok("; ".join(lines))


def check_python(env: Env, r: Reporter) -> Check:
    """Which Python runs edge-runner (informational)."""
    version = platform.python_version()
    return r.ok(f"Python {version} ({sys.executable}) on {platform.system()} {platform.machine()}")


#: extra name → (module it provides, distribution whose version to show)
EXTRAS: dict[str, tuple[str, str]] = {
    "tui": ("textual", "textual"),
    "gpu": ("pynvml", "nvidia-ml-py"),
    "mcp": ("mcp", "mcp"),
    # fastmcp 4 ships its code as fastmcp-slim; the fastmcp meta-package has the same version
    "fastmcp": ("fastmcp", "fastmcp"),
    "torch": ("torch", "torch"),
}


def check_extras(env: Env, r: Reporter) -> Check:
    """Which optional extras are installed (informational; found without importing them)."""
    parts = []
    for extra, (module, dist) in EXTRAS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            parts.append(f"{extra} no (pip install 'edge-runner[{extra}]')")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        parts.append(f"{extra} yes ({dist} {version})")
    from edge_runner._version import __version__

    return r.ok(f"edge-runner {__version__}; " + ", ".join(parts))

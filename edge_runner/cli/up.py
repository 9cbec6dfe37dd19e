"""``edge-runner up``: an embedded control plane and a runner, as two supervised children.

The supervisor starts ``edge-runner control`` (loopback, SQLite under the user data dir), makes
the ``local`` context from its admin token (token to the secret store, never to a command line),
starts ``edge-runner runner MODEL_PATH --context local``, and prints the banner once the runner
is registered. Children run in their own sessions, so Ctrl-C reaches only the supervisor, which
forwards one SIGTERM per Ctrl-C to the runner (drain → cancel → exit) and then stops the
control plane.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edge_runner._platform import child_group_options, install_stop_handlers, request_child_stop
from edge_runner.cli.banner import render_banner
from edge_runner.cli.daemon_args import (
    CONTROL_SETTINGS,
    add_backend_options,
    add_control_options,
    add_listen_options,
    add_runner_options,
    control_config,
    export_checkpoints,
    runner_config,
    source_argv,
)
from edge_runner.control.config import ControlConfig
from edge_runner.daemons.runner import RunnerConfig
from edge_runner.errors import ConfigError

__all__ = ["LOCAL_CONTEXT", "control_argv", "register", "runner_argv"]

logger = logging.getLogger(__name__)

LOCAL_CONTEXT = "local"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``up`` command."""
    up = sub.add_parser(
        "up",
        help="run a control plane and a runner on this machine",
        description="Start an embedded control plane on this machine and a runner connected "
        "to it through the tunnel, serving MODEL_PATH (a model folder), Ollama models "
        "(--ollama) or a local OpenAI-compatible server (--openai-upstream); write the "
        "`local` context; print how to call the models. Ctrl-C stops everything.",
    )
    up.add_argument("model_path", nargs="?", default=".", help="model folder (default .)")
    add_listen_options(up)
    add_control_options(up)
    add_runner_options(up)
    add_backend_options(up)
    up.set_defaults(func=_up)


#: write ends of the children's lifeline pipes; held open for as long as this process lives
_lifelines: list[int] = []


async def _spawn(args: list[str], verbose: bool) -> tuple[asyncio.subprocess.Process, int]:
    """Start ``edge-runner ARGS --ready-fd W`` in its own session; returns (process, read fd)."""
    read_fd, write_fd = os.pipe()
    life_read, life_write = os.pipe()
    os.set_inheritable(life_write, False)
    _lifelines.append(life_write)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not verbose:
        env["EDGE_RUNNER_LOG_LEVEL"] = "WARNING"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_runner",
            *args,
            "--ready-fd",
            str(write_fd),
            "--lifeline-fd",
            str(life_read),
            pass_fds=(write_fd, life_read),
            **child_group_options(),  # POSIX: own session; Windows: own process group
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )
    finally:
        os.close(write_fd)
        os.close(life_read)
    return proc, read_fd


async def _ready(proc: asyncio.subprocess.Process, read_fd: int, what: str) -> dict[str, Any]:
    """Read the child's ready line; its exit before that is an error."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
    )
    try:
        line = await reader.readline()
    finally:
        transport.close()
    if not line:
        code = await proc.wait()
        raise ConfigError(f"the {what} exited with code {code} before it was ready (see above)")
    return dict(json.loads(line))


def _store_local_context(api_base: str, token_file: Path) -> tuple[str, str]:
    """Write the ``local`` context and put the admin token in the secret store.

    Returns:
        The secret store's name and the token (for ``up``'s own calls; never printed).
    """
    from edge_runner.config.contexts import Context, ContextsFile
    from edge_runner.config.secrets import secret_store

    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the admin token file {token_file}: {exc.strerror}; "
            "if the data dir was copied without it, remove the data dir to bootstrap again"
        ) from exc
    store = secret_store()
    if store.get(LOCAL_CONTEXT) != token:
        store.set(LOCAL_CONTEXT, token)
    contexts = ContextsFile.load()
    contexts.put(Context(LOCAL_CONTEXT, api_base, "admin"), make_current=True)
    contexts.save()
    return store.backend_name, token


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        request_child_stop(proc)  # SIGTERM; CTRL_BREAK_EVENT on Windows
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def control_argv(config: ControlConfig) -> list[str]:
    """The command line of ``up``'s control plane child (always on ``up``'s host and ports)."""
    argv = ["control", "--host", config.host, "--port", str(config.port)]
    argv += ["--grpc-port", str(config.grpc_port), "--data-dir", str(config.data_dir)]
    for name in CONTROL_SETTINGS:
        argv += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return argv


def runner_argv(config: RunnerConfig) -> list[str]:
    """The command line of ``up``'s runner child (its control plane: the ``local`` context)."""
    argv = ["runner", *source_argv(config.source, config.verbose), "--context", LOCAL_CONTEXT]
    if config.pool_size is not None:
        argv += ["--pool-size", str(config.pool_size)]
    argv += ["--grace-period", str(config.grace_period), "--transport", config.transport.value]
    if config.gpus is not None:
        argv += ["--gpus", ",".join(map(str, config.gpus)) or "none"]
    if config.ca_file is not None:
        argv += ["--ca-file", str(config.ca_file)]
    return argv


async def _supervise(control: ControlConfig, runner: RunnerConfig) -> int:
    from edge_runner.models.config import load_config
    from edge_runner.models.loader import existing_folder

    if runner.source.serves_folder:
        load_config(existing_folder(runner.source.folder))  # a bad folder fails now
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[int] = asyncio.Queue()
    install_stop_handlers(loop, lambda: signals.put_nowait(1))  # one entry per stop signal

    from edge_runner.control.datadir import DataDirBusy, running_control_plane

    control_dir = control.data_dir
    holder = running_control_plane(control_dir)
    if holder is not None:
        # A control plane already serves this data dir (another `up`, or `control`): add this
        # runner to it rather than start a second one on the same registry.
        if not holder.get("api_base") or not holder.get("admin_token_file"):
            raise DataDirBusy(control_dir, holder)  # still starting: say who, and stop
        print(
            f"edge-runner: a control plane is already running on {control_dir} "
            f"(pid {holder.get('pid', '?')}, {holder['api_base']}); adding this runner to it",
            file=sys.stderr,
            flush=True,
        )
        return await _serve_runner(runner, control_dir, None, holder, signals)

    child, fd = await _spawn(control_argv(control), runner.verbose)
    try:
        ready = await _race(_ready(child, fd, "control plane"), signals)
        if ready is None:
            return 130
        return await _serve_runner(runner, control_dir, child, ready, signals)
    finally:
        await _stop(child, 10)


async def _serve_runner(
    config: RunnerConfig,
    control_dir: Path,
    control: asyncio.subprocess.Process | None,
    ready: dict[str, Any],
    signals: asyncio.Queue[int],
) -> int:
    """Start the runner against the control plane in ``ready``; serve until stopped.

    ``control`` is our own control plane child, or None when we joined one already running.
    """
    runner: asyncio.subprocess.Process | None = None
    try:
        backend, token = _store_local_context(ready["api_base"], Path(ready["admin_token_file"]))
        runner, fd = await _spawn(runner_argv(config), config.verbose)
        runner_ready = await _race(_ready(runner, fd, "runner"), signals)
        if runner_ready is None:
            return 130
        print(
            render_banner(
                api_base=ready["api_base"],
                source=config.source.describe(),
                runner=runner_ready,
                secret_backend=backend,
                data_dir=control_dir,
            ),
            flush=True,
        )
        follow = asyncio.ensure_future(
            _follow_readiness(ready["api_base"], token, list(runner_ready.get("models", [])))
        )
        try:
            from edge_runner.service.daemons import up_notifications
            from edge_runner.service.notify import process_notifier

            children = (runner,) if control is None else (control, runner)

            def alive() -> bool:
                return all(c.returncode is None for c in children)

            status = f"serving {config.source.describe()} at {ready['api_base']}"
            async with up_notifications(process_notifier(), status, alive):  # READY=1
                return await _wait(control, runner, signals)
        finally:
            follow.cancel()
    finally:
        if runner is not None:
            await _stop(runner, config.grace_period + 5)


async def _follow_readiness(api_base: str, token: str, models: list[str]) -> None:
    """Show download and load progress of the runner's models until all are ready."""
    import httpx

    from edge_runner.cli.progress import ProgressDisplay

    display = ProgressDisplay()
    headers = {"Authorization": f"Bearer {token}"}
    waiting = set(models)
    try:
        async with httpx.AsyncClient(base_url=api_base, headers=headers, timeout=5.0) as http:
            while waiting:
                try:
                    listed = (await http.get("/v2/models")).json()["models"]
                except (httpx.HTTPError, ValueError, KeyError):
                    listed = []  # the control plane is stopping or busy: try again
                seen = {m["id"]: m for m in listed if m.get("id") in waiting}
                for model_id in list(waiting):
                    model = seen.get(model_id)
                    if model is None:  # withdrawn: the runner has said why
                        waiting.discard(model_id)
                        continue
                    display.view(model)
                    if model.get("status") == "online":
                        waiting.discard(model_id)
                await asyncio.sleep(0.25)
    finally:
        display.close()


async def _race(coro: Any, signals: asyncio.Queue[int]) -> Any:
    """Await ``coro`` unless a stop signal comes first (then return None)."""
    work = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(signals.get())
    done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    if work in done:
        stop.cancel()
        return work.result()
    work.cancel()
    return None


async def _wait(
    control: asyncio.subprocess.Process | None,
    runner: asyncio.subprocess.Process,
    signals: asyncio.Queue[int],
) -> int:
    """Run until Ctrl-C (forwarded to the runner, one SIGTERM each) or a child dies."""
    waits = {asyncio.ensure_future(runner.wait())}
    runner_exit = next(iter(waits))
    if control is not None:
        waits.add(asyncio.ensure_future(control.wait()))
    stopping = False
    while True:
        sig = asyncio.ensure_future(signals.get())
        done, _ = await asyncio.wait({*waits, sig}, return_when=asyncio.FIRST_COMPLETED)
        if sig in done:
            if not stopping:
                print("\nstopping (Ctrl-C again to cancel in-flight requests)...", file=sys.stderr)
            stopping = True
            with contextlib.suppress(ProcessLookupError):
                request_child_stop(runner)
            continue
        sig.cancel()
        if runner_exit in done:
            if stopping:
                return 0
            print(f"edge-runner: the runner exited with code {runner.returncode}", file=sys.stderr)
            return 1
        assert control is not None
        print(
            f"edge-runner: the control plane exited with code {control.returncode}", file=sys.stderr
        )
        return 1


def _up(args: argparse.Namespace) -> int:
    from edge_runner.service.notify import process_notifier

    process_notifier()  # takes NOTIFY_SOCKET out of the environment the children get

    # Both configs are checked here, so a bad option fails before anything starts.
    control = control_config(args)
    runner = runner_config(args)
    export_checkpoints(args)  # the runner child inherits it
    return asyncio.run(_supervise(control, runner))

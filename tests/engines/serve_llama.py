"""Run llama.cpp's OpenAI-compatible server (llama-cpp-python) on 127.0.0.1, on a port the OS
picks, and print ``PORT <n>`` on stdout once it listens.

``python -m llama_cpp.server`` takes a port number and cannot report the one port 0 got; this
binds the socket first and hands it to uvicorn, so the tests never race for a port.

Usage: ``python tests/engines/serve_llama.py MODEL.gguf [--n-ctx N] [--embedding] [--api-key K]``
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--alias", default="tiny", help="the model id the server answers to")
    parser.add_argument("--n-ctx", type=int, default=256)
    parser.add_argument("--embedding", action="store_true", help="serve /v1/embeddings too")
    parser.add_argument("--port", type=int, default=0, help="0: one the OS picks (the default)")
    parser.add_argument("--api-key", help="the bearer token the server requires (default: none)")
    args = parser.parse_args()
    app = create_app(
        server_settings=ServerSettings(host="127.0.0.1", port=0, api_key=args.api_key),
        model_settings=[
            ModelSettings(
                model=args.model,
                model_alias=args.alias,
                n_ctx=args.n_ctx,
                n_threads=1,
                embedding=args.embedding,
                verbose=False,
            )
        ],
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart on its old port
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # The caller reads that one line; what the engine prints later (it prints "disconnected"
    # when a client leaves) goes to /dev/null, not into a pipe nobody reads (or a closed file).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - fd 1, now /dev/null, for good
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

"""``edge-runner chat MODEL``: an interactive chat in the terminal, like ``ollama run``.

The answer streams as it comes (``/v1/chat/completions``); the conversation is kept and sent
with each turn. ``/bye`` (or Ctrl-D) leaves, ``/clear`` forgets the conversation, three double
quotes start and end a multi-line message, Ctrl-C stops an answer (or, at the prompt, says how to
leave). Any chat-capable model works: Ollama, an OpenAI-compatible upstream, or a model folder
with a ``chat`` method. With stdin not a terminal each line is one message, so it scripts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from edge_runner.client import Client
from edge_runner.errors import ApiError, ConfigError

__all__ = ["register"]

HELP = """\
Available commands:
  /bye      leave (Ctrl-D does too)
  /clear    forget the conversation so far
  /?        this help
Use three double quotes (\"\"\") to begin and end a message of several lines.
Ctrl-C stops an answer that is coming."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``chat``."""
    chat = sub.add_parser(
        "chat",
        help="chat with a model in the terminal (/bye to leave)",
        description="Chat with a chat-capable model; the answer streams as it comes and the "
        "conversation is kept until /clear or /bye.",
    )
    chat.add_argument("model", help="model id (see `edge-runner models`)")
    chat.add_argument("--system", help="a system message to start the conversation with")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    chat.add_argument("--context", help="context to use (default: the active one)")
    chat.set_defaults(func=_chat)


def _check_chat_model(client: Client, model_id: str) -> None:
    from edge_runner.errors import NotFound

    try:
        model = client.model(model_id.replace("/", "--"))
    except NotFound as exc:
        raise ConfigError(f"{exc.message}; list them with `edge-runner models`") from exc
    ops = set(model.get("openai") or ()) | ({"chat.completions"} if model.get("chat") else set())
    if "chat.completions" not in ops:
        methods = ", ".join(m.get("name", "?") for m in model.get("methods", []))
        chatty = [m["id"] for m in client.models() if m.get("chat")]
        raise ConfigError(
            f"model {model_id!r} does not chat (its methods: {methods}); call it with "
            f"`edge-runner predict`. Chat models: {', '.join(chatty) or 'none yet'}"
        )


def _messages(read: Callable[[str], str | None]) -> Iterator[str]:
    """User turns read with ``read(prompt)`` (None at the end); triple-quoted blocks join."""
    quotes = '"' * 3
    while (line := read(">>> ")) is not None:
        if not line.startswith(quotes):
            yield line
            continue
        rest = line[3:]
        if rest.rstrip().endswith(quotes):
            yield rest.rstrip()[:-3]
            continue
        block = [rest]
        while (more := read("... ")) is not None:
            if more.rstrip().endswith(quotes):
                block.append(more.rstrip()[:-3])
                break
            block.append(more)
        yield "\n".join(block).strip("\n")


def _reader(interactive: bool, out: TextIO) -> Callable[[str], str | None]:
    def read(prompt: str) -> str | None:
        try:
            return input(prompt if interactive else "")
        except EOFError:
            if interactive:
                out.write("\n")
            return None
        except KeyboardInterrupt:
            out.write("\nUse Ctrl-D or /bye to exit.\n")
            return ""

    return read


def _chat(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401 - line editing and history for input()
    out = sys.stdout
    options: dict[str, float] = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    start: list[dict[str, str]] = []
    if args.system:
        start.append({"role": "system", "content": args.system})
    with Client.from_context(args.context, timeout=None) as client:
        _check_chat_model(client, args.model)
        if interactive:
            out.write(f"Chatting with {args.model}. Send /? for help, /bye to leave.\n")
        messages = list(start)
        for text in _messages(_reader(interactive, out)):
            command = text.strip()
            if not command:
                continue
            if command in ("/bye", "/exit", "/quit"):
                return 0
            if command == "/clear":
                messages = list(start)
                out.write("Cleared the conversation.\n")
                continue
            if command in ("/?", "/help"):
                out.write(HELP + "\n")
                continue
            if command.startswith("/"):
                out.write(f"Unknown command {command.split()[0]!r}; /? lists them.\n")
                continue
            messages.append({"role": "user", "content": text})
            answer = _answer(client, args.model, messages, options, out)
            if answer is None:
                messages.pop()  # failed or interrupted: that turn did not happen
            else:
                messages.append({"role": "assistant", "content": answer})
    return 0


def _answer(
    client: Client,
    model: str,
    messages: list[dict[str, str]],
    options: dict[str, float],
    out: TextIO,
) -> str | None:
    pieces: list[str] = []
    stream = client.chat_stream(model, messages, **options)
    try:
        for piece in stream:
            pieces.append(piece)
            out.write(piece)
            out.flush()
    except KeyboardInterrupt:
        stream.close()  # closes the request: the control plane cancels the task
        out.write("\n[stopped]\n")
        return None
    except ApiError as exc:
        if pieces:
            out.write("\n")
        print(f"error: {exc.message}", file=sys.stderr)
        return None
    out.write("\n\n" if sys.stdin.isatty() else "\n")
    out.flush()
    return "".join(pieces)

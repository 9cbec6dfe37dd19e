"""``edge-runner stream MODEL [METHOD] < lines``: call a stream-in method from the shell.

Each line of stdin is one input item, read as the model takes them (so a person typing, or
``tail -f``, feeds the model live): the line's text when the stream's items are text (``str``,
``Text``), otherwise the line parsed as JSON (``--input json`` forces that). Each output is
printed as it arrives, one per line: text as it is, anything else as JSON (``-o jsonl``: every
output as one JSON line). The method's other arguments come as ``--NAME VALUE`` or ``--json``,
as for ``predict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from edge_runner.cli.calls import method_signature, parse_method_args
from edge_runner.cli.media_args import save_binaries
from edge_runner.client import Client
from edge_runner.errors import ConfigError, InvalidArgument
from edge_runner.models.signatures import MethodKind, MethodSignature
from edge_runner.views import JSONValue

__all__ = ["read_items", "register"]

#: item types whose lines are taken as text
_TEXT_ITEMS = frozenset({"str", "Text"})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stream`` command."""
    p = sub.add_parser(
        "stream",
        help="call a stream-in method: one input per line of stdin, outputs as they come",
        description="Call a method that takes an input stream (`items: Iterator[T]`). Each "
        "line of stdin is one input, sent as the model takes it: the line's text when the "
        "items are text, else the line as JSON. Outputs are printed as they arrive, one per "
        "line. The method's other arguments: --NAME VALUE (typed by its signature) or "
        "--json '{...}'.",
    )
    p.add_argument("model", help="model id")
    p.add_argument(
        "method", nargs="?", default="stream", help="the stream-in method (default: stream)"
    )
    p.add_argument("--json", dest="json_args", help="the other arguments as one JSON object")
    p.add_argument(
        "--input",
        choices=("auto", "text", "json"),
        default="auto",
        help="how to read each line: auto (text for str/Text items, else JSON), text, or json",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("text", "jsonl"),
        default="text",
        help="text: strings as they are, anything else as JSON; jsonl: one JSON value a line",
    )
    p.add_argument(
        "--save",
        metavar="DIR",
        type=Path,
        help="write binary outputs (images, audio, bytes) to files in DIR and print their paths",
    )
    p.add_argument("--context", help="context to use (default: the active one)")
    p.set_defaults(func=_stream, accepts_extra=True)


def _item_base(signature: MethodSignature) -> str:
    """The base type of the stream's items (``str``, ``Image``, ``dict``...)."""
    for param in signature.params:
        spec = param.spec
        if spec.base == "Iterator" and spec.args:
            return spec.args[0].base
    return ""


def read_items(lines: TextIO, as_text: bool, where: str = "stdin") -> Iterator[JSONValue]:
    """The input items of ``lines``, one per line, read lazily (a line is sent as it comes).

    Raises:
        InvalidArgument: a line that is not JSON (when items are read as JSON); it names the
            line, and the call is cancelled.
    """
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if as_text:
            yield line
            continue
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise InvalidArgument(
                f"{where}, line {number}: not valid JSON ({exc}); these items are read as JSON "
                "(--input text sends lines as text)"
            ) from exc


def _stream(args: argparse.Namespace) -> int:
    with Client.from_context(args.context, timeout=None) as client:
        signature = method_signature(client, args.model, args.method, stream_in=True)
        if signature.kind is not MethodKind.BIDI:
            command = "predict" if signature.kind is MethodKind.UNARY else "generate"
            raise ConfigError(
                f"{args.model}.{args.method} takes no input stream; call it with "
                f"`edge-runner {command} {args.model} --method {args.method}`"
            )
        kwargs = parse_method_args(signature, args.extra, args.json_args)
        as_text = args.input == "text" or (
            args.input == "auto" and _item_base(signature) in _TEXT_ITEMS
        )
        inputs = read_items(sys.stdin, as_text)
        for index, output in enumerate(client.stream(args.model, args.method, inputs, **kwargs)):
            item = output
            if args.save is not None:
                item = save_binaries(item, args.save, f"output-{index}")
            if args.output == "jsonl" or not isinstance(item, str):
                sys.stdout.write(json.dumps(item) + "\n")
            else:
                sys.stdout.write(item + "\n")
            sys.stdout.flush()
    return 0

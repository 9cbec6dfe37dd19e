"""Client commands: ``predict``, ``generate``, ``models``, ``runners``, ``replicas``.

Method arguments come as ``--NAME VALUE`` pairs parsed by the method's signature types (int,
float, bool, str; lists and dicts as JSON), or all at once with ``--json '{...}'``;
``predict --batch FILE`` reads one JSON object of arguments per line and sends them as a batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from edge_runner.cli.media_args import media_value, save_binaries
from edge_runner.cli.output import add_output_option, ago, print_json, print_table
from edge_runner.client import Client
from edge_runner.errors import ConfigError, InvalidArgument
from edge_runner.models.signatures import MethodSignature, parse_cli_value
from edge_runner.telemetry.gpu import gpu_share
from edge_runner.views import JSONObject, JSONValue, ModelView, RunnerGpuView

__all__ = ["method_signature", "parse_method_args", "register"]


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", help="context to use (default: the active one)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client commands."""
    for name, default_method, helptext in (
        ("predict", "predict", "call a model method and print its answer"),
        ("generate", "generate", "call a streaming method and print chunks as they come"),
    ):
        p = sub.add_parser(
            name,
            help=helptext,
            description=f"{helptext[0].upper()}{helptext[1:]}. Method arguments: --NAME VALUE "
            "(typed by the method's signature) or --json '{...}'.",
        )
        p.add_argument("model", help="model id")
        p.add_argument(
            "--method", default=default_method, help=f"method (default {default_method})"
        )
        p.add_argument("--json", dest="json_args", help="all arguments as one JSON object")
        p.add_argument(
            "--save",
            metavar="DIR",
            type=Path,
            help="write binary results (images, audio, bytes) to files in DIR and print their "
            "paths instead of base64",
        )
        if name == "predict":
            p.add_argument(
                "--batch",
                metavar="FILE",
                help="run a batch: one JSON object of arguments per line of FILE (- for "
                "stdin), run in parallel; prints one JSON line per input, in order "
                '({"index", "output"} or {"index", "error"}), exit code 1 if any failed. '
                "--NAME VALUE and --json apply to every line",
            )
        add_output_option(p)
        _client_options(p)
        p.set_defaults(func=_predict if name == "predict" else _generate, accepts_extra=True)
    models = sub.add_parser("models", help="list the models the control plane knows")
    add_output_option(models)
    _client_options(models)
    models.set_defaults(func=_models)
    runners = sub.add_parser("runners", help="list your runners")
    add_output_option(runners)
    _client_options(runners)
    runners.set_defaults(func=_runners)

    replicas = sub.add_parser(
        "replicas",
        help="list the control plane's live replicas",
        description="List the live control-plane replicas behind this context's address (one "
        "for an embedded control plane): runners each holds, tasks each fronts, and whether "
        "its registry and task bus answer.",
    )
    add_output_option(replicas)
    _client_options(replicas)
    replicas.set_defaults(func=_replicas)


def parse_method_args(
    signature: MethodSignature, extra: list[str], json_args: str | None
) -> JSONObject:
    """Turn ``--NAME VALUE`` pairs (and ``--json``) into keyword arguments for ``signature``."""
    args: JSONObject = {}
    if json_args:
        try:
            loaded = json.loads(json_args)
        except ValueError as exc:
            raise InvalidArgument(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidArgument("--json must be a JSON object of keyword arguments")
        args.update(loaded)
    params = {p.name: p for p in signature.params}
    known = ", ".join(f"--{name}" for name in params) or "none"
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or len(token) == 2:
            raise InvalidArgument(f"unexpected {token!r}; arguments look like --NAME VALUE")
        name, eq, value = token[2:].partition("=")
        name = name.replace("-", "_")
        param = params.get(name)
        if param is None:
            raise InvalidArgument(
                f"{signature.name}() has no argument {name!r}; its arguments: {known}", name
            )
        if not eq:
            following = extra[i + 1] if i + 1 < len(extra) else None
            if param.base_type == "bool" and (following is None or following.startswith("--")):
                value = "true"
            elif following is None:
                raise InvalidArgument(f"--{name} needs a value", name)
            else:
                value = following
                i += 1
        media = media_value(param, value)  # @FILE or a URL for Image, bytes, Text...
        args[name] = parse_cli_value(param, value) if media is None else media
        i += 1
    return args


def method_signature(
    client: Client, model_id: str, method: str, *, stream_in: bool = False
) -> MethodSignature:
    """The signature of ``model_id``'s ``method``, as the control plane lists it.

    Raises:
        ConfigError: no such method; or one that takes an input stream, unless ``stream_in``
            (then only ``edge-runner stream`` can call it, and the message says so).
    """
    model = client.model(model_id)
    for doc in model.get("methods", []):
        if doc.get("name") == method:
            signature = MethodSignature.from_dict(doc)
            if signature.kind.value == "bidi" and not stream_in:
                raise ConfigError(
                    f"{model_id}.{method} takes an input stream; call it with "
                    f"`edge-runner stream {model_id} {method} < lines` (one input a line)"
                )
            return signature
    names = ", ".join(m.get("name", "?") for m in model.get("methods", []))
    raise ConfigError(f"model {model_id!r} has no method {method!r}; its methods: {names}")


def _predict(args: argparse.Namespace) -> int:
    with Client.from_context(args.context, timeout=None) as client:
        signature = method_signature(client, args.model, args.method)
        kwargs = parse_method_args(signature, args.extra, args.json_args)
        if args.batch is not None:
            return _predict_batch(client, args, signature, kwargs)
        if signature.kind.value != "unary":
            printer = _StreamPrinter(args.output, args.save)
            for item in client.generate(args.model, args.method, **kwargs):
                printer(item)
            printer.end()
            return 0
        output = client.predict(args.model, args.method, **kwargs)
    if args.save is not None:
        output = save_binaries(output, args.save)
    if args.output == "json" or not isinstance(output, str):
        print_json(output)
    else:
        print(output)
    return 0


def _predict_batch(
    client: Client, args: argparse.Namespace, signature: MethodSignature, common: JSONObject
) -> int:
    """``predict --batch``: one JSON line per result, in input order; 1 when any failed."""
    if signature.kind.value != "unary":
        raise ConfigError(
            f"{args.model}.{args.method} streams its output, and --batch is for unary methods; "
            f"call `edge-runner generate {args.model}` once per input instead"
        )
    inputs = [{**common, **line} for line in _read_batch(args.batch)]
    failed = 0
    for result in client.predict_batch(args.model, inputs, args.method):
        line: JSONObject = {"index": result.index}
        if result.error is None:
            output = result.output
            if args.save is not None:
                output = save_binaries(output, args.save, f"output-{result.index}")
            line["output"] = output
        else:
            failed += 1
            line["error"] = {"code": result.error.code, "message": result.error.message}
        sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    if failed:
        print(
            f"{failed} of {len(inputs)} inputs failed (their lines name the error)", file=sys.stderr
        )
    return 1 if failed else 0


def _read_batch(name: str) -> list[JSONObject]:
    """The argument objects of a JSON Lines file (``-``: stdin); blank lines are skipped."""
    where = "stdin" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --batch {where}: {exc}") from exc
    inputs: list[JSONObject] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"--batch {where}, line {number}: not valid JSON: {exc}") from exc
        if not isinstance(item, dict):
            raise InvalidArgument(
                f"--batch {where}, line {number}: each line must be a JSON object of keyword "
                f'arguments, like {{"text": "hi"}}'
            )
        inputs.append(item)
    if not inputs:
        raise InvalidArgument(f"--batch {where} has no inputs: write one JSON object per line")
    return inputs


class _StreamPrinter:
    """Prints streamed outputs as they come: text as-is, anything else as JSON lines."""

    def __init__(self, output: str, save: Path | None = None) -> None:
        self._json = output == "json"
        self._last = "\n"
        self._save = save
        self._count = 0

    def __call__(self, item: JSONValue) -> None:
        if self._save is not None:
            item = save_binaries(item, self._save, f"output-{self._count}")
            self._count += 1
        text = json.dumps(item) + "\n" if self._json or not isinstance(item, str) else item
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self._last = text[-1]

    def end(self) -> None:
        """End the output with a newline."""
        if self._last != "\n":
            sys.stdout.write("\n")


def _generate(args: argparse.Namespace) -> int:
    with Client.from_context(args.context, timeout=None) as client:
        signature = method_signature(client, args.model, args.method)
        kwargs = parse_method_args(signature, args.extra, args.json_args)
        printer = _StreamPrinter(args.output, args.save)
        if signature.kind.value == "unary":
            printer(client.predict(args.model, args.method, **kwargs))
        else:
            for item in client.generate(args.model, args.method, **kwargs):
                printer(item)
    printer.end()
    return 0


_Item = TypeVar("_Item", bound=Mapping[str, object])


def _list(
    args: argparse.Namespace,
    fetch: Callable[[Client], list[_Item]],
    headers: tuple[str, ...],
    row: Callable[[_Item], tuple[object, ...]],
) -> int:
    with Client.from_context(args.context) as client:
        items = fetch(client)
    if args.output == "json":
        print_json(items)
    else:
        print_table(headers, [row(item) for item in items])
    return 0


def _models(args: argparse.Namespace) -> int:
    return _list(
        args,
        Client.models,
        ("MODEL", "STATUS", "RUNNERS", "BACKEND", "METHODS"),
        lambda m: (
            m["id"],
            _status_text(m),
            m.get("runners", 0),
            m.get("backend", ""),
            ", ".join(method["name"] for method in m.get("methods", [])),
        ),
    )


def _gpus_text(gpus: list[RunnerGpuView]) -> str:
    """``2/8 (55 %)``: the runner's GPUs of the machine's, and their mean utilisation."""
    if not gpus:
        return "-"
    mine, total, util = gpu_share(gpus)
    load = f" ({round(util)} %)" if util is not None else ""
    return f"{mine}/{total}{load}"


def _status_text(model: ModelView) -> str:
    status = str(model.get("status", "?"))
    if status == "loading" and model.get("progress"):
        return f"loading {int(float(model['progress']) * 100)} %"
    return status


def _replicas(args: argparse.Namespace) -> int:
    return _list(
        args,
        Client.replicas,
        ("REPLICA", "API", "TUNNEL", "RUNNERS", "TASKS", "REGISTRY", "BUS", "UP"),
        lambda r: (
            r["id"] + (" *" if r.get("self") else ""),
            r.get("api_base", ""),
            r.get("tunnel", ""),
            r.get("runners", 0),
            r.get("tasks", 0),
            r.get("registry", "?"),
            r.get("bus", "?"),
            ago(float(r.get("started_at", 0))),
        ),
    )


def _runners(args: argparse.Namespace) -> int:
    return _list(
        args,
        Client.runners,
        ("RUNNER", "HOST", "STATUS", "MODELS", "BUSY", "GPUS", "SEEN"),
        lambda r: (
            r["id"],
            r.get("hostname", ""),
            r.get("status", "?"),
            ", ".join(r.get("models", [])),
            f"{r.get('busy', 0)}/{r.get('pool_size', 0)}",
            _gpus_text(r.get("gpus") or []),
            ago(float(r.get("last_seen", 0))),
        ),
    )

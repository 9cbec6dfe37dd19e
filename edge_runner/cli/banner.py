"""The banner ``up`` prints: where things are, the model's methods, and snippets to paste.

Snippets are generated from the method signatures and read the token from ``$EDGE_RUNNER_PAT``;
a secret is never printed.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from edge_runner._version import __version__
from edge_runner.models.signatures import MethodKind, MethodSignature, Param
from edge_runner.views import JSONObject, JSONValue

__all__ = ["example_value", "render_banner"]


def example_value(param: Param) -> JSONValue:
    """A plausible argument value for a snippet: the default, else one by type."""
    if not param.required:
        return param.default
    examples: dict[str, JSONValue] = {
        "str": "hi",
        "int": 1,
        "float": 0.5,
        "bool": True,
        "list": [{"role": "user", "content": "hi"}] if param.name == "messages" else [],
        "dict": {},
    }
    return examples.get(param.base_type, "hi")


def _required_args(sig: MethodSignature) -> JSONObject:
    return {p.name: example_value(p) for p in sig.params if p.required}


def _cli_args(sig: MethodSignature) -> str:
    args = _required_args(sig)
    simple = all(isinstance(v, str | int | float | bool) for v in args.values())
    if simple:
        return " ".join(
            f"--{k} {shlex.quote(str(v).lower() if isinstance(v, bool) else str(v))}"
            for k, v in args.items()
        )
    return f"--json {shlex.quote(json.dumps(args))}"


def _pick(sigs: list[MethodSignature], kind: MethodKind, preferred: str) -> MethodSignature | None:
    matching = [s for s in sigs if s.kind is kind]
    for sig in matching:
        if sig.name == preferred:
            return sig
    return matching[0] if matching else None


def render_banner(
    *,
    api_base: str,
    source: str,
    runner: dict[str, Any],
    secret_backend: str,
    data_dir: Path,
) -> str:
    """The text ``edge-runner up`` prints once the runner is registered.

    Args:
        api_base: the control plane's address.
        source: what the runner serves, for a person ("examples/hello", "Ollama at ...").
        runner: the runner's ready line (its models, the first one's methods, chat, pool).
        secret_backend: where the token went (``keyring:...`` or ``file:DIR``).
        data_dir: the control plane's data dir.
    """
    sigs = [MethodSignature.from_dict(m) for m in runner.get("methods", [])]
    models = list(runner.get("models") or [runner.get("model_id")])
    model_id = str(models[0])
    token_place = (
        "the OS keyring"
        if secret_backend.startswith("keyring")
        else secret_backend.split(":", 1)[-1]
    )
    served = ", ".join(map(str, models))
    lines = [
        f"edge-runner {__version__} is up",
        f"  control plane  {api_base}   (data: {data_dir})",
        f"  runner         {runner.get('runner_id')} serving {served} from {source} "
        f"({runner.get('pool_size')} workers, connected through the tunnel)",
        f"  context        local (active); its token is in {token_place}",
        "",
        f"Methods of {model_id}{' (and the others)' if len(models) > 1 else ''}:",
        *(f"  {sig.render()}" for sig in sigs),
        "",
        "Try it from another terminal:",
        '  eval "$(edge-runner context env)"      # sets EDGE_RUNNER_API_BASE and EDGE_RUNNER_PAT',
    ]
    unary = _pick(sigs, MethodKind.UNARY, "predict")
    stream = _pick(sigs, MethodKind.SERVER_STREAM, "generate")
    if unary is not None:
        method = "" if unary.name == "predict" else f" --method {unary.name}"
        lines.append(f"  edge-runner predict {model_id}{method} {_cli_args(unary)}".rstrip())
    if stream is not None:
        method = "" if stream.name == "generate" else f" --method {stream.name}"
        lines.append(f"  edge-runner generate {model_id}{method} {_cli_args(stream)}".rstrip())
    stream_in = _pick(sigs, MethodKind.BIDI, "stream")
    if stream_in is not None:
        method = "" if stream_in.name == "stream" else f" {stream_in.name}"
        lines.append(
            f"  printf 'Ada\\nBob\\n' | edge-runner stream {model_id}{method}   # a line each"
        )
    if runner.get("chat"):
        lines.append(f"  edge-runner chat {model_id}                # /bye to leave")
    target = unary or stream
    if target is not None:
        lines += [
            '  curl -sN -H "Authorization: Bearer $EDGE_RUNNER_PAT" '
            "-H 'Content-Type: application/json' \\",
            f"       -d {shlex.quote(json.dumps(_required_args(target)))} "
            f"{api_base}/v2/models/{model_id}/{target.name}",
        ]
    if runner.get("chat"):
        lines += [
            "",
            "OpenAI SDK (pip install openai):",
            "  import os",
            "  from openai import OpenAI",
            f'  client = OpenAI(base_url="{api_base}/v1", api_key=os.environ["EDGE_RUNNER_PAT"])',
            f'  reply = client.chat.completions.create(model="{model_id}", '
            'messages=[{"role": "user", "content": "hi"}])',
            "  print(reply.choices[0].message.content)",
        ]
    lines += ["", "Press Ctrl-C to stop."]
    return "\n".join(lines)

"""Method signatures on the wire: conversions between our dataclasses and tunnel protobufs."""

from __future__ import annotations

import json

from edge_runner.models.signatures import MethodKind, MethodSignature, Param, signature_hash
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import ModelSpecView

__all__ = ["model_spec", "signatures_from_spec", "spec_to_dict"]

_KIND_TO_PB = {
    MethodKind.UNARY: pb.UNARY,
    MethodKind.SERVER_STREAM: pb.SERVER_STREAM,
    MethodKind.BIDI: pb.BIDI,
}
_KIND_FROM_PB = {value: key for key, value in _KIND_TO_PB.items()}


def model_spec(
    model_id: str,
    signatures: tuple[MethodSignature, ...],
    *,
    backend: str,
    chat: bool,
    model_type_id: str = "",
    openai: tuple[str, ...] = (),
) -> pb.ModelSpec:
    """Build the ModelSpec a runner registers in its Hello.

    ``openai`` lists the OpenAI-compatible operations the backend answers (``chat.completions``
    is implied by ``chat``).
    """
    ops = sorted({*openai, *(("chat.completions",) if chat else ())})
    methods = [
        pb.MethodSpec(
            name=sig.name,
            kind=_KIND_TO_PB[sig.kind],
            params=[_param_spec(p) for p in sig.params],
            returns=sig.returns,
            description=sig.description,
        )
        for sig in signatures
    ]
    return pb.ModelSpec(
        model_id=model_id,
        methods=methods,
        signature_hash=signature_hash(signatures),
        chat=chat,
        backend=backend,
        model_type_id=model_type_id,
        openai=ops,
    )


def _param_spec(p: Param) -> pb.ParamSpec:
    return pb.ParamSpec(
        name=p.name,
        type=p.type,
        required=p.required,
        default_json="" if p.required else json.dumps(p.default),
        description=p.description,
        choices_json="" if p.choices is None else json.dumps(list(p.choices)),
        min_value=p.min_value,
        max_value=p.max_value,
    )


def _param(p: pb.ParamSpec) -> Param:
    return Param(
        name=p.name,
        type=p.type,
        required=p.required,
        default=None if p.required or not p.default_json else json.loads(p.default_json),
        description=p.description,
        choices=tuple(json.loads(p.choices_json)) if p.choices_json else None,
        min_value=p.min_value if p.HasField("min_value") else None,
        max_value=p.max_value if p.HasField("max_value") else None,
    )


def signatures_from_spec(spec: pb.ModelSpec) -> tuple[MethodSignature, ...]:
    """Rebuild method signatures from a registered ModelSpec."""
    return tuple(
        MethodSignature(
            name=m.name,
            kind=_KIND_FROM_PB.get(m.kind, MethodKind.UNARY),
            params=tuple(_param(p) for p in m.params),
            returns=m.returns,
            description=m.description,
        )
        for m in spec.methods
    )


def spec_to_dict(spec: pb.ModelSpec) -> ModelSpecView:
    """The JSON form of a ModelSpec, as the HTTP API shows and the registry stores it."""
    return {
        "id": spec.model_id,
        "backend": spec.backend,
        "model_type_id": spec.model_type_id,
        "chat": spec.chat,
        "openai": list(spec.openai),
        "signature_hash": spec.signature_hash,
        "methods": [sig.to_dict() for sig in signatures_from_spec(spec)],
    }

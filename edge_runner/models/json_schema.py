"""JSON Schema (2020-12) for type specs, so the OpenAPI document and MCP tools describe the
data types' JSON forms (``docs/data-types.md``) the way :func:`~.json_types.check_value`
checks them. Pure data, no I/O.
"""

from __future__ import annotations

from typing import Any

from edge_runner.models.json_types import TypeSpec
from edge_runner.models.signatures import Param

__all__ = ["DATA_TYPE_SCHEMAS", "json_schema", "param_schema"]

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_NUM: Schema = {"type": "number"}
_BASE64: Schema = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": "^[A-Za-z0-9+/]*={0,2}$",
    "description": "standard base64 (RFC 4648), padded",
}


def _closed(properties: dict[str, Schema], description: str, **extra: Any) -> Schema:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _media(kind: str) -> Schema:
    return _closed(
        {"base64": _BASE64, "url": {"type": "string", "format": "uri"}},
        f"{kind} by its bytes (base64) and/or a URL",
        examples=[{"base64": "aGk="}, {"url": "https://example.com/a"}],
    )


_IMAGE = _media("an image (PNG, JPEG, ...)")
_CONCEPT = _closed(
    {"id": _STR, "name": _STR, "value": _NUM},
    "a label with a score (value defaults to 1.0, id to one derived from the name)",
    required=["name"],
    examples=[{"id": "cat", "name": "cat", "value": 0.97}],
)
_REGION = _closed(
    {
        "id": _STR,
        "box": {
            "type": "array",
            "items": _NUM,
            "minItems": 4,
            "maxItems": 4,
            "description": "[x1, y1, x2, y2]: left, top, right, bottom",
        },
        "concepts": {"type": "array", "items": _CONCEPT},
        "mask": _IMAGE,
        "point": {"type": "array", "items": _NUM, "minItems": 3, "maxItems": 3},
        "track_id": _STR,
        "text": _STR,
    },
    "a part of an image: a box, mask or point with concepts and text (all optional)",
    examples=[{"id": "r1", "box": [0.1, 0.2, 0.5, 0.6], "concepts": [{"name": "cat"}]}],
)

#: The schema of each data type's JSON form, by its spec name.
DATA_TYPE_SCHEMAS: dict[str, Schema] = {
    "bytes": _closed({"base64": _BASE64}, "bytes, base64-encoded", required=["base64"]),
    "Text": _closed(
        {"text": _STR, "url": {"type": "string", "format": "uri"}},
        "text, inline and/or by URL",
        examples=[{"text": "hello"}],
    ),
    "Image": _IMAGE,
    "Audio": _media("audio (WAV, MP3, ...)"),
    "Video": _media("a video (MP4, AVI, ...)"),
    "Concept": _CONCEPT,
    "Region": _REGION,
    "Frame": _closed(
        {
            "time": {"type": "number", "description": "seconds from the start"},
            "index": {"type": "integer"},
            "image": _IMAGE,
            "regions": {"type": "array", "items": _REGION},
        },
        "a video frame (all fields optional)",
    ),
}

_SIMPLE: dict[str, Schema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "any": {},
}


def json_schema(spec: TypeSpec) -> Schema:
    """The JSON Schema of the values ``spec`` accepts (an ``Iterator`` as the array of its
    items)."""
    schema = _schema(spec)
    if spec.optional and schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def param_schema(param: Param) -> Schema:
    """The JSON Schema of a parameter: its type's, with its description, ``enum`` for its
    choices and ``minimum``/``maximum`` for its range (on the items of a list of numbers)."""
    schema = json_schema(param.spec)
    if param.description:
        schema["description"] = param.description
    if param.choices is not None:
        choices = list(param.choices)
        schema["enum"] = [*choices, None] if param.spec.optional else choices
    bounds = {
        key: value
        for key, value in (("minimum", param.min_value), ("maximum", param.max_value))
        if value is not None
    }
    if bounds:
        _bound(schema, bounds)
    return schema


def _bound(schema: Schema, bounds: Schema) -> None:
    """Put ``bounds`` on the numbers ``schema`` accepts (in place)."""
    if schema.get("type") in ("number", "integer"):
        schema.update(bounds)
    elif schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema["items"] = dict(schema["items"])
        _bound(schema["items"], bounds)
    for i, option in enumerate(schema.get("anyOf", [])):
        schema["anyOf"][i] = dict(option)
        _bound(schema["anyOf"][i], bounds)


def _schema(spec: TypeSpec) -> Schema:
    base = spec.base
    if base in DATA_TYPE_SCHEMAS:
        return dict(DATA_TYPE_SCHEMAS[base])
    if base in ("list", "Iterator"):
        return {"type": "array", **({"items": json_schema(spec.args[0])} if spec.args else {})}
    if base == "dict":
        extra = {"additionalProperties": json_schema(spec.args[1])} if spec.args else {}
        return {"type": "object", **extra}
    if base == "tuple":
        n = len(spec.args)
        return {
            "type": "array",
            "prefixItems": [json_schema(a) for a in spec.args],
            "minItems": n,
            "maxItems": n,
        }
    if base == "NamedFields":
        pairs = list(zip(spec.fields, spec.args, strict=True))
        return {
            "type": "object",
            "properties": {name: json_schema(a) for name, a in pairs},
            "required": [name for name, a in pairs if not a.optional],
            "additionalProperties": False,
        }
    return dict(_SIMPLE.get(base, {}))

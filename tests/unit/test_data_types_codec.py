"""The data types in signatures: hints to specs and back through the text grammar, the control
plane's check, and the runner's decode/encode (with a property test that every type
round-trips)."""

from __future__ import annotations

import json
import re
from typing import Any, Optional

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runner.errors import InvalidArgument, TypeMismatch
from edge_runner.models.codec import decode_value, encode_value, json_default, to_jsonable
from edge_runner.models.data_types import (
    Audio,
    Concept,
    Frame,
    Image,
    NamedFields,
    Region,
    Text,
    Video,
)
from edge_runner.models.json_schema import DATA_TYPE_SCHEMAS, json_schema
from edge_runner.models.json_types import TypeSpec, check_value, parse_spec, spec_from_hint
from edge_runner.models.signatures import (
    MethodKind,
    MethodSignature,
    Param,
    parse_cli_value,
    validate_arguments,
)
from edge_runner.models.signatures import signature_of as _signature_of
from tests.fuzzing import examples

Doc = NamedFields(author=str, pages=int, keywords=list[str])


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        (bytes, "bytes"),
        (Image, "Image"),
        (Optional[Image], "Image | None"),  # noqa: UP045 - the spelling folders use
        (list[Region], "list[Region]"),
        (dict[str, Concept], "dict[str, Concept]"),
        (tuple[list[Text], dict[str, float]], "tuple[list[Text], dict[str, float]]"),
        (tuple[int, ...], "list[int]"),
        (Doc, "NamedFields[author: str, pages: int, keywords: list[str]]"),
        (
            list[NamedFields(a=Frame, b=Audio | None)],
            "list[NamedFields[a: Frame, b: Audio | None]]",
        ),
    ],
)
def test_hints_become_specs_and_text_parses_back(hint: object, text: str) -> None:
    """Data-type hints give the spec text, and parse_spec reads that text back to the spec."""
    spec = spec_from_hint(hint)
    assert str(spec) == text
    assert parse_spec(text) == spec


@pytest.mark.parametrize(
    "text", ["NamedFields[a]", "NamedFields[a: int, a: str]", "NamedFields[1a: int]", "tuple[]"]
)
def test_malformed_spec_text_is_refused(text: str) -> None:
    """A NamedFields or tuple text that breaks the grammar is a ValueError."""
    with pytest.raises(ValueError):
        parse_spec(text)


_LABEL = Text("x")


class _M:
    def describe(self, image: Image, doc: Doc, label: Text = _LABEL) -> tuple[int, Region]:
        return (0, Region())


def test_signature_shows_data_types_and_encodes_defaults() -> None:
    """A method with data types renders them; a Text default is stored in its JSON form."""
    sig = _signature_of(_M.describe)
    assert sig.render() == (
        "describe(image: Image, doc: NamedFields[author: str, pages: int, keywords: list[str]], "
        "label: Text = {'text': 'x'}) -> tuple[int, Region]"
    )


def _arg(type_text: str, value: object) -> object:
    sig = MethodSignature("m", MethodKind.UNARY, (Param("x", type_text, required=True),), "str")
    return validate_arguments(sig, {"x": value})["x"]


@pytest.mark.parametrize(
    ("type_text", "value", "message"),
    [
        ("Image", {"base64": "YWJ"}, "argument 'x' must be Image, got malformed base64 at x"),
        ("Image", {"bytes": "YWJj"}, "got an unknown field at x['bytes']"),
        ("list[Region]", [{"mask": {"base64": "*"}}], "at x[0]: Image's 'base64' is not standard"),
        ("bytes", {"base64": "%%%%"}, "got malformed base64 at x['base64']"),
        ("bytes", "YWJj", 'got str: bytes are {"base64": "..."}'),
        ("list[Image]", [{"base64": "YWJj"}, 3], "got int at x[1]: Image is a JSON object"),
        ("list[Concept]", [{"name": "a"}, {"name": 2}], "at x[1]: Concept needs a string"),
        ("tuple[int, str]", [1], "got a list of 1: expected 2 items"),
        ("NamedFields[a: int]", {"a": 1, "b": 2}, "got an unknown field at x['b']"),
        ("NamedFields[a: int, b: str]", {"a": 1}, "at x['b']: field 'b' is required"),
        ("NamedFields[a: int]", {"a": "1"}, "got str at x['a']"),
    ],
)
def test_control_plane_check_names_the_bad_part(
    type_text: str, value: object, message: str
) -> None:
    """validate_arguments refuses a bad data-type value with InvalidArgument naming where."""
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        _arg(type_text, value)


def test_size_cap_is_judged_before_decoding() -> None:
    """An image over max_media_bytes is refused from its base64 length; one at the cap passes."""
    spec = parse_spec("Image")
    assert decode_value(spec, {"base64": "YWJj"}, max_media_bytes=3) == Image(bytes=b"abc")
    with pytest.raises(TypeMismatch, match="over the 3-byte limit"):
        decode_value(spec, {"base64": "YWJjZA=="}, max_media_bytes=3)
    with pytest.raises(TypeMismatch, match="over the 3-byte limit"):
        decode_value(parse_spec("Region"), {"mask": {"base64": "YWJjZGVm"}}, max_media_bytes=3)
    with pytest.raises(TypeMismatch, match="over the 3-byte limit"):
        decode_value(parse_spec("bytes"), {"base64": "YWJjZGVm"}, max_media_bytes=3)


def test_results_are_encoded_by_type() -> None:
    """Results: data types by their JSON forms, bytes as base64, tuples as lists, NamedFields
    as objects; a str where Text is declared becomes a Text."""
    spec = parse_spec("NamedFields[summary: Text, raw: bytes, pair: tuple[int, Concept]]")
    out = NamedFields(summary="s", raw=b"ab", pair=(1, Concept("c")))
    assert to_jsonable(spec, out) == {
        "summary": {"text": "s"},
        "raw": {"base64": "YWI="},
        "pair": [1, {"id": "c", "name": "c", "value": 1.0}],
    }
    plain = {"a": [1, 2.5, None, "x"]}
    assert encode_value(parse_spec("dict"), plain) is plain  # plain JSON passes through
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        json.dumps({1, 2}, default=json_default)


def test_cli_values_for_data_types() -> None:
    """On the command line a Text takes plain text; the other data types take their JSON."""
    assert parse_cli_value(Param("t", "Text", True), "hello") == {"text": "hello"}
    assert parse_cli_value(Param("t", "Text", True), '{"url": "https://e.com"}') == {
        "url": "https://e.com"
    }
    assert parse_cli_value(Param("i", "Image", True), '{"base64": "YWJj"}') == {"base64": "YWJj"}
    with pytest.raises(InvalidArgument, match="written as JSON"):
        parse_cli_value(Param("i", "Image", True), "cat.jpg")


# -- property: every type round-trips through the codec ---------------------------------------

_text = st.text(max_size=20)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
_urls = st.sampled_from(["", "https://example.com/a", "http://127.0.0.1:8/x?y=1"])
_blobs = st.binary(max_size=64)


def _media(cls: type[Any]) -> st.SearchStrategy[Any]:
    return st.builds(cls, bytes=_blobs, url=_urls)


_concepts = st.builds(Concept, name=_text, value=_floats, id=st.one_of(st.none(), _text))
_regions = st.builds(
    Region,
    box=st.one_of(st.none(), st.lists(_floats, min_size=4, max_size=4)),
    concepts=st.lists(_concepts, max_size=3),
    mask=st.one_of(st.none(), _media(Image)),
    point=st.one_of(st.none(), st.tuples(_floats, _floats, _floats)),
    track_id=_text,
    text=_text,
    id=_text,
)
_frames = st.builds(
    Frame,
    image=_media(Image),
    regions=st.lists(_regions, max_size=2),
    time=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    index=st.integers(min_value=0, max_value=2**31),
)

#: (spec text, strategy of Python values of that type)
_TYPED: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("bytes", _blobs),
    ("Text", st.builds(Text, text=st.one_of(st.none(), _text), url=_urls)),
    ("Image", _media(Image)),
    ("Audio", _media(Audio)),
    ("Video", _media(Video)),
    ("Concept", _concepts),
    ("Region", _regions),
    ("Frame", _frames),
]


@st.composite
def _typed_values(draw: st.DrawFn, depth: int = 2) -> tuple[str, Any]:
    if depth == 0:
        return draw(st.sampled_from(_TYPED).flatmap(lambda t: st.tuples(st.just(t[0]), t[1])))
    kind = draw(st.sampled_from(["leaf", "list", "dict", "tuple", "fields", "optional"]))
    if kind == "leaf":
        return draw(_typed_values(0))
    if kind == "optional":
        text, value = draw(_typed_values(depth - 1))
        return f"{text} | None", draw(st.sampled_from([value, None]))
    if kind == "list":
        text, value = draw(_typed_values(depth - 1))
        return f"list[{text}]", [value] * draw(st.integers(0, 2))
    if kind == "dict":
        text, value = draw(_typed_values(depth - 1))
        return f"dict[str, {text}]", {"k": value}
    parts = draw(st.lists(_typed_values(depth - 1), min_size=1, max_size=3))
    if kind == "tuple":
        return "tuple[" + ", ".join(t for t, _ in parts) + "]", tuple(v for _, v in parts)
    names = [f"f{i}" for i in range(len(parts))]
    text = ", ".join(f"{n}: {t}" for n, (t, _) in zip(names, parts, strict=True))
    return f"NamedFields[{text}]", NamedFields(
        **{n: v for n, (_, v) in zip(names, parts, strict=True)}
    )


@pytest.mark.fuzz
@settings(max_examples=examples(300))
@given(_typed_values())
def test_every_type_round_trips(typed: tuple[str, Any]) -> None:
    """Any value of any supported type, encoded to JSON text as a runner sends it, passes the
    control plane's check and its JSON Schema, and decodes back to an equal value."""
    text, value = typed
    spec: TypeSpec = parse_spec(text)
    wire = json.loads(json.dumps(encode_value(spec, value), default=json_default))
    assert check_value(spec, wire) == wire
    jsonschema.Draft202012Validator(json_schema(spec)).validate(wire)
    assert decode_value(spec, wire) == value


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("Image", {"bytes": "aGk="}),
        ("Image", {"base64": "not base64!"}),
        ("Concept", {"value": 1}),
        ("Region", {"box": [1, 2]}),
        ("tuple[int, str]", [1, "a", 2]),
        ("NamedFields[a: int, b: str | None]", {"b": "x"}),
        ("list[Frame]", [{"time": "1s"}]),
    ],
)
def test_schemas_refuse_what_the_check_refuses(text: str, bad: object) -> None:
    """A value the control plane refuses fails the JSON Schema too (MCP and OpenAPI readers
    see the same rules)."""
    spec = parse_spec(text)
    with pytest.raises(TypeMismatch):
        check_value(spec, bad)  # type: ignore[arg-type]
    assert not jsonschema.Draft202012Validator(json_schema(spec)).is_valid(bad)


def test_data_type_schemas_are_valid_json_schema() -> None:
    """Each data type's schema is valid JSON Schema 2020-12 and its examples pass it."""
    for schema in DATA_TYPE_SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
        for example in schema.get("examples", []):
            jsonschema.Draft202012Validator(schema).validate(example)

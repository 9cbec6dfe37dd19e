"""The data types (Text, Image, ..., NamedFields): constructors as Clarifai folders call them,
and each type's JSON form both ways."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from edge_runner.models.data_types import (
    DATA_TYPES,
    Audio,
    Concept,
    Frame,
    Image,
    NamedFields,
    Region,
    Text,
    Video,
    b64decode,
    b64encode,
)

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4"
    "890000000d49444154789c63f8cfc0f01f0005000201a5d1bd4c0000000049454e44ae426082"
)


@pytest.mark.parametrize(
    ("value", "form"),
    [
        (Text("hi"), {"text": "hi"}),
        (Text(url="https://example.com/a.txt"), {"url": "https://example.com/a.txt"}),
        (Image(bytes=b"abc"), {"base64": "YWJj"}),
        (Image(url="https://example.com/a.jpg"), {"url": "https://example.com/a.jpg"}),
        (Audio(bytes=b"\x00\xff"), {"base64": "AP8="}),
        (Video(url="https://example.com/v.mp4"), {"url": "https://example.com/v.mp4"}),
        (Concept("cat", 0.97), {"id": "cat", "name": "cat", "value": 0.97}),
        (Concept(name="big cat!", value=1), {"id": "big-cat", "name": "big cat!", "value": 1.0}),
        (
            Region(box=[0.1, 0.2, 0.3, 0.4], concepts=[Concept("dog", 0.5)], id="r1"),
            {
                "id": "r1",
                "box": [0.1, 0.2, 0.3, 0.4],
                "concepts": [{"id": "dog", "name": "dog", "value": 0.5}],
            },
        ),
        (
            Region(mask=Image(bytes=b"m"), point=(1.0, 2.0, 0.0), text="A", track_id="t", id="r"),
            {
                "id": "r",
                "mask": {"base64": "bQ=="},
                "point": [1.0, 2.0, 0.0],
                "track_id": "t",
                "text": "A",
            },
        ),
        (
            Frame(time=1.5, image=Image(bytes=b"abc"), index=3),
            {"time": 1.5, "index": 3, "image": {"base64": "YWJj"}, "regions": []},
        ),
    ],
    ids=repr,
)
def test_json_form_both_ways(value: Any, form: dict[str, Any]) -> None:
    """Each type writes its documented JSON form and reads it back to an equal value."""
    assert value.to_json() == form
    assert type(value).from_json(form) == value


def test_constructors_match_the_reference() -> None:
    """The reference's constructor calls work and set the attributes folders read."""
    assert Text("Hello World").text == "Hello World"
    assert Text(url="https://e.com/t.txt").url == "https://e.com/t.txt"
    image = Image(bytes=b"x")
    assert (image.bytes, image.url) == (b"x", "")
    assert Image(url="https://e.com/i.jpg").bytes == b""
    assert Concept("cat", 0.97).value == 0.97
    assert Concept(name="dog", value=0.92).id == "dog"
    assert Concept("x").value == 1.0
    region = Region(box=[0.7, 0.3, 0.9, 0.7], concepts=[Concept("cat", 0.7)])
    assert region.box == [0.7, 0.3, 0.9, 0.7] and region.concepts[0].name == "cat"
    assert len(region.id) == 32  # a random id when none is given, as the reference does
    frame = Frame(time=1.5, image=Image(bytes=b"x"))
    assert (frame.time, frame.index, frame.image.bytes, frame.regions) == (1.5, 0, b"x", [])
    assert Text("a") == "a" and Text("a") != Text("b")


def test_named_fields_is_a_type_or_a_value() -> None:
    """NamedFields(a=int) declares fields; NamedFields(a=1) is a value read as attributes and
    as a mapping."""
    declared = NamedFields(summary=Text, score=float)
    assert isinstance(declared, type) and issubclass(declared, NamedFields)
    assert declared.field_types() == {"summary": Text, "score": float}
    value = NamedFields(summary=Text("s"), score=0.5)
    assert value.score == 0.5 and value["summary"] == Text("s")
    assert dict(value.items()) == {"summary": Text("s"), "score": 0.5}
    assert "score" in value and value == {"summary": Text("s"), "score": 0.5}


@pytest.mark.parametrize(
    ("cls", "form", "message"),
    [
        (Image, {"base64": "YWJ"}, "not standard base64"),
        (Image, {"base64": "YW J="}, "not standard base64"),
        (Image, {"base64": "YWJj!==="}, "not standard base64"),
        (Image, {"bytes": "YWJj"}, "Image has no field 'bytes'; its fields: base64, url"),
        (Image, "YWJj", "must be a JSON object"),
        (Text, {"text": 3}, "'text' must be a string"),
        (Concept, {"value": 0.5}, "needs a string 'name'"),
        (Concept, {"name": "a", "value": True}, "'value' must be a number"),
        (Region, {"box": [1, 2, 3]}, "'box' must be a list of 4 numbers"),
        (Region, {"concepts": [{"name": 1}]}, "needs a string 'name'"),
        (Frame, {"time": "1s"}, "'time' must be a number"),
    ],
)
def test_malformed_json_forms_are_refused(cls: Any, form: object, message: str) -> None:
    """A malformed JSON form raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        cls.from_json(form)


def test_base64_is_strict_standard_base64() -> None:
    """b64decode takes only padded standard base64; b64encode writes it."""
    assert b64decode(b64encode(b"\xfb\xff")) == b"\xfb\xff"
    assert b64encode(b"\xfb\xff") == "+/8="
    for bad in ("-_8=", "+/8", "+/8=\n", "+/8=="):
        with pytest.raises(ValueError):
            b64decode(bad)


def test_pillow_missing_gives_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Pillow, to_pil() and from_numpy() raise ImportError naming `pip install pillow`;
    without numpy, to_numpy() names `pip install numpy`."""
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        Image(bytes=PNG_1PX).to_pil()
    with pytest.raises(ImportError, match="pip install numpy"):
        Image(bytes=PNG_1PX).to_numpy()


def test_pillow_round_trip() -> None:
    """from_pil encodes PNG; to_pil decodes it; to_numpy gives the pixel array."""
    pil = pytest.importorskip("PIL.Image")
    image = Image.from_pil(pil.new("RGB", (2, 3), (255, 0, 0)))
    assert image.bytes.startswith(b"\x89PNG")
    assert image.to_pil().size == (2, 3)
    pytest.importorskip("numpy")
    assert image.to_numpy().shape == (3, 2, 3)


def test_to_pil_refuses_what_is_not_an_image() -> None:
    """to_pil() on a URL-only image or on bytes that are no image is a ValueError saying so."""
    pytest.importorskip("PIL.Image")
    with pytest.raises(ValueError, match="no bytes"):
        Image(url="https://e.com/x.jpg").to_pil()
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        Image(bytes=b"not an image").to_pil()


def test_reprs_do_not_dump_bytes() -> None:
    """A media repr gives the size, not the bytes (logs stay readable)."""
    assert repr(Image(bytes=b"x" * 1000)) == "Image(bytes=<1000 bytes>)"
    assert set(DATA_TYPES) == {"Text", "Image", "Audio", "Video", "Concept", "Region", "Frame"}

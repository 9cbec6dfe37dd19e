"""The rich data types a model method may take and return: Text, Image, Audio, Video, ...

They answer the names a Clarifai model folder imports from ``clarifai.runners.utils.data_types``
(the compatibility layer re-exports them), with the same constructor arguments and attributes,
so an unchanged ``model.py`` works. Each has one JSON form (``to_json()`` / ``from_json()``),
documented in ``docs/data-types.md``:

=========  ==============================================================================
Type       JSON form
=========  ==============================================================================
bytes      ``{"base64": "<standard base64>"}``
Text       ``{"text": "hi"}`` and/or ``{"url": "https://..."}``
Image      ``{"base64": "..."}`` and/or ``{"url": "https://..."}`` (Audio and Video alike)
Concept    ``{"id": "cat", "name": "cat", "value": 0.97}``
Region     ``{"id": "...", "box": [x1, y1, x2, y2], "concepts": [Concept...], "mask": Image,
           "point": [x, y, z], "track_id": "...", "text": "..."}`` (empty fields left out)
Frame      ``{"time": 1.5, "index": 0, "image": Image, "regions": [Region...]}``
=========  ==============================================================================

Pillow and numpy are imported only by the methods that need them (``Image.from_pil``,
``to_pil``, ``to_numpy``, ``from_numpy``); without them those methods raise ``ImportError``
with the ``pip install`` line. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import importlib
import io
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from edge_runner.views import JSONObject, JSONValue

__all__ = [
    "DATA_TYPES",
    "Audio",
    "Concept",
    "Frame",
    "Image",
    "MessageData",
    "NamedFields",
    "Region",
    "Text",
    "Video",
    "b64decode",
    "b64encode",
]

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64encode(data: builtins.bytes) -> str:
    """Standard base64 (RFC 4648, with padding), as every JSON form here writes bytes."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> builtins.bytes:
    """Decode standard base64 strictly.

    Raises:
        ValueError: ``text`` is not standard base64 (wrong alphabet, length or padding).
    """
    if len(text) % 4 or not _BASE64.fullmatch(text):
        raise ValueError("not standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not standard base64: {exc}") from exc


def _require(module: str, package: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {package}: pip install {package}") from exc


def _object(cls_name: str, data: object, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{cls_name} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise ValueError(
            f"{cls_name} has no field {unknown[0]!r}; its fields: {', '.join(sorted(keys))}"
        )
    return data


class MessageData:
    """The base of the data types: a JSON form both ways, and Clarifai's ``from_value``/``cast``."""

    #: The field names of the JSON form.
    json_keys: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> JSONObject:
        """Return the JSON form (see the module docstring)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: JSONValue) -> Any:
        """Build an instance from its JSON form.

        Raises:
            ValueError: ``data`` is not this type's JSON form; the message says what is wrong.
        """
        raise NotImplementedError

    @classmethod
    def from_value(cls, value: object) -> Any:
        """Return ``value`` if it is already an instance, else ``cls(value)`` (as Clarifai does)."""
        return value if isinstance(value, cls) else cls(value)  # type: ignore[call-arg]  # subclasses take it

    def cast(self, python_type: object) -> object:
        """Return ``self`` as ``python_type``; only its own class is supported here."""
        if python_type is type(self):
            return self
        raise TypeError(f"cannot cast {type(self).__name__} to {python_type!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable, like Clarifai's


class Text(MessageData):
    """UTF-8 text, inline or by URL: ``Text("Hello")``, ``Text(url="https://...")``.

    Attributes:
        text: the text, or ``None`` when only a URL is given.
        url: where the text can be fetched, or ``None``.
    """

    json_keys = frozenset({"text", "url"})

    def __init__(self, text: str | None = None, url: str | None = None) -> None:
        self.text = text
        self.url = url

    def __repr__(self) -> str:
        return f"Text(text={self.text!r}, url={self.url!r})"

    def __bool__(self) -> bool:
        return bool(self.text) or bool(self.url)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):  # Clarifai's Text compares equal to its string
            return self.text == other
        return super().__eq__(other)

    def to_json(self) -> JSONObject:
        """``{"text": ...}`` and/or ``{"url": ...}``; a missing part is left out."""
        out: JSONObject = {}
        if self.text is not None:
            out["text"] = self.text
        if self.url:
            out["url"] = self.url
        return out

    @classmethod
    def from_json(cls, data: JSONValue) -> Text:
        """Build from ``{"text": ..., "url": ...}`` (both optional)."""
        obj = _object("Text", data, cls.json_keys)
        text, url = obj.get("text"), obj.get("url")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"Text's 'text' must be a string, got {type(text).__name__}")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"Text's 'url' must be a string, got {type(url).__name__}")
        return cls(text, url)

    @classmethod
    def from_value(cls, value: object) -> Text:
        """Accept a Text, a ``str`` or a JSON form."""
        if isinstance(value, Text):
            return value
        if isinstance(value, str):
            return cls(value)
        return cls.from_json(value)  # type: ignore[arg-type]

    def cast(self, python_type: object) -> object:
        """``str`` gives the text."""
        return self.text if python_type is str else super().cast(python_type)


class _Media(MessageData):
    """Binary media by bytes or URL; ``bytes`` is ``b""`` and ``url`` ``""`` when absent."""

    json_keys = frozenset({"base64", "url"})

    def __init__(self, bytes: builtins.bytes | None = None, url: str | None = None) -> None:
        if bytes is not None and not isinstance(bytes, builtins.bytes | bytearray | memoryview):
            raise TypeError(
                f"{type(self).__name__}(bytes=...) takes bytes, got {type(bytes).__name__}"
            )
        self.bytes: builtins.bytes = builtins.bytes(bytes or b"")
        self.url: str = url or ""

    def __repr__(self) -> str:
        parts = []
        if self.url:
            parts.append(f"url={self.url!r}")
        if self.bytes:
            parts.append(f"bytes=<{len(self.bytes)} bytes>")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __bool__(self) -> bool:
        return bool(self.bytes) or bool(self.url)

    @classmethod
    def from_url(cls, url: str) -> Any:
        """An instance that refers to ``url``."""
        return cls(url=url)

    def to_base64_str(self) -> str:
        """The bytes as standard base64.

        Raises:
            ValueError: there are no bytes (only a URL).
        """
        if not self.bytes:
            raise ValueError(f"{type(self).__name__} has no bytes")
        return b64encode(self.bytes)

    def to_json(self) -> JSONObject:
        """``{"base64": ...}`` and/or ``{"url": ...}``; a missing part is left out."""
        out: JSONObject = {}
        if self.bytes:
            out["base64"] = b64encode(self.bytes)
        if self.url:
            out["url"] = self.url
        return out

    @classmethod
    def from_json(cls, data: JSONValue) -> Any:
        """Build from ``{"base64": ..., "url": ...}`` (both optional).

        Raises:
            ValueError: not an object, an unknown field, a non-string, or malformed base64.
        """
        name = cls.__name__
        obj = _object(name, data, cls.json_keys)
        raw, url = obj.get("base64"), obj.get("url")
        if raw is not None and not isinstance(raw, str):
            raise ValueError(f"{name}'s 'base64' must be a string, got {type(raw).__name__}")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"{name}'s 'url' must be a string, got {type(url).__name__}")
        try:
            data_bytes = b64decode(raw) if raw else b""
        except ValueError as exc:
            raise ValueError(f"{name}'s 'base64' is {exc}") from exc
        return cls(bytes=data_bytes, url=url)


class Image(_Media):
    """An image (PNG, JPEG, ...): ``Image(bytes=b"...")``, ``Image(url=...)``, ``from_pil``.

    Attributes:
        bytes: the encoded image (``b""`` when only a URL is given).
        url: where the image can be fetched (``""`` when absent).
    """

    @classmethod
    def from_pil(cls, pil_image: Any, img_format: str = "PNG") -> Image:
        """Encode a Pillow image (PNG unless ``img_format`` says otherwise)."""
        with io.BytesIO() as out:
            pil_image.save(out, format=img_format)
            return cls(bytes=out.getvalue())

    @classmethod
    def from_numpy(cls, array: Any, img_format: str = "PNG") -> Image:
        """Encode an ``HxW`` or ``HxWxC`` uint8 numpy array (needs Pillow)."""
        pil = _require("PIL.Image", "pillow", "Image.from_numpy()")
        return cls.from_pil(pil.fromarray(array), img_format)

    def to_pil(self) -> Any:
        """Decode into a ``PIL.Image.Image``.

        Raises:
            ImportError: Pillow is not installed (the message has the pip line).
            ValueError: there are no bytes, or they are not an image Pillow can read.
        """
        pil = _require("PIL.Image", "pillow", "Image.to_pil()")
        if not self.bytes:
            raise ValueError(
                "Image has no bytes" + (f" (only a URL: {self.url})" if self.url else "")
            )
        try:
            image = pil.open(io.BytesIO(self.bytes))
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "cannot identify image file"
            raise ValueError(
                f"the image's {len(self.bytes)} bytes are not an image Pillow can read "
                f"(PNG, JPEG, GIF, BMP, ...): {exc}"
            ) from exc
        return image

    def to_numpy(self) -> Any:
        """Decode into a numpy array (needs Pillow and numpy)."""
        np = _require("numpy", "numpy", "Image.to_numpy()")
        return np.asarray(self.to_pil())

    def cast(self, python_type: object) -> object:
        """``PIL.Image.Image`` gives :meth:`to_pil`, ``numpy.ndarray`` :meth:`to_numpy`."""
        name = getattr(python_type, "__qualname__", "")
        module = getattr(python_type, "__module__", "")
        if module.startswith("PIL") and name == "Image":
            return self.to_pil()
        if module.startswith("numpy") and name == "ndarray":
            return self.to_numpy()
        return super().cast(python_type)


class Audio(_Media):
    """Audio (WAV, MP3, ...): ``Audio(bytes=b"...")`` or ``Audio(url=...)``."""


class Video(_Media):
    """Video (MP4, AVI, ...): ``Video(bytes=b"...")`` or ``Video(url=...)``."""


def _concept_id(name: str) -> str:
    # as Clarifai derives an id from a name: drop what is not a letter, digit or space
    return re.sub(r"[^a-zA-Z0-9\s]", "", name).replace(" ", "-")


class Concept(MessageData):
    """A label with a score: ``Concept("cat", 0.97)``.

    Attributes:
        name: the label.
        value: the score (``1.0`` unless given).
        id: an id; derived from the name when not given (``"big cat"`` -> ``"big-cat"``).
    """

    json_keys = frozenset({"id", "name", "value"})

    def __init__(self, name: str, value: float = 1.0, id: str | None = None) -> None:
        self.name = name
        self.value = value
        self.id = id if id else _concept_id(name)

    def __repr__(self) -> str:
        return f"Concept(id={self.id!r}, name={self.name!r}, value={self.value!r})"

    def to_json(self) -> JSONObject:
        """``{"id": ..., "name": ..., "value": ...}``."""
        return {"id": self.id, "name": self.name, "value": float(self.value)}

    @classmethod
    def from_json(cls, data: JSONValue) -> Concept:
        """Build from ``{"name": ...}`` with optional ``value`` (number) and ``id``."""
        obj = _object("Concept", data, cls.json_keys)
        name, value, cid = obj.get("name"), obj.get("value", 1.0), obj.get("id")
        if not isinstance(name, str):
            raise ValueError("Concept needs a string 'name'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Concept's 'value' must be a number, got {type(value).__name__}")
        if cid is not None and not isinstance(cid, str):
            raise ValueError(f"Concept's 'id' must be a string, got {type(cid).__name__}")
        return cls(name, float(value), cid)


class Region(MessageData):
    """A part of an image: a box (and/or mask, point) with concepts and text.

    Attributes:
        box: ``[x1, y1, x2, y2]`` (left, top, right, bottom; usually 0..1), ``[]`` when absent.
        concepts: what is in the region.
        mask: an Image of the mask, or ``None``.
        point: ``(x, y, z)``, or ``None``.
        track_id: a tracker's id (``""`` when absent).
        text: text found in the region (``""`` when absent).
        id: the region's id (a random hex id when not given).
    """

    json_keys = frozenset({"id", "box", "concepts", "mask", "point", "track_id", "text"})

    def __init__(
        self,
        box: list[float] | None = None,
        concepts: list[Concept] | None = None,
        mask: Image | None = None,
        point: tuple[float, float, float] | None = None,
        track_id: str | None = None,
        text: str | None = None,
        id: str | None = None,
    ) -> None:
        if box is not None and len(box) not in (0, 4):
            raise ValueError(f"Region's box must be [x1, y1, x2, y2], got {box!r}")
        self.box: list[float] = [float(v) for v in box] if box else []
        self.concepts: list[Concept] = list(concepts or [])
        self.mask = mask
        self.point = tuple(float(v) for v in point) if point is not None else None
        self.track_id = track_id or ""
        self.text = text or ""
        self.id = id if id is not None else uuid.uuid4().hex

    def __repr__(self) -> str:
        return (
            f"Region(id={self.id!r}, box={self.box!r}, concepts={self.concepts!r}, "
            f"mask={self.mask!r}, point={self.point!r}, track_id={self.track_id!r}, "
            f"text={self.text!r})"
        )

    def to_json(self) -> JSONObject:
        """The JSON form; empty fields are left out, ``id`` is always there."""
        out: JSONObject = {"id": self.id}
        if self.box:
            out["box"] = [float(v) for v in self.box]
        if self.concepts:
            out["concepts"] = [c.to_json() for c in self.concepts]
        if self.mask is not None:
            out["mask"] = self.mask.to_json()
        if self.point is not None:
            out["point"] = [float(v) for v in self.point]
        if self.track_id:
            out["track_id"] = self.track_id
        if self.text:
            out["text"] = self.text
        return out

    @classmethod
    def from_json(cls, data: JSONValue) -> Region:
        """Build from the JSON form (every field optional)."""
        obj = _object("Region", data, cls.json_keys)
        box = _numbers("Region's 'box'", obj.get("box"), 4)
        point = _numbers("Region's 'point'", obj.get("point"), 3)
        concepts = obj.get("concepts") or []
        if not isinstance(concepts, list):
            raise ValueError("Region's 'concepts' must be a list of Concepts")
        for key in ("id", "track_id", "text"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(f"Region's {key!r} must be a string")
        mask = obj.get("mask")
        return cls(
            box=box,
            concepts=[Concept.from_json(c) for c in concepts],
            mask=None if mask is None else Image.from_json(mask),
            point=(point[0], point[1], point[2]) if point else None,
            track_id=obj.get("track_id"),
            text=obj.get("text"),
            id=obj.get("id"),
        )


def _numbers(what: str, value: object, size: int) -> list[float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != size
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
    ):
        raise ValueError(f"{what} must be a list of {size} numbers")
    return [float(v) for v in value]


class Frame(MessageData):
    """A video frame: ``Frame(time=1.5, image=Image(...))``.

    Attributes:
        image: the frame's image.
        regions: regions found in it.
        time: seconds from the start of the video.
        index: the frame's number.
    """

    json_keys = frozenset({"time", "index", "image", "regions"})

    def __init__(
        self,
        image: Image | None = None,
        regions: list[Region] | None = None,
        time: float | None = None,
        index: int | None = None,
    ) -> None:
        self.image = image if image is not None else Image()
        self.regions: list[Region] = list(regions or [])
        self.time = float(time or 0.0)
        self.index = int(index or 0)

    def __repr__(self) -> str:
        return (
            f"Frame(time={self.time!r}, index={self.index!r}, image={self.image!r}, "
            f"regions={self.regions!r})"
        )

    def to_json(self) -> JSONObject:
        """``{"time": ..., "index": ..., "image": ..., "regions": [...]}``."""
        return {
            "time": self.time,
            "index": self.index,
            "image": self.image.to_json(),
            "regions": [r.to_json() for r in self.regions],
        }

    @classmethod
    def from_json(cls, data: JSONValue) -> Frame:
        """Build from the JSON form (every field optional)."""
        obj = _object("Frame", data, cls.json_keys)
        time, index, regions = obj.get("time", 0.0), obj.get("index", 0), obj.get("regions")
        if isinstance(time, bool) or not isinstance(time, int | float):
            raise ValueError("Frame's 'time' must be a number of seconds")
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError("Frame's 'index' must be an int")
        if regions is not None and not isinstance(regions, list):
            raise ValueError("Frame's 'regions' must be a list of Regions")
        image = obj.get("image")
        return cls(
            image=None if image is None else Image.from_json(image),
            regions=[Region.from_json(r) for r in regions or []],
            time=float(time),
            index=index,
        )


#: The data types by the name a type spec uses for them.
DATA_TYPES: dict[str, type[MessageData]] = {
    cls.__name__: cls for cls in (Text, Image, Audio, Video, Concept, Region, Frame)
}


class _NamedFieldsMeta(type):
    """``NamedFields(a=int, b=str)`` with types makes a type; with values, an instance."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs and all(_is_type_hint(v) for v in kwargs.values()):
            name = "NamedFields(" + ", ".join(kwargs) + ")"
            return _NamedFieldsMeta(name, (cls,), {"__annotations__": dict(kwargs)})
        return super().__call__(*args, **kwargs)


def _is_type_hint(value: object) -> bool:
    import typing

    return isinstance(value, type) or typing.get_origin(value) is not None or value is Any


class NamedFields(metaclass=_NamedFieldsMeta):
    """Named fields: ``NamedFields(summary=Text, score=float)`` as a type hint (a JSON object
    with exactly those keys), ``NamedFields(summary=..., score=0.9)`` as a value.

    A value reads like an object (``out.score``) and like a mapping (``out["score"]``).
    """

    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self, key, value)

    @classmethod
    def field_types(cls) -> dict[str, object]:
        """The declared fields and their hints (empty for the plain ``NamedFields`` class)."""
        return dict(cls.__dict__.get("__annotations__", {}))

    def keys(self) -> Iterator[str]:
        """The field names."""
        return iter(vars(self))

    def values(self) -> Iterator[Any]:
        """The field values."""
        return iter(vars(self).values())

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` pairs."""
        return iter(vars(self).items())

    def __contains__(self, key: object) -> bool:
        return key in vars(self)

    def __getitem__(self, key: str) -> Any:
        try:
            return vars(self)[key]
        except KeyError as exc:
            raise KeyError(key) from exc

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NamedFields):
            return vars(self) == vars(other)
        if isinstance(other, Mapping):
            return vars(self) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"NamedFields({inner})"

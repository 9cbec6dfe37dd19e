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

import re
import uuid

from edge_runner.models.media import Audio, Image, Text, Video
from edge_runner.models.message_data import (
    MessageData,
    b64decode,
    b64encode,
    is_base64,
    object_fields,
)
from edge_runner.models.named_fields import NamedFields
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
    "is_base64",
]


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
        obj = object_fields("Concept", data, cls.json_keys)
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
        obj = object_fields("Region", data, cls.json_keys)
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
        obj = object_fields("Frame", data, cls.json_keys)
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

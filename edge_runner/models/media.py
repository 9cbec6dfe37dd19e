"""The data types that carry content: Text, and the binary media Image, Audio and Video.

Their JSON forms are in :mod:`edge_runner.models.data_types`, which re-exports them. Pillow and
numpy are imported only by the Image methods that need them.
"""

from __future__ import annotations

import builtins
import io
from typing import Any, Self

from edge_runner.models.message_data import (
    MessageData,
    b64decode,
    b64encode,
    object_fields,
    require_module,
)
from edge_runner.views import JSONObject, JSONValue

__all__ = ["Audio", "Image", "Text", "Video"]


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
        obj = object_fields("Text", data, cls.json_keys)
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
    def from_url(cls, url: str) -> Self:
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
    def from_json(cls, data: JSONValue) -> Self:
        """Build from ``{"base64": ..., "url": ...}`` (both optional).

        Raises:
            ValueError: not an object, an unknown field, a non-string, or malformed base64.
        """
        name = cls.__name__
        obj = object_fields(name, data, cls.json_keys)
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
    def from_numpy(cls, array: object, img_format: str = "PNG") -> Image:
        """Encode an ``HxW`` or ``HxWxC`` uint8 numpy array (needs Pillow)."""
        pil = require_module("PIL.Image", "pillow", "Image.from_numpy()")
        return cls.from_pil(pil.fromarray(array), img_format)

    def to_pil(self) -> Any:
        """Decode into a ``PIL.Image.Image``.

        Raises:
            ImportError: Pillow is not installed (the message has the pip line).
            ValueError: there are no bytes, or they are not an image Pillow can read.
        """
        pil = require_module("PIL.Image", "pillow", "Image.to_pil()")
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
        np = require_module("numpy", "numpy", "Image.to_numpy()")
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

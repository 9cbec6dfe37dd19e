"""Command-line values for data-type parameters: ``--image @cat.jpg``, ``--image https://...``,
``--text @notes.txt`` (the rest is :func:`~edge_runner.models.signatures.parse_cli_value`)."""

from __future__ import annotations

from pathlib import Path

from edge_runner.errors import InvalidArgument
from edge_runner.models.data_types import b64encode
from edge_runner.models.signatures import Param
from edge_runner.views import JSONValue

__all__ = ["media_value"]

_BINARY = ("bytes", "Image", "Audio", "Video")


def media_value(param: Param, text: str) -> JSONValue | None:
    """The JSON form for ``@FILE`` or a URL given to a data-type parameter, or ``None`` when
    ``text`` is neither (it is then parsed as usual).

    Raises:
        InvalidArgument: the file cannot be read (or is not UTF-8 text for a Text).
    """
    base = param.spec.base
    if base not in (*_BINARY, "Text"):
        return None
    if text.startswith("@") and len(text) > 1:
        path = Path(text[1:]).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidArgument(
                f"--{param.name} {text}: cannot read {path}: {exc.strerror or exc}", param.name
            ) from exc
        if base != "Text":
            return {"base64": b64encode(data)}
        try:
            return {"text": data.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise InvalidArgument(
                f"--{param.name} {text}: {path} is not UTF-8 text", param.name
            ) from exc
    if base in ("Image", "Audio", "Video") and text.startswith(("http://", "https://")):
        return {"url": text}
    return None

"""Data types on the command line: ``--image @cat.jpg``, ``--image https://...``,
``--text @notes.txt`` for arguments (the rest is
:func:`~edge_runner.models.signatures.parse_cli_value`), and ``--save DIR`` for binary
results."""

from __future__ import annotations

from pathlib import Path

from edge_runner.errors import InvalidArgument
from edge_runner.models.data_types import b64decode, b64encode
from edge_runner.models.signatures import Param
from edge_runner.views import JSONValue

__all__ = ["media_value", "save_binaries"]

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


_MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF8", ".gif"),
    (b"RIFF", ".wav"),
    (b"ID3", ".mp3"),
    (b"%PDF", ".pdf"),
)


def _extension(data: bytes) -> str:
    if data[4:8] == b"ftyp":
        return ".mp4"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), ".bin")


def save_binaries(output: JSONValue, folder: Path, name: str = "output") -> JSONValue:
    """Write every ``{"base64": ...}`` in ``output`` to a file in ``folder`` (named by where it
    sits: ``output.png``, ``output-0-mask.png``) and return ``output`` with each replaced by
    ``{"file": PATH}`` (a ``url`` beside it is kept)."""
    if isinstance(output, list):
        return [save_binaries(v, folder, f"{name}-{i}") for i, v in enumerate(output)]
    if not isinstance(output, dict):
        return output
    raw = output.get("base64")
    if isinstance(raw, str):
        try:
            data = b64decode(raw)
        except ValueError:
            return output
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}{_extension(data)}"
        path.write_bytes(data)
        rest = {k: v for k, v in output.items() if k != "base64"}
        return {"file": str(path), **rest}
    return {k: save_binaries(v, folder, f"{name}-{k}") for k, v in output.items()}

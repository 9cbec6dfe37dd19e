"""Data types through the whole path: client -> control plane -> tunnel -> runner -> model and
back, with the bad inputs refused where they first can be."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import psutil
import pytest

from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.errors import BadRequest
from edge_runner.models.data_types import Concept, Image, Region
from tests.conftest import MS, Stack, write_model

MIB = 1024 * 1024

VISION = """\
    @ModelClass.method
    def detect(self, image: Image, labels: List[str] = ["cat"]) -> List[Region]:
        '''One region per label, its mask the input image.'''
        assert isinstance(image, Image) and isinstance(image.bytes, bytes)
        return [
            Region(box=[0.1, 0.2, 0.3, 0.4], concepts=[Concept(l, 0.5)], mask=image, id=l)
            for l in labels
        ]

    @ModelClass.method
    def classify(self, images: List[Image]) -> List[Concept]:
        '''A concept per image, named by its size.'''
        return [Concept(f"{len(i.bytes)} bytes", 1.0) for i in images]

    @ModelClass.method
    def checksum(self, data: bytes, pair: Tuple[int, Text]) -> NamedFields(size=int, tag=Text):
        '''bytes, a tuple and named fields.'''
        return NamedFields(size=len(data) + pair[0], tag=pair[1].text.upper())

    @ModelClass.method
    def frames(self, count: int) -> Iterator[Frame]:
        '''A stream of frames.'''
        for i in range(count):
            yield Frame(time=i / 2, index=i, image=Image(bytes=bytes([i])))
"""
IMPORTS = (
    "from typing import List, Tuple\n"
    "from edge_runner.models.data_types import (\n"
    "    Concept, Frame, Image, NamedFields, Region, Text)\n"
)


@pytest.fixture
def vision(stack: Stack, tmp_path: Path) -> Stack:
    """The stack with a runner serving a model of data types, its media capped at 64 bytes."""
    folder = write_model(tmp_path, "vision", VISION, imports=IMPORTS)
    stack.start_runner(backend=PythonModelBackend(folder, max_media_bytes=64))
    return stack


def _post(stack: Stack, method: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{stack.api_base}/v2/models/vision/{method}", headers=stack.headers, json=body
    )


def test_image_in_regions_and_concepts_out(vision: Stack) -> None:
    """The client sends Image objects; the model gets Image objects; Regions, Concepts, bytes,
    tuples and named fields come back in their JSON forms."""
    image = Image(bytes=b"\x89PNG fake")
    with vision.client() as client:
        regions = client.predict("vision", "detect", image=image, labels=["cat", "dog"])
        assert isinstance(regions, list)
        assert [Region.from_json(r) for r in regions] == [
            Region([0.1, 0.2, 0.3, 0.4], [Concept(n, 0.5)], mask=image, id=n)
            for n in ("cat", "dog")
        ]
        assert client.predict("vision", "classify", images=[image, Image(bytes=b"ab")]) == [
            Concept("9 bytes").to_json(),
            Concept("2 bytes").to_json(),
        ]
        assert client.predict("vision", "checksum", data=b"abc", pair=[1, {"text": "x"}]) == {
            "size": 4,
            "tag": {"text": "X"},
        }
        frames = list(client.generate("vision", "frames", count=2))
    assert frames == [
        {"time": 0.0, "index": 0, "image": {"base64": "AA=="}, "regions": []},
        {"time": 0.5, "index": 1, "image": {"base64": "AQ=="}, "regions": []},
    ]


def test_signatures_show_the_data_types(vision: Stack) -> None:
    """GET /v2/models/{id} (and so `models -o json`) shows the data types in the signatures."""
    with vision.client() as client:
        methods = {m["name"]: m for m in client.model("vision")["methods"]}
    assert methods["detect"]["params"][0]["type"] == "Image"
    assert methods["detect"]["returns"] == "list[Region]"
    assert methods["checksum"]["returns"] == "NamedFields[size: int, tag: Text]"
    assert methods["checksum"]["params"][1]["type"] == "tuple[int, Text]"
    assert methods["frames"]["returns"] == "Iterator[Frame]"


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("detect", {"image": {"base64": "not base64!"}}, "not standard base64"),
        ("detect", {"image": "aGk="}, "argument 'image' must be Image, got str"),
        ("classify", {"images": [{"base64": "aGk="}, 7]}, "got int at images[1]"),
        ("checksum", {"data": {"base64": "aGk="}, "pair": [1]}, "expected 2 items"),
    ],
)
def test_bad_values_are_400_before_a_task_runs(
    vision: Stack, method: str, body: object, message: str
) -> None:
    """Malformed base64, a wrong type, a wrong list item: 400 INVALID_ARGUMENT from the control
    plane, naming the argument."""
    r = _post(vision, method, body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert message in error["message"]


def test_an_image_over_the_cap_is_refused_by_the_runner(vision: Stack) -> None:
    """An image over the runner's max_media_bytes is a 400 INVALID_ARGUMENT naming the limit."""
    with vision.client() as client, pytest.raises(BadRequest) as info:
        client.predict("vision", "detect", image=Image(bytes=b"x" * 65))
    assert "over the 64-byte limit" in str(info.value)
    with vision.client() as client:  # the runner keeps serving
        assert len(client.predict("vision", "detect", image=Image(bytes=b"x" * 64))) == 1


def test_a_200_mb_image_is_refused_at_the_body_limit(vision: Stack) -> None:
    """A 200 MB image body is answered 413 from its Content-Length: the control plane reads
    little of it and this process's memory stays flat."""
    assert vision.plane is not None
    me = psutil.Process()
    before = me.memory_info().rss
    total = 200 * MIB
    head = b'{"image": {"base64": "'
    sock = socket.create_connection(("127.0.0.1", vision.plane.port), timeout=10_000 * MS)
    with sock:
        sock.sendall(
            b"POST /v2/models/vision/detect HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {vision.headers['Authorization']}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {total}\r\n\r\n".encode()
            + head
        )
        sent, piece = len(head), b"A" * 65536
        try:
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except OSError:  # the server answered and closed: what we want
            pass
        answer = b""
        sock.settimeout(10_000 * MS)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"BODY_TOO_LARGE" in answer or b"too large" in answer.lower()
    assert me.memory_info().rss - before < 48 * MIB

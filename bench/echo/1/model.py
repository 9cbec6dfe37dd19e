"""An echo model for ``bench/tunnel.py``: no work, so the numbers are all overhead.

``echo_stream`` is the stream-in case (``bench/stream_in.py``): each input item comes back as
the model takes it.

``classify`` is the image case (``--image KB``): an Image in, a list of Concepts out, with no
model behind it, so the numbers are the cost of moving and checking the image.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge_runner import ModelClass
from edge_runner.models.data_types import Concept, Image


class Echo(ModelClass):
    """Returns its input."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """Return the text unchanged."""
        return text

    @ModelClass.method
    def classify(self, image: Image) -> list[Concept]:
        """Three fixed concepts; the second's value is the image's size in MB."""
        size = len(image.bytes) / 1e6
        return [Concept("cat", 0.9), Concept("size-mb", size), Concept("dog", 0.1)]

    @ModelClass.method
    def echo_stream(self, items: Iterator[str]) -> Iterator[str]:
        """Yield each input item back as it arrives."""
        yield from items

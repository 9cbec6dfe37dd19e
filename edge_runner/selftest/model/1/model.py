"""The self-test's model: answers that only a real round trip through the tunnel can produce."""

from __future__ import annotations

from collections.abc import Iterator

from edge_runner import ModelClass


class SelfTestModel(ModelClass):
    """No weights, no dependencies; deterministic."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """The text reversed (so an echo anywhere on the way would not pass)."""
        return text[::-1]

    @ModelClass.method
    def count(self, n: int = 3) -> Iterator[str]:
        """Stream ``0`` .. ``n-1``, one chunk each."""
        for i in range(n):
            if self.cancelled():
                return
            yield str(i)

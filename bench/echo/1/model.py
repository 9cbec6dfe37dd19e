"""An echo model for ``bench/tunnel.py``: no work, so the numbers are all overhead."""

from __future__ import annotations

from edge_runner import ModelClass


class Echo(ModelClass):
    """Returns its input."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """Return the text unchanged."""
        return text

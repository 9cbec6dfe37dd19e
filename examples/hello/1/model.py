"""The hello model: deterministic answers, for trying edge-runner and for its tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edge_runner import ModelClass


class HelloModel(ModelClass):
    """Greets whoever calls it; no weights, no dependencies."""

    @ModelClass.method
    def predict(self, text: str) -> str:
        """Return a greeting for the given text."""
        return f"Hello, {text}!"

    @ModelClass.method
    def generate(self, text: str, n: int = 5) -> Iterator[str]:
        """Stream n numbered greetings, one line each."""
        for i in range(n):
            if self.cancelled():
                return
            yield f"{i}: Hello, {text}!\n"

    @ModelClass.method
    def stream(self, names: Iterator[str], greeting: str = "Hello") -> Iterator[str]:
        """Greet each name of an input stream as it arrives (a stream-in method)."""
        for name in names:
            yield f"{greeting}, {name}!"

    @ModelClass.method
    def chat(
        self, messages: list[dict], max_tokens: int = 256, temperature: float = 1.0
    ) -> Iterator[str]:
        """Echo the last user message back, one word at a time.

        ``max_tokens`` limits the number of words; ``temperature`` is accepted for OpenAI
        compatibility and ignored (the answer is deterministic).
        """
        words = f"Hello! You said: {_last_user_text(messages)}".split()
        for i, word in enumerate(words[: max(max_tokens, 0)]):
            if self.cancelled():
                return
            yield word if i == 0 else f" {word}"


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):  # OpenAI content parts
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            return str(content)
    return ""

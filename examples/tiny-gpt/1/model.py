"""tiny-gpt: a small transformer that streams text, on CUDA when the runner placed it on a GPU.

The runner sets CUDA_VISIBLE_DEVICES before this file is imported, so ``cuda:0`` is the first
GPU it was given (see `edge-runner gpus`); without one it runs on the CPU.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from edge_runner import ModelClass

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiny_gpt  # noqa: E402 - lives next to this file

logger = logging.getLogger("tiny-gpt")


class TinyGPTModel(ModelClass):
    """Character-level generation with a 2-layer transformer."""

    def load_model(self) -> None:
        """Load the weights (making them first if missing) onto the GPU or the CPU."""
        weights = HERE / "weights.pt"
        if not weights.exists():
            sys.path.insert(0, str(HERE.parent))
            from make_weights import make

            logger.info("no weights yet: training them on this machine (a few seconds)")
            make(path=weights)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = tiny_gpt.load(str(weights), self.device)
        logger.info("tiny-gpt loaded on %s", self._device_name())

    def _device_name(self) -> str:
        if self.device == "cuda":
            return f"cuda:0 ({torch.cuda.get_device_name(0)})"
        return "cpu"

    @ModelClass.method
    def generate(
        self, prompt: str, max_tokens: int = 64, temperature: float = 0.8, seed: int = 0
    ) -> Iterator[str]:
        """Stream up to max_tokens characters after the prompt (the same seed, the same text)."""
        generator = torch.Generator().manual_seed(seed)
        for piece in self.model.stream(prompt, max(0, max_tokens), temperature, generator):
            if self.cancelled():
                return
            yield piece

    @ModelClass.method
    def predict(self, prompt: str, max_tokens: int = 64, seed: int = 0) -> str:
        """The whole continuation at once."""
        return "".join(self.generate(prompt, max_tokens, 0.8, seed))

    @ModelClass.method
    def info(self) -> dict[str, Any]:
        """Where the model runs and how big it is."""
        return {
            "device": self._device_name(),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "cuda_available": torch.cuda.is_available(),
            "torch": torch.__version__,
        }

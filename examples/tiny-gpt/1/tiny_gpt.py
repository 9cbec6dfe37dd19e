"""A character-level GPT small enough to train on a CPU in seconds, and its corpus.

``TinyGPT`` is a decoder-only transformer: token and position embeddings, causal
self-attention blocks, a linear head. ``train`` fits it to ``CORPUS`` from a fixed seed, so
the weights it saves are the same on every machine that runs the same torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

CORPUS = """\
A runner is the running instance of a model: a process that dials out to its control plane,
keeps one tunnel open, and pulls tasks from a queue. Nothing listens on the runner's machine.
The control plane routes each request to a runner with a free slot, and a runner never holds
more tasks than its pool. When a tunnel drops, the runner is suspect; when it comes back in
time, its tasks resume; when it does not, the tasks that produced nothing run again elsewhere.
A model folder holds a config file and a model file. The model class loads its weights once,
then answers: one reply for predict, a stream of pieces for generate. A cancelled task stops
at its next piece. Ollama models download with progress and load before they serve. Every
GPU is read once a second, and the model sees only the GPUs it was placed on.
"""


@dataclass(frozen=True)
class Config:
    """Model size; saved with the weights."""

    vocab: str
    context: int = 64
    width: int = 64
    heads: int = 4
    layers: int = 2


class Block(nn.Module):
    """Pre-norm causal self-attention and an MLP."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = nn.MultiheadAttention(cfg.width, cfg.heads, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(), nn.Linear(4 * cfg.width, cfg.width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """Embeddings, blocks, head."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(len(cfg.vocab), cfg.width)
        self.positions = nn.Embedding(cfg.context, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, len(cfg.vocab))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def encode(self, text: str) -> list[int]:
        """Characters to ids; characters outside the vocabulary become spaces."""
        index = {c: i for i, c in enumerate(self.cfg.vocab)}
        space = index.get(" ", 0)
        return [index.get(c, space) for c in text]

    @torch.no_grad()
    def stream(
        self, prompt: str, max_tokens: int, temperature: float, generator: torch.Generator
    ) -> Iterator[str]:
        """Sample one character at a time after ``prompt``."""
        device = next(self.parameters()).device
        ids = self.encode(prompt) or [self.encode(" ")[0]]
        for _ in range(max_tokens):
            window = torch.tensor([ids[-self.cfg.context :]], device=device)
            logits = self(window)[0, -1] / max(temperature, 1e-4)
            probs = F.softmax(logits.float().cpu(), dim=-1)
            next_id = int(torch.multinomial(probs, 1, generator=generator))
            ids.append(next_id)
            yield self.cfg.vocab[next_id]


def train(steps: int = 300, seed: int = 7) -> tuple[TinyGPT, float]:
    """Fit a fresh model to the corpus on the CPU; returns it and its last loss."""
    torch.manual_seed(seed)
    cfg = Config(vocab="".join(sorted(set(CORPUS))))
    model = TinyGPT(cfg)
    data = torch.tensor(model.encode(CORPUS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss = torch.tensor(math.inf)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - cfg.context - 1, (16,))
        x = torch.stack([data[s : s + cfg.context] for s in starts])
        y = torch.stack([data[s + 1 : s + cfg.context + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, len(cfg.vocab)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, float(loss.detach())


def save(model: TinyGPT, path: str) -> None:
    """Weights and config in one file."""
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, path)


def load(path: str, device: str) -> TinyGPT:
    """What :func:`save` wrote, on ``device``."""
    saved = torch.load(path, map_location=device, weights_only=True)
    model = TinyGPT(Config(**saved["config"]))
    model.load_state_dict(saved["state"])
    return model.to(device).eval()

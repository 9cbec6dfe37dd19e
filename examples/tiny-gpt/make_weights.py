"""Train tiny-gpt on its corpus and save 1/weights.pt (a few seconds on a CPU; no download).

    python examples/tiny-gpt/make_weights.py [--steps 300] [--seed 7]

The model folder also runs this itself on first load when 1/weights.pt is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "1" / "weights.pt"


def make(steps: int = 300, seed: int = 7, path: Path = WEIGHTS) -> float:
    """Train and save; returns the last training loss."""
    sys.path.insert(0, str(HERE / "1"))
    import tiny_gpt

    model, loss = tiny_gpt.train(steps, seed)
    tmp = path.with_suffix(".tmp")
    tiny_gpt.save(model, str(tmp))
    tmp.replace(path)  # a reader never sees half a file
    return loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args()
    started = time.monotonic()
    loss = make(args.steps, args.seed)
    print(f"wrote {WEIGHTS} (loss {loss:.3f}, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

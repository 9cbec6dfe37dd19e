"""How a runner's pool is shared among the models it serves.

Credit is granted per model and every finished task gives its slot back to the same model, so
the sum of the grants is what may run at once. A Python model folder has one model and takes
the whole pool. An Ollama runner may serve several models, each of which Ollama runs at most
``OLLAMA_NUM_PARALLEL`` at a time: the pool is dealt out one slot at a time, round robin, to the
models that are below their cap, so no model starves and nothing is granted that would only
queue inside Ollama.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["pool_warning", "split_pool"]


def split_pool(pool_size: int, caps: Mapping[str, int | None]) -> dict[str, int]:
    """Share ``pool_size`` slots among models, each at most its cap (None: no cap).

    Every model gets at least one slot, even when the pool is smaller than the number of models
    (the runner then runs more tasks than ``pool_size``; :func:`pool_warning` says so).
    """
    shares = dict.fromkeys(caps, 0)
    open_models = [m for m in caps if caps[m] is None or (caps[m] or 0) > 0]
    remaining = pool_size
    while remaining > 0 and open_models:
        for model in list(open_models):
            if remaining == 0:
                break
            cap = caps[model]
            if cap is not None and shares[model] >= cap:
                open_models.remove(model)
                continue
            shares[model] += 1
            remaining -= 1
    return {model: max(1, share) for model, share in shares.items()}


def pool_warning(pool_size: int, caps: Mapping[str, int | None], what: str) -> str | None:
    """A warning when ``--pool-size`` does not match what the backend can run at once.

    Args:
        pool_size: the runner's ``--pool-size``.
        caps: per-model parallelism (None: unlimited).
        what: how the cap is set, for the message (``OLLAMA_NUM_PARALLEL=1``).
    """
    if not caps:
        return None
    shares = split_pool(pool_size, caps)
    total = sum(shares.values())
    if total > pool_size:
        return (
            f"--pool-size {pool_size} is smaller than the {len(caps)} models served; "
            f"each model gets one slot, so up to {total} tasks run at once"
        )
    if any(cap is None for cap in caps.values()):
        return None
    if pool_size > total:
        return (
            f"--pool-size {pool_size} is more than the backend runs at once ({what} per model, "
            f"{len(caps)} model{'s' if len(caps) != 1 else ''}: {total} slot"
            f"{'s' if total != 1 else ''}); the other requests wait at the control plane. "
            f"Raise {what.split('=')[0]} (for the server and the runner) to run more"
        )
    return None

"""The models the control plane knows, per user, kept in memory over the registry.

A model becomes known when a runner registers it, and stays known (and callable: requests wait
for a runner) after that runner leaves. Runners serving one id must register identical
signatures; a conflicting runner is refused while another one serves the old signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runner.control.registry import Registry
from edge_runner.models.signatures import MethodSignature
from edge_runner.models.wire import spec_to_dict
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.views import ModelSpecView

__all__ = ["Catalog", "ModelEntry"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its JSON spec and its signatures by method name."""

    user_id: str
    model_id: str
    spec: ModelSpecView
    methods: dict[str, MethodSignature]
    signature_hash: str

    @property
    def chat(self) -> bool:
        """Whether the model serves OpenAI chat completions."""
        return "chat.completions" in self.openai

    @property
    def openai(self) -> frozenset[str]:
        """The OpenAI-compatible operations it serves (``chat.completions``, ``embeddings``...).

        Specs from protocol 1.0 runners only carry the ``chat`` flag.
        """
        ops = set(self.spec.get("openai") or ())
        if self.spec.get("chat"):
            ops.add("chat.completions")
        return frozenset(ops)


def _entry(user_id: str, spec: ModelSpecView, signature_hash: str) -> ModelEntry:
    methods = {m["name"]: MethodSignature.from_dict(m) for m in spec.get("methods", [])}
    return ModelEntry(user_id, spec["id"], spec, methods, signature_hash)


class Catalog:
    """Known models per user, backed by the registry."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._models: dict[tuple[str, str], ModelEntry] = {
            (r.user_id, r.model_id): _entry(r.user_id, r.spec, r.signature_hash)
            for r in registry.models()
        }

    def get(self, user_id: str, model_id: str) -> ModelEntry | None:
        """The model ``model_id`` of ``user_id``, if known."""
        return self._models.get((user_id, model_id))

    def for_user(self, user_id: str) -> list[ModelEntry]:
        """A user's models, sorted by id."""
        return sorted(
            (e for (uid, _), e in self._models.items() if uid == user_id),
            key=lambda e: e.model_id,
        )

    def conflict(self, user_id: str, spec: pb.ModelSpec, served: bool) -> str | None:
        """Say why ``spec`` cannot be registered, or None when it can.

        Args:
            user_id: the runner's owner.
            spec: the model spec from the runner's Hello.
            served: whether another connected runner serves this id right now.
        """
        known = self._models.get((user_id, spec.model_id))
        if known is None or not served or known.signature_hash == spec.signature_hash:
            return None
        return (
            f"model {spec.model_id!r} is already served with different method signatures "
            f"(registered hash {known.signature_hash[:12]}, "
            f"this runner {spec.signature_hash[:12]}); "
            "stop the other runners of this model first, or give this one another model id"
        )

    def remove(self, user_id: str, model_id: str) -> None:
        """Forget a model that never became usable (its only runner withdrew it)."""
        if self._models.pop((user_id, model_id), None) is not None:
            self._registry.delete_model(user_id, model_id)

    def register(self, user_id: str, spec: pb.ModelSpec) -> ModelEntry:
        """Record a runner's model spec (new, or replacing one that nobody serves)."""
        as_dict = spec_to_dict(spec)
        known = self._models.get((user_id, spec.model_id))
        if known is None or known.spec != as_dict:
            self._registry.upsert_model(user_id, as_dict, spec.signature_hash)
        entry = _entry(user_id, as_dict, spec.signature_hash)
        self._models[(user_id, spec.model_id)] = entry
        return entry

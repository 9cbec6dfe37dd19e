"""Property-based testing knobs and Hypothesis strategies for the tunnel's frames.

Messages are generated from the protobuf descriptors (``pb.RunnerMessage.DESCRIPTOR``,
``pb.ControlMessage.DESCRIPTOR``), so a field or a message added to tunnel.proto is fuzzed
without a change here. Ids come from small pools more often than not, so generated frames name
the tasks, models and runners a test set up (and each other's).

``make test`` runs the ``suite`` profile (derandomized: the same cases every run, so a new
random case never breaks main); ``make fuzz`` sets ``EDGE_RUNNER_FUZZ=deep`` for the ``fuzz``
profile (random, fifty times the cases, failures kept in .hypothesis/ to replay).
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "DEEP",
    "MODEL_IDS",
    "RUNNER_IDS",
    "TASK_IDS",
    "envelopes",
    "examples",
    "frames",
    "messages",
    "mostly",
    "register_profiles",
]

#: whether this is ``make fuzz`` (open-ended) rather than the bounded suite
DEEP = os.environ.get("EDGE_RUNNER_FUZZ") == "deep"

TASK_IDS = ("t1", "t2", "t3")
MODEL_IDS = ("m1", "m2")
RUNNER_IDS = ("runner-a", "runner-b")
_POOLS = {"task_id": TASK_IDS, "model_id": MODEL_IDS, "runner_id": RUNNER_IDS}
#: small numbers for the fields that key and order tasks, so they collide
_SMALL = {"attempt": 3, "seq": 4}


def register_profiles() -> None:
    """Register ``suite`` and ``fuzz`` and load the one this run asks for."""
    common: dict[str, Any] = {
        "deadline": None,  # two shared cores: wall-clock time per example means nothing
        "suppress_health_check": [HealthCheck.too_slow],
    }
    settings.register_profile("suite", derandomize=True, database=None, **common)
    settings.register_profile("fuzz", max_examples=5_000, print_blob=True, **common)
    settings.load_profile("fuzz" if DEEP else "suite")


def examples(n: int) -> int:
    """``n`` examples in the suite, fifty times as many under ``make fuzz``."""
    return n * 50 if DEEP else n


_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_MAX_DEPTH = 3


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """Values of one (non-repeated) field."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if kind == FieldDescriptor.TYPE_STRING:
        text = st.text(max_size=12)
        pool = _POOLS.get(field.name)
        return st.one_of(st.sampled_from(pool), text) if pool else text
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.just(b"{}"), st.binary(max_size=24))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)  # NaN and the infinities included
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_ENUM:
        # proto3 enums are open: a peer may send a number this build has no name for
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 16))
    low, high = _INT_RANGES[kind]
    wide = st.integers(low, high)
    small = _SMALL.get(field.name)
    return st.one_of(st.integers(max(low, 0), small), wide) if small is not None else wide


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    """Values of one field, repeated and map fields included."""
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        keys = _value(message.fields_by_name["key"], depth)
        return st.dictionaries(keys, _value(message.fields_by_name["value"], depth), max_size=3)
    if field.is_repeated:
        return st.lists(_value(field, depth), max_size=3)
    return _value(field, depth)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Arbitrary well-typed messages of ``descriptor``: any subset of its fields set.

    A real ``oneof`` gets at most one of its members (the envelopes' ``kind``); nesting stops
    at a few levels.
    """
    cls = GetMessageClass(descriptor)
    in_oneof = {f.name for o in descriptor.oneofs if not _synthetic(o) for f in o.fields}
    fields = {
        f.name: _field(f, depth)
        for f in descriptor.fields
        if f.name not in in_oneof and (depth < _MAX_DEPTH or f.type != FieldDescriptor.TYPE_MESSAGE)
    }
    plain = st.fixed_dictionaries({}, optional=fields)
    oneofs = [o for o in descriptor.oneofs if not _synthetic(o)]
    if not oneofs or depth >= _MAX_DEPTH:
        return plain.map(lambda kw: cls(**kw))
    chosen = st.tuples(
        *(
            st.one_of(
                st.none(),
                st.sampled_from(list(o.fields)).flatmap(
                    lambda f: _field(f, depth).map(lambda v, name=f.name: (name, v))
                ),
            )
            for o in oneofs
        )
    )
    return st.tuples(plain, chosen).map(
        lambda pair: cls(**pair[0], **dict(kv for kv in pair[1] if kv is not None))
    )


def _synthetic(oneof: Any) -> bool:
    """A proto3 ``optional`` field's own oneof, not a real one."""
    return len(oneof.fields) == 1 and oneof.fields[0].has_presence and oneof.name.startswith("_")


def envelopes(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Envelopes (``RunnerMessage`` or ``ControlMessage``) carrying exactly one message."""
    (kind,) = cls.DESCRIPTOR.oneofs
    return st.sampled_from(list(kind.fields)).flatmap(
        lambda f: messages(f.message_type, 1).map(lambda m, name=f.name: cls(**{name: m}))
    )


def frames(cls: type[Message]) -> st.SearchStrategy[bytes]:
    """Frames a peer might send: valid envelopes, cut or corrupted ones, and plain garbage."""
    valid = envelopes(cls).map(lambda m: m.SerializeToString())
    cut = valid.flatmap(lambda data: st.integers(0, len(data)).map(lambda n: data[:n]))
    flipped = valid.flatmap(
        lambda data: st.tuples(st.integers(0, max(len(data) - 1, 0)), st.integers(1, 255)).map(
            lambda at: (
                data[: at[0]] + bytes([data[at[0]] ^ at[1]]) + data[at[0] + 1 :] if data else data
            )
        )
    )
    return st.one_of(valid, valid, cut, flipped, st.binary(max_size=48))


def mostly(*usual: st.SearchStrategy[bytes], anything: st.SearchStrategy[bytes]) -> Any:
    """Frames from ``usual`` (well-formed traffic), and one draw in eight from ``anything``.

    Most of ``anything`` breaks the protocol and ends the session, so a test that drew it
    as often as the rest would spend its steps on closed sessions.
    """
    return st.sampled_from([False] * 7 + [True]).flatmap(
        lambda rare: anything if rare else st.one_of(usual)
    )

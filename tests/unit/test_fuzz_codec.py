"""The frame codec under arbitrary input: it decodes or raises ProtocolError, nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runner.errors import ProtocolError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import decode_control, decode_runner, encode
from tests.fuzzing import envelopes, examples, frames

pytestmark = pytest.mark.fuzz

DECODERS: list[tuple[type[Message], Callable[[bytes], Message]]] = [
    (pb.RunnerMessage, decode_runner),
    (pb.ControlMessage, decode_control),
]


def _canonical(message: Message) -> bytes:
    # Maps serialize in no fixed order, and NaN != NaN: compare deterministic bytes instead.
    return message.SerializeToString(deterministic=True)


@pytest.mark.parametrize(("cls", "decode"), DECODERS, ids=["runner", "control"])
@settings(max_examples=examples(400))
@given(data=st.data())
def test_any_bytes_decode_or_raise_protocol_error(
    cls: type[Message], decode: Callable[[bytes], Message], data: st.DataObject
) -> None:
    """Garbage, cut and corrupted frames decode to an envelope with a message in it, or raise
    ProtocolError; no other exception escapes the decoder."""
    frame = data.draw(st.one_of(frames(pb.RunnerMessage), frames(pb.ControlMessage)))
    try:
        envelope = decode(frame)
    except ProtocolError:
        return
    assert isinstance(envelope, cls)
    assert envelope.WhichOneof("kind") is not None


@pytest.mark.parametrize(("cls", "decode"), DECODERS, ids=["runner", "control"])
@settings(max_examples=examples(300))
@given(data=st.data())
def test_envelopes_round_trip(
    cls: type[Message], decode: Callable[[bytes], Message], data: st.DataObject
) -> None:
    """Every well-typed envelope (any message kind the .proto defines) survives encode and
    decode unchanged."""
    envelope = data.draw(envelopes(cls))
    decoded = decode(encode(envelope))  # type: ignore[arg-type]
    assert decoded.WhichOneof("kind") == envelope.WhichOneof("kind")
    assert _canonical(decoded) == _canonical(envelope)


def test_every_message_kind_is_generated() -> None:
    """The strategies draw every kind of both envelopes (a kind added to tunnel.proto too)."""
    seen: set[tuple[str, str]] = set()

    @settings(max_examples=400, database=None)
    @given(st.sampled_from(DECODERS).flatmap(lambda pair: envelopes(pair[0])))
    def draw(envelope: Message) -> None:
        seen.add((envelope.DESCRIPTOR.name, str(envelope.WhichOneof("kind"))))

    draw()
    expected = {
        (cls.DESCRIPTOR.name, f.name)
        for cls, _ in DECODERS
        for f in cls.DESCRIPTOR.oneofs_by_name["kind"].fields
    }
    assert seen == expected

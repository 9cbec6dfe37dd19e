"""Both tunnel session state machines under random sequences of frames and calls.

Each machine mixes frames a peer might send (valid envelopes of every kind, built from the
protobuf descriptors, and cut, corrupted or random bytes) with well-formed steps (a handshake,
credit, tasks and their answers) and with the calls its own side makes. Whatever the order:

- ``receive_frame`` returns events or raises ``ProtocolError``, nothing else, and after a
  ``ProtocolError`` the session is CLOSED;
- a CLOSED session hands out no more events (every frame raises);
- credit is never negative and the control plane's books balance (credit + tasks in flight =
  what was granted + what was adopted);
- a task is never delivered twice: a Result/TaskError reaches the control plane once per task
  sent, and a runner never gets a task it already holds;
- every frame a session writes decodes on the other side.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from edge_runner.errors import ProtocolError
from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import (
    PROTOCOL_VERSION,
    ControlSession,
    RunnerSession,
    SessionState,
    decode_control,
    decode_runner,
    encode,
)
from edge_runner.protocol.session import InflightTask
from tests.fuzzing import MODEL_IDS, TASK_IDS, examples, frames, mostly

pytestmark = pytest.mark.fuzz

TaskKey = tuple[str, int]
_KEYS = st.tuples(st.sampled_from(TASK_IDS), st.integers(1, 3))
_MODELS = st.sampled_from(MODEL_IDS)
#: for steps that end the session: one draw in eight, so runs get somewhere first
_RARELY = st.sampled_from([False] * 7 + [True])


_VERSION = pb.ProtocolVersion(major=PROTOCOL_VERSION[0], minor=PROTOCOL_VERSION[1])


def _runner_frame(**message: object) -> bytes:
    return encode(pb.RunnerMessage(**message))  # type: ignore[arg-type]


def _control_frame(**message: object) -> bytes:
    return encode(pb.ControlMessage(**message))  # type: ignore[arg-type]


_RUNNER_TRAFFIC = mostly(
    st.builds(
        lambda model, n: _runner_frame(credit=pb.Credit(grant={model: n})),
        _MODELS,
        st.integers(0, 3),
    ),
    st.builds(lambda key: _runner_frame(result=pb.Result(task_id=key[0], attempt=key[1])), _KEYS),
    st.builds(
        lambda key: _runner_frame(
            task_error=pb.TaskError(task_id=key[0], attempt=key[1], code="MODEL_ERROR")
        ),
        _KEYS,
    ),
    st.just(_runner_frame(heartbeat=pb.Heartbeat(busy=1))),
    st.just(_runner_frame(draining=pb.Draining())),
    anything=frames(pb.RunnerMessage),
)
_CONTROL_TRAFFIC = mostly(
    st.builds(
        lambda key, model: _control_frame(
            task=pb.Task(task_id=key[0], attempt=key[1], model_id=model, method="predict")
        ),
        _KEYS,
        _MODELS,
    ),
    st.builds(lambda key: _control_frame(cancel=pb.Cancel(task_id=key[0], attempt=key[1])), _KEYS),
    st.just(_control_frame(heartbeat=pb.Heartbeat())),
    st.just(_control_frame(drain=pb.Drain(reason="test"))),
    anything=frames(pb.ControlMessage),
)


class ControlSessionMachine(RuleBasedStateMachine):
    """The control plane's session, fed by a runner that may be broken or hostile."""

    def __init__(self) -> None:
        super().__init__()
        self.session = ControlSession(
            server_version="t", heartbeat_interval_ms=5000, lease_ttl_ms=10000
        )
        #: credit the session accepted from Credit frames, and tasks adopted at accept()
        self.granted: Counter[str] = Counter()
        self.adopted: Counter[str] = Counter()
        #: tasks sent (or adopted), and those whose terminal event was handed up
        self.sent: set[TaskKey] = set()
        self.finished: set[TaskKey] = set()
        self.next_seq: dict[TaskKey, int] = {}
        self.model_of: dict[TaskKey, str] = {}

    # -- what the runner sends ----------------------------------------------------------------

    def _receive(self, frame: bytes) -> None:
        was = self.session.state
        try:
            events = self.session.receive_frame(frame)
        except ProtocolError:
            assert self.session.state is SessionState.CLOSED
            return
        assert was is not SessionState.CLOSED, "a closed session handed out events"
        for event in events:
            if isinstance(event, pb.Credit):
                self.granted.update(event.grant)
            elif isinstance(event, pb.Chunk):
                key = (event.task_id, event.attempt)
                assert key in self.sent and key not in self.finished
            elif isinstance(event, pb.Result | pb.TaskError):
                key = (event.task_id, event.attempt)
                assert key in self.sent, f"a terminal event for {key}, never sent"
                assert key not in self.finished, f"{key} was delivered twice"
                self.finished.add(key)

    @rule(frame=_RUNNER_TRAFFIC)
    def runner_sends(self, frame: bytes) -> None:
        self._receive(frame)

    @initialize(
        hello=st.sampled_from([True, True, True, False]),
        adopted=st.lists(st.tuples(_KEYS, _MODELS, st.integers(0, 3)), max_size=2),
        slots=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    )
    def handshake(
        self, hello: bool, adopted: list[tuple[TaskKey, str, int]], slots: tuple[int, int]
    ) -> None:
        """Most runs start with a valid Hello (some adopting tasks from an earlier tunnel),
        then credit, as a runner does."""
        if not hello:
            return
        self._receive(_runner_frame(hello=pb.Hello(runner_id="runner-a", protocol=_VERSION)))
        assert self.session.state is SessionState.AWAITING_HELLO
        chosen = {key: (model, seq) for key, model, seq in adopted}
        self.session.accept(
            "runner-a",
            {key: InflightTask(model, next_seq=seq) for key, (model, seq) in chosen.items()},
        )
        for key, (model, seq) in chosen.items():
            self.adopted[model] += 1
            self.model_of[key] = model
            self.sent.add(key)
            self.next_seq[key] = seq
        grant = dict(zip(MODEL_IDS, slots, strict=True))
        self._receive(_runner_frame(credit=pb.Credit(grant=grant)))

    @rule(key=_KEYS, payload=st.binary(max_size=8), ahead=st.sampled_from([0, 0, 0, 1]))
    def chunk(self, key: TaskKey, payload: bytes, ahead: int) -> None:
        """The next chunk of a task (sometimes one too far: a gap)."""
        seq = self.next_seq.get(key, 0) + ahead
        chunk = pb.Chunk(task_id=key[0], attempt=key[1], seq=seq, payload=payload)
        self._receive(_runner_frame(chunk=chunk))
        if self.session.state is not SessionState.CLOSED:
            self.next_seq[key] = seq + 1

    # -- what the control plane does ------------------------------------------------------------

    @rule(key=_KEYS, model=_MODELS)
    def send_task(self, key: TaskKey, model: str) -> None:
        """Dispatch sends only with credit, and never the same (task, attempt) twice."""
        if key in self.sent:
            return
        if not self.session.has_credit(model):
            with pytest.raises(ProtocolError):
                self.session.send_task(key[0], key[1], model, "predict", b"{}")
            return
        self.session.send_task(key[0], key[1], model, "predict", b"{}")
        self.sent.add(key)
        self.model_of[key] = model

    @rule(key=_KEYS)
    def cancel(self, key: TaskKey) -> None:
        self.session.send_cancel(key[0], key[1], "test")

    @rule()
    def drain(self) -> None:
        self.session.send_drain("test")

    @rule()
    def heartbeat(self) -> None:
        self.session.send_heartbeat()

    @precondition(lambda self: self.session.state is not SessionState.CLOSED)
    @rule(now=_RARELY)
    def goodbye(self, now: bool) -> None:
        if now:
            self.session.send_goodbye("test", 100)
            assert self.session.state is SessionState.CLOSED

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def credit_is_never_negative_and_balances(self) -> None:
        credits = self.session.credits
        assert all(n >= 0 for n in credits.values()), dict(credits)
        inflight: Counter[str] = Counter(self.model_of[key] for key in self.session.inflight)
        for model in set(self.granted) | set(self.adopted) | set(credits) | set(inflight):
            assert credits[model] + inflight[model] == self.granted[model] + self.adopted[model]

    @invariant()
    def frames_out_decode(self) -> None:
        for frame in self.session.data_to_send():
            assert decode_control(frame).WhichOneof("kind") is not None

    @invariant()
    def closed_stays_closed(self) -> None:
        if self.session.state is SessionState.CLOSED:
            with pytest.raises(ProtocolError):
                self.session.receive_frame(_runner_frame(heartbeat=pb.Heartbeat()))
            assert self.session.state is SessionState.CLOSED


class RunnerSessionMachine(RuleBasedStateMachine):
    """The runner's session, fed by a control plane that may be broken or hostile."""

    def __init__(self) -> None:
        super().__init__()
        self.session = RunnerSession(pb.Hello(runner_id="runner-a", pool_size=2))
        #: slots the runner granted and not yet spent, per model (its own books)
        self.free: Counter[str] = Counter()
        self.delivered: Counter[TaskKey] = Counter()

    def _receive(self, frame: bytes) -> None:
        was = self.session.state
        held = set(self.session.tasks)
        try:
            events = self.session.receive_frame(frame)
        except ProtocolError:
            assert self.session.state is SessionState.CLOSED
            return
        assert was is not SessionState.CLOSED, "a closed session handed out events"
        for event in events:
            if isinstance(event, pb.Task):
                key = (event.task_id, event.attempt)
                assert key not in held, f"{key} was delivered while the runner held it"
                assert self.free[event.model_id] > 0, "a task beyond the granted credit"
                self.free[event.model_id] -= 1
                self.delivered[key] += 1
            elif isinstance(event, pb.Error):
                assert self.session.state is SessionState.CLOSED

    @rule(frame=_CONTROL_TRAFFIC)
    def control_plane_sends(self, frame: bytes) -> None:
        self._receive(frame)

    @initialize(
        welcome=st.sampled_from([True, True, True, False]),
        slots=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    )
    def handshake(self, welcome: bool, slots: tuple[int, int]) -> None:
        """Most runs start with a valid Welcome, then credit, as a runner does."""
        if welcome:
            self._receive(
                _control_frame(welcome=pb.Welcome(runner_id="runner-a", protocol=_VERSION))
            )
            assert self.session.state is SessionState.OPEN
        for model, n in zip(MODEL_IDS, slots, strict=True):
            self.grant(model, n)

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """At-least-once delivery: a task the runner holds comes again (as after a reconnect)."""
        if self.session.tasks:
            key = data.draw(st.sampled_from(sorted(self.session.tasks)))
            model = self.session.tasks[key].model_id
            task = pb.Task(task_id=key[0], attempt=key[1], model_id=model, method="predict")
            self._receive(_control_frame(task=task))

    @rule(model=_MODELS, slots=st.integers(-1, 3))
    def grant(self, model: str, slots: int) -> None:
        open_before = self.session.state is not SessionState.CLOSED
        self.session.grant(model, slots)
        if open_before and slots > 0:
            self.free[model] += slots

    @rule(data=st.data(), error=st.booleans())
    def finish(self, data: st.DataObject, error: bool) -> None:
        """Answer one held task; its slot comes back."""
        if not self.session.tasks:
            return
        key = data.draw(st.sampled_from(sorted(self.session.tasks)))
        model = self.session.tasks[key].model_id
        if error:
            self.session.send_error(key[0], key[1], "MODEL_ERROR", "test")
        else:
            self.session.send_result(key[0], key[1], b"{}")
        self.free[model] += 1

    @rule(data=st.data())
    def chunk(self, data: st.DataObject) -> None:
        if self.session.tasks:
            key = data.draw(st.sampled_from(sorted(self.session.tasks)))
            self.session.send_chunk(key[0], key[1], b'"x"')

    @rule()
    def draining(self) -> None:
        self.session.send_draining()

    @precondition(lambda self: self.session.state is not SessionState.CLOSED)
    @rule(now=_RARELY)
    def goodbye(self, now: bool) -> None:
        if now:
            self.session.send_goodbye("test")

    @invariant()
    def credit_is_never_negative(self) -> None:
        assert all(n >= 0 for n in self.free.values()), dict(self.free)

    @invariant()
    def frames_out_decode(self) -> None:
        for frame in self.session.data_to_send():
            assert decode_runner(frame).WhichOneof("kind") is not None

    @invariant()
    def closed_stays_closed(self) -> None:
        if self.session.state is SessionState.CLOSED:
            with pytest.raises(ProtocolError):
                self.session.receive_frame(_control_frame(heartbeat=pb.Heartbeat()))


_MACHINE_SETTINGS = settings(max_examples=examples(200), stateful_step_count=40)

TestControlSessionMachine = ControlSessionMachine.TestCase
TestControlSessionMachine.settings = _MACHINE_SETTINGS
TestControlSessionMachine.__doc__ = "The control plane's session keeps its invariants."
TestRunnerSessionMachine = RunnerSessionMachine.TestCase
TestRunnerSessionMachine.settings = _MACHINE_SETTINGS
TestRunnerSessionMachine.__doc__ = "The runner's session keeps its invariants."

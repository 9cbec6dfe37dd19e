"""One connected runner as dispatch sees it: its tunnel session, its tasks, its outbox."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from edge_runner.proto import tunnel_pb2 as pb
from edge_runner.protocol import ControlSession, SessionState, format_version

if TYPE_CHECKING:
    from edge_runner.control.tasks import Task

__all__ = ["RunnerLink", "TaskKey"]

TaskKey = tuple[str, int]  # (task id, attempt)


class RunnerLink:
    """One connected runner as dispatch sees it: its session, its tasks, its outbox."""

    def __init__(self, runner_id: str, user_id: str, session: ControlSession) -> None:
        self.runner_id = runner_id
        self.user_id = user_id
        self.session = session
        self.model_ids: tuple[str, ...] = ()
        self.tasks: dict[TaskKey, Task] = {}
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_seen = time.monotonic()
        self.busy_reported = 0
        #: set when the tunnel ended on a protocol error (the message), or went silent
        self.close_error: str | None = None
        self.silent = False
        self.said_goodbye = False
        #: public id of the token the tunnel authenticated with (revoking it closes the tunnel)
        self.token_id = ""
        self.revoked = False
        self.last_heartbeat_sent = time.monotonic()
        #: models whose runner said they are not READY (loading, unavailable), by id
        self.model_status: dict[str, pb.ModelStatus] = {}
        #: models this runner's registration added to the catalog (withdrawn ones are removed)
        self.new_models: set[str] = set()
        #: the runner machine's GPUs as of its last heartbeat, and why there are none
        self.gpu_samples: list[pb.GpuSample] = []
        self.gpu_note = ""

    def flush(self) -> None:
        """Move frames the session queued into the transport's outbox."""
        for frame in self.session.data_to_send():
            self.outbox.put_nowait(frame)

    def free_slots(self, model_id: str) -> int:
        """Credits left for ``model_id`` (0 unless the tunnel is open and the model READY)."""
        if self.session.state is not SessionState.OPEN or model_id in self.model_status:
            return 0
        return self.session.credits[model_id]

    def ready(self, model_id: str) -> bool:
        """Whether this runner can take tasks for ``model_id`` (credit aside)."""
        return self.session.state is SessionState.OPEN and model_id not in self.model_status

    def takes(self, task: Task) -> bool:
        """Whether this runner's protocol can carry ``task`` (a stream-in task needs 1.3)."""
        return not task.input_stream or self.session.input_streams

    @property
    def protocol(self) -> str:
        """The protocol version its Hello said, as ``major.minor``."""
        hello = self.session.hello
        return format_version(hello.protocol) if hello is not None else "?"

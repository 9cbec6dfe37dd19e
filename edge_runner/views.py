"""The JSON views that pass between the daemons, the clients, the CLI, the dashboard and MCP.

Each view is declared once, here, as a :class:`~typing.TypedDict` matching the JSON its writer
sends; the writer builds it and its readers take it, both typed, so a renamed or retyped key
fails ``mypy`` instead of the dashboard. A ``NotRequired`` key is one the writer leaves out in
some cases (the docstring says when). These are types only: they add nothing on the wire, and
nothing checks a document at run time (a client trusts the daemon that answered it).

Control plane (``/v2``): :class:`ControlInfo`, :class:`ModelView` (with :class:`MethodView`),
:class:`RunnerView` (with :class:`RunnerGpuView`), :class:`TaskView`, :class:`LogRecordView`,
:class:`TokenView` and the other token answers; its OpenAI routes: :class:`OpenAIModelList`,
:class:`ChatCompletionView`. A runner's local API: :class:`RunnerSnapshot`,
:class:`ReadyView`, and the event stream's :data:`RunnerEvent`. Telemetry:
:class:`GpuInfoView`, :class:`GpuReportView`, :class:`HostView`, :class:`TelemetryView`,
:class:`MachineGpusView`. The CLI's contexts: :class:`ContextView`.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypeAlias, TypedDict

__all__ = [
    "ChatChoiceView",
    "ChatCompletionView",
    "ChatMessageView",
    "ContextView",
    "ControlInfo",
    "CreatedTokenView",
    "CreatedUserView",
    "DroppedView",
    "EnrolledRunnerView",
    "GpuInfoView",
    "GpuProcessView",
    "GpuReportView",
    "GpuSummaryView",
    "HostProcessView",
    "HostView",
    "JSONObject",
    "JSONValue",
    "LocalModelView",
    "LocalTaskView",
    "LogRecordView",
    "MachineGpusView",
    "MethodView",
    "ModelEventView",
    "ModelSpecView",
    "ModelView",
    "OpenAIModelList",
    "OpenAIModelView",
    "ParamView",
    "ReadinessView",
    "ReadyView",
    "ReplicaView",
    "RevokedTokenView",
    "RunnerEvent",
    "RunnerGpuView",
    "RunnerInfoView",
    "RunnerSnapshot",
    "RunnerView",
    "StatusEventView",
    "TaskEventView",
    "TaskView",
    "TelemetryView",
    "TokenSelfView",
    "TokenView",
    "TunnelEndpoints",
    "TunnelStateView",
    "UsageView",
]

#: A JSON document of any shape: what a model method takes and returns, what ``json.loads``
#: gives.
JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
#: A JSON object of unknown shape (a model's keyword arguments, an OpenAI request body).
JSONObject: TypeAlias = "dict[str, JSONValue]"


# -- the control plane's /v2 API --------------------------------------------------------------


class TunnelEndpoints(TypedDict):
    """Where runners open their tunnel (``GET /v2/info``'s ``tunnel``)."""

    grpc: str
    websocket: str
    tls: bool


class ControlInfo(TypedDict):
    """``GET /v2/info``: what any valid token may ask, runners to find the tunnel."""

    version: str
    protocol_version: str
    tunnel: TunnelEndpoints
    uptime_s: float
    #: the server's clock, so that clients can measure their skew
    time: float


class ParamView(TypedDict):
    """One keyword argument of a method (``Param.to_dict``); the rules only when set."""

    name: str
    type: str
    required: bool
    default: JSONValue
    description: NotRequired[str]
    choices: NotRequired[list[JSONValue]]
    min_value: NotRequired[float]
    max_value: NotRequired[float]


class MethodView(TypedDict):
    """A method's signature (``MethodSignature.to_dict``); ``kind`` is a ``MethodKind`` value."""

    name: str
    kind: str
    params: list[ParamView]
    returns: str
    description: str


class ModelSpecView(TypedDict):
    """A model as its runner registered it (``spec_to_dict``; the registry stores it)."""

    id: str
    backend: str
    model_type_id: str
    chat: bool
    openai: list[str]
    signature_hash: str
    methods: list[MethodView]


class ModelView(ModelSpecView):
    """One of ``GET /v2/models``: the spec, where it runs and its counters.

    ``status`` is ``online`` or ``offline``, or, while no runner of it is ready, the state of
    one that is not (``loading``, ``unavailable``) with its ``message``; ``progress`` and
    ``eta_s`` come with ``loading``.
    """

    status: str
    runners: int
    queued: int
    requests: int
    errors: int
    message: NotRequired[str]
    progress: NotRequired[float]
    eta_s: NotRequired[float]


class OpenAIModelView(TypedDict):
    """One of ``GET /v1/models`` (OpenAI's model object): a model serving an OpenAI route."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class OpenAIModelList(TypedDict):
    """``GET /v1/models``."""

    object: Literal["list"]
    data: list[OpenAIModelView]


class ChatMessageView(TypedDict):
    """The answer of a chat completion: ``content`` is None when the model only calls tools."""

    role: str
    content: str | None
    tool_calls: NotRequired[list[JSONObject]]


class ChatChoiceView(TypedDict):
    """One choice of a ``chat.completion``."""

    index: int
    message: ChatMessageView
    finish_reason: str
    logprobs: None


class UsageView(TypedDict):
    """OpenAI's ``usage`` (estimated where a backend counts no tokens)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionView(TypedDict):
    """``POST /v1/chat/completions`` without ``stream``: OpenAI's ``chat.completion``, written
    by the runner's backend (``CompletionWriter``, or the upstream's own)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoiceView]
    usage: UsageView


class RunnerGpuView(TypedDict):
    """A GPU of a runner's machine.

    As a Hello registered it: ``index``, ``uuid``, ``name``, ``memory_total``. In
    ``GET /v2/runners`` once heartbeats come: every GPU of the machine with ``assigned`` (the
    runner's own), ``utilization``, ``memory_used`` and ``temperature``, and no ``uuid``.
    """

    index: int
    name: str
    memory_total: int
    uuid: NotRequired[str]
    assigned: NotRequired[bool]
    utilization: NotRequired[int | None]
    memory_used: NotRequired[int]
    temperature: NotRequired[int | None]


class RunnerInfoView(TypedDict):
    """What a runner's Hello says about it, as the registry stores it."""

    hostname: str
    version: str
    nodepool: str
    labels: dict[str, str]
    pool_size: int
    models: list[str]
    gpus: list[RunnerGpuView]


class RunnerView(RunnerInfoView):
    """One of ``GET /v2/runners``: the stored info merged with the live tunnel's state.

    ``status`` is ``connected``, ``draining``, ``suspect`` or ``disconnected``; ``busy`` and
    ``free`` are slots; ``gpu_note`` comes with a connected runner.
    """

    id: str
    status: str
    busy: int
    free: int
    last_seen: float
    gpu_note: NotRequired[str]


class ReplicaView(TypedDict):
    """One of ``GET /v2/replicas``: a control-plane process serving this API.

    ``registry`` and ``bus`` are ``ok`` or why they do not answer; ``self`` marks the replica
    that answered the request. Times are Unix seconds.
    """

    id: str
    api_base: str
    tunnel: str
    runners: int
    tasks: int
    registry: str
    bus: str
    started_at: float
    last_seen: float
    self: bool


class ReadinessView(TypedDict):
    """``GET /readyz`` when ready: each check is ``ok``."""

    status: str
    checks: dict[str, str]


class TaskView(TypedDict):
    """One of ``GET /v2/tasks``: a queued or running task, or a finished one.

    ``status`` is ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``. Live tasks
    carry ``age_s``; finished ones ``code`` (``""`` when done) and ``run_time_s``, and
    ``completion_tokens`` and ``tokens_per_s`` where the backend counted tokens. A stream-in
    task (its method takes an input stream) carries ``inputs`` (items sent to its runner) and
    ``outputs`` (chunks received), live or finished.
    """

    task_id: str
    model: str
    method: str
    status: str
    created_at: float
    queue_wait_s: float | None
    runner_id: str
    attempts: int
    age_s: NotRequired[float]
    code: NotRequired[str]
    run_time_s: NotRequired[float | None]
    completion_tokens: NotRequired[int]
    tokens_per_s: NotRequired[float]
    inputs: NotRequired[int]
    outputs: NotRequired[int]


class LogRecordView(TypedDict):
    """A runner's log record: from its local API, or (with ``runner_id``) the control plane's
    ``GET /v2/runners/{id}/logs``. ``task_id`` is ``""`` outside a task."""

    time: float
    level: str
    logger: str
    message: str
    task_id: str
    runner_id: NotRequired[str]


class TokenView(TypedDict):
    """One of ``GET /v2/tokens`` (never the secret)."""

    id: str
    name: str
    scopes: list[str]
    kind: str
    created_at: float
    revoked: bool
    expires_at: float | None


class CreatedTokenView(TypedDict):
    """``POST /v2/tokens``: the new token, its secret shown this once."""

    id: str
    token: str
    name: str
    scopes: list[str]
    kind: str
    expires_at: float | None


class TokenSelfView(TypedDict):
    """``GET /v2/tokens/self``: the calling token (never the secret)."""

    id: str
    name: str
    kind: str
    scopes: list[str]
    user_id: str
    expires_at: float | None


class RevokedTokenView(TypedDict):
    """``DELETE /v2/tokens/{id}``."""

    id: str
    revoked: bool
    tunnels_closed: int


class CreatedUserView(TypedDict):
    """``POST /v2/users``: the new user and its first token, shown this once."""

    id: str
    token: str
    scopes: list[str]


class EnrolledRunnerView(TypedDict):
    """``POST /v2/runners/enroll``: a runner credential (``er_rt_``), shown this once."""

    id: str
    token: str
    runner_id: str


# -- telemetry ------------------------------------------------------------------------------


class GpuProcessView(TypedDict):
    """A process holding GPU memory; ``owner`` names it when it is ours."""

    pid: int
    used_memory: int | None
    owner: str


class GpuInfoView(TypedDict):
    """One GPU as NVML reported it (``GpuInfo.to_dict``); None: not supported by the GPU."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_used: int
    memory_free: int
    utilization: int | None
    memory_utilization: int | None
    temperature: int | None
    power_draw: float | None
    power_limit: float | None
    mig: bool
    processes: list[GpuProcessView]


class GpuReportView(TypedDict):
    """All GPUs at one moment, or none with the reason in ``note`` (``GpuReport.to_dict``)."""

    gpus: list[GpuInfoView]
    driver: str
    note: str
    at: float


class GpuSummaryView(TypedDict):
    """Count, mean utilisation and memory in use of a report (``gpu_summary``)."""

    count: int
    utilization: int | None
    memory_used: int
    memory_total: int
    note: str


class HostProcessView(TypedDict):
    """A watched process: resident memory and CPU (% of a core)."""

    name: str
    pid: int
    rss: int
    cpu_percent: float


class HostView(TypedDict):
    """The machine at one moment (``HostSample.to_dict``)."""

    cpu_percent: float
    cpu_count: int
    memory_total: int
    memory_used: int
    memory_percent: float
    disk_path: str
    disk_total: int
    disk_used: int
    processes: list[HostProcessView]
    at: float


class MachineGpusView(GpuReportView):
    """``edge-runner gpus -o json`` and MCP's ``gpu_status``: the GPUs read here, and the host."""

    host: HostView


class TelemetryView(TypedDict):
    """GPUs and host at one moment (``Sample.to_dict``); ``host`` is None when not sampled."""

    gpu: GpuReportView
    host: HostView | None


# -- a runner's local API -------------------------------------------------------------------


class TunnelStateView(TypedDict):
    """A runner's tunnel: ``state`` is ``connected``, ``connecting``, ``reconnecting``,
    ``draining`` or ``stopping``; ``last_error`` is ``""`` when there was none."""

    state: str
    connected_since: float | None
    reconnects: int
    last_error: str


class ReadyView(TunnelStateView):
    """``GET /ready``: the tunnel, and whether the runner is registered (200) or not (503)."""

    ready: bool


class LocalModelView(TypedDict):
    """A model of a runner's snapshot; ``status`` is ``ready``, ``loading``, ``unavailable``
    or ``failed``."""

    id: str
    backend: str
    status: str
    message: str
    progress: float


class LocalTaskView(TypedDict):
    """A task the runner holds; ``finished``: done, its outcome not yet delivered.

    A stream-in task also has ``inputs`` (items received) and ``outputs`` (chunks produced).
    """

    task_id: str
    attempt: int
    model: str
    method: str
    age_s: float
    queue_wait_s: float
    finished: bool
    inputs: NotRequired[int]
    outputs: NotRequired[int]


class RunnerSnapshot(TypedDict):
    """``GET /v1/snapshot`` of a runner's local API (``Runner.snapshot``).

    ``transport`` is ``grpc`` or ``websocket``; ``watchers`` counts the local API's event
    stream clients; ``telemetry`` is None when the runner samples none.
    """

    runner_id: str
    pid: int
    version: str
    api_base: str
    transport: str
    ready: bool
    tunnel: TunnelStateView
    models: list[LocalModelView]
    pool_size: int
    busy: int
    tasks: list[LocalTaskView]
    started: float
    watchers: int
    telemetry: TelemetryView | None


class TaskEventView(TypedDict):
    """A ``task`` event: ``event`` is ``started`` or ``finished``; a finished one has its
    ``status`` (``ok`` or an error code) and ``run_time_s``, and tokens where counted."""

    event: str
    task_id: str
    attempt: int
    model: str
    method: str
    queue_wait_s: float
    status: NotRequired[str]
    run_time_s: NotRequired[float]
    completion_tokens: NotRequired[int]
    tokens_per_s: NotRequired[float]


class StatusEventView(TypedDict):
    """A ``status`` event: the tunnel's state changed."""

    state: str
    ready: bool
    reconnects: int


class ModelEventView(TypedDict):
    """A ``model`` event: a model's readiness changed (``status`` as in LocalModelView)."""

    model: str
    status: str
    message: str
    progress: float


class DroppedView(TypedDict):
    """A ``dropped`` event: this many events were lost on a client too slow for the stream."""

    count: int


class _SnapshotEvent(TypedDict):
    topic: Literal["snapshot"]
    data: RunnerSnapshot


class _LogEvent(TypedDict):
    topic: Literal["log"]
    data: LogRecordView


class _TaskEvent(TypedDict):
    topic: Literal["task"]
    data: TaskEventView


class _TelemetryEvent(TypedDict):
    topic: Literal["telemetry"]
    data: TelemetryView


class _StatusEvent(TypedDict):
    topic: Literal["status"]
    data: StatusEventView


class _ModelEvent(TypedDict):
    topic: Literal["model"]
    data: ModelEventView


class _DroppedEvent(TypedDict):
    topic: Literal["dropped"]
    data: DroppedView


#: One message of a runner's ``/v1/events`` stream; ``event["topic"]`` says which (a test of
#: it narrows ``event["data"]``).
RunnerEvent: TypeAlias = (
    "_SnapshotEvent | _LogEvent | _TaskEvent | _TelemetryEvent | _StatusEvent | _ModelEvent"
    " | _DroppedEvent"
)


# -- the CLI's contexts ---------------------------------------------------------------------


class ContextView(TypedDict):
    """A context as ``context list -o json`` and MCP show it; ``token`` is masked (None: none
    stored), ``extra`` holds the context's other keys (when it has any). ``context show`` adds
    ``secret_store`` (where the token is), the dashboard ``reachable``."""

    name: str
    active: bool
    api_base: str
    user_id: str
    token: str | None
    extra: NotRequired[dict[str, object]]
    secret_store: NotRequired[str]
    reachable: NotRequired[bool]

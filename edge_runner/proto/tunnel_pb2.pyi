from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MethodKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_KIND_UNSPECIFIED: _ClassVar[MethodKind]
    UNARY: _ClassVar[MethodKind]
    SERVER_STREAM: _ClassVar[MethodKind]
    BIDI: _ClassVar[MethodKind]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    LOADING: _ClassVar[ModelState]
    READY: _ClassVar[ModelState]
    UNAVAILABLE: _ClassVar[ModelState]
    FAILED: _ClassVar[ModelState]
METHOD_KIND_UNSPECIFIED: MethodKind
UNARY: MethodKind
SERVER_STREAM: MethodKind
BIDI: MethodKind
MODEL_STATE_UNSPECIFIED: ModelState
LOADING: ModelState
READY: ModelState
UNAVAILABLE: ModelState
FAILED: ModelState

class ProtocolVersion(_message.Message):
    __slots__ = ("major", "minor")
    MAJOR_FIELD_NUMBER: _ClassVar[int]
    MINOR_FIELD_NUMBER: _ClassVar[int]
    major: int
    minor: int
    def __init__(self, major: _Optional[int] = ..., minor: _Optional[int] = ...) -> None: ...

class ParamSpec(_message.Message):
    __slots__ = ("name", "type", "required", "default_json", "description", "choices_json", "min_value", "max_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHOICES_JSON_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    required: bool
    default_json: str
    description: str
    choices_json: str
    min_value: float
    max_value: float
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., default_json: _Optional[str] = ..., description: _Optional[str] = ..., choices_json: _Optional[str] = ..., min_value: _Optional[float] = ..., max_value: _Optional[float] = ...) -> None: ...

class MethodSpec(_message.Message):
    __slots__ = ("name", "kind", "params", "returns", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: MethodKind
    params: _containers.RepeatedCompositeFieldContainer[ParamSpec]
    returns: str
    description: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[MethodKind, str]] = ..., params: _Optional[_Iterable[_Union[ParamSpec, _Mapping]]] = ..., returns: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("model_id", "methods", "signature_hash", "chat", "backend", "model_type_id", "openai")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_HASH_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_ID_FIELD_NUMBER: _ClassVar[int]
    OPENAI_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    methods: _containers.RepeatedCompositeFieldContainer[MethodSpec]
    signature_hash: str
    chat: bool
    backend: str
    model_type_id: str
    openai: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_id: _Optional[str] = ..., methods: _Optional[_Iterable[_Union[MethodSpec, _Mapping]]] = ..., signature_hash: _Optional[str] = ..., chat: _Optional[bool] = ..., backend: _Optional[str] = ..., model_type_id: _Optional[str] = ..., openai: _Optional[_Iterable[str]] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "uuid", "name", "memory_total_bytes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ...) -> None: ...

class GpuSample(_message.Message):
    __slots__ = ("index", "utilization", "memory_used_bytes", "memory_total_bytes", "temperature")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    index: int
    utilization: int
    memory_used_bytes: int
    memory_total_bytes: int
    temperature: int
    def __init__(self, index: _Optional[int] = ..., utilization: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ..., temperature: _Optional[int] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("runner_id", "version", "protocol", "hostname", "labels", "nodepool", "pool_size", "models", "gpus", "inflight")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NODEPOOL_FIELD_NUMBER: _ClassVar[int]
    POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    version: str
    protocol: ProtocolVersion
    hostname: str
    labels: _containers.ScalarMap[str, str]
    nodepool: str
    pool_size: int
    models: _containers.RepeatedCompositeFieldContainer[ModelSpec]
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    inflight: _containers.RepeatedCompositeFieldContainer[TaskRef]
    def __init__(self, runner_id: _Optional[str] = ..., version: _Optional[str] = ..., protocol: _Optional[_Union[ProtocolVersion, _Mapping]] = ..., hostname: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., nodepool: _Optional[str] = ..., pool_size: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelSpec, _Mapping]]] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., inflight: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ...) -> None: ...

class Credit(_message.Message):
    __slots__ = ("grant",)
    class GrantEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: _containers.ScalarMap[str, int]
    def __init__(self, grant: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_unix_ms", "busy", "gpus", "gpu_note")
    SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_NOTE_FIELD_NUMBER: _ClassVar[int]
    sent_unix_ms: int
    busy: int
    gpus: _containers.RepeatedCompositeFieldContainer[GpuSample]
    gpu_note: str
    def __init__(self, sent_unix_ms: _Optional[int] = ..., busy: _Optional[int] = ..., gpus: _Optional[_Iterable[_Union[GpuSample, _Mapping]]] = ..., gpu_note: _Optional[str] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("task_id", "attempt", "seq", "payload")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    seq: int
    payload: bytes
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("task_id", "attempt", "payload", "usage")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    payload: bytes
    usage: Usage
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., payload: _Optional[bytes] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class TaskError(_message.Message):
    __slots__ = ("task_id", "attempt", "code", "message", "retryable")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    code: str
    message: str
    retryable: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("unix_ms", "level", "logger", "message", "task_id")
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    unix_ms: int
    level: str
    logger: str
    message: str
    task_id: str
    def __init__(self, unix_ms: _Optional[int] = ..., level: _Optional[str] = ..., logger: _Optional[str] = ..., message: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class Logs(_message.Message):
    __slots__ = ("records", "dropped")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    dropped: int
    def __init__(self, records: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...

class Draining(_message.Message):
    __slots__ = ("inflight",)
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    inflight: int
    def __init__(self, inflight: _Optional[int] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("reason", "reconnect_after_ms")
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    reconnect_after_ms: int
    def __init__(self, reason: _Optional[str] = ..., reconnect_after_ms: _Optional[int] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("model_id", "state", "progress", "message", "eta_ms")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETA_MS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    state: ModelState
    progress: float
    message: str
    eta_ms: int
    def __init__(self, model_id: _Optional[str] = ..., state: _Optional[_Union[ModelState, str]] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., eta_ms: _Optional[int] = ...) -> None: ...

class InputCredit(_message.Message):
    __slots__ = ("task_id", "attempt", "upto_seq")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    UPTO_SEQ_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    upto_seq: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., upto_seq: _Optional[int] = ...) -> None: ...

class RunnerMessage(_message.Message):
    __slots__ = ("hello", "credit", "heartbeat", "accepted", "chunk", "result", "task_error", "logs", "draining", "goodbye", "model_status", "input_credit")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TASK_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    MODEL_STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CREDIT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    credit: Credit
    heartbeat: Heartbeat
    accepted: Accepted
    chunk: Chunk
    result: Result
    task_error: TaskError
    logs: Logs
    draining: Draining
    goodbye: Goodbye
    model_status: ModelStatus
    input_credit: InputCredit
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., credit: _Optional[_Union[Credit, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., accepted: _Optional[_Union[Accepted, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., task_error: _Optional[_Union[TaskError, _Mapping]] = ..., logs: _Optional[_Union[Logs, _Mapping]] = ..., draining: _Optional[_Union[Draining, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., model_status: _Optional[_Union[ModelStatus, _Mapping]] = ..., input_credit: _Optional[_Union[InputCredit, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("runner_id", "protocol", "heartbeat_interval_ms", "lease_ttl_ms", "server_version", "adopted", "stream_window")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADOPTED_FIELD_NUMBER: _ClassVar[int]
    STREAM_WINDOW_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    protocol: ProtocolVersion
    heartbeat_interval_ms: int
    lease_ttl_ms: int
    server_version: str
    adopted: _containers.RepeatedCompositeFieldContainer[TaskRef]
    stream_window: int
    def __init__(self, runner_id: _Optional[str] = ..., protocol: _Optional[_Union[ProtocolVersion, _Mapping]] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_ttl_ms: _Optional[int] = ..., server_version: _Optional[str] = ..., adopted: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ..., stream_window: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "attempt", "model_id", "method", "payload", "deadline_unix_ms", "queued_ms", "input_stream")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_STREAM_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    model_id: str
    method: str
    payload: bytes
    deadline_unix_ms: int
    queued_ms: int
    input_stream: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., model_id: _Optional[str] = ..., method: _Optional[str] = ..., payload: _Optional[bytes] = ..., deadline_unix_ms: _Optional[int] = ..., queued_ms: _Optional[int] = ..., input_stream: _Optional[bool] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("task_id", "attempt", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("reconnect_after_ms", "reason")
    RECONNECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    reconnect_after_ms: int
    reason: str
    def __init__(self, reconnect_after_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StreamCredit(_message.Message):
    __slots__ = ("task_id", "attempt", "upto_seq")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    UPTO_SEQ_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    upto_seq: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., upto_seq: _Optional[int] = ...) -> None: ...

class InputChunk(_message.Message):
    __slots__ = ("task_id", "attempt", "seq", "payload")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    seq: int
    payload: bytes
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class InputEnd(_message.Message):
    __slots__ = ("task_id", "attempt", "count")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    count: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class ControlMessage(_message.Message):
    __slots__ = ("welcome", "task", "cancel", "drain", "goodbye", "error", "heartbeat", "stream_credit", "input_chunk", "input_end")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STREAM_CREDIT_FIELD_NUMBER: _ClassVar[int]
    INPUT_CHUNK_FIELD_NUMBER: _ClassVar[int]
    INPUT_END_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    task: Task
    cancel: Cancel
    drain: Drain
    goodbye: Goodbye
    error: Error
    heartbeat: Heartbeat
    stream_credit: StreamCredit
    input_chunk: InputChunk
    input_end: InputEnd
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., stream_credit: _Optional[_Union[StreamCredit, _Mapping]] = ..., input_chunk: _Optional[_Union[InputChunk, _Mapping]] = ..., input_end: _Optional[_Union[InputEnd, _Mapping]] = ...) -> None: ...

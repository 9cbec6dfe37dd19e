"""The one exception tree of edge-runner.

Every error our code raises on purpose is an :class:`EdgeRunnerError`. Foreign errors (httpx,
grpc, sqlite, yaml, protobuf, ollama) are translated at exactly one boundary per subsystem and
chained with ``raise X(...) from exc`` so a support log keeps the cause::

    EdgeRunnerError
    ├── ConfigError              bad contexts file, unknown context, bad option value
    │   ├── SecretStoreError     keyring / secret file unusable (loose permissions, hung backend)
    │   │   └── KeyringUnavailable  one OS keyring call hung or failed (the store falls back)
    │   ├── PlacementError       (runner.placement) no set of GPUs here fits the model folder
    │   ├── DataDirBusy          (control.datadir) another control plane holds the data dir
    │   └── NotATerminal         (the dashboard) no terminal to draw on
    ├── ModelFolderError         a model folder that cannot be loaded (names the file and the fix)
    ├── UnsupportedType          a type hint outside the JSON types (becomes ModelFolderError)
    ├── InvalidArgument          request arguments that do not match a method signature
    ├── TypeMismatch             a value that does not match its type (becomes InvalidArgument)
    ├── ProtocolError            a malformed or out-of-order tunnel frame
    │   └── VersionMismatch      runner and control plane speak incompatible protocol majors
    ├── TunnelError              the runner's tunnel could not open, or broke
    ├── BackendError             a task failed in its backend; ``code`` travels in the TaskError
    ├── BackendUnreachable       a backend's server (Ollama) stopped answering while preparing
    ├── PullFailed               Ollama answered, but a model could not be pulled
    ├── QueueFull                the control plane's queue for a model is full (answered 429)
    ├── RunnerTooOld             only runners older than protocol 1.3 serve a stream-in method
    ├── ApiProblem               an error answer of the control plane's HTTP API (server side)
    ├── SelfTestFailed           a step of ``edge-runner selftest`` failed
    └── ClientError              talking to a control plane from edge_runner.client
        ├── ConnectionFailed     nothing answered at api_base (or it broke mid-request)
        ├── NoLocalRunner        (local_client) no runner on this machine, or none picked
        └── ApiError             the control plane answered with an error status
            ├── Unauthorized     401
            ├── Forbidden        403 (the token lacks a scope)
            ├── NotFound         404
            ├── BadRequest       400, 413, 422 (and 501 for not-yet-supported methods)
            ├── Overloaded       429, 503 (carries retry_after)
            └── TaskFailed       500, 504, or an ``event: error`` in a stream

The classes marked with a module live next to their one raiser; the rest live here. Messages
are written for a person: what was tried, what exists, what to do. The machine-readable codes
that travel with them (in a tunnel TaskError or Error, in an HTTP answer's ``error.code``) are
the members of :class:`ErrorCode`.
"""

from __future__ import annotations

import enum

__all__ = [
    "ApiError",
    "ApiProblem",
    "api_error",
    "BackendError",
    "BackendUnreachable",
    "BadRequest",
    "ClientError",
    "ConfigError",
    "ConnectionFailed",
    "EdgeRunnerError",
    "ErrorCode",
    "Forbidden",
    "InvalidArgument",
    "KeyringUnavailable",
    "ModelFolderError",
    "NotFound",
    "Overloaded",
    "ProtocolError",
    "PullFailed",
    "QueueFull",
    "RunnerTooOld",
    "SecretStoreError",
    "SelfTestFailed",
    "TaskFailed",
    "TunnelError",
    "TypeMismatch",
    "Unauthorized",
    "UnsupportedType",
    "VersionMismatch",
]


class ErrorCode(enum.StrEnum):
    """Every machine-readable error code edge-runner sends: its wire vocabulary, in one place.

    A runner sends a task code in a ``TaskError``; either side of a tunnel sends a session code
    in an ``Error`` frame; the control plane answers an HTTP error with a code in
    ``error.code`` (``control.openapi_routes.ERRORS`` documents each one at its status). The
    members are strings equal to what travels, so the wire format is the strings themselves.
    """

    # A task failed (TaskError.code; the control plane answers each at one HTTP status).
    MODEL_ERROR = "MODEL_ERROR"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    BAD_REQUEST = "BAD_REQUEST"
    NOT_FOUND = "NOT_FOUND"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    UNAVAILABLE = "UNAVAILABLE"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    MODEL_LOADING = "MODEL_LOADING"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    RUNNER_LOST = "RUNNER_LOST"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    SLOW_READER = "SLOW_READER"
    RUNNER_TOO_OLD = "RUNNER_TOO_OLD"

    # The tunnel session refused a peer or broke (Error.code).
    PROTOCOL = "PROTOCOL"
    MALFORMED_FRAME = "MALFORMED_FRAME"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    INVALID_HELLO = "INVALID_HELLO"
    INVALID_SPEC = "INVALID_SPEC"
    SIGNATURE_CONFLICT = "SIGNATURE_CONFLICT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"

    # The HTTP API refused a request, or could not run it.
    INVALID_JSON = "INVALID_JSON"
    INVALID_BODY = "INVALID_BODY"
    ALREADY_RUNNER_TOKEN = "ALREADY_RUNNER_TOKEN"
    NOT_MCP = "NOT_MCP"
    MISSING_SCOPE = "MISSING_SCOPE"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    UNKNOWN_METHOD = "UNKNOWN_METHOD"
    UNKNOWN_TASK = "UNKNOWN_TASK"
    UNKNOWN_RUNNER = "UNKNOWN_RUNNER"
    UNKNOWN_TOKEN = "UNKNOWN_TOKEN"
    MODEL_NOT_FOUND = "model_not_found"  # OpenAI's own code, on the /v1 routes
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    USER_EXISTS = "USER_EXISTS"
    CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    QUEUE_FULL = "QUEUE_FULL"
    NO_RUNNER = "NO_RUNNER"
    BAD_RUNNER_ANSWER = "BAD_RUNNER_ANSWER"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    HTTP_ERROR = "HTTP_ERROR"  # any other HTTP error status (and a body the client cannot read)

    # A server limit, answered before any route runs.
    INVALID_HTTP = "INVALID_HTTP"
    HEADER_TIMEOUT = "HEADER_TIMEOUT"
    BODY_TIMEOUT = "BODY_TIMEOUT"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"


class EdgeRunnerError(Exception):
    """Base of every error edge-runner raises on purpose."""


class ConfigError(EdgeRunnerError):
    """A configuration problem the user can fix (file, context, option)."""


class SecretStoreError(ConfigError):
    """The secret store (OS keyring or 0600 file) cannot be used safely."""


class KeyringUnavailable(SecretStoreError):
    """One OS keyring call timed out or failed; the message says which and why (no secret in it).

    :class:`~edge_runner.config.SecretStore` catches it where it calls the keyring and falls back
    to the file store, or raises a plain :class:`SecretStoreError` when that is not allowed.
    """


class ModelFolderError(EdgeRunnerError):
    """A model folder is malformed; the message names the file and what to fix."""


class UnsupportedType(EdgeRunnerError):
    """A type hint outside the supported JSON types; ``str(exc)`` says which part.

    Raised while a model's signatures are read, and turned there into a
    :class:`ModelFolderError` that names the method and parameter.
    """


class InvalidArgument(EdgeRunnerError):
    """Request arguments do not match the method signature.

    Attributes:
        argument: the offending argument's name, or ``None`` for the whole body.
    """

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class TypeMismatch(EdgeRunnerError):
    """A value does not match a type spec.

    Raised while arguments are checked, and turned there into an :class:`InvalidArgument`
    (or a :class:`ModelFolderError` for a default that does not match its hint).

    Attributes:
        where: the path inside the value (``"[2]"``, ``"['role']"``), ``""`` at the top.
        got: the JSON type name of the offending value (or what is wrong with it).
        detail: what was expected, in words (``""`` when the type says it all).
    """

    def __init__(self, where: str, got: str, detail: str = "") -> None:
        super().__init__(
            f"got {got}" + (f" at {where}" if where else "") + (f": {detail}" if detail else "")
        )
        self.where = where
        self.got = got
        self.detail = detail


class ProtocolError(EdgeRunnerError):
    """A tunnel peer sent something the protocol does not allow."""


class VersionMismatch(ProtocolError):
    """The peer speaks an incompatible protocol major version."""


class TunnelError(EdgeRunnerError):
    """The runner's tunnel transport failed (connect refused, reset, closed with an error)."""


class BackendError(EdgeRunnerError):
    """A task failed in its backend; the runner sends ``code`` and the message in a TaskError.

    Attributes:
        code: the tunnel error code (``INVALID_ARGUMENT``, ``NOT_FOUND``, ...); the control plane
            answers it with the HTTP status it maps to.
        message: for a person: what was wrong and what to do.
        retryable: the task did not run and may run again (elsewhere, or here later): the model
            was still loading, or its backend had just stopped answering.
    """

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class BackendUnreachable(EdgeRunnerError):
    """A backend's server (Ollama) could not be reached, or broke off, while models were prepared.

    The backend marks its models UNAVAILABLE and prepares them again once the server answers.
    """


class PullFailed(EdgeRunnerError):
    """Ollama answered, but pulling a model failed for good (unknown name, disk full, no network).

    Attributes:
        name: the model that was pulled.
        error: Ollama's own words.
    """

    def __init__(self, name: str, error: str) -> None:
        super().__init__(f"Ollama could not pull {name!r}: {error}")
        self.name = name
        self.error = error


class QueueFull(EdgeRunnerError):
    """The model's queue on the control plane is at its bound; the client should retry later."""


class RunnerTooOld(EdgeRunnerError):
    """A stream-in call for a model whose runners all speak a protocol before 1.3 (which has
    no input frames); the message names the versions and the runners."""


class ApiProblem(EdgeRunnerError):
    """An error answer of the control plane's HTTP API, raised anywhere in a route.

    ``control.http_errors.problem_response`` renders it as the one JSON error shape; the client
    reads that answer back as an :class:`ApiError`.

    Attributes:
        status: the HTTP status.
        code: ``error.code`` in the body: an :class:`ErrorCode`, or the code a runner sent in
            its TaskError, passed on as it came (a newer runner may send one this side lacks).
        message: ``error.message`` in the body.
        param: ``error.param``: the request field at fault, if one is.
        retry_after: seconds for a ``Retry-After`` header.
        task_id: the task's id for an ``X-Task-Id`` header, once there is a task.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


class SelfTestFailed(EdgeRunnerError):
    """One step of the self-test failed.

    Attributes:
        step: what was being done (``"start the control plane"``, ``"predict"``, ...).
        detail: what went wrong.
    """

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


class ClientError(EdgeRunnerError):
    """A call from :mod:`edge_runner.client` failed."""


class ConnectionFailed(ClientError):
    """No control plane answered at the configured address."""


class ApiError(ClientError):
    """The control plane answered with an error.

    Attributes:
        status: HTTP status code (0 for an error event inside a stream).
        code: machine-readable error code from the JSON body.
        message: the human-readable message from the JSON body.
        retry_after: seconds from ``Retry-After``, when the server sent one.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Unauthorized(ApiError):
    """Missing, unknown or revoked token (401)."""


class Forbidden(ApiError):
    """The token is valid but lacks the scope the call needs (403)."""


class NotFound(ApiError):
    """Unknown model, method, runner or task (404)."""


class BadRequest(ApiError):
    """The request was malformed or its arguments were wrong (400, 408, 413, 422, 501)."""


class Overloaded(ApiError):
    """The queue is full or no runner serves the model yet (429, 503)."""


class TaskFailed(ApiError):
    """The model raised, the runner was lost, or the deadline passed (500, 504)."""


_ERROR_FOR_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: BadRequest,
    413: BadRequest,
    422: BadRequest,
    429: Overloaded,
    501: BadRequest,
    503: Overloaded,
}


def api_error(status: int, code: str, message: str, retry_after: float | None = None) -> ApiError:
    """The :class:`ApiError` for an answer of ``status`` (:class:`TaskFailed` for the others),
    the one table the HTTP and the WebSocket clients share."""
    return _ERROR_FOR_STATUS.get(status, TaskFailed)(status, code, message, retry_after)

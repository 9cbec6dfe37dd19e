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
are written for a person: what was tried, what exists, what to do.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ApiProblem",
    "BackendError",
    "BackendUnreachable",
    "BadRequest",
    "ClientError",
    "ConfigError",
    "ConnectionFailed",
    "EdgeRunnerError",
    "Forbidden",
    "InvalidArgument",
    "KeyringUnavailable",
    "ModelFolderError",
    "NotFound",
    "Overloaded",
    "ProtocolError",
    "PullFailed",
    "QueueFull",
    "SecretStoreError",
    "SelfTestFailed",
    "TaskFailed",
    "TunnelError",
    "TypeMismatch",
    "Unauthorized",
    "UnsupportedType",
    "VersionMismatch",
]


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
        got: the JSON type name of the offending value.
    """

    def __init__(self, where: str, got: str) -> None:
        super().__init__(f"got {got}" + (f" at {where}" if where else ""))
        self.where = where
        self.got = got


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

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
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


class ApiProblem(EdgeRunnerError):
    """An error answer of the control plane's HTTP API, raised anywhere in a route.

    ``control.http_errors.problem_response`` renders it as the one JSON error shape; the client
    reads that answer back as an :class:`ApiError`.

    Attributes:
        status: the HTTP status.
        code: ``error.code`` in the body.
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
    """The request was malformed or its arguments were wrong (400, 413, 422, 501)."""


class Overloaded(ApiError):
    """The queue is full or no runner serves the model yet (429, 503)."""


class TaskFailed(ApiError):
    """The model raised, the runner was lost, or the deadline passed (500, 504)."""

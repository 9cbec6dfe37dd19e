"""The one exception tree of edge-runner.

Every error our code raises on purpose is an :class:`EdgeRunnerError`. Foreign errors (httpx,
grpc, sqlite, yaml, protobuf) are translated at exactly one boundary per subsystem and chained
with ``raise X(...) from exc`` so a support log keeps the cause::

    EdgeRunnerError
    ├── ConfigError              bad contexts file, unknown context, bad option value
    │   └── SecretStoreError     keyring / secret file unusable (loose permissions, hung backend)
    ├── ModelFolderError         a model folder that cannot be loaded (names the file and the fix)
    ├── InvalidArgument          request arguments that do not match a method signature
    ├── ProtocolError            a malformed or out-of-order tunnel frame
    │   └── VersionMismatch      runner and control plane speak incompatible protocol majors
    ├── TunnelError              the runner's tunnel could not open, or broke
    └── ClientError              talking to a control plane from edge_runner.client
        ├── ConnectionFailed     nothing answered at api_base (or it broke mid-request)
        └── ApiError             the control plane answered with an error status
            ├── Unauthorized     401
            ├── Forbidden        403 (the token lacks a scope)
            ├── NotFound         404
            ├── BadRequest       400, 413, 422 (and 501 for not-yet-supported methods)
            ├── Overloaded       429, 503 (carries retry_after)
            └── TaskFailed       500, 504, or an ``event: error`` in a stream

Messages are written for a person: what was tried, what exists, what to do.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BadRequest",
    "ClientError",
    "ConfigError",
    "ConnectionFailed",
    "EdgeRunnerError",
    "Forbidden",
    "InvalidArgument",
    "ModelFolderError",
    "NotFound",
    "Overloaded",
    "ProtocolError",
    "SecretStoreError",
    "TaskFailed",
    "TunnelError",
    "Unauthorized",
    "VersionMismatch",
]


class EdgeRunnerError(Exception):
    """Base of every error edge-runner raises on purpose."""


class ConfigError(EdgeRunnerError):
    """A configuration problem the user can fix (file, context, option)."""


class SecretStoreError(ConfigError):
    """The secret store (OS keyring or 0600 file) cannot be used safely."""


class ModelFolderError(EdgeRunnerError):
    """A model folder is malformed; the message names the file and what to fix."""


class InvalidArgument(EdgeRunnerError):
    """Request arguments do not match the method signature.

    Attributes:
        argument: the offending argument's name, or ``None`` for the whole body.
    """

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class ProtocolError(EdgeRunnerError):
    """A tunnel peer sent something the protocol does not allow."""


class VersionMismatch(ProtocolError):
    """The peer speaks an incompatible protocol major version."""


class TunnelError(EdgeRunnerError):
    """The runner's tunnel transport failed (connect refused, reset, closed with an error)."""


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

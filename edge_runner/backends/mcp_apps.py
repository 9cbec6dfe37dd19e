"""The ASGI app of the server an MCP model folder returns: the MCP SDK's or fastmcp's.

``get_server()`` may return either of the two servers MCP folders are written with:

- ``mcp.server.mcpserver.MCPServer`` (the MCP SDK, ``mcp>=2.3``): ``streamable_http_app()``;
- ``fastmcp.FastMCP`` (fastmcp 4.x, what Clarifai's MCP examples use): ``http_app()``.

Both build a Starlette streamable-HTTP app around their own low-level server, and both take
the options the runner needs (stateless, JSON answers, the path), so the backend hosts either
one the same way (:class:`~edge_runner.backends.mcp_server.MCPBackend`): one code path from the
HTTP exchange on. The app is each framework's own front door, so everything a client sees
(tool errors, structured output, resource templates, prompts, a tool's ``Context``) is the
framework's behaviour, not a translation of ours.

fastmcp before 4 is built on ``mcp<2`` (2.14.x and 3.x pin ``mcp>=1.24,<2``; 4.0 needs
``mcp>=2,<3`` and 4.1 on ``mcp>=2.3,<3``), which cannot be installed beside edge-runner's
``mcp>=2.3``; :func:`fastmcp_problem` turns the failures that
leads to into one message naming the installed version and the supported range.

Clarifai's MCP template (``clarifai model init --model-type-id mcp``) writes
``FastMCP(..., stateless_http=True)``, which fastmcp 4 refuses: the transport options moved to
``http_app()``, where the runner sets them anyway. :func:`accept_transport_options` lets such a
folder run unchanged by dropping them from ``FastMCP()`` before the folder is imported.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import inspect
import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_runner.errors import ModelFolderError

__all__ = [
    "FASTMCP_INSTALL",
    "FASTMCP_SUPPORTED",
    "accept_transport_options",
    "build_app",
    "fastmcp_problem",
    "fastmcp_version",
    "sdk_missing",
    "unsupported_fastmcp",
]

logger = logging.getLogger(__name__)

#: the fastmcp releases edge-runner hosts (4.x is built on mcp 2, as edge-runner is)
FASTMCP_SUPPORTED = ">=4,<5"
#: the line that installs a supported fastmcp
FASTMCP_INSTALL = "pip install 'edge-runner[fastmcp]'"
_FIRST_MAJOR, _NEXT_MAJOR = 4, 5
_ACCEPTED = (
    "return an mcp.server.mcpserver.MCPServer (the MCP SDK) or a fastmcp.FastMCP "
    f"(fastmcp{FASTMCP_SUPPORTED})"
)
_warned_newer: set[str] = set()
#: FastMCP() options of fastmcp < 4 that the runner's http_app() call now decides
_TRANSPORT_KWARGS = ("stateless_http", "json_response", "streamable_http_path")


def accept_transport_options(model_file: Path) -> None:
    """Let ``FastMCP(stateless_http=..., json_response=..., streamable_http_path=...)`` (fastmcp
    before 4, and Clarifai's MCP template) run on fastmcp 4, which refuses those options.

    Only when ``model_file`` mentions fastmcp and a fastmcp 4 or later is installed (importing
    fastmcp sets up logging of its own, which other folders should not get): ``FastMCP()``
    then drops those options, logging once what it dropped, since the runner's ``http_app()``
    call decides them (stateless, JSON answers, its own path). Idempotent.
    """
    try:
        if "fastmcp" not in model_file.read_text(encoding="utf-8", errors="replace"):
            return
    except OSError:
        return  # the loader reports a missing or unreadable file
    version = fastmcp_version()
    if version is None or _major(version) < _FIRST_MAJOR:
        return  # not installed, or too old: the loader's error says so
    try:
        from fastmcp import FastMCP
    except Exception:  # a broken fastmcp: importing the folder fails, and fastmcp_problem says why
        return
    original = FastMCP.__init__
    if getattr(original, "_edge_runner_drops", False):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        dropped = sorted(k for k in _TRANSPORT_KWARGS if kwargs.pop(k, None) is not None)
        if dropped:
            logger.info(
                "FastMCP(%s) ignored: fastmcp %s moved them to http_app(), where edge-runner "
                "serves every MCP server stateless with JSON answers",
                ", ".join(f"{k}=" for k in dropped),
                version,
            )
        original(self, *args, **kwargs)

    init._edge_runner_drops = True  # type: ignore[attr-defined]
    FastMCP.__init__ = init  # type: ignore[method-assign]


def build_app(server: object, *, path: str, max_body: int, model_file: Path) -> Any:
    """The streamable-HTTP ASGI app of ``server``: stateless, JSON answers, served at ``path``.

    Raises:
        ModelFolderError: ``server`` is neither kind of server, is a FastMCP of an unsupported
            version, or asks for its own auth (the control plane authenticates callers).
    """
    if _is_fastmcp(server):
        return _fastmcp_app(server, path, model_file)
    if _is_mcpserver(server):
        build: Any = server.streamable_http_app  # type: ignore[attr-defined]  # checked above
        return build(
            streamable_http_path=path,
            json_response=True,
            stateless_http=True,
            max_request_body_size=max_body,
        )
    raise ModelFolderError(
        f"get_server() of {model_file} returned a {_describe(server)}, not an MCP server; "
        f"{_ACCEPTED}"
    )


def _describe(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_mcpserver(server: object) -> bool:
    from mcp.server.mcpserver import MCPServer

    return isinstance(server, MCPServer)


def _is_fastmcp(server: object) -> bool:
    # by name, so an unsupported fastmcp whose classes moved is still recognised (and named)
    return any(
        c.__name__ == "FastMCP" and c.__module__.split(".")[0] == "fastmcp"
        for c in type(server).__mro__
    )


def _fastmcp_app(server: Any, path: str, model_file: Path) -> Any:
    version = fastmcp_version() or "(unknown version)"
    problem = unsupported_fastmcp(version)
    if problem is not None:
        raise ModelFolderError(f"get_server() of {model_file} returned a FastMCP: {problem}")
    if getattr(server, "auth", None) is not None:
        raise ModelFolderError(
            f"get_server() of {model_file} returned a FastMCP with auth=: hosted servers are "
            "reached through the control plane, which authenticates every caller (Bearer "
            "tokens with the predict scope) and does not forward their tokens; remove auth= "
            "from FastMCP(...)"
        )
    if _major(version) >= _NEXT_MAJOR and version not in _warned_newer:
        _warned_newer.add(version)
        logger.warning(
            "fastmcp %s is newer than the releases edge-runner is tested with (fastmcp%s); "
            "hosting it anyway",
            version,
            FASTMCP_SUPPORTED,
        )
    try:
        options: dict[str, object] = {
            "path": path,
            "json_response": True,
            "stateless_http": True,
            "transport": "http",
        }
        if "host_origin_protection" in inspect.signature(server.http_app).parameters:
            # reached in-process only, through the control plane (which checks the caller):
            # no browser's Host or Origin to guard, whatever FASTMCP_* settings say
            options["host_origin_protection"] = False
        return server.http_app(**options)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ModelFolderError(
            f"get_server() of {model_file} returned a FastMCP of fastmcp {version}, whose "
            f"http_app() edge-runner cannot call ({type(exc).__name__}: {exc}); edge-runner "
            f"hosts fastmcp{FASTMCP_SUPPORTED}: pip install 'fastmcp{FASTMCP_SUPPORTED}'"
        ) from exc


def fastmcp_version() -> str | None:
    """The version of the ``fastmcp`` that ``import fastmcp`` finds here, or None if none.

    Read from the distribution installed beside the package (fastmcp 4 ships its code as
    ``fastmcp-slim``, with ``fastmcp`` a meta-package of the same version), without importing
    it: an unsupported fastmcp may fail to import at all.
    """
    try:
        spec = importlib.util.find_spec("fastmcp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=[str(package.parent)]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in ("fastmcp", "fastmcp-slim"):
            found[name] = dist.version
    return found.get("fastmcp-slim") or found.get("fastmcp")


def unsupported_fastmcp(version: str) -> str | None:
    """Why fastmcp ``version`` cannot be hosted here, or None when it can (or may) be.

    Releases before 4 are built on ``mcp<2``; 4.x is supported; a later major is tried (and
    refused only if its ``http_app()`` does not take the options the runner needs).
    """
    major = _major(version)
    if major >= _FIRST_MAJOR or major < 0:
        return None
    return (
        f"fastmcp {version} is installed, and edge-runner hosts fastmcp{FASTMCP_SUPPORTED} "
        f"only: fastmcp before 4 is built on mcp 1.x, and edge-runner on mcp>=2.3. Upgrade it: "
        f"pip install 'fastmcp{FASTMCP_SUPPORTED}' (or {FASTMCP_INSTALL})"
    )


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else -1


def fastmcp_problem(exc: BaseException, model_file: Path) -> str | None:
    """The message for a folder that failed to load because of fastmcp, or None if not that.

    ``exc`` is the loader's error (its cause, the original exception, is looked at): fastmcp
    missing, or an installed fastmcp that failed while being imported.
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    name = getattr(cause, "name", None) or ""
    if isinstance(cause, ModuleNotFoundError) and name.split(".")[0] == "fastmcp":
        version = fastmcp_version()
        if version is None:
            return (
                f"{model_file} imports fastmcp, which is not installed here; edge-runner "
                f"hosts fastmcp{FASTMCP_SUPPORTED}: {FASTMCP_INSTALL}"
            )
    if not _raised_in_fastmcp(cause.__traceback__):
        return None
    version = fastmcp_version() or "(unknown version)"
    problem = unsupported_fastmcp(version)
    if problem is not None:
        return (
            f"{model_file} imports fastmcp and failed ({type(cause).__name__}: {cause}): {problem}"
        )
    said = str(cause)
    if isinstance(cause, TypeError) and any(f"`{k}`" in said for k in _TRANSPORT_KWARGS):
        # Clarifai's MCP examples pass FastMCP(stateless_http=True), which fastmcp 4 refuses
        # and tells to pass to http_app(): here the runner does that, always
        return (
            f"{model_file}: {said} (fastmcp {version}). edge-runner hosts every MCP server "
            "stateless with JSON answers itself: remove stateless_http= and json_response= "
            "from FastMCP(...)"
        )
    return None  # a supported fastmcp that failed: its own error says more than we can


def _raised_in_fastmcp(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.split(".")[0] == "fastmcp":
            return True
        tb = tb.tb_next
    return False


def sdk_missing(path: Path, installed: tuple[str | None, str | None] | None = None) -> str:
    """The message for an MCP folder where ``mcp.server.mcpserver`` (mcp>=2.3) cannot be imported.

    An old fastmcp is the usual reason: installing it (pip resolving its ``mcp<2``) moves
    ``mcp`` back to 1.x.

    Args:
        path: the model folder.
        installed: the installed (mcp, fastmcp) versions, None for not installed; looked up
            when not given.
    """
    mcp, fastmcp = installed if installed is not None else (_mcp_version(), fastmcp_version())
    message = f"{path} is an MCP model folder, which needs the MCP SDK (mcp>=2.3)"
    if mcp is None:
        return f"{message}: pip install 'edge-runner[mcp]'"
    why = ""
    if fastmcp is not None and unsupported_fastmcp(fastmcp) is not None:
        why = f" (fastmcp {fastmcp}, installed here, needs mcp<2)"
    return (
        f"{message}; mcp {mcp} is installed{why}. edge-runner hosts MCPServer servers "
        f"and fastmcp{FASTMCP_SUPPORTED}: pip install 'mcp>=2.3' 'fastmcp{FASTMCP_SUPPORTED}'"
    )


def _mcp_version() -> str | None:
    try:
        return importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return None

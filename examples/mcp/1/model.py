"""files: an MCP server with read-only tools over one folder of this machine.

The folder is ``$MCP_FILES_ROOT``, else ``files/`` next to this model folder's config. Paths
are resolved (symlinks included) and must stay inside it: ``../``, absolute paths elsewhere and
symlinks that point out are refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from edge_runner import MCPModelClass

MAX_BYTES = 1024 * 1024

server = MCPServer(
    "files",
    instructions="Read-only access to one folder of the runner's machine, and its disk usage.",
)


def _root() -> Path:
    default = Path(__file__).resolve().parent.parent / "files"
    return Path(os.environ.get("MCP_FILES_ROOT") or default).resolve()


def _inside(path: str) -> Path:
    """``path`` (relative to the root, or absolute) resolved, if it stays in the root."""
    root = _root()
    target = (root / path).resolve()  # follows symlinks, folds ../
    if target != root and not target.is_relative_to(root):
        raise ToolError(f"{path!r} is outside the folder this server may read ({root})")
    return target


@server.tool(description="Read a UTF-8 text file under the shared folder (at most 1 MiB).")
def read_file(
    path: Annotated[str, Field(description="the file, relative to the shared folder")],
) -> str:
    target = _inside(path)
    if not target.is_file():
        raise ToolError(f"no file {path!r} in the shared folder")
    if target.stat().st_size > MAX_BYTES:
        raise ToolError(f"{path!r} is larger than {MAX_BYTES} bytes")
    try:
        return target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{path!r} is not UTF-8 text") from exc


@server.tool(description="List the entries of a folder under the shared folder.")
def list_files(
    path: Annotated[str, Field(description="a folder relative to the shared folder")] = ".",
) -> list[str]:
    target = _inside(path)
    if not target.is_dir():
        raise ToolError(f"no folder {path!r} in the shared folder")
    return sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir())


@server.tool(description="Disk usage of the file system holding the shared folder, in bytes.")
def disk_usage() -> dict[str, Any]:
    usage = shutil.disk_usage(_root())
    return {
        "path": str(_root()),
        "total": usage.total,
        "used": usage.used,
        "free": usage.free,
        "percent_used": round(100 * usage.used / usage.total, 1) if usage.total else 0.0,
    }


class FilesModel(MCPModelClass):
    """Hosts the server above."""

    def get_server(self) -> MCPServer:
        return server

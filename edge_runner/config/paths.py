r"""Where edge-runner keeps its files.

Every function reads the environment when called and creates nothing, so tests (and several
daemons on one machine) can point edge-runner elsewhere with ``EDGE_RUNNER_HOME``:

- :func:`config_dir`: ``user_config_dir("edge-runner")``, or ``$EDGE_RUNNER_HOME/config``;
- :func:`data_dir`: ``user_data_dir("edge-runner")``, or ``$EDGE_RUNNER_HOME/data``;
- :func:`runtime_dir`: ``user_runtime_dir("edge-runner")`` on Linux, ``data_dir()/run`` on macOS
  and Windows (and as Linux's fallback), or ``$EDGE_RUNNER_HOME/run``;
- :func:`config_file`: ``config_dir()/config.yaml``.

``EDGE_RUNNER_CONFIG`` (a full path) overrides :func:`config_file` in both cases. Only
:func:`ensure_private_dir` touches the disk.

Per platform (platformdirs, ``appauthor=False``): Linux follows XDG (``~/.config``,
``~/.local/share``, ``$XDG_RUNTIME_DIR``); macOS puts config and data together in
``~/Library/Application Support/edge-runner``; Windows in ``%LOCALAPPDATA%\edge-runner`` (not
roaming: tokens stay on the machine). On both, runtime files go to ``run/`` in that folder (see
:func:`runtime_dir`). docs/platforms.md has the table.

Owner-only modes (0600 files, 0700 dirs) are POSIX. On Windows ``chmod`` only sets the read-only
flag, so nothing is chmod-ed or refused for its mode there, and a file is as private as the ACL
it inherits from its folder (under ``%LOCALAPPDATA%``: the user, SYSTEM and Administrators).
Python 3.11.10+, 3.12.4+ and 3.13 give a folder made by ``mkdir(mode=0o700)`` an owner-only ACL
(CVE-2024-4030), which :func:`ensure_private_dir` gets for the folders it creates; folders that
already exist keep theirs. Setting ACLs ourselves is out of scope; :func:`private_file_note`
says which case applies.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import warnings
from pathlib import Path

import platformdirs

from edge_runner.errors import ConfigError

__all__ = [
    "APP_NAME",
    "ENV_CONFIG",
    "ENV_HOME",
    "config_dir",
    "config_file",
    "data_dir",
    "ensure_private_dir",
    "private_file_note",
    "runner_file",
    "runtime_dir",
]

logger = logging.getLogger(__name__)

APP_NAME = "edge-runner"
ENV_HOME = "EDGE_RUNNER_HOME"
ENV_CONFIG = "EDGE_RUNNER_CONFIG"

_PRIVATE_DIR_MODE = 0o700
# Raised by platformdirs >= 4.4 when XDG_RUNTIME_DIR is unset or unsafe; we pick our own fallback.
_RUNTIME_WARNING: type[Warning] = getattr(platformdirs, "RuntimeDirWarning", UserWarning)
_TEMP_RUNTIME = re.compile(r"runtime-\d+")  # platformdirs' /tmp/runtime-UID fallback


def _env_path(name: str) -> Path | None:
    """Return the path in environment variable ``name``, or None when unset or empty."""
    value = os.environ.get(name, "")
    if not value:
        return None
    # Absolute, so a daemon that changes directory still finds the same files.
    return Path(value).expanduser().absolute()


def config_dir() -> Path:
    """Return the directory that holds ``config.yaml``."""
    home = _env_path(ENV_HOME)
    if home is not None:
        return home / "config"
    # appauthor=False: on Windows the default would nest "edge-runner\edge-runner".
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Return the directory for persistent data (registry database, secrets file store)."""
    home = _env_path(ENV_HOME)
    if home is not None:
        return home / "data"
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def runtime_dir() -> Path:
    """Return the directory for per-process files (sockets, pid files, ports).

    Linux and the BSDs: the platform runtime directory (``$XDG_RUNTIME_DIR/edge-runner`` or
    ``/run/user/UID/edge-runner``) when it exists or could be created; otherwise (containers,
    ssh sessions without systemd) a ``run/`` folder under :func:`data_dir`. That fallback
    replaces platformdirs' own, a shared ``/tmp/runtime-UID``: another user can take that name
    first (platformdirs then raises), and tmp cleaners age files out of ``/tmp``.

    macOS and Windows: ``run/`` under :func:`data_dir`. platformdirs' answers there are
    ``~/Library/Caches/TemporaryItems`` (macOS may purge Caches when the disk fills) and
    ``%LOCALAPPDATA%\\Temp`` (Disk Cleanup and Storage Sense delete files untouched for days),
    and a runner's ``api.json`` is written once at start, so a runner that runs for weeks would
    lose it and ``edge-runner status`` would no longer find the runner.
    """
    home = _env_path(ENV_HOME)
    if home is not None:
        return home / "run"
    if sys.platform in ("win32", "darwin"):
        return data_dir() / "run"
    preferred = _platform_runtime_dir()
    if preferred is not None and _could_create(preferred):
        return preferred
    fallback = data_dir() / "run"
    logger.debug("runtime dir %s cannot be created; using %s", preferred, fallback)
    return fallback


def runner_file(runtime: Path, runner_id: str, suffix: str) -> Path:
    """A running runner's file in the runtime dir: ``<id>.<suffix>`` (ids read ``runner-...``).

    ``lock`` (held while it runs), ``api.json`` (its local API's port) and ``secret`` (that
    API's bearer secret, 0600).
    """
    return runtime / f"{runner_id}.{suffix}"


def config_file() -> Path:
    """Return the contexts file: ``$EDGE_RUNNER_CONFIG`` or ``config_dir()/config.yaml``."""
    override = _env_path(ENV_CONFIG)
    if override is not None:
        return override
    return config_dir() / "config.yaml"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) readable by the owner only.

    An existing directory whose mode lets group or others in is tightened to 0700. Parents that
    have to be created get the default mode, like ``mkdir -p``.

    Args:
        path: the directory.

    Returns:
        ``path``, so calls can be chained.

    Raises:
        ConfigError: the directory cannot be created or its mode cannot be changed.
    """
    try:
        path.mkdir(mode=_PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            path.chmod(_PRIVATE_DIR_MODE)
            logger.info("tightened %s from mode %04o to 0700", path, mode)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the private directory {path}: {exc.strerror or exc}. "
            f"Check that its parent exists and is writable, or set {ENV_HOME}."
        ) from exc
    return path


def private_file_note() -> str:
    """How an owner-only file is protected on this platform, for messages that name one."""
    if os.name == "posix":
        return "mode 0600"
    return "no POSIX modes on Windows: as private as its folder's ACL"


def _platform_runtime_dir() -> Path | None:
    """platformdirs' runtime dir, or None when it has only a shared temp folder or an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _RUNTIME_WARNING)  # the caller logs its own choice
        try:
            path = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
        except OSError as exc:  # e.g. /tmp/runtime-UID exists but belongs to another user
            logger.debug("no platform runtime dir: %s", exc)
            return None
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if _TEMP_RUNTIME.fullmatch(path.parent.name) and str(path.parent) != xdg:
        logger.debug("not using platformdirs' shared temp runtime dir %s", path)
        return None
    return path


def _could_create(path: Path) -> bool:
    """Tell whether ``path`` exists as a writable directory or its nearest ancestor allows it."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False

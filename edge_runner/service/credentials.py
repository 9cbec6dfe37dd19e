"""The token a service manager hands a runner, in a file only the service can read.

A system service runs as its own user, which has no keyring and no contexts of its own, and a
token must never sit in a unit file, on a command line or in ``systemctl show``. So the system
units load it with systemd's ``LoadCredential=token:/etc/edge-runner/credentials/NAME.token``
(systemd >= 247): systemd copies the root-only file into ``$CREDENTIALS_DIRECTORY/token``, which
only the service's processes can read, for as long as the service runs. In a container the same
file comes from a mounted secret named by ``EDGE_RUNNER_PAT_FILE``.

:func:`service_token` reads it; with neither variable set it returns None and the runner uses
the context's secret store as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_runner.errors import ConfigError

__all__ = ["CREDENTIAL_NAME", "ENV_PAT_FILE", "service_token"]

#: the ``LoadCredential=`` id our units use
CREDENTIAL_NAME = "token"
ENV_PAT_FILE = "EDGE_RUNNER_PAT_FILE"


def service_token() -> str | None:
    """The token from ``$EDGE_RUNNER_PAT_FILE`` or ``$CREDENTIALS_DIRECTORY/token``, or None.

    Raises:
        ConfigError: the file is named but cannot be read, or is empty.
    """
    named = os.environ.get(ENV_PAT_FILE, "").strip()
    path: Path | None = Path(named) if named else None
    if path is None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY", "").strip()
        candidate = Path(directory) / CREDENTIAL_NAME if directory else None
        if candidate is None or not candidate.exists():
            return None  # credentials of something else, or none: use the secret store
        path = candidate
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the runner's token file {path}: {exc.strerror or exc}; check that it "
            "exists and that the service's user may read it"
        ) from exc
    if not token:
        raise ConfigError(f"the runner's token file {path} is empty")
    return token

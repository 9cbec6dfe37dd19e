"""Configuration: paths, the contexts file, the secret store, and credential resolution.

Also the one helper that writes owner-only files, :func:`write_private_file`.

Typical use::

    from edge_runner.config import resolve_credentials

    creds = resolve_credentials()  # arguments > EDGE_RUNNER_* environment > active context
"""

from __future__ import annotations

from edge_runner.config._atomic import PRIVATE_FILE_MODE, write_private_file
from edge_runner.config.contexts import ENV_CONTEXT, Context, ContextsFile
from edge_runner.config.paths import (
    config_dir,
    config_file,
    data_dir,
    ensure_private_dir,
    runtime_dir,
)
from edge_runner.config.resolve import (
    ENV_API_BASE,
    ENV_PAT,
    ENV_USER_ID,
    Credentials,
    mask_secret,
    resolve_credentials,
)
from edge_runner.config.secrets import ENV_SECRET_BACKEND, SecretStore, secret_store

__all__ = [
    "ENV_API_BASE",
    "ENV_CONTEXT",
    "ENV_PAT",
    "ENV_SECRET_BACKEND",
    "ENV_USER_ID",
    "PRIVATE_FILE_MODE",
    "Context",
    "ContextsFile",
    "Credentials",
    "SecretStore",
    "config_dir",
    "config_file",
    "data_dir",
    "ensure_private_dir",
    "mask_secret",
    "resolve_credentials",
    "runtime_dir",
    "secret_store",
    "write_private_file",
]

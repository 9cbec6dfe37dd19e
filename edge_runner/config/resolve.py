"""Which control plane to call and with which token.

Each field is taken from the first place that has it:

1. explicit arguments (``--api-base``, ``--token``, ``--context`` on the CLI);
2. the environment: ``EDGE_RUNNER_API_BASE``, ``EDGE_RUNNER_PAT``, ``EDGE_RUNNER_USER_ID``
   (and ``EDGE_RUNNER_CONTEXT`` to pick a context);
3. the active context: ``api_base``/``user_id`` from the contexts file, the token from the
   secret store.

The contexts file is read only when a field is still missing or a context was named, and the
secret store is opened only when no token was given, so a fully specified environment needs
neither (and a locked keyring cannot slow it down).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edge_runner.config.contexts import ENV_CONTEXT, Context, ContextsFile
from edge_runner.config.secrets import SecretStore, secret_store
from edge_runner.errors import ConfigError, SecretStoreError
from edge_runner.views import ContextView

__all__ = [
    "context_record",
    "context_records",
    "ENV_API_BASE",
    "ENV_CA_FILE",
    "ENV_PAT",
    "ENV_USER_ID",
    "Credentials",
    "ca_file_source",
    "mask_secret",
    "resolve_credentials",
]

logger = logging.getLogger(__name__)

ENV_API_BASE = "EDGE_RUNNER_API_BASE"
ENV_PAT = "EDGE_RUNNER_PAT"
ENV_USER_ID = "EDGE_RUNNER_USER_ID"
ENV_CA_FILE = "EDGE_RUNNER_CA_FILE"

# A type prefix such as "er_pat_": up to three lowercase words of at most 8 letters each.
_PREFIX = re.compile(r"(?:[a-z]{1,8}_){1,3}")
# Below this many characters after the prefix, showing 4 of them would give too much away.
_MIN_MASKED_BODY = 16
_MASK = "****"

_HOW_TO_FIX = (
    "Run `edge-runner up` (it starts a local control plane and creates the `local` context), "
    f"`edge-runner login` for a remote one, or set {ENV_API_BASE} and {ENV_PAT}."
)


def mask_secret(s: str) -> str:
    """Return ``s`` safe to show: its type prefix and 4 more characters, then ``****``.

    ``er_pat_ab12cd34-ef56-gh78`` becomes ``er_pat_ab12****``; a secret without a prefix
    shows its first 4 characters; one too short to spare 4 characters becomes ``****``.
    """
    match = _PREFIX.match(s)
    prefix = match.group(0) if match else ""
    body = s[len(prefix) :]
    if len(body) < _MIN_MASKED_BODY:
        return _MASK
    return f"{prefix}{body[:4]}{_MASK}"


@dataclass(frozen=True)
class Credentials:
    """Everything needed to call a control plane. ``repr`` masks the token.

    Attributes:
        api_base: the control plane's base URL.
        token: the bearer token (a PAT or runner token). Never log it; ``repr`` masks it.
        user_id: the user the token belongs to, when known.
        context: the context the values came from, or None when none was read.
        ca_file: a private CA to trust for TLS (``EDGE_RUNNER_CA_FILE`` or the context's
            ``ca_file``), else None for the system store.
    """

    api_base: str
    token: str
    user_id: str | None = None
    context: str | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(api_base={self.api_base!r}, token={mask_secret(self.token)!r}, "
            f"user_id={self.user_id!r}, context={self.context!r})"
        )


def resolve_credentials(
    *,
    api_base: str | None = None,
    token: str | None = None,
    context: str | None = None,
    config_path: Path | None = None,
    store: SecretStore | None = None,
) -> Credentials:
    """Find the control plane address and token: arguments > environment > active context.

    Args:
        api_base: explicit base URL.
        token: explicit token.
        context: explicit context name (beats ``EDGE_RUNNER_CONTEXT`` and ``current-context``).
        config_path: the contexts file; default :func:`~edge_runner.config.paths.config_file`.
        store: the secret store; default :func:`~edge_runner.config.secrets.secret_store`,
            opened only when the token must come from a context.

    Raises:
        ConfigError: the address or token is missing (the message says which and how to fix
            it), the named context does not exist, or the contexts file is malformed.
        SecretStoreError: the secret store refused (e.g. a secret file open to other users).
    """
    api_base = api_base or _env(ENV_API_BASE)
    token = token or _env(ENV_PAT)
    user_id = _env(ENV_USER_ID)
    context_name = context or _env(ENV_CONTEXT)

    ctx: Context | None = None
    if api_base is None or token is None or context_name is not None:
        ctx = _find_context(config_path, context_name)

    if ctx is not None:
        if api_base is not None and token is None and _norm(api_base) != _norm(ctx.api_base):
            logger.warning(
                "using context %r's token with %s, which is not the context's api_base (%s)",
                ctx.name,
                api_base,
                ctx.api_base,
            )
        api_base = api_base or ctx.api_base
        user_id = user_id or ctx.user_id or None
        if token is None:
            token = (store if store is not None else secret_store()).get(ctx.name)
            if token is None:
                raise ConfigError(
                    f"Context {ctx.name!r} ({ctx.api_base}) has no token in the secret store. "
                    f"Run `edge-runner login --context {ctx.name}`, `edge-runner up` for the "
                    f"`local` context, or set {ENV_PAT}."
                )

    if api_base is None or token is None:
        missing = " and ".join(
            label
            for label, value in (("the API base", api_base), ("a token", token))
            if value is None
        )
        raise ConfigError(f"No control plane credentials: missing {missing}. {_HOW_TO_FIX}")
    ca_file, _ = ca_file_source(ctx)
    return Credentials(
        api_base=api_base,
        token=token,
        user_id=user_id,
        context=ctx.name if ctx is not None else None,
        ca_file=ca_file,
    )


def ca_file_source(ctx: Context | None) -> tuple[str | None, str]:
    """The private CA to trust for ``ctx``'s control plane, and where that came from.

    ``$EDGE_RUNNER_CA_FILE`` beats the context's ``ca_file``; neither means the system store.

    Returns:
        ``(path, source)``, or ``(None, "the system trust store")``.
    """
    from_env = os.environ.get(ENV_CA_FILE, "").strip()
    if from_env:
        return from_env, ENV_CA_FILE
    if ctx is not None and isinstance(ctx.extra.get("ca_file"), str):
        return str(ctx.extra["ca_file"]), f"context {ctx.name!r}'s ca_file"
    return None, "the system trust store"


def _find_context(config_path: Path | None, context_name: str | None) -> Context | None:
    """Return the named or selected context; None when the file has no contexts at all.

    A named context that does not exist is an error, and so are contexts with none selected
    (the message lists them). With no contexts at all the caller reports what is missing.
    """
    contexts = ContextsFile.load(config_path)
    if context_name is None and contexts.current is None and not contexts.contexts:
        return None
    return contexts.active(context_name)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _norm(url: str) -> str:
    return url.rstrip("/").lower()


def context_records() -> list[ContextView]:
    """Every context as plain data, the active one marked, tokens masked (MCP uses it too)."""
    contexts = ContextsFile.load()
    active = os.environ.get(ENV_CONTEXT) or contexts.current
    store = secret_store() if contexts.contexts else None
    return [context_record(ctx, ctx.name == active, store) for ctx in contexts.contexts.values()]


def context_record(ctx: Context, active: bool, store: SecretStore | None) -> ContextView:
    """A context as plain data with its token masked (None when none is stored)."""
    token: str | None = None
    if store is not None:
        try:
            secret = store.get(ctx.name)
        except SecretStoreError as exc:
            logger.warning("context %r: %s", ctx.name, exc)
            secret = None
        token = mask_secret(secret) if secret else None
    record: ContextView = {
        "name": ctx.name,
        "active": active,
        "api_base": ctx.api_base,
        "user_id": ctx.user_id,
        "token": token,
    }
    if ctx.extra:
        record["extra"] = dict(ctx.extra)
    return record

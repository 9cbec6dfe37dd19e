"""Runner enrolment: a runner started with a user token trades it for its own credential.

The runner credential (``er_rt_...``, scope ``runner`` only) is kept in the secret store under
``runner:<runner id>`` and used from then on, so the user's token never sits in a long-running
daemon and revoking the runner credential disconnects exactly that runner.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_runner.client import Client
from edge_runner.config.secrets import secret_store
from edge_runner.errors import ApiError, ConnectionFailed, Forbidden, Unauthorized

__all__ = ["runner_credential"]

logger = logging.getLogger(__name__)


def runner_credential(
    api_base: str, user_token: str, runner_id: str, ca_file: Path | None = None
) -> str:
    """The token this runner should connect with (enrolling when it has none yet).

    A stored credential the control plane still accepts is used as is. Otherwise a user token
    (``er_pat_``) is exchanged for a new one. When the control plane cannot be reached the best
    token at hand is returned and the runner's own reconnect loop takes over.
    """
    store = secret_store()
    key = f"runner:{runner_id}"
    stored = store.get(key)
    if stored:
        try:
            with Client(api_base, stored, timeout=10, ca_file=_str(ca_file)) as client:
                client.info()
            return stored
        except Unauthorized:
            logger.warning(
                "the stored credential of runner %s was refused; enrolling it again", runner_id
            )
        except ConnectionFailed:
            return stored
    if not user_token.startswith("er_pat_"):
        return user_token  # already a runner credential (or a foreign token): use it as it is
    try:
        with Client(api_base, user_token, timeout=10, ca_file=_str(ca_file)) as client:
            made = client.enroll_runner(runner_id)
    except ConnectionFailed:
        return user_token  # the control plane is not up yet: enrol on a later start
    except ApiError as exc:
        if isinstance(exc, Unauthorized | Forbidden):
            raise  # a refused token, or a runner id that belongs to another user
        logger.warning("could not enrol runner %s (%s); using the given token", runner_id, exc)
        return user_token
    store.set(key, str(made["token"]))
    logger.info(
        "runner %s enrolled; its credential %s is in %s", runner_id, made["id"], store.backend_name
    )
    return str(made["token"])


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None

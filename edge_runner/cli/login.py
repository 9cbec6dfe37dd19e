"""``edge-runner login``: check a token against a control plane, then save it as a context.

Nothing is written until the control plane has accepted the token: an unreachable address or
a rejected token leaves the contexts file and the secret store as they were. The token is read
with hidden input (or from stdin with ``--token-stdin``), never from a command-line flag, and is
shown only masked.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from edge_runner.client import Client
from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.resolve import (
    ENV_API_BASE,
    ENV_PAT,
    ENV_USER_ID,
    ca_file_source,
    mask_secret,
)
from edge_runner.config.secrets import secret_store
from edge_runner.errors import ApiError, ClientError, ConfigError, ConnectionFailed, Unauthorized
from edge_runner.views import ControlInfo

__all__ = ["DEFAULT_CONTEXT", "check_api_base", "read_token_stdin", "register"]

DEFAULT_CONTEXT = "default"
# Enough for a slow link; an address where nothing listens fails at once anyway.
_VERIFY_TIMEOUT = 15.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``login`` command."""
    parser = sub.add_parser(
        "login",
        help="verify a token against a control plane and save it as the active context",
        description="Ask for a context name, user id and token (hidden; Enter takes "
        f"${ENV_PAT}), check the token against the control plane, then store it in the "
        "secret store and make the context active. Nothing is saved if the check fails.",
    )
    parser.add_argument("api_base", nargs="?", metavar="API_BASE", help="control plane URL")
    parser.add_argument("--context", help=f"context name (default: {DEFAULT_CONTEXT})")
    parser.add_argument("--user-id", help="the user the token belongs to")
    parser.add_argument(
        "--token-stdin",
        action="store_true",
        help="read the token from stdin and ask nothing (for scripts)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="trust this CA for the control plane's TLS (a private CA, e.g. the ca.pem that "
        "`edge-runner control --tls-self-signed` prints); saved as the context's ca_file "
        "(default: $EDGE_RUNNER_CA_FILE, the context's ca_file, else the system store)",
    )
    parser.set_defaults(func=_login)


def check_api_base(url: str) -> str:
    """Return ``url`` without a trailing slash, or raise when it is not an http(s) URL.

    Raises:
        ConfigError: the scheme is not http/https or the host is missing.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{url!r} is not a control plane URL; give one like http://127.0.0.1:7070 "
            "or https://runner.lab.example:7070."
        )
    return url


def read_token_stdin() -> str:
    """Read one token from stdin (hidden input when stdin is a terminal).

    Raises:
        ConfigError: stdin is empty or holds more than one word.
    """
    if sys.stdin.isatty():
        raw = getpass.getpass("Token (hidden): ", stream=sys.stderr)
    else:
        raw = sys.stdin.read()
    token = raw.strip()
    if not token:
        raise ConfigError("--token-stdin read nothing; pipe the token in: `... | edge-runner ...`.")
    if len(token.split()) != 1:
        raise ConfigError("--token-stdin read more than one word; pipe in the token alone.")
    return token


def _login(args: argparse.Namespace) -> int:
    contexts = ContextsFile.load()  # a broken contexts file fails before any question
    if args.token_stdin:
        name = args.context or DEFAULT_CONTEXT
        api_base = args.api_base or _env(ENV_API_BASE)
        user_id = args.user_id or _env(ENV_USER_ID) or _known_user(contexts, name)
        if not api_base or not user_id:
            missing = [
                f"{what} (or ${env})"
                for what, env, value in (
                    ("API_BASE", ENV_API_BASE, api_base),
                    ("--user-id", ENV_USER_ID, user_id),
                )
                if not value
            ]
            raise ConfigError(
                f"login --token-stdin asks nothing, so give {' and '.join(missing)}. "
                "Nothing was saved."
            )
        token = read_token_stdin()
    else:
        name = args.context or _ask("Context name", DEFAULT_CONTEXT)
        known = contexts.contexts.get(name)
        api_base = args.api_base or _ask(
            "Control plane URL", _env(ENV_API_BASE) or (known.api_base if known else None)
        )
        user_id = args.user_id or _ask("User id", _env(ENV_USER_ID) or _known_user(contexts, name))
        token = _ask_token()
    api_base = check_api_base(api_base)
    # A login again to a context keeps its other keys (a ca_file, say).
    known = contexts.contexts.get(name)
    extra = dict(known.extra) if known is not None else {}
    ca_file = _ca_file(args.ca_file) or ca_file_source(known)[0]
    info = _verify(api_base, token, ca_file)
    if args.ca_file:
        extra["ca_file"] = ca_file
    contexts.put(Context(name, api_base, user_id, extra), make_current=True)
    store = secret_store()
    store.set(name, token)
    contexts.save()
    version = info.get("version", "?")
    print(f"Logged in to {api_base} (edge-runner {version}) as {user_id}.")
    print(
        f"Saved context {name!r} in {contexts.path}, token {mask_secret(token)} in "
        f"{store.backend_name}; {name!r} is now the active context."
    )
    return 0


def _ca_file(flag: str | None) -> str | None:
    """--ca-file, checked and made absolute (it is saved in the context), or None."""
    if not flag:
        return None
    path = Path(flag).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(f"--ca-file {flag}: no such file. Nothing was saved.")
    return str(path)


def _verify(api_base: str, token: str, ca_file: str | None = None) -> ControlInfo:
    """Ask the control plane who we are; translate failures into messages that say what to do."""
    nothing = "Nothing was saved."
    try:
        with Client(api_base, token, timeout=_VERIFY_TIMEOUT, ca_file=ca_file) as client:
            return client.info()
    except ConnectionFailed as exc:
        raise ConnectionFailed(f"Login failed: {exc}. {nothing}") from exc
    except Unauthorized as exc:
        raise Unauthorized(
            exc.status,
            exc.code,
            f"The control plane at {api_base} rejected the token (HTTP {exc.status}: unknown, "
            f"expired or revoked). {nothing} Check that you pasted the whole token, or ask "
            "the control plane's admin for a new one.",
        ) from exc
    except ApiError as exc:
        raise ClientError(
            f"The control plane at {api_base} answered HTTP {exc.status} ({exc.code}: "
            f"{exc.message}) when asked to check the token. {nothing}"
        ) from exc


def _ask(question: str, default: str | None) -> str:
    """Ask on stderr (stdout stays for results), read a line from stdin; Enter takes the default."""
    hint = f" [{default}]" if default else ""
    sys.stderr.write(f"{question}{hint}: ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise ConfigError(f"stdin closed while asking for: {question}. Nothing was saved.")
    answer = line.strip() or default
    if not answer:
        raise ConfigError(f"{question} is required. Nothing was saved.")
    return answer


def _ask_token() -> str:
    token = getpass.getpass(f"Token (hidden; Enter takes ${ENV_PAT}): ", stream=sys.stderr)
    token = token.strip() or (_env(ENV_PAT) or "")
    if not token:
        raise ConfigError(f"No token given and ${ENV_PAT} is not set. Nothing was saved.")
    return token


def _known_user(contexts: ContextsFile, name: str) -> str | None:
    known = contexts.contexts.get(name)
    return known.user_id if known else None


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None

"""Checks of the control plane the CLI would call: the context, reachability, protocol, TLS,
clock and token."""

from __future__ import annotations

import datetime
import email.utils
import os
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from edge_runner._version import __version__
from edge_runner.config.paths import config_file
from edge_runner.config.resolve import ENV_API_BASE, ENV_CA_FILE, ENV_PAT, mask_secret
from edge_runner.doctor._core import Check, Reporter, describe_error
from edge_runner.doctor._env import Env, Probe
from edge_runner.doctor._tls import CERT_EXPIRED, HOSTNAME_MISMATCH, inspect_tls
from edge_runner.errors import ConfigError, SecretStoreError
from edge_runner.net import is_loopback
from edge_runner.protocol.version import PROTOCOL_VERSION, format_version

__all__ = [
    "CLOCK_SKEW_WARN_S",
    "CERT_WARN_DAYS",
    "check_clock",
    "check_context",
    "check_control_plane",
    "check_protocol",
    "check_tls",
    "check_token",
    "clock_skew",
    "judge_protocol",
]

#: more than this many seconds between our clock and the control plane's is a WARN
CLOCK_SKEW_WARN_S = 5.0
#: a server certificate that expires in fewer days is a WARN
CERT_WARN_DAYS = 14
#: a token that expires in fewer days is a WARN
TOKEN_WARN_DAYS = 7

_NOT_CHECKED = "not checked: "


def _parse_base(api_base: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a control plane URL, or None when it is not one."""
    try:
        parts = urlsplit(api_base)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default


def _start_fix(api_base: str) -> str:
    parsed = _parse_base(api_base)
    if parsed is not None and is_loopback(parsed[1]):
        return "start it: `edge-runner up` (a control plane and a runner), or `edge-runner control`"
    host, port = (parsed[1], parsed[2]) if parsed else (api_base, "?")
    return (
        f"check that `edge-runner control` runs on {host} and that port {port} is reachable "
        f"from here (firewall, VPN), or fix api_base with `edge-runner context edit`"
    )


def check_context(env: Env, r: Reporter) -> Check:
    """The active context exists, its api_base parses, and it has a token."""
    try:
        contexts = env.contexts()
    except ConfigError:
        return r.fail(
            "the contexts file cannot be read (see config-file)",
            f"fix {config_file()} with `edge-runner context edit`",
        )
    from_env = bool(os.environ.get(ENV_API_BASE)) and bool(os.environ.get(ENV_PAT))
    try:
        ctx = env.context()
    except ConfigError as exc:
        if from_env and env.options.context is None:
            ctx = None
        elif contexts.contexts:
            return r.fail(
                str(exc),
                f"pick one: `edge-runner context use NAME` (known: {', '.join(contexts.contexts)})",
            )
        else:
            return r.fail(str(exc), _new_context_fix())
    if ctx is None and not from_env:
        return r.fail(f"no context, and {ENV_API_BASE}/{ENV_PAT} are not set", _new_context_fix())
    api_base = env.api_base() or ""
    if _parse_base(api_base) is None:
        return r.fail(
            f"api_base {api_base!r} is not an http(s) URL with a host",
            "set it with `edge-runner context edit`, e.g. `api_base: http://127.0.0.1:7070`",
        )
    try:
        creds = env.credentials()
    except SecretStoreError as exc:
        return r.fail(str(exc).split("; ")[0], _secret_fix(str(exc), ctx.name if ctx else ""))
    except ConfigError as exc:
        if ctx is None:  # EDGE_RUNNER_CONTEXT names a context that is not there
            return r.fail(
                str(exc), "unset EDGE_RUNNER_CONTEXT, or `edge-runner context create NAME`"
            )
        return r.fail(
            f"context {ctx.name!r} ({api_base}) has no token in the secret store",
            f"`edge-runner login {api_base} --context {ctx.name}`"
            + (" (or `edge-runner up` for the local context)" if ctx.name == "local" else ""),
        )
    where = f"context {ctx.name!r}" if ctx is not None else "the environment"
    overrides = [n for n in (ENV_API_BASE, ENV_PAT) if ctx is not None and os.environ.get(n)]
    note = f" ({' and '.join(overrides)} override the context)" if overrides else ""
    user = f" as {creds.user_id}" if creds.user_id else ""
    return r.ok(f"{where}: {creds.api_base}{user}, token {mask_secret(creds.token)}{note}")


def _new_context_fix() -> str:
    return "run `edge-runner up` (local) or `edge-runner login API_BASE --context NAME` (remote)"


def _secret_fix(message: str, context: str) -> str:
    for word in message.split("`"):
        if word.startswith("chmod "):
            return word
    return f"`edge-runner login --context {context or 'NAME'}` to store the token again"


def check_control_plane(env: Env, r: Reporter) -> Check:
    """``GET /healthz`` then ``GET /v2/info`` answer (with a short timeout)."""
    probe = env.probe()
    if probe is None:
        return r.skip(_NOT_CHECKED + "no control plane address (see context)")
    if not probe.reachable:
        if "CERTIFICATE_VERIFY_FAILED" in probe.error:
            return r.fail(
                f"{probe.api_base}: the certificate is not trusted ({probe.error})",
                "see the tls line",
            )
        return r.fail(f"cannot reach {probe.api_base} ({probe.error})", _start_fix(probe.api_base))
    info = probe.info
    if info is None:
        if probe.info_status in (401, 403):
            return r.ok(f"{probe.api_base} answers; /v2/info refused the token (see token)")
        if probe.info_status == 0 and not probe.info_error:
            return r.ok(f"{probe.api_base} answers /healthz (no token to ask /v2/info)")
        return r.warn(
            f"{probe.api_base} answers /healthz, but /v2/info failed: {probe.info_error}",
            "`edge-runner --debug models` shows the full answer; upgrade the control plane "
            "if it is older than this client",
        )
    tunnel = info.get("tunnel") if isinstance(info.get("tunnel"), dict) else {}
    grpc = tunnel.get("grpc") if isinstance(tunnel, dict) else None
    uptime = info.get("uptime_s")
    parts = [f"{probe.api_base}: edge-runner {info.get('version', '?')}"]
    if grpc:
        parts.append(f"tunnel grpc {grpc}")
    if isinstance(uptime, int | float):
        parts.append(f"up {_duration(float(uptime))}")
    return r.ok(", ".join(parts))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def check_protocol(env: Env, r: Reporter) -> Check:
    """The control plane's tunnel protocol version is compatible with ours."""
    info = _info(env)
    if isinstance(info, str):
        return r.skip(info)
    return judge_protocol(info, r)


def judge_protocol(info: dict[str, object], r: Reporter) -> Check:
    """Compare ``/v2/info``'s ``protocol_version`` with ours: another major is FAIL."""
    ours = format_version(PROTOCOL_VERSION)
    raw = str(info.get("protocol_version", ""))
    try:
        major, minor = (int(x) for x in raw.split("."))
    except ValueError:
        return r.warn(
            f"the control plane reports protocol version {raw!r}, which is not major.minor",
            "upgrade the control plane to this client's version "
            f"(`pip install -U 'edge-runner=={__version__}'`)",
        )
    theirs = f"{major}.{minor} (edge-runner {info.get('version', '?')})"
    if major != PROTOCOL_VERSION[0]:
        return r.fail(
            f"the control plane speaks protocol {theirs}; this edge-runner speaks {ours} "
            "(major versions differ: runners cannot connect)",
            "upgrade the older side so both run the same edge-runner version "
            "(`pip install -U edge-runner` here or on the control plane's host)",
        )
    if minor != PROTOCOL_VERSION[1]:
        return r.ok(f"protocol {theirs}; ours {ours} (minor versions differ; compatible)")
    return r.ok(f"protocol {theirs}; ours {ours}")


def _info(env: Env) -> dict[str, object] | str:
    """The ``/v2/info`` document, or why there is none (a SKIP detail)."""
    probe = env.probe()
    if probe is None:
        return _NOT_CHECKED + "no control plane address (see context)"
    if not probe.reachable:
        return _NOT_CHECKED + "the control plane does not answer (see control-plane)"
    if probe.info is None:
        return _NOT_CHECKED + "no /v2/info answer (see control-plane and token)"
    return probe.info


def check_tls(env: Env, r: Reporter) -> Check:
    """For https: the chain verifies, the host name matches, the certificate is not expiring;
    plain http off loopback is a WARN."""
    api_base = env.api_base()
    parsed = _parse_base(api_base) if api_base else None
    if parsed is None:
        return r.skip(_NOT_CHECKED + "no valid control plane address (see context)")
    scheme, host, port = parsed
    if scheme == "http":
        if is_loopback(host):
            return r.skip(f"plain HTTP on loopback ({host}): nothing leaves this machine")
        return r.warn(
            f"plain HTTP to {host}: tokens and data cross the network unencrypted",
            "serve TLS (`edge-runner control --tls-self-signed`, or --tls-cert/--tls-key), then "
            f"use `api_base: https://{host}:{port}` and its ca_file (`edge-runner context edit`)",
        )
    ca_file, source = env.ca_file()
    # As the client reads it: no `~` expansion, so a path the client cannot open fails here too.
    if ca_file is not None and not Path(ca_file).is_file():
        return r.fail(
            f"the CA file {ca_file} (from {source}) does not exist",
            f"fix the path in {_where(source)}; `edge-runner control --tls-self-signed` prints "
            "where its ca.pem is",
        )
    try:
        report = inspect_tls(host, port, ca_file, env.options.http_timeout)
    except ssl.SSLError as exc:
        return r.fail(
            f"the CA file {ca_file} (from {source}) cannot be loaded: {describe_error(exc)}",
            f"point {_where(source)} at a PEM certificate (the control plane's ca.pem)",
        )
    except OSError as exc:
        return r.skip(f"{_NOT_CHECKED}cannot connect to {host}:{port} ({describe_error(exc)})")
    cert = report.cert
    if cert is None:
        return r.fail(
            f"{host}:{port}: {report.error or 'no certificate was presented'}",
            f"check that {host}:{port} serves HTTPS; use http:// if it serves plain text "
            "on loopback",
        )
    now = datetime.datetime.fromtimestamp(env.options.clock(), datetime.UTC)
    left = cert.not_after - now
    expiry = f"expires {cert.not_after:%Y-%m-%d}"
    who = f"{cert.subject} (issued by {cert.issuer})"
    renew = (
        "renew the server certificate; for `--tls-self-signed` delete the control plane's "
        "data dir's tls/ folder, restart it, and give clients the new ca.pem"
    )
    if left.total_seconds() <= 0:
        return r.fail(f"the certificate {who} expired on {cert.not_after:%Y-%m-%d}", renew)
    if not report.verified:
        if report.verify_code == HOSTNAME_MISMATCH:
            names = ", ".join(cert.names) or cert.subject
            return r.fail(
                f"the certificate {who} is not valid for {host!r}; it names {names}",
                "use an api_base whose host is one of those names (`edge-runner context edit`), "
                f"or reissue the certificate for {host}",
            )
        if report.verify_code == CERT_EXPIRED:  # expired by the server's idea of "now"
            return r.fail(f"the certificate {who} has expired ({report.error})", renew)
        if ca_file is None:
            fix = (
                f"trust the control plane's CA: add `ca_file: /path/to/ca.pem` to the context "
                f"in {config_file()} (`edge-runner context edit`), or set {ENV_CA_FILE}"
            )
        else:
            fix = (
                f"{ca_file} did not sign this certificate: get the control plane's own ca.pem "
                "(`edge-runner control --tls-self-signed` prints its path)"
            )
        return r.fail(
            f"the certificate {who} does not verify against {source}"
            + (f" ({ca_file})" if ca_file else "")
            + f": {report.error}",
            fix,
        )
    days = left.days
    detail = (
        f"{report.version}, chain verifies against {source}"
        + (f" ({ca_file})" if ca_file else "")
        + f"; {who}; host name matches; {expiry} ({days} days)"
    )
    if days < CERT_WARN_DAYS:
        return r.warn(detail, renew)
    return r.ok(detail)


def _where(source: str) -> str:
    if source == ENV_CA_FILE:
        return f"${ENV_CA_FILE}"
    return f"the context's ca_file in {config_file()}"


def clock_skew(probe: Probe) -> tuple[float, float] | None:
    """Seconds the control plane's clock is ahead of ours (negative: behind), and the error bar.

    Uses ``/v2/info``'s ``time`` (sub-second) when present, else the ``Date`` header (whole
    seconds); the request's round trip widens the error bar. None when neither is there.
    """
    if probe.received <= 0 or probe.sent <= 0:
        return None
    middle = (probe.sent + probe.received) / 2
    half_trip = max(0.0, probe.received - probe.sent) / 2
    server = probe.info.get("time") if probe.info is not None else None
    if isinstance(server, int | float) and not isinstance(server, bool):
        return float(server) - middle, half_trip
    if probe.date:
        try:
            stamp = email.utils.parsedate_to_datetime(probe.date)
        except (TypeError, ValueError):
            return None
        # Date truncates to the second: the true time is up to 1 s later.
        return stamp.timestamp() + 0.5 - middle, half_trip + 0.5
    return None


def check_clock(env: Env, r: Reporter) -> Check:
    """This machine's clock agrees with the control plane's (token expiry, logs, leases)."""
    probe = env.probe()
    if probe is None or not probe.reachable:
        return r.skip(_NOT_CHECKED + "the control plane does not answer (see control-plane)")
    measured = clock_skew(probe)
    if measured is None:
        return r.skip(_NOT_CHECKED + "the control plane sent no time (no Date header)")
    skew, error = measured
    way = "ahead of" if skew < 0 else "behind"
    detail = f"this machine's clock is {abs(skew):.1f} s {way} the control plane's (±{error:.1f} s)"
    if abs(skew) < 0.05:
        detail = f"this machine's clock agrees with the control plane's (±{error:.1f} s)"
    if abs(skew) - error > CLOCK_SKEW_WARN_S:
        return r.warn(
            detail,
            "sync the clocks with NTP on both machines (`sudo timedatectl set-ntp true` on "
            "Linux; Settings > Date & Time elsewhere)",
        )
    return r.ok(detail)


def check_token(env: Env, r: Reporter) -> Check:
    """The token is accepted (an authenticated call); its kind, scopes and expiry."""
    token = env.token()
    api_base = env.api_base()
    if token is None or api_base is None:
        return r.skip(_NOT_CHECKED + "no token or address (see context)")
    probe = env.probe()
    if probe is not None and not probe.reachable:
        return r.skip(_NOT_CHECKED + "the control plane does not answer (see control-plane)")
    try:
        with env.http() as http:
            answer = http.get("/v2/tokens/self", headers={"Authorization": f"Bearer {token}"})
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return r.skip(f"{_NOT_CHECKED}{describe_error(exc)} (see control-plane)")
    name = _context_name(env)
    login = f"run `edge-runner login {api_base} --context {name}`" + (
        " (or `edge-runner up`, which reads the admin token file again)" if name == "local" else ""
    )
    if answer.status_code == 401:
        return r.fail(
            f"the control plane refused the token {mask_secret(token)} (401: unknown, revoked "
            "or expired)",
            login,
        )
    if answer.status_code == 404 and probe is not None and probe.info is not None:
        return r.ok(f"{mask_secret(token)} is accepted (this control plane does not report scopes)")
    if answer.status_code != 200:
        return r.warn(
            f"GET /v2/tokens/self answered HTTP {answer.status_code}",
            "upgrade the control plane to this client's version",
        )
    try:
        doc = answer.json()
        scopes = [str(s) for s in doc.get("scopes", [])]
        kind = str(doc.get("kind", "?"))
        user = str(doc.get("user_id", "?"))
        expires = doc.get("expires_at")
        token_id = str(doc.get("id", "?"))
    except (ValueError, AttributeError, TypeError) as exc:
        return r.warn(f"GET /v2/tokens/self answered oddly: {describe_error(exc)}", login)
    detail = f"{kind} token {token_id} of user {user}, scopes: {', '.join(scopes) or 'none'}"
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        left = float(expires) - time.time()
        detail += f", expires in {_duration(max(0.0, left))}"
        if left < TOKEN_WARN_DAYS * 86400:
            return r.warn(detail, f"create a new one before then: {login}")
    if not {"predict", "read"} & set(scopes):
        return r.warn(
            detail + " (it can neither call nor list models)",
            "use a token with predict and read: `edge-runner token create --name cli "
            "--scope predict --scope read` with an admin context, then " + login,
        )
    return r.ok(detail)


def _context_name(env: Env) -> str:
    try:
        ctx = env.context()
    except Exception:  # the context check reports it
        return "NAME"
    return ctx.name if ctx is not None else "NAME"

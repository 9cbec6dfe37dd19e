"""No phone-home, checked in the source: edge_runner/ and tui/ name no outside host except in
documentation, import no telemetry, error-reporting or update-check library (nor an HTTP client
besides the ones we know), and set no environment variable that points a library or pip at the
network. tests/integration/test_offline.py checks the running system the other way round."""

from __future__ import annotations

import ast
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = [ROOT / "edge_runner", ROOT / "tui"]

#: outside hosts that may appear, in documentation only (docstrings, messages that tell a
#: person where to read or download something), each with why
DOC_HOSTS = {
    "ollama.com": "where to download Ollama and browse its model library (error messages)",
    "prometheus.io": "the metrics format's documentation (a docstring)",
}
#: telemetry, error reporting, product analytics and update checks
PHONE_HOME_MODULES = {
    "sentry_sdk", "raven", "bugsnag", "rollbar", "airbrake", "honeybadger", "newrelic",
    "ddtrace", "datadog", "posthog", "mixpanel", "analytics", "segment", "amplitude",
    "update_checker", "pypi_simple", "outdated", "opentelemetry.exporter", "opentelemetry.sdk",
    "pip._internal", "huggingface_hub",
}  # fmt: skip
#: network clients other than httpx, grpc, websockets and the ollama/mcp SDKs we use
OTHER_CLIENTS = {
    "requests", "urllib3", "aiohttp", "pycurl", "urllib.request", "http.client", "xmlrpc.client",
    "ftplib", "smtplib", "telnetlib",
}  # fmt: skip
#: environment variables that send a library, pip or a proxy somewhere
NETWORK_ENV = re.compile(
    r"^(HF_|HUGGINGFACE_|TRANSFORMERS_|DIFFUSERS_|TORCH_HOME$|PIP_|UV_|CONDA_|POETRY_|NPM_|"
    r"(HTTPS?|ALL|NO|FTP)_PROXY$|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|SSL_CERT_(FILE|DIR)$|GRPC_)",
    re.IGNORECASE,
)
#: calls that open a connection or make a request: a URL handed straight to one is not a doc
NETWORK_CALLS = {
    "get", "post", "put", "delete", "request", "stream", "urlopen", "connect",
    "create_connection", "getaddrinfo", "Client", "AsyncClient", "insecure_channel",
    "secure_channel", "open_connection",
}  # fmt: skip

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s'\"`<>)\]]*)")
_BARE_HOST = re.compile(r"^(?:[a-z0-9-]+\.)+(?:com|org|net|io|ai|dev|app|cloud|co)$")
_DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


@dataclass(frozen=True)
class Hit:
    """Something a scan found: where, and what."""

    where: str
    what: str


def _files() -> Iterator[Path]:
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            if not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                yield path


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _docstrings(tree: ast.AST) -> set[ast.AST]:
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(body[0].value)
    return found


def _host(authority: str) -> str:
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.split(":")[0]


def _harmless(host: str) -> bool:
    """Loopback, a wildcard, a placeholder, or a name reserved for examples (RFC 2606)."""
    lowered = host.lower().rstrip(".")
    if not lowered or "{" in host or host.isupper() or lowered in ("host", "h", "localhost"):
        return True
    if lowered.endswith((".example", ".test", ".invalid", ".localhost")):
        return True
    if lowered in ("example.com", "example.org", "example.net"):
        return True
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified or any(address in n for n in _DOC_NETS)


def _call_name(node: ast.AST | None) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return ""


def outside_hosts(tree: ast.Module, where: str) -> list[Hit]:
    """Outside hosts named in string constants, except allowed documentation links."""
    parents, docs = _parents(tree), _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        hosts = [_host(m.group(1)) for m in _URL.finditer(node.value)]
        text = node.value.strip().lower()
        if _BARE_HOST.match(text):
            hosts.append(text)
        try:
            ipaddress.ip_address(text)
            hosts.append(text)
        except ValueError:
            pass
        for host in hosts:
            if _harmless(host):
                continue
            parent = parents.get(node)
            if isinstance(parent, ast.JoinedStr):
                parent = parents.get(parent)
            # A link inside a sentence is for a person; a string that is only a URL is config.
            prose = bool(re.search(r"\s", node.value.strip()))
            documented = host in DOC_HOSTS and (
                node in docs or (prose and _call_name(parent) not in NETWORK_CALLS)
            )
            if not documented:
                hits.append(Hit(f"{where}:{node.lineno}", host))
    return hits


def imports(tree: ast.Module, where: str, banned: set[str]) -> list[Hit]:
    """Imports of ``banned`` modules (or their submodules)."""
    hits = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        bad = [n for n in names if any(n == b or n.startswith(f"{b}.") for b in banned)]
        if bad:
            hits.append(Hit(f"{where}:{node.lineno}", bad[0]))
    return hits


def _env_like(node: ast.AST) -> bool:
    text = ast.unparse(node).lower()
    return "environ" in text or "env" in text.split(".")[-1]


def env_settings(tree: ast.Module, where: str) -> list[Hit]:
    """Network-ish environment variables set: ``env[K] =``, ``setdefault``, ``update``,
    ``putenv``, and dict literals or ``dict(K=...)`` handed to a call as ``env=``."""
    keys: list[tuple[int, str]] = []

    def const(node: ast.AST | None) -> str | None:
        return (
            node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and _env_like(target.value):
                    key = const(target.slice)
                    if key:
                        keys.append((node.lineno, key))
        elif isinstance(node, ast.Call):
            func = node.func
            sets = isinstance(func, ast.Attribute) and (
                func.attr == "putenv" or (func.attr == "setdefault" and _env_like(func.value))
            )
            if sets and node.args:
                key = const(node.args[0])
                if key:
                    keys.append((node.lineno, key))
            if isinstance(func, ast.Attribute) and func.attr == "update" and _env_like(func.value):
                keys += [(node.lineno, k.arg) for k in node.keywords if k.arg]
                for arg in node.args:
                    if isinstance(arg, ast.Dict):
                        keys += [(node.lineno, k) for k in map(const, arg.keys) if k]
            for keyword in node.keywords:
                if keyword.arg == "env" and isinstance(keyword.value, ast.Dict):
                    keys += [(node.lineno, k) for k in map(const, keyword.value.keys) if k]
                if keyword.arg == "env" and isinstance(keyword.value, ast.Call):
                    keys += [(node.lineno, k.arg) for k in keyword.value.keywords if k.arg]
    return [Hit(f"{where}:{line}", key) for line, key in keys if NETWORK_ENV.match(key)]


def _scan(check: str) -> list[Hit]:
    hits = []
    for path in _files():
        where, tree = str(path.relative_to(ROOT)), _tree(path)
        if check == "hosts":
            hits += outside_hosts(tree, where)
        elif check == "imports":
            hits += imports(tree, where, PHONE_HOME_MODULES | OTHER_CLIENTS)
        else:
            hits += env_settings(tree, where)
    return hits


def test_no_outside_host_but_documentation_links() -> None:
    """Every URL, host name or IP address in the code is loopback, a placeholder, an example
    name, or a documentation link to an allowed host — never something the code connects to."""
    assert _scan("hosts") == []


def test_documentation_hosts_are_still_used() -> None:
    """The allow-list has no stale entries (each allowed host still appears somewhere)."""
    text = "\n".join(path.read_text() for path in _files())
    assert [host for host in DOC_HOSTS if host not in text] == []


def test_no_telemetry_or_update_check_libraries() -> None:
    """No telemetry, error-reporting, analytics or update-check library, and no HTTP client
    besides httpx (so the offline test's coverage of our clients is the whole story)."""
    assert _scan("imports") == []


def test_no_network_environment_variables_are_set() -> None:
    """Nothing sets HF_*, PIP_*, *_PROXY, SSL_CERT_FILE, GRPC_* and the like for itself or for
    a child process."""
    assert _scan("env") == []


@pytest.mark.parametrize(
    ("code", "check", "found"),
    [
        ('URL = "https://telemetry.acme.io/v1/events"', "hosts", "telemetry.acme.io"),
        ('httpx.get("https://ollama.com/api/version")', "hosts", "ollama.com"),
        ('LATEST = "https://ollama.com/latest"', "hosts", "ollama.com"),
        ('s.connect(("8.8.8.8", 53))', "hosts", "8.8.8.8"),
        ('HOST = "pypi.org"', "hosts", "pypi.org"),
        ("import sentry_sdk", "imports", "sentry_sdk"),
        ("from urllib.request import urlopen", "imports", "urllib.request"),
        ("from urllib import request", "imports", "urllib.request"),
        ('os.environ["HF_ENDPOINT"] = "x"', "env", "HF_ENDPOINT"),
        ('os.environ.setdefault("HTTPS_PROXY", "x")', "env", "HTTPS_PROXY"),
        ('env.update(PIP_INDEX_URL="x")', "env", "PIP_INDEX_URL"),
        ('subprocess.run(cmd, env={"GRPC_DNS_RESOLVER": "x"})', "env", "GRPC_DNS_RESOLVER"),
    ],
)
def test_the_scans_catch_what_they_look_for(code: str, check: str, found: str) -> None:
    """Each scan flags a planted example (so an empty result above means something)."""
    tree = ast.parse(code)
    if check == "hosts":
        hits = outside_hosts(tree, "planted")
    elif check == "imports":
        hits = imports(tree, "planted", PHONE_HOME_MODULES | OTHER_CLIENTS)
    else:
        hits = env_settings(tree, "planted")
    assert [hit.what for hit in hits] == [found]


@pytest.mark.parametrize(
    "code",
    [
        '"""See https://prometheus.io/docs/instrumenting/ for the format."""',
        'raise ConfigError("install Ollama: https://ollama.com/download")',
        'URL = "http://127.0.0.1:7070"',
        'HELP = "e.g. https://runner.lab.example:7070 or http://HOST:PORT/v1"',
        'os.environ["CUDA_VISIBLE_DEVICES"] = "0"',
        'env["OLLAMA_HOST"] = f"{host}:{port}"',
    ],
)
def test_the_scans_let_documentation_and_loopback_pass(code: str) -> None:
    """Documentation links, loopback, placeholders and unrelated variables are not flagged."""
    tree = ast.parse(code)
    assert outside_hosts(tree, "ok") + env_settings(tree, "ok") == []

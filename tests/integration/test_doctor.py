"""`edge-runner doctor` against a real control plane on loopback (the Stack fixture), a real
runner with its local API, the fake Ollama, recorded NVML through the shim, and TLS with the
control plane's own private CA."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from typing import Any

import httpx
import pytest

from edge_runner.cli.main import main
from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.paths import runner_file, runtime_dir
from edge_runner.config.secrets import SecretStore
from edge_runner.doctor import CHECKS, Env, Options, Status, run_checks
from edge_runner.runner.events import LogBuffer
from edge_runner.runner.local_api import LocalApi
from tests.conftest import HELLO, ROOT, Stack
from tests.fakes.ollama import FakeOllama
from tests.integration.test_cli import run_cli


def use_context(api_base: str, token: str, name: str = "local", **extra: Any) -> None:
    """Make ``name`` the active context with ``token`` in the file store, as `login` does."""
    contexts = ContextsFile.load()
    contexts.put(Context(name, api_base, "admin", extra), make_current=True)
    contexts.save()
    SecretStore().set(name, token)


def _ports(stack: Stack) -> list[str]:
    assert stack.plane is not None and stack.plane.state is not None
    http_port = stack.api_base.rsplit(":", 1)[1]
    grpc_port = stack.plane.state.grpc_address.rsplit(":", 1)[1]
    return ["--port", http_port, "--grpc-port", grpc_port]


def doctor(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Run `edge-runner doctor -o json ARGS` in-process: exit code, checks by name, raw stdout."""
    capsys.readouterr()
    code = main(["doctor", "-o", "json", *args])
    out = capsys.readouterr().out
    items = json.loads(out)
    assert [item["check"] for item in items] == [spec.name for spec in CHECKS]
    return code, {item["check"]: item for item in items}, out


@pytest.fixture
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OLLAMA_HOST from the machine running the tests."""
    monkeypatch.delenv("OLLAMA_HOST", raising=False)


@pytest.mark.usefixtures("no_ollama")
def test_a_valid_context_gives_only_ok_and_skip_lines(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a running control plane with a good token: no WARN or FAIL, exit 0, the network
    lines are OK, the ports are recognised as edge-runner's, and the token never shows."""
    use_context(stack.api_base, stack.token)
    code, checks, out = doctor(capsys, *_ports(stack))
    bad = {n: c for n, c in checks.items() if c["status"] not in ("OK", "SKIP")}
    assert bad == {} and code == 0
    for name in ("config-file", "context", "control-plane", "protocol", "clock", "token", "ports"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "scopes: predict, read, manage, runner, admin" in checks["token"]["detail"]
    assert checks["ports"]["detail"].count("edge-runner control plane") == 1
    assert "held by the same control plane" in checks["ports"]["detail"]
    assert checks["tls"]["status"] == "SKIP"
    assert stack.token not in out


def test_the_table_has_one_line_per_check_and_a_summary(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default output: STATUS, name, detail on one line each, then the counts."""
    use_context(stack.api_base, stack.token)
    capsys.readouterr()
    main(["doctor", *_ports(stack)])
    lines = capsys.readouterr().out.splitlines()
    rows = lines[: len(CHECKS)]
    assert [row.split()[1] for row in rows] == [spec.name for spec in CHECKS]
    assert all(row.split()[0] in ("OK", "WARN", "FAIL", "SKIP") for row in rows)
    assert lines[-1].startswith(f"{len(CHECKS)} checks: ")
    assert stack.token not in "\n".join(lines)


@pytest.mark.parametrize("how", ["revoked", "wrong"])
def test_a_refused_token_fails_with_login_and_exit_1(
    stack: Stack, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """A revoked or unknown token: token FAIL, fix `edge-runner login`; exit code 1."""
    if how == "revoked":
        made = httpx.post(
            f"{stack.api_base}/v2/tokens", json={"name": "doomed"}, headers=stack.headers
        ).json()
        token = made["token"]
        revoked = httpx.delete(f"{stack.api_base}/v2/tokens/{made['id']}", headers=stack.headers)
        assert revoked.status_code == 200
    else:
        token = "er_pat_" + secrets.token_urlsafe(32)
    use_context(stack.api_base, token)
    code, checks, out = doctor(capsys, *_ports(stack))
    assert code == 1
    assert checks["token"]["status"] == "FAIL"
    assert "401" in checks["token"]["detail"]
    assert f"edge-runner login {stack.api_base} --context local" in checks["token"]["fix"]
    assert checks["control-plane"]["status"] == "OK"  # reachable: only the token is wrong
    assert token not in out


def test_a_token_that_expires_soon_warns(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A token with an hour left: token WARN with its expiry and how to replace it; exit 0."""
    made = httpx.post(
        f"{stack.api_base}/v2/tokens",
        json={"name": "short", "expires_in": 3600},
        headers=stack.headers,
    ).json()
    use_context(stack.api_base, made["token"])
    code, checks, _ = doctor(capsys, *_ports(stack))
    token = checks["token"]
    assert token["status"] == "WARN", token
    assert "scopes: predict, read" in token["detail"] and "expires in 59m" in token["detail"]
    assert "edge-runner login" in token["fix"]
    assert code == 0


def test_a_stopped_control_plane_fails_with_edge_runner_up(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing answers at the context's address: control-plane FAIL with the fix `edge-runner
    up`; the checks that need it SKIP; exit 1."""
    use_context(stack.api_base, stack.token)
    stack.stop_control()
    code, checks, _ = doctor(capsys)
    assert code == 1
    plane = checks["control-plane"]
    assert plane["status"] == "FAIL" and "cannot reach" in plane["detail"]
    assert "`edge-runner up`" in plane["fix"]
    for name in ("protocol", "clock", "token"):
        assert checks[name]["status"] == "SKIP", checks[name]


def test_a_skewed_clock_warns(stack: Stack) -> None:
    """Our clock 30 s behind the control plane's (from /v2/info's `time`): clock WARN."""
    use_context(stack.api_base, stack.token)
    (clock,) = [s for s in CHECKS if s.name == "clock"]
    env = Env(Options(clock=lambda: time.time() - 30))
    (result,) = run_checks([clock], env)
    assert result.status is Status.WARN, result
    assert "30." in result.detail and "behind the control plane's" in result.detail
    assert "timedatectl set-ntp true" in result.fix


def test_fake_ollama_up_is_ok_with_its_version(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OLLAMA_HOST at the fake Ollama: the ollama line is OK with the version it reports."""
    use_context(stack.api_base, stack.token)
    with FakeOllama() as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        _, checks, _ = doctor(capsys, *_ports(stack))
    assert checks["ollama"]["status"] == "OK"
    assert f"Ollama 0.0.0-fake at {fake.url}" in checks["ollama"]["detail"]


def test_a_running_runner_is_reported_with_its_tunnel_and_models(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runner with its local API in the runtime dir: runners OK, tunnel connected, hello
    ready."""
    use_context(stack.api_base, stack.token)
    running = stack.start_runner(HELLO)
    logs = LogBuffer(running.runner.hub)
    logging.getLogger("edge_runner").addHandler(logs)
    runtime = runtime_dir()
    runtime.mkdir(parents=True, mode=0o700, exist_ok=True)
    with runner_file(runtime, running.runner_id, "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `edge-runner runner` holds it
        api = LocalApi(running.runner, logs, runtime)
        stack.loop.run(api.__aenter__())
        try:
            _, checks, _ = doctor(capsys, *_ports(stack))
        finally:
            stack.loop.run(api.__aexit__(None, None, None))
            logging.getLogger("edge_runner").removeHandler(logs)
    runners = checks["runners"]
    assert runners["status"] == "OK", runners
    expected = f"{running.runner_id} (pid {os.getpid()}): tunnel connected; hello ready"
    assert expected in runners["detail"]


def test_tokens_self_describes_the_calling_token(stack: Stack) -> None:
    """GET /v2/tokens/self: id, kind, scopes, user of any valid token; 401 without one."""
    me = httpx.get(f"{stack.api_base}/v2/tokens/self", headers=stack.headers)
    assert me.status_code == 200
    doc = me.json()
    assert (doc["kind"], doc["user_id"]) == ("pat", "admin")
    assert doc["scopes"] == ["predict", "read", "manage", "runner", "admin"]
    assert len(doc["id"]) == 12 and stack.token not in me.text
    made = httpx.post(
        f"{stack.api_base}/v2/tokens",
        json={"name": "r1", "scopes": ["runner"]},
        headers=stack.headers,
    ).json()
    runner = httpx.get(
        f"{stack.api_base}/v2/tokens/self", headers={"Authorization": f"Bearer {made['token']}"}
    ).json()
    assert (runner["id"], runner["kind"], runner["scopes"]) == (made["id"], "runner", ["runner"])
    assert httpx.get(f"{stack.api_base}/v2/tokens/self").status_code == 401


def test_tls_with_the_ca_file_verifies_and_without_it_fails(
    tls_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the context's ca_file: tls OK naming the CA and the chain, and the network checks
    pass over HTTPS; without it: tls FAIL saying to add ca_file, exit 1."""
    ca = tls_stack.ca  # type: ignore[attr-defined]
    use_context(tls_stack.api_base, tls_stack.token, ca_file=str(ca))
    code, checks, _ = doctor(capsys, *_ports(tls_stack))
    tls = checks["tls"]
    assert tls["status"] == "OK", tls
    assert f"chain verifies against context 'local''s ca_file ({ca})" in tls["detail"]
    assert "issued by CN=edge-runner private CA" in tls["detail"]
    assert "host name matches" in tls["detail"]
    for name in ("control-plane", "token", "protocol"):
        assert checks[name]["status"] == "OK", checks[name]
    use_context(tls_stack.api_base, tls_stack.token)
    code, checks, _ = doctor(capsys, *_ports(tls_stack))
    assert code == 1
    assert checks["tls"]["status"] == "FAIL"
    assert "does not verify against the system trust store" in checks["tls"]["detail"]
    assert "ca_file" in checks["tls"]["fix"]
    assert checks["control-plane"]["status"] == "FAIL"
    assert "see the tls line" in checks["control-plane"]["fix"]


@pytest.mark.slow
def test_an_unknown_context_is_exit_2_with_a_clear_message(stack: Stack) -> None:
    """`doctor --context nope`: exit 2, one line naming the known contexts; no report."""
    use_context(stack.api_base, stack.token)
    result = run_cli("doctor", "--context", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "edge-runner: error: No context named 'nope'. Known contexts: local. "
        "Create one with `edge-runner context create nope`."
    )
    assert result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recording", "status", "code"),
    [("one_gpu", "OK", 0), ("driver_mismatch", "FAIL", 1)],
)
def test_recorded_nvml_through_the_shim_in_a_subprocess(
    stack: Stack, recording: str, status: str, code: int
) -> None:
    """The real command with the fake pynvml on PYTHONPATH: one GPU is OK, a driver/library
    mismatch is FAIL with the reboot fix, and sets the exit code."""
    use_context(stack.api_base, stack.token)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "tests" / "fakes" / "nvml_shim"),
        FAKE_NVML=recording,
    )
    env.pop("OLLAMA_HOST", None)
    result = run_cli("doctor", "-o", "json", *_ports(stack), env=env)
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["nvml"]["status"] == status, checks["nvml"]
    if status == "OK":
        assert "NVIDIA H200" in checks["nvml"]["detail"]
    else:
        assert "reboot" in checks["nvml"]["fix"]
    assert result.returncode == code, result.stdout

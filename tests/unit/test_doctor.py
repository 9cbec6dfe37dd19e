"""`edge-runner doctor`'s checks, each on its edge cases: files with bad modes, broken contexts,
keyrings that fail, recorded NVML answers (tests/fakes/nvml.py), TLS servers on loopback with
certificates made here, clock skew arithmetic, held ports, the time limit on a hung check."""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_runner.config.contexts import Context, ContextsFile
from edge_runner.config.paths import config_file, data_dir, runner_file
from edge_runner.config.secrets import SecretStore
from edge_runner.doctor import (
    CHECKS,
    Check,
    CheckSpec,
    Env,
    Options,
    Probe,
    Reporter,
    Status,
    check_names,
    run_checks,
)
from edge_runner.doctor.remote import clock_skew, judge_protocol
from edge_runner.protocol.version import PROTOCOL_VERSION
from tests.conftest import MS, ROOT
from tests.fakes.keyring import LockedKeyring, MemoryKeyring
from tests.fakes.nvml import FakeNvml
from tests.fakes.ollama import FakeOllama

TOKEN = "er_pat_ab12" + "z" * 40


def run_one(name: str, options: Options | None = None) -> Check:
    """Run the check called ``name`` alone, as the doctor runs it."""
    (spec,) = [s for s in CHECKS if s.name == name]
    (result,) = run_checks([spec], Env(options), limit=10_000 * MS)
    return result


def save_context(
    name: str = "local", api_base: str = "http://127.0.0.1:7070", token: str | None = TOKEN
) -> None:
    """Write a context (and its token, in the 0600 file store) as `up` or `login` would."""
    contexts = ContextsFile.load()
    contexts.put(Context(name, api_base, "admin"), make_current=True)
    contexts.save()
    if token is not None:
        SecretStore().set(name, token)


# -- the frame ------------------------------------------------------------------------------------


def test_a_hung_check_fails_within_the_limit_and_others_still_report() -> None:
    """One check that never returns costs the limit, becomes FAIL, and the rest come back."""
    release = threading.Event()

    def hangs(env: Env, r: Reporter) -> Check:
        release.wait()
        return r.ok("never")

    specs = [
        CheckSpec("hangs", "waits forever", hangs),
        CheckSpec("fine", "returns", lambda env, r: r.ok("fine")),
    ]
    started = time.monotonic()
    try:
        report = run_checks(specs, Env(), limit=200 * MS)
    finally:
        release.set()
    assert time.monotonic() - started < 2_000 * MS
    assert [(c.name, c.status) for c in report] == [("hangs", Status.FAIL), ("fine", Status.OK)]
    assert "did not finish within" in report[0].detail and "--timeout" in report[0].fix


def test_a_check_that_raises_is_a_fail_line_with_the_one_line_error() -> None:
    """An exception inside a check never escapes: FAIL, naming the error type and message."""

    def broken(env: Env, r: Reporter) -> Check:
        raise ValueError("bad value\nsecond line")

    (result,) = run_checks([CheckSpec("broken", "raises", broken)], Env())
    assert result.status is Status.FAIL
    assert result.detail == "the check itself failed: ValueError: bad value"


def test_check_json_shape() -> None:
    """`-o json` items are {check, status, detail, fix}, fix null when there is none."""
    assert Check("x", Status.OK, "d").to_dict() == {
        "check": "x",
        "status": "OK",
        "detail": "d",
        "fix": None,
    }
    assert Check("x", Status.WARN, "d", "do this").to_dict()["fix"] == "do this"


def test_every_check_has_a_section_in_troubleshooting_md() -> None:
    """docs/troubleshooting.md has a `## name` heading for each check, and none for others."""
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    headings = re.findall(r"^## `([a-z-]+)`", text, flags=re.MULTILINE)
    assert headings == check_names()
    assert len(set(check_names())) == len(CHECKS)


# -- config file and permissions ------------------------------------------------------------------


def test_missing_config_file_warns_with_the_commands_that_create_one() -> None:
    """No contexts file yet: WARN, fix `edge-runner up` or `edge-runner login`."""
    result = run_one("config-file")
    assert result.status is Status.WARN
    assert "edge-runner up" in result.fix and "edge-runner login" in result.fix


def test_unparseable_config_file_fails_naming_the_line() -> None:
    """Broken YAML: FAIL with the file and line; the context check points at it too."""
    path = config_file()
    path.parent.mkdir(parents=True)
    path.write_text("current-context: local\ncontexts: [\n")
    result = run_one("config-file")
    assert result.status is Status.FAIL
    assert f"{path}, line" in result.detail and "not valid YAML" in result.detail
    assert "edge-runner context edit" in result.fix
    context = run_one("context")
    assert context.status is Status.FAIL and "config-file" in context.detail


def test_env_only_setup_needs_no_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGE_RUNNER_API_BASE and EDGE_RUNNER_PAT without a file: OK, not WARN."""
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://127.0.0.1:7070")
    monkeypatch.setenv("EDGE_RUNNER_PAT", TOKEN)
    assert run_one("config-file").status is Status.OK
    context = run_one("context")
    assert context.status is Status.OK and "the environment" in context.detail


@pytest.mark.parametrize(
    ("target", "mode", "status", "fix"),
    [
        ("file", 0o666, Status.FAIL, "chmod 600"),
        ("file", 0o620, Status.FAIL, "chmod 600"),
        ("file", 0o644, Status.WARN, "chmod 600"),
        ("dir", 0o777, Status.FAIL, "chmod 700"),
        ("dir", 0o755, Status.WARN, "chmod 700"),
        ("file", 0o600, Status.OK, ""),
    ],
)
def test_config_permissions(target: str, mode: int, status: Status, fix: str) -> None:
    """Writable by others is FAIL (they could redirect the token), readable is WARN."""
    save_context()
    path = config_file() if target == "file" else config_file().parent
    path.chmod(mode)
    result = run_one("config-permissions")
    assert result.status is status, result
    assert result.fix == ("" if not fix else f"{fix} {path}")


# -- secrets --------------------------------------------------------------------------------------


def test_secret_files_all_0600_in_a_0700_dir_is_ok() -> None:
    """What the file store writes passes."""
    save_context()
    result = run_one("secret-files")
    assert result.status is Status.OK and "1 token file(s)" in result.detail


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_loose_secret_file_fails_with_chmod_and_revoke(mode: int) -> None:
    """A token file open to others: FAIL with `chmod 600`; readable ones say to revoke too."""
    save_context()
    path = data_dir() / "secrets" / "local.token"
    path.chmod(mode)
    result = run_one("secret-files")
    assert result.status is Status.FAIL
    assert result.fix.startswith(f"chmod 600 {path}")
    assert ("token revoke" in result.fix) == bool(mode & 0o044)
    assert TOKEN not in result.detail + result.fix
    context = run_one("context")  # the store refuses the file, so the context has no token
    assert context.status is Status.FAIL and context.fix == f"chmod 600 {path}"


def test_a_listable_secrets_dir_warns_and_a_writable_one_fails() -> None:
    """The directory: group/other read is WARN (chmod 700), write is FAIL."""
    save_context()
    directory = data_dir() / "secrets"
    directory.chmod(0o755)
    assert run_one("secret-files").status is Status.WARN
    directory.chmod(0o777)
    result = run_one("secret-files")
    assert result.status is Status.FAIL and result.fix == f"chmod 700 {directory}"


def test_a_symlinked_secret_file_fails(tmp_path: Path) -> None:
    """A token file that is a symbolic link is refused by the store, so doctor fails it."""
    save_context()
    path = data_dir() / "secrets" / "local.token"
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    result = run_one("secret-files")
    assert result.status is Status.FAIL and "symbolic link" in result.detail


def test_data_dir_private_files() -> None:
    """An admin token file open to others is FAIL; a world-writable data dir is FAIL."""
    control = data_dir() / "control"
    control.mkdir(parents=True)
    admin = control / "admin-token"
    admin.write_text(TOKEN)
    admin.chmod(0o600)
    assert run_one("data-dir").status is Status.OK
    admin.chmod(0o644)
    result = run_one("data-dir")
    assert result.status is Status.FAIL and result.fix == f"chmod 600 {admin}"
    admin.chmod(0o600)
    data_dir().chmod(0o777)
    result = run_one("data-dir")
    assert result.status is Status.FAIL and result.fix == f"chmod go-w {data_dir()}"


@pytest.fixture
def auto_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let the store pick its backend (no forced file store); the keyring is put back after."""
    monkeypatch.delenv("EDGE_RUNNER_SECRET_BACKEND")
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


def test_forced_file_store_is_ok() -> None:
    """EDGE_RUNNER_SECRET_BACKEND=file is a choice, not a problem."""
    result = run_one("keyring")
    assert result.status is Status.OK and "EDGE_RUNNER_SECRET_BACKEND=file" in result.detail


@pytest.mark.usefixtures("auto_keyring")
def test_no_keyring_warns_naming_what_keyring_found() -> None:
    """Falling back to files: WARN naming keyring's backend, fix names both ways out."""
    keyring.set_keyring(keyring.backends.fail.Keyring())
    result = run_one("keyring")
    assert result.status is Status.WARN
    assert "keyring.backends.fail.Keyring" in result.detail and "0600 files" in result.detail
    assert "EDGE_RUNNER_SECRET_BACKEND=file" in result.fix


@pytest.mark.usefixtures("auto_keyring")
def test_a_working_keyring_is_ok() -> None:
    """A real backend answering reads: OK naming it."""
    keyring.set_keyring(MemoryKeyring())
    result = run_one("keyring")
    assert result.status is Status.OK and "MemoryKeyring" in result.detail


@pytest.mark.usefixtures("auto_keyring")
def test_a_locked_keyring_warns_that_secrets_fall_back() -> None:
    """A keyring that fails its read: WARN, the secrets go to files, the fix says unlock it."""
    keyring.set_keyring(LockedKeyring())
    result = run_one("keyring")
    assert result.status is Status.WARN
    assert "fall back" in result.detail and "unlock" in result.fix


def test_a_bad_secret_backend_setting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGE_RUNNER_SECRET_BACKEND=vault: FAIL naming the allowed values."""
    monkeypatch.setenv("EDGE_RUNNER_SECRET_BACKEND", "vault")
    result = run_one("keyring")
    assert result.status is Status.FAIL and "auto, keyring or file" in result.fix


# -- context --------------------------------------------------------------------------------------


def test_no_context_fails_with_up_or_login() -> None:
    """Nothing configured: FAIL, fix `edge-runner up` / `edge-runner login`; the network
    checks that need it SKIP."""
    result = run_one("context")
    assert result.status is Status.FAIL and "edge-runner up" in result.fix
    for name in ("control-plane", "tls", "protocol", "clock", "token"):
        assert run_one(name).status is Status.SKIP, name


def test_a_dangling_current_context_fails_with_context_use() -> None:
    """current-context names a context that is gone: FAIL listing the known ones."""
    save_context("lab")
    path = config_file()
    path.write_text(path.read_text().replace("current-context: lab", "current-context: gone"))
    result = run_one("context")
    assert result.status is Status.FAIL
    assert "'gone'" in result.detail and "edge-runner context use NAME" in result.fix
    assert "lab" in result.fix


def test_a_dangling_context_variable_fails_even_with_env_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EDGE_RUNNER_CONTEXT names a missing context: FAIL saying so, though the address and
    token come from the environment (the CLI would refuse too)."""
    save_context("lab")
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://127.0.0.1:7070")
    monkeypatch.setenv("EDGE_RUNNER_PAT", TOKEN)
    monkeypatch.setenv("EDGE_RUNNER_CONTEXT", "gone")
    result = run_one("context")
    assert result.status is Status.FAIL
    assert "No context named 'gone'" in result.detail
    assert "unset EDGE_RUNNER_CONTEXT" in result.fix


def test_an_api_base_that_does_not_parse_fails() -> None:
    """api_base must be an http(s) URL with a host."""
    save_context(api_base="ftp://lab")
    result = run_one("context")
    assert result.status is Status.FAIL and "ftp://lab" in result.detail


def test_a_context_without_token_fails_with_login() -> None:
    """No token stored: FAIL, fix `edge-runner login ... --context NAME`."""
    save_context("lab", api_base="http://127.0.0.1:9", token=None)
    result = run_one("context")
    assert result.status is Status.FAIL
    assert result.fix.startswith("`edge-runner login http://127.0.0.1:9 --context lab`")


def test_a_good_context_shows_the_token_masked_only() -> None:
    """OK line: context, address, user, and the token masked."""
    save_context()
    result = run_one("context")
    assert result.status is Status.OK
    assert "er_pat_ab12****" in result.detail and TOKEN not in result.detail


# -- NVML (recorded answers) ----------------------------------------------------------------------


@pytest.fixture
def nvml(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeNvml | None:
    """A recorded NVML (a recording's name, or an init error code) installed as `pynvml`;
    None uninstalls the bindings."""
    param = request.param
    fake: FakeNvml | None
    if param is None:
        fake = None
    elif isinstance(param, int):
        fake = FakeNvml({"init_error": param})
    else:
        fake = FakeNvml.load(param)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.mark.parametrize(
    ("nvml", "status", "detail", "fix"),
    [
        ("one_gpu", Status.OK, "driver 560.35.03, 1 GPU(s) (0: NVIDIA H200)", ""),
        ("eight_gpus", Status.OK, "8 GPU(s)", ""),
        ("mig", Status.OK, "MIG is on for GPU 0", ""),
        ("gpu_lost", Status.WARN, "fell off the bus", "nvidia-smi"),
        ("no_gpu", Status.WARN, "NVML sees no GPU", "--gpus all"),
        ("driver_mismatch", Status.FAIL, "version mismatch", "reboot"),
        (4, Status.FAIL, "no permission", "usermod"),
        (9, Status.FAIL, "not loaded", "modprobe nvidia"),
    ],
    indirect=["nvml"],
)
def test_nvml_variants(nvml: FakeNvml, status: Status, detail: str, fix: str) -> None:
    """Each recorded machine gives its status, what was found and the fix."""
    result = run_one("nvml")
    assert result.status is status, result
    assert detail in result.detail
    assert fix in result.fix


@pytest.mark.skipif(
    os.path.exists("/dev/nvidiactl"), reason="this machine has NVIDIA devices: not a CPU box"
)
@pytest.mark.parametrize("nvml", [None, 12], indirect=True, ids=["no-bindings", "no-driver"])
def test_nvml_on_a_cpu_machine_is_skipped(nvml: FakeNvml | None) -> None:
    """No bindings, or no driver, and no NVIDIA devices: SKIP (with the pip line when the
    bindings are missing)."""
    result = run_one("nvml")
    assert result.status is Status.SKIP
    if nvml is None:
        assert "pip install 'edge-runner[gpu]'" in result.detail


# -- TLS ------------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(
    folder: Path,
    *,
    names: tuple[str, ...] = ("127.0.0.1",),
    not_before: datetime.timedelta = datetime.timedelta(days=-1),
    not_after: datetime.timedelta = datetime.timedelta(days=90),
) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed: ``(ca.pem, server.pem, server.key)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TlsServer:
    """A TLS server on 127.0.0.1:0 that completes handshakes and closes (nothing else)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20 * MS)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(2_000 * MS)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()  # a client that refused our certificate

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    """A TLS server with a certificate shaped by the test's parameters; yields it and its CA."""
    ca, cert, key = make_certs(tmp_path, **getattr(request, "param", {}))
    server = TlsServer(cert, key)
    yield server, ca
    server.close()


def _use_https(monkeypatch: pytest.MonkeyPatch, port: int, ca: Path | None) -> None:
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", f"https://127.0.0.1:{port}")
    monkeypatch.setenv("EDGE_RUNNER_PAT", TOKEN)
    if ca is not None:
        monkeypatch.setenv("EDGE_RUNNER_CA_FILE", str(ca))


def test_tls_chain_verifies_against_the_ca_file(
    tls_server: tuple[TlsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the private CA: OK, naming the source, the subject, the expiry and the host match."""
    server, ca = tls_server
    _use_https(monkeypatch, server.port, ca)
    result = run_one("tls")
    assert result.status is Status.OK, result
    assert f"chain verifies against EDGE_RUNNER_CA_FILE ({ca})" in result.detail
    assert "CN=127.0.0.1 (issued by CN=test CA)" in result.detail
    assert "host name matches" in result.detail and "(89 days)" in result.detail


def test_tls_without_the_ca_fails_and_says_where_to_put_it(
    tls_server: tuple[TlsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """System store only: FAIL, fix names ca_file in the contexts file and EDGE_RUNNER_CA_FILE."""
    server, _ = tls_server
    _use_https(monkeypatch, server.port, None)
    result = run_one("tls")
    assert result.status is Status.FAIL
    assert "does not verify against the system trust store" in result.detail
    assert "ca_file" in result.fix and "EDGE_RUNNER_CA_FILE" in result.fix


@pytest.mark.parametrize(
    ("tls_server", "status", "text"),
    [
        ({"not_after": datetime.timedelta(days=5)}, Status.WARN, "(4 days)"),
        (
            {
                "not_before": datetime.timedelta(days=-30),
                "not_after": datetime.timedelta(days=-1),
            },
            Status.FAIL,
            "expired on",
        ),
        ({"names": ("runner.example",)}, Status.FAIL, "is not valid for '127.0.0.1'"),
    ],
    indirect=["tls_server"],
    ids=["expires-soon", "expired", "wrong-host"],
)
def test_tls_certificate_problems(
    tls_server: tuple[TlsServer, Path],
    monkeypatch: pytest.MonkeyPatch,
    status: Status,
    text: str,
) -> None:
    """Expiring in < 14 days is WARN; expired or issued for another host is FAIL."""
    server, ca = tls_server
    _use_https(monkeypatch, server.port, ca)
    result = run_one("tls")
    assert result.status is status, result
    assert text in result.detail and result.fix


def test_tls_with_a_missing_ca_file_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A ca_file that does not exist: FAIL naming it, before any connection."""
    _use_https(monkeypatch, 9, tmp_path / "nope.pem")
    result = run_one("tls")
    assert result.status is Status.FAIL and "nope.pem" in result.detail


def test_plain_http_off_loopback_warns_and_on_loopback_skips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """http:// to another host: WARN (plain text); to 127.0.0.1: SKIP."""
    monkeypatch.setenv("EDGE_RUNNER_PAT", TOKEN)
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://192.0.2.1:7070")
    result = run_one("tls")
    assert result.status is Status.WARN and "--tls-self-signed" in result.fix
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", "http://127.0.0.1:7070")
    assert run_one("tls").status is Status.SKIP


# -- clock ----------------------------------------------------------------------------------------


def test_clock_skew_from_the_info_time_field() -> None:
    """Server time minus the request's midpoint; the error bar is half the round trip."""
    probe = Probe("http://x", info={"time": 1_000_030.0}, sent=999_999.0, received=1_000_001.0)
    assert clock_skew(probe) == (30.0, 1.0)


def test_clock_skew_from_the_date_header() -> None:
    """Without `time`, the Date header (whole seconds) gives the skew with 0.5 s more error."""
    probe = Probe("http://x", sent=1e9, received=1e9, date="Sun, 09 Sep 2001 01:46:20 GMT")
    assert clock_skew(probe) == pytest.approx((-19.5, 0.5))
    assert clock_skew(Probe("http://x", sent=1e9, received=1e9)) is None


@pytest.mark.parametrize(
    ("reported", "status", "text"),
    [
        (f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}", Status.OK, "ours"),
        (f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1] + 7}", Status.OK, "compatible"),
        (f"{PROTOCOL_VERSION[0] + 1}.0", Status.FAIL, "major versions differ"),
        ("one", Status.WARN, "not major.minor"),
    ],
)
def test_protocol_versions(reported: str, status: Status, text: str) -> None:
    """Same or another minor: OK; another major: FAIL (runners would be refused)."""
    result = judge_protocol({"protocol_version": reported, "version": "9.9"}, Reporter("protocol"))
    assert result.status is status and text in result.detail
    if status is Status.FAIL:
        assert "pip install -U edge-runner" in result.fix


# -- Ollama, ports, runners, Python ---------------------------------------------------------------


def test_ollama_configured_but_down_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_HOST set and nothing answers: WARN with `ollama serve`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    result = run_one("ollama")
    assert result.status is Status.WARN and "ollama serve" in result.fix


def test_ollama_configured_and_up_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    """OLLAMA_HOST at the fake Ollama: OK with its version and how many models it has."""
    with FakeOllama() as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        result = run_one("ollama")
    assert result.status is Status.OK
    assert "Ollama 0.0.0-fake" in result.detail and "1 model(s)" in result.detail


def test_ollama_not_configured_and_not_running_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OLLAMA_HOST and nothing on the default port: SKIP, not WARN."""
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 11434)) == 0:
            pytest.skip("an Ollama (or something) listens on 127.0.0.1:11434 here")
    assert run_one("ollama").status is Status.SKIP


def test_a_port_held_by_another_program_warns_naming_its_pid() -> None:
    """A foreign listener on a control plane port: WARN with the pid; a free port: OK."""
    with socket.create_server(("127.0.0.1", 0)) as held, socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
        spare.close()
        port = held.getsockname()[1]
        result = run_one("ports", Options(ports=(port, free), http_timeout=300 * MS))
    assert result.status is Status.WARN, result
    assert f"{port} (HTTP API) is held by pid {os.getpid()}" in result.detail
    assert f"{free} (gRPC tunnel) free" in result.detail
    assert "--port/--grpc-port" in result.fix


def test_no_local_runner_is_ok(tmp_path: Path) -> None:
    """An empty runtime dir: OK, nothing runs."""
    result = run_one("runners", Options(runtime=tmp_path))
    assert result.status is Status.OK and "no runner" in result.detail


def test_a_runner_whose_local_api_is_gone_warns(tmp_path: Path) -> None:
    """A runner that holds its lock but whose local API does not answer: WARN with the
    `edge-runner status` line to look closer."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # nothing listens once closed
    secret = runner_file(runtime, "runner-gone", "secret")
    secret.write_text("s" * 32)
    runner_file(runtime, "runner-gone", "api.json").write_text(
        json.dumps(
            {
                "runner_id": "runner-gone",
                "pid": os.getpid(),
                "url": f"http://127.0.0.1:{port}",
                "secret_file": str(secret),
            }
        )
    )
    with runner_file(runtime, "runner-gone", "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # alive, as far as its files say
        result = run_one("runners", Options(runtime=runtime))
    assert result.status is Status.WARN
    assert "runner-gone" in result.detail and "does not answer" in result.detail
    assert "edge-runner status --runner runner-gone" in result.fix


def test_python_and_extras_are_informational() -> None:
    """Python's version and each extra (installed or with its pip line) on OK lines."""
    python = run_one("python")
    assert python.status is Status.OK and sys.version.split()[0] in python.detail
    extras = run_one("extras")
    assert extras.status is Status.OK
    for extra in ("tui", "gpu", "mcp", "torch"):
        assert f"{extra} yes" in extras.detail or f"edge-runner[{extra}]" in extras.detail

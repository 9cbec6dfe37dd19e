"""The ``edge-runner`` command as a user runs it: real processes, real ports, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HELLO, MS, ROOT, wait_for, write_model

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "edge_runner"]


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 30_000 * MS,
    stdin: str | None = None,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion; ``stdin`` is its input (None: this process's stdin).

    ``new_session``: no controlling terminal, so getpass reads the piped stdin, not /dev/tty.
    """
    return subprocess.run(
        [*CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
        cwd=ROOT,
        start_new_session=new_session,
    )


class UpProcess:
    """``edge-runner up`` in the background, with its banner parsed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "up", *args, "--port", "0", "--grpc-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.banner: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.banner.append(line.rstrip("\n"))
            if "Ctrl-C" in line:
                break
        else:
            raise AssertionError(f"up exited early: {self.proc.wait()} {self.proc.stderr.read()}")  # type: ignore[union-attr]
        match = re.search(r"control plane\s+(http://\S+)", "\n".join(self.banner))
        assert match, self.banner
        self.api_base = match.group(1)

    def stop(self) -> int:
        """Ctrl-C, then wait."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(10_000 * MS)

    def close(self) -> None:
        """Stop it if it still runs (Ctrl-C, then kill) and close its pipes (idempotent)."""
        if self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def up() -> Iterator[UpProcess]:
    """`edge-runner up examples/hello` on free ports."""
    process = UpProcess(str(HELLO))
    yield process
    process.close()


def test_up_prints_banner_and_serves_the_cli(up: UpProcess, er_home: Path) -> None:
    """After `up`, predict/generate/models/runners work with no flags, through the local context."""
    text = "\n".join(up.banner)
    assert "predict(text: str) -> str" in text
    assert "generate(text: str, n: int = 5) -> Iterator[str]" in text
    assert "edge-runner predict hello --text hi" in text
    assert f"{up.api_base}/v1" in text and "EDGE_RUNNER_PAT" in text
    token = (er_home / "data" / "control" / "admin-token").read_text().strip()
    assert token not in text
    predict = run_cli("predict", "hello", "--text", "hi")
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout == "Hello, hi!\n"
    generate = run_cli("generate", "hello", "--text", "hi", "--n", "2")
    assert generate.stdout == "0: Hello, hi!\n1: Hello, hi!\n"
    models = json.loads(run_cli("models", "-o", "json").stdout)
    assert [m["id"] for m in models] == ["hello"]
    runners = json.loads(run_cli("runners", "-o", "json").stdout)
    assert len(runners) == 1 and runners[0]["status"] == "connected"
    table = run_cli("runners").stdout
    assert table.splitlines()[0].split()[:3] == ["RUNNER", "HOST", "STATUS"]


def test_up_keeps_secrets_out_of_files_and_output(up: UpProcess, er_home: Path) -> None:
    """The token lives only in 0600 files; the contexts file holds api_base and user only."""
    token = (er_home / "data" / "control" / "admin-token").read_text().strip()
    config = (er_home / "config" / "config.yaml").read_text()
    assert "current-context: local" in config and up.api_base in config
    assert token not in config
    secret_files = list((er_home / "data" / "secrets").iterdir())
    assert secret_files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in secret_files)
    env_lines = run_cli("context", "env").stdout
    assert f"export EDGE_RUNNER_API_BASE={up.api_base}" in env_lines
    assert "export EDGE_RUNNER_PAT=" in env_lines


def test_banner_openai_snippet_runs(up: UpProcess) -> None:
    """The OpenAI snippet `up` prints works when pasted, with the token from the environment."""
    lines = up.banner[up.banner.index("OpenAI SDK (pip install openai):") + 1 :]
    snippet = "\n".join(line[2:] for line in lines if line.startswith("  "))
    env_lines = run_cli("context", "env").stdout
    env = dict(os.environ)
    for line in env_lines.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    result = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello! You said: hi"


def test_ctrl_c_stops_everything(up: UpProcess) -> None:
    """Ctrl-C stops `up`, its control plane and its runner; exit code 0."""
    assert up.stop() == 0
    result = run_cli("models", timeout=10_000 * MS)
    assert result.returncode == 2
    assert "cannot reach the control plane" in result.stderr


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_killed_supervisor_leaves_no_children(up: UpProcess) -> None:
    """If `up` dies by SIGKILL, its control plane and runner notice and stop too."""
    children = _children(up.proc.pid)
    assert len(children) == 2
    up.proc.kill()
    up.proc.wait()
    wait_for(lambda: not any(_alive(pid) for pid in children), "the children to exit")


def test_runner_before_control_connects_when_control_starts(tmp_path: Path, er_home: Path) -> None:
    """`runner` started first keeps retrying; `control` started later gets it registered."""
    data_dir = tmp_path / "cp"
    # First start bootstraps the admin token, which the runner needs.
    first = subprocess.Popen(
        [*CLI, "control", "--port", "0", "--grpc-port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    line = first.stdout.readline()
    port = int(re.search(r"http://127.0.0.1:(\d+)", line).group(1))  # type: ignore[union-attr]
    first.send_signal(signal.SIGTERM)
    assert first.wait(10_000 * MS) == 0
    first.stdout.close()
    env = dict(os.environ)
    env["EDGE_RUNNER_API_BASE"] = f"http://127.0.0.1:{port}"
    env["EDGE_RUNNER_PAT"] = (data_dir / "admin-token").read_text().strip()
    runner = subprocess.Popen(
        [*CLI, "runner", str(HELLO), "--pool-size", "2"], env=env, stderr=subprocess.PIPE, text=True
    )
    control = None
    try:
        assert runner.stderr is not None
        outage = runner.stderr.readline()
        while "is down" not in outage:
            outage = runner.stderr.readline()
            assert outage, "the runner exited"
        control = subprocess.Popen(
            [*CLI, "control", "--port", str(port), "--grpc-port", "0", "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
        )
        back = runner.stderr.readline()
        while "is back" not in back:
            back = runner.stderr.readline()
            assert back, "the runner exited"
        result = run_cli("predict", "hello", "--text", "late", env=env)
        assert result.stdout == "Hello, late!\n", result.stderr
    finally:
        runner.send_signal(signal.SIGTERM)
        code = runner.wait(10_000 * MS)
        runner.stderr.close()  # type: ignore[union-attr]
        assert code == 0
        if control is not None:
            control.send_signal(signal.SIGTERM)
            assert control.wait(10_000 * MS) == 0


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("missing", "does not exist"),
        ("no_model_py", "1/model.py"),
        ("syntax", "syntax error"),
        ("no_class", "ModelClass"),
        ("untyped", "type hint"),
    ],
)
def test_bad_model_folder_is_one_clear_line(tmp_path: Path, setup: str, words: str) -> None:
    """A broken model folder is one line on stderr naming the file, exit code 2, no traceback."""
    folder = tmp_path / "m"
    if setup != "missing":
        folder = write_model(tmp_path, "m", "    pass\n")
    model_py = folder / "1" / "model.py"
    if setup == "no_model_py":
        model_py.unlink()
    elif setup == "syntax":
        model_py.write_text("def broken(:\n")
    elif setup == "no_class":
        model_py.write_text("x = 1\n")
    elif setup == "untyped":
        model_py.write_text(
            "from edge_runner import ModelClass\n"
            "class M(ModelClass):\n"
            "    @ModelClass.method\n"
            "    def predict(self, text):\n"
            "        return text\n"
        )
    env = dict(os.environ, EDGE_RUNNER_API_BASE="http://127.0.0.1:9", EDGE_RUNNER_PAT="er_pat_x")
    result = run_cli("runner", str(folder), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words.lower() in lines[0].lower()


def test_cli_errors_without_context_and_with_bad_arguments(up: UpProcess) -> None:
    """CLI mistakes are one line on stderr with exit code 2."""
    unknown = run_cli("predict", "hello", "--colour", "red")
    assert unknown.returncode == 2
    assert "no argument 'colour'" in unknown.stderr and "--text" in unknown.stderr
    wrong = run_cli("generate", "hello", "--text", "x", "--n", "many")
    assert wrong.returncode == 2 and "'n'" in wrong.stderr
    env = dict(os.environ, EDGE_RUNNER_HOME=str(Path(os.environ["EDGE_RUNNER_HOME"]) / "empty"))
    nothing = run_cli("models", env=env)
    assert nothing.returncode == 2
    assert "edge-runner up" in nothing.stderr
    assert len(nothing.stderr.strip().splitlines()) == 1


def test_version_names_protocol() -> None:
    """--version prints the package and protocol versions."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"edge-runner \d+\.\d+\.\d+\S* \(protocol \d+\.\d+\)\n", result.stdout)


def test_corrupt_contexts_file_is_one_clear_line(er_home: Path) -> None:
    """A broken contexts file names the file instead of crashing."""
    config = er_home / "config" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("current-context: [unclosed\n")
    result = run_cli("models")
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_token_create_list_revoke(up: UpProcess) -> None:
    """`token create` prints the secret once; `list` shows ids only; `revoke` makes it 401."""
    made = run_cli("token", "create", "--name", "ci", "--scope", "predict", "-o", "json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["token"].startswith("er_pat_") and token["scopes"] == ["predict"]
    listing = run_cli("token", "list")
    assert token["id"] in listing.stdout and token["token"] not in listing.stdout
    env = dict(os.environ, EDGE_RUNNER_PAT=token["token"])
    no_read = run_cli("predict", "hello", "--text", "x", env=env)  # needs 'read' for signatures
    assert no_read.returncode == 2 and "'read' scope" in no_read.stderr
    revoked = run_cli("token", "revoke", token["id"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    refused = run_cli("models", env=env)
    assert refused.returncode == 2 and "revoked token" in refused.stderr


def test_up_enrolls_its_runner_and_revoking_it_stops_the_runner(up: UpProcess) -> None:
    """`up`'s runner trades the user token for an er_rt_ credential; revoking it stops it."""
    tokens = json.loads(run_cli("token", "list", "-o", "json").stdout)
    runner_tokens = [t for t in tokens if t["kind"] == "runner"]
    assert len(runner_tokens) == 1 and runner_tokens[0]["name"].startswith("runner runner-")
    assert runner_tokens[0]["scopes"] == ["runner"]
    assert run_cli("token", "revoke", runner_tokens[0]["id"]).stdout.endswith(
        "1 runner tunnel(s) closed\n"
    )
    assert up.proc.wait(10_000 * MS) == 1  # the supervisor reports its runner's exit
    assert up.proc.stderr is not None
    assert "the runner exited with code 2" in up.proc.stderr.read()

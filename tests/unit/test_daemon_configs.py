"""The daemons' config objects: checked when made, and what the CLI turns options into."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runner.cli.daemon_args import control_config, model_source, runner_config
from edge_runner.cli.main import build_parser, main
from edge_runner.cli.up import control_argv, runner_argv
from edge_runner.control.config import ControlConfig, effective_config
from edge_runner.daemons import ModelSource, RunnerConfig
from edge_runner.errors import ConfigError
from edge_runner.runner.transport import TransportKind
from tests.conftest import HELLO


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"port": 70000}, "--port must be a port number"),
        ({"grpc_port": -1}, "--grpc-port must be a port number"),
        ({"max_queue": 0}, "--max-queue must be positive"),
        ({"stream_idle_timeout": -1.0}, "--stream-idle-timeout must be positive"),
        ({"time_scale": 0.0}, "EDGE_RUNNER_TIME_SCALE must be in"),
        ({"tls_cert": Path("c.pem")}, "go together"),
        ({"host": "0.0.0.0"}, "refusing to serve plain text on 0.0.0.0"),
        (
            {"tls_self_signed": True, "tls_cert": Path("c"), "tls_key": Path("k")},
            "drop tls_cert",
        ),
    ],
)
def test_a_bad_control_config_is_refused_when_made(
    values: dict[str, object], words: str, tmp_path: Path
) -> None:
    """Every check runs when the config is made, before anything binds or writes."""
    with pytest.raises(ConfigError, match=words):
        ControlConfig(data_dir=tmp_path, **values)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_plain_text_off_loopback_needs_insecure(tmp_path: Path) -> None:
    """--insecure (or TLS) is what makes a wildcard address acceptable."""
    assert ControlConfig(host="0.0.0.0", insecure=True, data_dir=tmp_path).insecure
    assert ControlConfig(host="0.0.0.0", tls_self_signed=True, data_dir=tmp_path).tls_self_signed


def test_the_effective_config_scales_durations_and_makes_tls_files(tmp_path: Path) -> None:
    """time_scale multiplies every duration; tls_self_signed becomes real files and a CA."""
    config = ControlConfig(
        data_dir=tmp_path / "data", time_scale=0.5, tls_self_signed=True, lease_ttl=8.0
    )
    effective = effective_config(config)
    assert effective.lease_ttl == 4.0
    assert effective.heartbeat_interval == config.heartbeat_interval * 0.5
    assert effective.reconnect_after_ms == 500
    assert effective.max_queue == config.max_queue  # counts are not durations
    assert effective.time_scale == 1.0 and not effective.tls_self_signed
    assert effective.tls and effective.tls_ca is not None
    assert effective.tls_ca.parent == tmp_path / "data" / "tls"
    assert (effective.tls_key.stat().st_mode & 0o777) == 0o600  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"pool_size": 0}, "--pool-size must be positive"),
        ({"grace_period": 0.0}, "--grace-period must be positive"),
        ({"backoff_cap": -1.0}, "--backoff-cap must be positive"),
        ({"runner_id": "../etc"}, "--runner-id '../etc' is not valid"),
        ({"runner_id": "x" * 129}, "is not valid"),
    ],
)
def test_a_bad_runner_config_is_refused_when_made(values: dict[str, object], words: str) -> None:
    """Out-of-range numbers and malformed runner ids never reach a running runner."""
    with pytest.raises(ConfigError, match=words):
        RunnerConfig(**values)  # type: ignore[arg-type]


def test_a_model_source_serves_one_thing() -> None:
    """A folder, Ollama models or an upstream server: naming two is an error."""
    with pytest.raises(ConfigError, match="serve one thing"):
        ModelSource(model_path=HELLO, ollama=("llama3.2",))
    with pytest.raises(ConfigError, match="serve one thing"):
        ModelSource(ollama=("a",), openai_upstream="http://127.0.0.1:8000")
    assert ModelSource().serves_folder and ModelSource().folder == Path.cwd()
    assert not ModelSource(ollama=("b", "a")).serves_folder
    # The key of the runner id kept for a source does not depend on the order of the names.
    assert ModelSource(ollama=("b", "a")).key() == ModelSource(ollama=("a", "b")).key()


def test_runner_options_become_a_runner_config() -> None:
    """`edge-runner runner ...` options map one to one onto RunnerConfig."""
    args = build_parser().parse_args(
        ["runner", str(HELLO), "--pool-size", "3", "--gpus", "0,2", "--transport", "ws"]
        + ["--host", "127.0.0.1", "--port", "9000", "--runner-id", "r-1"]
    )
    config = runner_config(args, token="er_rt_x")
    assert config.source == ModelSource(model_path=HELLO)
    assert config.pool_size == 3 and config.gpus == (0, 2)
    assert config.transport is TransportKind.WS
    assert config.api_base == "http://127.0.0.1:9000" and config.runner_id == "r-1"
    assert "er_rt_x" not in repr(config)  # the token never shows in a repr or a log line


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["runner", "--ollama", " , "], "--ollama needs at least one name"),
        (["runner", str(HELLO), "--ollama", "a"], "serve one thing"),
        (["runner", "--gpus", "x"], "--gpus 'x'"),
        (["runner", "--runner-id", "a b"], "is not valid"),
        (["runner", "--max-media-bytes", "0"], "--max-media-bytes must be positive"),
        (["runner", "--upstream-start-timeout", "-1"], "--upstream-start-timeout takes seconds"),
        (["up", "--upstream-start-timeout", "nan"], "0 or more"),
        (["up", "--upstream-start-timeout", "inf"], "got inf"),
        (["control", "--max-queue", "0"], "--max-queue must be positive"),
        (["control", "--host", "0.0.0.0"], "refusing to serve plain text"),
    ],
)
def test_bad_daemon_options_fail_while_making_the_config(argv: list[str], words: str) -> None:
    """What the daemons would refuse, the CLI refuses before it builds anything."""
    args = build_parser().parse_args(argv)
    make = control_config if argv[0] == "control" else runner_config
    with pytest.raises(ConfigError, match=words):
        make(args)


def test_an_upstream_start_timeout_that_is_not_a_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not a number: argparse's usage error (exit 2) naming the flag and what it takes."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["runner", "--upstream-start-timeout", "2m"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--upstream-start-timeout" in err and "number of seconds" in err and "'2m'" in err


def test_a_negative_upstream_start_timeout_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command itself: exit 2, the flag and the range on stderr, no traceback."""
    argv = ["runner", "--openai-upstream", ":8000", "--upstream-start-timeout", "-1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--upstream-start-timeout takes seconds, 0 or more" in err and "got -1" in err
    assert "Traceback" not in err


def test_the_upstream_start_timeout_reaches_the_source_and_up_s_runner() -> None:
    """The flag (default 120 s, 0 allowed) lands in ModelSource and survives `up`'s hand-off."""
    default = runner_config(build_parser().parse_args(["runner", "--openai-upstream", ":8000"]))
    assert default.source.upstream_start_timeout == 120.0
    argv = ["up", "--openai-upstream", ":8000", "--upstream-start-timeout", "0"]
    config = runner_config(build_parser().parse_args(argv))
    assert config.source.upstream_start_timeout == 0.0
    child = runner_config(build_parser().parse_args(runner_argv(config)))
    assert child.source == config.source
    argv[-1] = "600"
    config = runner_config(build_parser().parse_args(argv))
    assert runner_config(build_parser().parse_args(runner_argv(config))).source == config.source


def test_up_hands_its_configs_to_its_children_as_options(tmp_path: Path) -> None:
    """`up`'s child command lines parse back into the very configs `up` checked."""
    argv = ["up", str(HELLO), "--data-dir", str(tmp_path), "--pool-size", "2", "--gpus", "none"]
    argv += ["--max-media-bytes", "1000", "--allow-url-fetch"]
    args = build_parser().parse_args([*argv, "--lease-ttl", "3.5", "--transport", "ws"])
    control, runner = control_config(args), runner_config(args)
    assert runner.source.max_media_bytes == 1000 and runner.source.allow_url_fetch
    child_control = control_config(build_parser().parse_args(control_argv(control)))
    assert child_control == control
    child_args = build_parser().parse_args(runner_argv(runner))
    assert runner_config(child_args) == dataclasses.replace(runner, context="local")
    ollama = runner_config(build_parser().parse_args(["up", "--ollama", "a,b", "--no-preload"]))
    assert runner_config(build_parser().parse_args(runner_argv(ollama))).source == ollama.source
    assert model_source(build_parser().parse_args(["up"])).serves_folder


def test_checking_a_config_loads_no_server() -> None:
    """`up` checks both configs in its supervisor process, which stays without a web server."""
    code = (
        "import sys; from edge_runner.daemons import ControlConfig, RunnerConfig;"
        "ControlConfig(); RunnerConfig();"
        "print(','.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.strip().split(","))
    for heavy in ("fastapi", "uvicorn", "starlette", "edge_runner.control.server", "textual"):
        assert heavy not in modules, heavy

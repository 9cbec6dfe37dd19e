"""Checks shared by the daemons' configs (:class:`~edge_runner.control.ControlConfig`,
:class:`~edge_runner.runner.RunnerConfig`), with messages that name the command-line option.

A config field ``max_queue`` is the option ``--max-queue``: the messages say the option, which
is what most people typed.
"""

from __future__ import annotations

import os

from edge_runner.errors import ConfigError

__all__ = [
    "TIME_SCALE_ENV",
    "check_port",
    "check_positive",
    "check_time_scale",
    "option",
    "time_scale_from_env",
]

#: the environment variable that scales every duration of both daemons (tests, chaos drills)
TIME_SCALE_ENV = "EDGE_RUNNER_TIME_SCALE"


def option(name: str) -> str:
    """The command-line option of config field ``name``."""
    return "--" + name.replace("_", "-")


def check_positive(name: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is above zero."""
    if value <= 0:
        raise ConfigError(f"{option(name)} must be positive, got {value:g}")


def check_port(name: str, value: int) -> None:
    """Raise ConfigError unless ``value`` is a TCP port number (0 = any free one)."""
    if not 0 <= value <= 65535:
        raise ConfigError(f"{option(name)} must be a port number 0-65535, got {value}")


def check_time_scale(scale: float) -> None:
    """Raise ConfigError unless ``scale`` is in (0, 100]."""
    if not 0 < scale <= 100:
        raise ConfigError(f"{TIME_SCALE_ENV} must be in (0, 100], got {scale:g}")


def time_scale_from_env() -> float:
    """``EDGE_RUNNER_TIME_SCALE``: multiplies heartbeats, timeouts, leases and backoff.

    Tests and chaos drills set it below 1 to run the reliability machinery fast; production
    leaves it unset (1).

    Raises:
        ConfigError: not a number, or out of (0, 100].
    """
    raw = os.environ.get(TIME_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{TIME_SCALE_ENV}={raw!r} is not a number") from exc
    check_time_scale(scale)
    return scale

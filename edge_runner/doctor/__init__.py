"""``edge-runner doctor``: check this machine's edge-runner setup and say what to fix.

Each check is a small function that returns a :class:`Check` (OK, WARN, FAIL or SKIP, what it
found, and for WARN/FAIL the exact fix). :func:`run_checks` runs them all at once, each with a
time limit, and turns a check that raises into a FAIL line, so the doctor never crashes::

    from edge_runner.doctor import CHECKS, Env, Options, run_checks

    for check in run_checks(CHECKS, Env(Options(context="lab"))):
        print(check.status.value, check.name, check.detail, check.fix)

``docs/troubleshooting.md`` has one section per check name (a test keeps the two in step).
"""

from __future__ import annotations

from edge_runner.doctor._core import Check, CheckSpec, Reporter, Status, run_checks
from edge_runner.doctor._env import DEFAULT_PORTS, Env, Options, Probe
from edge_runner.doctor.files import (
    check_config_file,
    check_config_permissions,
    check_data_dir,
    check_keyring,
    check_secret_files,
)
from edge_runner.doctor.machine import (
    check_extras,
    check_nvml,
    check_ollama,
    check_ports,
    check_python,
    check_runners,
)
from edge_runner.doctor.remote import (
    check_clock,
    check_context,
    check_control_plane,
    check_protocol,
    check_tls,
    check_token,
)

__all__ = [
    "CHECKS",
    "DEFAULT_PORTS",
    "Check",
    "CheckSpec",
    "Env",
    "Options",
    "Probe",
    "Reporter",
    "Status",
    "check_names",
    "run_checks",
]

#: every check, in report order
CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("config-file", "the contexts file exists and parses", check_config_file),
    CheckSpec(
        "config-permissions",
        "nobody else can change the contexts file or its directory",
        check_config_permissions,
    ),
    CheckSpec("keyring", "which secret store holds tokens, and why", check_keyring),
    CheckSpec("secret-files", "the 0600 token files and their 0700 directory", check_secret_files),
    CheckSpec(
        "data-dir", "the data and runtime directories and their private files", check_data_dir
    ),
    CheckSpec("context", "the active context, its api_base and its token", check_context),
    CheckSpec("control-plane", "GET /healthz and /v2/info answer", check_control_plane),
    CheckSpec("tls", "certificate chain, host name and expiry; plain HTTP off loopback", check_tls),
    CheckSpec("protocol", "the control plane's protocol version is compatible", check_protocol),
    CheckSpec("clock", "clock skew against the control plane", check_clock),
    CheckSpec("token", "the token is accepted; its kind, scopes and expiry", check_token),
    CheckSpec("ports", "the local control plane ports (7070, 7071)", check_ports),
    CheckSpec("runners", "runners on this machine and their state", check_runners),
    CheckSpec("nvml", "NVIDIA driver and GPUs through NVML", check_nvml),
    CheckSpec("ollama", "Ollama's address and version", check_ollama),
    CheckSpec("python", "the Python interpreter", check_python),
    CheckSpec("extras", "installed optional extras (tui, gpu, mcp, fastmcp, torch)", check_extras),
)


def check_names() -> list[str]:
    """The name of every check, in report order."""
    return [spec.name for spec in CHECKS]

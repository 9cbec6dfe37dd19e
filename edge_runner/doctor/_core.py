"""The doctor's frame: a check's result, the registry of checks, and running them time-boxed.

A check is a small function ``fn(env, r) -> Check``; ``r`` is a :class:`Reporter` bound to the
check's name, so a check says ``return r.warn("what was found", "the exact fix")``. Every check
runs in its own daemon thread with a time limit: a hung one is reported as FAIL and abandoned
(a daemon thread cannot keep the process alive), and one that raises becomes FAIL with the
exception's one-line description, so ``edge-runner doctor`` itself never crashes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_runner.doctor._env import Env

__all__ = ["Check", "CheckFn", "CheckSpec", "Reporter", "Status", "describe_error", "run_checks"]

logger = logging.getLogger(__name__)


class Status(enum.Enum):
    """How a check came out; only FAIL makes ``edge-runner doctor`` exit 1."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report.

    Attributes:
        name: the check's stable name (``config-file``, ``token``, ...; docs/troubleshooting.md
            has a section for each).
        status: OK, WARN, FAIL or SKIP (the check does not apply here).
        detail: what the check found, for a person; never a secret.
        fix: for WARN and FAIL, the exact command to run or file to change; else "".
    """

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str | None]:
        """``{check, status, detail, fix}`` for ``-o json`` (``fix`` is null when there is none)."""
        return {
            "check": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix or None,
        }


class Reporter:
    """Builds the :class:`Check` results of one named check."""

    def __init__(self, name: str) -> None:
        """Report for the check called ``name``."""
        self.name = name

    def ok(self, detail: str) -> Check:
        """All is well: ``detail`` says what was found."""
        return Check(self.name, Status.OK, detail)

    def skip(self, detail: str) -> Check:
        """The check does not apply here; ``detail`` says why."""
        return Check(self.name, Status.SKIP, detail)

    def warn(self, detail: str, fix: str) -> Check:
        """Works, but should be fixed: ``fix`` says how."""
        return Check(self.name, Status.WARN, detail, fix)

    def fail(self, detail: str, fix: str) -> Check:
        """Broken: ``fix`` says how to repair it."""
        return Check(self.name, Status.FAIL, detail, fix)


CheckFn = Callable[["Env", Reporter], Check]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its name, what it looks at (one line, for docs), and its function."""

    name: str
    summary: str
    fn: CheckFn


def describe_error(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (a traceback is not a diagnosis)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def run_checks(specs: Sequence[CheckSpec], env: Env, *, limit: float = 10.0) -> list[Check]:
    """Run every check at once, each in its own thread, and return the results in ``specs`` order.

    Args:
        specs: the checks.
        env: what they share (options, the contexts file, the control plane's answers).
        limit: seconds each check may take, counted from the start; a check still running then
            is reported as FAIL.
    """
    results: list[Check | None] = [None] * len(specs)
    done = [threading.Event() for _ in specs]

    def run(index: int, spec: CheckSpec) -> None:
        try:
            results[index] = spec.fn(env, Reporter(spec.name))
        except Exception as exc:  # a broken check is a FAIL line, never a crashed doctor
            logger.debug("check %s raised", spec.name, exc_info=True)
            results[index] = Check(
                spec.name,
                Status.FAIL,
                f"the check itself failed: {describe_error(exc)}",
                "run `edge-runner --debug doctor` and report this line as a bug",
            )
        finally:
            done[index].set()

    for index, spec in enumerate(specs):
        thread = threading.Thread(
            target=run, args=(index, spec), name=f"doctor-{spec.name}", daemon=True
        )
        thread.start()
    deadline = time.monotonic() + limit
    report: list[Check] = []
    for index, spec in enumerate(specs):
        finished = done[index].wait(max(0.0, deadline - time.monotonic()))
        result = results[index]
        if not finished or result is None:
            result = Check(
                spec.name,
                Status.FAIL,
                f"did not finish within {limit:g} s (something it waits on hangs)",
                "run `edge-runner doctor --timeout 60` to give it longer, or `edge-runner "
                "--debug doctor` to see where it waits",
            )
        report.append(result)
    return report

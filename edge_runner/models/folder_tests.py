"""Run a model folder's own tests: its ``test()`` method and methods named ``test_*``.

What Clarifai's ``model local-test`` does, in this process: load the folder, create the model
(``load_model()`` included), then call each test method with no arguments. A test passes when
it returns; its exception is the failure. ``edge-runner model test FOLDER`` prints the outcomes.
"""

from __future__ import annotations

import inspect
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_runner.errors import ModelFolderError
from edge_runner.models.loader import ModelFolder, load_model_folder
from edge_runner.models.model_class import ModelClass, is_model_method, run_with_cancel_event

__all__ = ["TestOutcome", "run_folder_tests", "test_method_names"]


@dataclass(frozen=True)
class TestOutcome:
    """One test method's result.

    Attributes:
        name: the method's name.
        passed: whether it returned without raising.
        seconds: how long it ran.
        error: ``Type: message`` of what it raised (``""`` when it passed).
        traceback: the formatted traceback, from the test method down (``""`` when it passed).
    """

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    passed: bool
    seconds: float
    error: str = ""
    traceback: str = ""


def test_method_names(model_class: type[ModelClass]) -> list[str]:
    """The test methods of ``model_class``: ``test`` first, then ``test_*`` by name.

    Served methods (marked with ``@ModelClass.method``) are never tests, whatever their name.
    """
    found = []
    for name in dir(model_class):
        if name != "test" and not name.startswith("test_"):
            continue
        attr = inspect.getattr_static(model_class, name)
        if callable(getattr(attr, "__func__", attr)) and not is_model_method(attr):
            found.append(name)
    return sorted(found, key=lambda n: (n != "test", n))


test_method_names.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


def run_folder_tests(path: str | Path) -> tuple[ModelFolder, Iterator[TestOutcome]]:
    """Load and create the model in ``path``, then run its test methods one by one.

    Returns:
        The loaded folder, and an iterator running one test per step (so a caller can print
        each outcome as it comes).

    Raises:
        ModelFolderError: the folder does not load or the model cannot be created.
    """
    folder = load_model_folder(path)
    if folder.config.model_type_id == "mcp":
        raise ModelFolderError(
            f"{folder.path}: an MCP folder's tests are its tools; call them with "
            "`edge-runner mcp` once it is served"
        )
    model = folder.instantiate()
    names = test_method_names(folder.model_class)
    return folder, (_run_one(folder, name, getattr(model, name)) for name in names)


def _run_one(folder: ModelFolder, name: str, method: Callable[[], object]) -> TestOutcome:
    started = time.monotonic()
    try:
        # a test calls the model's methods, which may check self.cancelled()
        run_with_cancel_event(threading.Event(), method)
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # from the test method down
        text = "".join(traceback.format_list(frames))
        return TestOutcome(
            name,
            passed=False,
            seconds=time.monotonic() - started,
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            traceback=text,
        )
    return TestOutcome(name, passed=True, seconds=time.monotonic() - started)

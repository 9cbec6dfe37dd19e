"""``edge-runner model test FOLDER``: run the folder's test methods and print each outcome."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_runner.errors import ModelFolderError

__all__ = ["run_tests"]


def run_tests(path: str | Path) -> int:
    """Run the tests of the folder at ``path``; 0 when all pass, 1 otherwise."""
    from edge_runner.models.folder_tests import run_folder_tests

    try:
        folder, outcomes = run_folder_tests(path)
    except ModelFolderError as exc:
        print(f"FAIL  the model folder does not load: {exc}", file=sys.stderr)
        return 1
    failed = ran = 0
    for outcome in outcomes:
        ran += 1
        if outcome.passed:
            print(f"PASS  {outcome.name}  ({outcome.seconds:.2f}s)")
            continue
        failed += 1
        print(f"FAIL  {outcome.name}  ({outcome.seconds:.2f}s): {outcome.error}")
        print(outcome.traceback.rstrip())
    name = folder.model_class.__name__
    if ran == 0:
        print(
            f"{folder.config.model_id}: loaded; {name} has no test methods to run (define "
            "`def test(self):` or methods named test_* that call the model's methods)"
        )
        return 0
    print(f"{ran - failed} of {ran} test methods passed")
    return 1 if failed else 0

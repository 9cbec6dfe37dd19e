"""`edge-runner model test FOLDER`: the folder's test() and test_*() methods, exit 0 or 1."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge_runner.cli.main import main
from edge_runner.models import load_model_folder
from edge_runner.models.folder_tests import test_method_names

MODEL = """\
from clarifai.runners.models.model_class import ModelClass


class MyModel(ModelClass):
  def load_model(self):
    self.suffix = "Hello World"

  @ModelClass.method
  def predict(self, text1: str = "") -> str:
    return text1 + self.suffix

  @ModelClass.method
  def test_endpoint(self) -> str:
    raise AssertionError("a served method is never run as a test")

  def test(self):
    assert self.predict("x") == "xHello World"

  def test_second(self):
    assert self.predict("") == "Hello World"
"""

FAILING = """
  def test_wrong(self):
    assert self.predict("x") == "nope", "predict answered something else"
"""


def folder(tmp_path: Path, model: str) -> Path:
    """A Clarifai-style model folder holding ``model``."""
    path = tmp_path / "m"
    (path / "1").mkdir(parents=True)
    (path / "config.yaml").write_text('model:\n  id: "m"\n')
    (path / "1" / "model.py").write_text(textwrap.dedent(model))
    return path


def test_passing_tests_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """test() runs first, then test_*; served methods are not tests; all pass: exit 0."""
    assert main(["model", "test", str(folder(tmp_path, MODEL))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["PASS", "test"], ["PASS", "test_second"]]
    assert lines[-1] == "2 of 2 test methods passed"


def test_a_failing_test_exits_1_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test that raises is FAIL with its message and the model.py line; exit 1."""
    path = folder(tmp_path, MODEL + FAILING)
    assert main(["model", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  test_wrong" in out and "predict answered something else" in out
    assert f'File "{path / "1" / "model.py"}"' in out
    assert out.splitlines()[-1] == "2 of 3 test methods passed"


def test_no_test_methods_only_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without test methods the folder is loaded (as Clarifai's local-test does): exit 0."""
    model = "from edge_runner import ModelClass\nclass M(ModelClass):\n  @ModelClass.method\n"
    model += "  def predict(self, x: str) -> str:\n    return x\n"
    assert main(["model", "test", str(folder(tmp_path, model))]) == 0
    assert "has no test methods to run" in capsys.readouterr().out


def test_a_folder_that_does_not_load_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """load_model() raising is a failed test run, with the reason on stderr."""
    model = MODEL.replace('self.suffix = "Hello World"', 'raise RuntimeError("no weights")')
    assert main(["model", "test", str(folder(tmp_path, model))]) == 1
    assert "no weights" in capsys.readouterr().err


def test_test_method_names_skip_served_methods(tmp_path: Path) -> None:
    """Only unmarked test/test_* methods are tests."""
    loaded = load_model_folder(folder(tmp_path, MODEL + FAILING))
    assert test_method_names(loaded.model_class) == ["test", "test_second", "test_wrong"]

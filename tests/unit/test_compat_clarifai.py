"""The clarifai compatibility layer: Clarifai folders load without the clarifai package."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_runner.compat import clarifai as compat
from edge_runner.compat.clarifai import PARAM_INFO_ATTR, Param, ParamInfo
from edge_runner.compat.clarifai.finder import ClarifaiShimFinder
from edge_runner.errors import ModelFolderError
from edge_runner.models import ModelClass, load_model_folder

pytestmark = pytest.mark.skipif(
    compat.real_clarifai_installed(),
    reason="the clarifai package is installed here; `make test-clarifai` covers that case",
)

CONFIG = 'model:\n  id: "hello"\n  user_id: "me"\n  app_id: "demo"\n'

HELLO = """\
from typing import Iterator

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_utils import Param
from clarifai.utils.logging import logger


class MyModel(ModelClass):
  def load_model(self):
    logger.info("loading")

  @ModelClass.method
  def predict(
      self,
      text1: str = "",
      suffix: str = Param(default=" Hello World", description="what to add"),
      n: int = Param(default=1, min_value=1, max_value=5),
      mode: str = Param(default="plain", choices=["plain", "loud"]),
  ) -> str:
    out = (text1 + suffix) * n
    return out.upper() if mode == "loud" else out

  @ModelClass.method
  def generate(self, text1: str = "") -> Iterator[str]:
    for i in range(3):
      yield text1 + f"Generate Hello World {i}"

  @ModelClass.method
  def late(self) -> str:
    from clarifai.runners.utils.data_utils import Param as Late
    return str(Late(default="imported inside a method"))

  def test(self):
    assert self.predict("x") == "x Hello World"
"""


def make_folder(root: Path, model: str, requirements: str | None = "clarifai>=11.3.0\n") -> Path:
    """Write a Clarifai-style model folder under ``root``."""
    folder = root / "model"
    (folder / "1").mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG)
    (folder / "1" / "model.py").write_text(textwrap.dedent(model))
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def test_clarifai_folder_loads_without_the_package(tmp_path: Path) -> None:
    """`from clarifai...` imports are answered by ours: ModelClass is edge-runner's."""
    folder = load_model_folder(make_folder(tmp_path, HELLO))
    assert issubclass(folder.model_class, ModelClass)
    assert [s.render() for s in folder.signatures] == [
        "generate(text1: str = '') -> Iterator[str]",
        "late() -> str",
        "predict(text1: str = '', suffix: str = ' Hello World', n: int = 1, "
        "mode: str = 'plain') -> str",
    ]
    assert any(isinstance(f, ClarifaiShimFinder) for f in sys.meta_path)


def test_param_defaults_become_defaults_and_metadata(tmp_path: Path) -> None:
    """Param(default, description, choices, min/max) gives a plain default plus its metadata."""
    folder = load_model_folder(make_folder(tmp_path, HELLO))
    infos = getattr(folder.model_class.predict, PARAM_INFO_ATTR)
    assert infos == {
        "suffix": ParamInfo(description="what to add"),
        "n": ParamInfo(min_value=1, max_value=5),
        "mode": ParamInfo(choices=("plain", "loud")),
    }


def test_direct_calls_see_param_as_its_default(tmp_path: Path) -> None:
    """A folder's test() calling its own method gets Param defaults that act as their value."""
    model = load_model_folder(make_folder(tmp_path, HELLO)).instantiate()
    model.test()  # type: ignore[attr-defined]  # the folder's own method
    assert model.predict("a", "b", 2, "loud") == "ABAB"  # type: ignore[attr-defined]


def test_imports_inside_methods_work_after_load(tmp_path: Path) -> None:
    """The layer stays for the life of the process: a method importing clarifai works."""
    model = load_model_folder(make_folder(tmp_path, HELLO)).instantiate()
    assert model.late() == "imported inside a method"  # type: ignore[attr-defined]


def test_logger_is_the_model_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """clarifai.utils.logging.logger logs through edge-runner's model logger."""
    with caplog.at_level(logging.INFO, logger="edge_runner.model"):
        load_model_folder(make_folder(tmp_path, HELLO)).instantiate()
    assert [r.getMessage() for r in caplog.records if r.name == "edge_runner.model"] == ["loading"]


def test_requirements_listing_clarifai_is_noticed_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """requirements.txt listing clarifai is fine: one line says edge-runner provides it."""
    path = make_folder(tmp_path, HELLO)
    with caplog.at_level(logging.INFO, logger="edge_runner.compat.clarifai"):
        load_model_folder(path)
        load_model_folder(path)
    notes = [r.getMessage() for r in caplog.records if "lists clarifai" in r.getMessage()]
    assert len(notes) == 1
    assert "need not be installed" in notes[0]


def test_requirements_with_clarifai_grpc_only_is_not_noticed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the clarifai package itself is noticed, not clarifai-grpc."""
    path = make_folder(tmp_path, HELLO, requirements="clarifai-grpc\n")
    with caplog.at_level(logging.INFO, logger="edge_runner.compat.clarifai"):
        load_model_folder(path)
    assert not [r for r in caplog.records if "lists clarifai" in r.getMessage()]


@pytest.mark.parametrize(
    ("line", "lineno"),
    [
        ("from clarifai.runners.models.visual_classifier_class import VisualClassifierClass", 2),
        ("from clarifai.runners.utils.data_utils import DataConverter", 2),
        ("from clarifai.client.model import Model", 2),
    ],
)
def test_unsupported_import_names_the_line_to_change(
    tmp_path: Path, line: str, lineno: int
) -> None:
    """An import the layer does not provide fails at load, naming file, line and alternatives."""
    model = f"from clarifai.runners.models.model_class import ModelClass\n{line}\n"
    folder = make_folder(tmp_path, model)
    with pytest.raises(ModelFolderError) as info:
        load_model_folder(folder)
    message = str(info.value)
    assert f"{folder / '1' / 'model.py'}:{lineno}: `{line}`" in message
    assert "clarifai.runners.models.model_class (ModelClass)" in message
    assert "pip install clarifai" in message


def test_unsupported_import_inside_a_helper_names_the_helper_line(tmp_path: Path) -> None:
    """The line named is the deepest one in the folder: a helper module's, not model.py's."""
    model = "from clarifai.runners.models.model_class import ModelClass\nimport helper\n"
    folder = make_folder(tmp_path, model)
    (folder / "1" / "helper.py").write_text("x = 1\nimport clarifai.nope\n")
    with pytest.raises(ModelFolderError, match=r"helper\.py:2: `import clarifai\.nope`"):
        load_model_folder(folder)


def test_finder_never_answers_below_a_real_package() -> None:
    """With a clarifai module that is not ours in sys.modules, the finder answers nothing."""
    finder = ClarifaiShimFinder()
    saved = sys.modules.get("clarifai")
    sys.modules["clarifai"] = type(sys)("clarifai")  # stands in for the real package
    try:
        assert finder.find_spec("clarifai.runners.models.model_class", None) is None
        assert compat.real_clarifai_installed()
        assert compat.install() is False
    finally:
        if saved is None:
            del sys.modules["clarifai"]
        else:
            sys.modules["clarifai"] = saved


def test_an_installed_clarifai_is_never_shadowed(tmp_path: Path) -> None:
    """A clarifai package on sys.path wins: install() declines and imports reach it."""
    package = tmp_path / "site" / "clarifai"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("REAL = True\n")
    code = textwrap.dedent(
        """
        import sys
        from edge_runner.compat import clarifai as compat
        assert compat.install() is False, "installed although clarifai is there"
        import clarifai
        assert clarifai.REAL
        try:
            import clarifai.runners.models.model_class
        except ModuleNotFoundError:
            print("ok")
        """
    )
    env_path = str(tmp_path / "site")
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_param_behaves_like_its_default() -> None:
    """Param in expressions acts as its default (as Clarifai's does)."""
    assert "a" + Param(default="b") == "ab"
    assert Param(default=2) * 3 == 6
    assert Param(default="abc").upper() == "ABC"
    assert f"{Param(default=0.5):.2f}" == "0.50"
    assert Param(default=[1, 2])[1] == 2


def test_data_types_module_reexports_ours_or_says_why_not(tmp_path: Path) -> None:
    """clarifai.runners.utils.data_types is edge_runner.models.data_types, or a clear error."""
    model = (
        "from clarifai.runners.models.model_class import ModelClass\n"
        "from clarifai.runners.utils.data_types import Text\n"
        "class M(ModelClass):\n"
        "  @ModelClass.method\n"
        "  def predict(self, text: str) -> str:\n"
        "    return text\n"
    )
    folder = make_folder(tmp_path, model)
    if importlib.util.find_spec("edge_runner.models.data_types") is None:
        with pytest.raises(ModelFolderError, match=r"model\.py:2: .*has no data types"):
            load_model_folder(folder)
    else:
        from edge_runner.models import data_types  # type: ignore[attr-defined]

        load_model_folder(folder)
        assert sys.modules["clarifai.runners.utils.data_types"].Text is data_types.Text

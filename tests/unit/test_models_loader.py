"""Loading model folders: config.yaml checks, importing 1/model.py, finding the model class."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edge_runner.errors import ModelFolderError
from edge_runner.models import (
    MODEL_ID_PATTERN,
    MethodKind,
    ModelClass,
    load_config,
    load_model_folder,
    signature_hash,
)

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"

CONFIG = "model:\n  id: test-model\n"

MODEL = """\
from edge_runner import ModelClass


class Echo(ModelClass):
    @ModelClass.method
    def predict(self, text: str) -> str:
        return text
"""


def make_folder(root: Path, model: str | None = MODEL, config: str | None = CONFIG) -> Path:
    """Write a model folder under ``root`` and return its path."""
    folder = root / "model"
    (folder / "1").mkdir(parents=True)
    if config is not None:
        (folder / "config.yaml").write_text(config)
    if model is not None:
        (folder / "1" / "model.py").write_text(textwrap.dedent(model))
    return folder


def test_hello_example_loads_with_expected_signatures() -> None:
    """The hello example loads and its signatures render as documented."""
    folder = load_model_folder(HELLO)
    assert folder.config.model_id == "hello"
    assert (folder.config.user_id, folder.config.app_id) == ("local", "local")
    assert folder.config.model_type_id == "text-to-text"
    assert folder.config.raw["inference_compute_info"]["num_accelerators"] == 0
    assert folder.model_class.__name__ == "HelloModel"
    assert [s.render() for s in folder.signatures] == [
        "chat(messages: list[dict], max_tokens: int = 256, temperature: float = 1.0)"
        " -> Iterator[str]",
        "generate(text: str, n: int = 5) -> Iterator[str]",
        "predict(text: str) -> str",
        "stream(names: Iterator[str], greeting: str = 'Hello') -> Iterator[str]",
    ]
    assert [s.kind for s in folder.signatures] == [
        MethodKind.SERVER_STREAM,
        MethodKind.SERVER_STREAM,
        MethodKind.UNARY,
        MethodKind.BIDI,
    ]
    assert all(s.description for s in folder.signatures)


def test_hello_example_answers_deterministically() -> None:
    """The hello model's methods give fixed answers and chat honours max_tokens as words."""
    model: Any = load_model_folder(HELLO).instantiate()
    assert model.predict("world") == "Hello, world!"
    assert list(model.generate("x", n=2)) == ["0: Hello, x!\n", "1: Hello, x!\n"]
    messages = [{"role": "user", "content": "first"}, {"role": "user", "content": "hi there"}]
    assert "".join(model.chat(messages)) == "Hello! You said: hi there"
    assert list(model.chat(messages, max_tokens=2)) == ["Hello!", " You"]


def test_two_loads_are_independent_and_hash_equal() -> None:
    """Loading a folder twice gives distinct classes with the same signature hash."""
    first, second = load_model_folder(HELLO), load_model_folder(HELLO)
    assert first.model_class is not second.model_class
    assert signature_hash(first.signatures) == signature_hash(second.signatures)


def test_missing_folder(tmp_path: Path) -> None:
    """A folder that does not exist is named."""
    with pytest.raises(ModelFolderError, match="does not exist"):
        load_model_folder(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    """A path to a file is refused with what to pass instead."""
    path = tmp_path / "model.py"
    path.write_text("")
    with pytest.raises(ModelFolderError, match="is not a folder"):
        load_model_folder(path)


def test_no_model_file_says_where_it_was_expected(tmp_path: Path) -> None:
    """A folder without 1/model.py names the expected path."""
    folder = make_folder(tmp_path, model=None)
    with pytest.raises(ModelFolderError) as info:
        load_model_folder(folder)
    assert str(folder / "1" / "model.py") in str(info.value)
    assert "lives in 1/model.py" in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error in model.py gives file:line and the message, not a traceback."""
    folder = make_folder(tmp_path, model="x = 1\ndef broken(:\n    pass\n")
    with pytest.raises(ModelFolderError) as info:
        load_model_folder(folder)
    message = str(info.value)
    assert f"{folder / '1' / 'model.py'}:2: syntax error" in message
    assert "Traceback" not in message
    assert isinstance(info.value.__cause__, SyntaxError)


def test_import_error_names_the_file(tmp_path: Path) -> None:
    """An exception while importing model.py names the file and the exception."""
    folder = make_folder(tmp_path, model="import edge_runner_no_such_module\n")
    with pytest.raises(ModelFolderError, match="importing .*model.py failed: ModuleNotFoundError"):
        load_model_folder(folder)


def test_no_subclass_defined(tmp_path: Path) -> None:
    """A model.py without a ModelClass subclass says how to define one."""
    folder = make_folder(tmp_path, model="class Model:\n    pass\n")
    with pytest.raises(ModelFolderError, match="defines no ModelClass subclass"):
        load_model_folder(folder)


def test_imported_subclass_loses_to_defined_one(tmp_path: Path) -> None:
    """A subclass imported from a helper does not compete with the one defined in model.py."""
    folder = make_folder(
        tmp_path, model=MODEL.replace("Echo", "Mine") + "\nfrom base import Base\n"
    )
    (folder / "1" / "base.py").write_text(MODEL.replace("Echo", "Base"))
    assert load_model_folder(folder).model_class.__name__ == "Mine"


def test_subclass_preferred_over_its_base(tmp_path: Path) -> None:
    """When model.py defines a base and its subclass, the subclass is the model."""
    folder = make_folder(tmp_path, model=MODEL + "\n\nclass Louder(Echo):\n    pass\n")
    assert load_model_folder(folder).model_class.__name__ == "Louder"


def test_ambiguous_subclasses_are_named(tmp_path: Path) -> None:
    """Two unrelated subclasses in model.py fail naming both."""
    folder = make_folder(
        tmp_path, model=MODEL + "\n\n" + MODEL.split("\n\n\n")[1].replace("Echo", "Other")
    )
    with pytest.raises(ModelFolderError, match=r"several ModelClass subclasses \(Echo, Other\)"):
        load_model_folder(folder)


def test_helper_module_next_to_model_imports(tmp_path: Path) -> None:
    """model.py can import a helper module that sits next to it, and sys.path is restored."""
    model = "from greet_helper_for_test import greet\n" + MODEL.replace(
        "return text", "return greet(text)"
    )
    folder = make_folder(tmp_path, model=model)
    (folder / "1" / "greet_helper_for_test.py").write_text(
        "def greet(t: str) -> str:\n    return 'hi ' + t\n"
    )
    before = list(sys.path)
    try:
        instance: Any = load_model_folder(folder).instantiate()
        assert instance.predict("x") == "hi x"
    finally:
        sys.modules.pop("greet_helper_for_test", None)
    assert sys.path == before


def test_untyped_method_fails_at_load(tmp_path: Path) -> None:
    """A marked method without type hints fails when the folder loads, naming the parameter."""
    folder = make_folder(tmp_path, model=MODEL.replace("text: str", "text"))
    with pytest.raises(ModelFolderError, match="parameter 'text' has no type hint; add one"):
        load_model_folder(folder)


def test_unsupported_type_fails_at_load(tmp_path: Path) -> None:
    """A marked method with a custom-class parameter fails at load, naming the class."""
    model = "class Image:\n    pass\n\n" + MODEL.replace("text: str", "text: Image")
    folder = make_folder(tmp_path, model=model)
    with pytest.raises(ModelFolderError, match="unsupported type Image"):
        load_model_folder(folder)


def test_no_marked_methods_fails_at_load(tmp_path: Path) -> None:
    """A model class with no marked methods fails at load and names the decorator."""
    folder = make_folder(tmp_path, model=MODEL.replace("    @ModelClass.method\n", ""))
    with pytest.raises(ModelFolderError, match="@ModelClass.method"):
        load_model_folder(folder)


def test_load_model_failure_is_wrapped(tmp_path: Path) -> None:
    """An exception in load_model() is a ModelFolderError naming the file, with the cause."""
    model = (
        MODEL + "\n    def load_model(self) -> None:\n        raise RuntimeError('no weights')\n"
    )
    folder = make_folder(tmp_path, model=model)
    loaded = load_model_folder(folder)
    with pytest.raises(ModelFolderError) as info:
        loaded.instantiate()
    assert str(info.value) == (
        f"load_model() of {folder / '1' / 'model.py'} failed: RuntimeError: no weights"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


def test_instantiate_calls_load_model(tmp_path: Path) -> None:
    """instantiate() returns a ModelClass whose load_model() has run."""
    model = MODEL + "\n    def load_model(self) -> None:\n        self.ready = True\n"
    instance = load_model_folder(make_folder(tmp_path, model=model)).instantiate()
    assert isinstance(instance, ModelClass)
    assert vars(instance)["ready"] is True


def test_missing_config(tmp_path: Path) -> None:
    """A folder without config.yaml names the file and shows a minimal one."""
    folder = make_folder(tmp_path, config=None)
    with pytest.raises(ModelFolderError, match=r"config.yaml not found.*\n.*model:\n  id:"):
        load_model_folder(folder)


def test_config_syntax_error_has_line_number(tmp_path: Path) -> None:
    """Invalid YAML reports file:line."""
    folder = make_folder(tmp_path, config="model:\n  id: x\n  bad: [unclosed\n")
    with pytest.raises(ModelFolderError) as info:
        load_config(folder)
    assert f"{folder / 'config.yaml'}:" in str(info.value)
    assert "invalid YAML" in str(info.value)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ("", "expected a mapping at the top level, got an empty file"),
        ("- a\n- b\n", "expected a mapping at the top level, got a list"),
        ("build_info: {}\n", r"missing `model.id`"),
        ("model: {user_id: me}\n", r"missing `model.id`"),
        ("model: {id: 'my model'}\n", "is not a valid model id"),
        ("model: {id: -x}\n", "is not a valid model id"),
        ("model: {id: 123}\n", "quote it"),
        ("model: {id: ok, app_id: 5}\n", r"model.app_id must be a string"),
        ("model: {id: ok}\nbuild_info: [1]\n", "`build_info` must be a mapping"),
    ],
)
def test_bad_config(tmp_path: Path, config: str, match: str) -> None:
    """config.yaml problems name the file and what to fix."""
    folder = make_folder(tmp_path, config=config)
    with pytest.raises(ModelFolderError, match=match) as info:
        load_config(folder)
    assert str(folder / "config.yaml") in str(info.value)


def test_model_id_pattern() -> None:
    """Model ids allow Ollama-style names and at most 128 characters."""
    assert MODEL_ID_PATTERN.fullmatch("llama3.2:1b")
    assert not MODEL_ID_PATTERN.fullmatch("a" * 129)


def test_minimal_config_defaults(tmp_path: Path) -> None:
    """A config with only model.id gets defaults for the rest."""
    config = load_config(make_folder(tmp_path))
    assert (config.model_id, config.user_id, config.app_id) == ("test-model", None, None)
    assert config.model_type_id == "text-to-text"

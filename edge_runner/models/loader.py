"""Load a model folder: read its config, import ``1/model.py``, find the model class.

Every failure is a :class:`~edge_runner.errors.ModelFolderError` whose message names the file
(and line, for syntax errors) and what to fix; the original exception is chained as its cause.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from edge_runner.compat import clarifai as clarifai_compat
from edge_runner.errors import ModelFolderError
from edge_runner.models.config import ModelConfig, load_config
from edge_runner.models.model_class import MCPModelClass, ModelClass
from edge_runner.models.signatures import MethodSignature, signatures_of

__all__ = ["MODEL_FILE", "ModelFolder", "existing_folder", "load_model_folder"]

#: Where the model class lives, relative to the model folder.
MODEL_FILE = Path("1") / "model.py"


@dataclass(frozen=True)
class ModelFolder:
    """A loaded model folder, ready to instantiate.

    Attributes:
        path: the model folder (absolute).
        config: its parsed ``config.yaml``.
        model_class: the :class:`ModelClass` subclass defined in ``1/model.py``.
        signatures: the marked methods' signatures, sorted by name.
    """

    path: Path
    config: ModelConfig
    model_class: type[ModelClass]
    signatures: tuple[MethodSignature, ...]

    @property
    def model_file(self) -> Path:
        """The ``1/model.py`` file the class came from."""
        return self.path / MODEL_FILE

    def instantiate(self) -> ModelClass:
        """Create the model, give it ``concepts`` from config.yaml, call its ``load_model()``.

        ``1/`` is on ``sys.path`` during ``load_model()`` too, so lazy imports of helper
        modules next to ``model.py`` work there.

        Raises:
            ModelFolderError: the constructor or ``load_model()`` raised; the cause is chained.
        """
        name = self.model_class.__name__
        with _on_sys_path(self.model_file.parent):
            try:
                model = self.model_class()
            except Exception as exc:
                raise ModelFolderError(
                    f"creating {name}() from {self.model_file} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if self.config.concepts and getattr(model, "concepts", None) is None:
                # config.yaml's labels, for classifier and detector outputs (Clarifai users
                # read them from the config; here they are on the instance before load_model)
                model.concepts = list(self.config.concepts)  # type: ignore[attr-defined]
            try:
                model.load_model()
            except Exception as exc:
                raise ModelFolderError(
                    f"load_model() of {self.model_file} failed: {type(exc).__name__}: {exc}"
                ) from exc
        return model


def existing_folder(path: str | Path) -> Path:
    """``path`` made absolute, once it is known to be a folder.

    Raises:
        ModelFolderError: it does not exist or is a file.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise ModelFolderError(
            f"model folder {folder} does not exist; pass a folder holding config.yaml and "
            "1/model.py (create one with `edge-runner model init`)"
        )
    if not folder.is_dir():
        raise ModelFolderError(
            f"{folder} is not a folder; pass the model folder holding config.yaml and 1/model.py"
        )
    return folder


def load_model_folder(path: str | Path) -> ModelFolder:
    """Load the model folder at ``path``: config, model class and method signatures.

    The model class is not instantiated; call :meth:`ModelFolder.instantiate` for that.

    Raises:
        ModelFolderError: anything about the folder is wrong; the message says what and how
            to fix it.
    """
    folder = existing_folder(path)
    config = load_config(folder)
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise ModelFolderError(
            f"no model file at {model_file}; the model class (a ModelClass subclass) lives in "
            "1/model.py inside the model folder"
        )
    # a Clarifai folder's `from clarifai...` imports are answered by the compatibility layer
    # when the package is not installed (for the life of the process: methods import too)
    clarifai_compat.install()
    clarifai_compat.notice_requirements(folder)
    module = _import_model_file(model_file)
    model_class = _find_model_class(module, model_file)
    clarifai_compat.prepare_methods(model_class)
    if config.model_type_id == "mcp" or issubclass(model_class, MCPModelClass):
        if not issubclass(model_class, MCPModelClass):
            raise ModelFolderError(
                f"{model_file}: model_type_id is mcp, so {model_class.__qualname__} must "
                "subclass MCPModelClass and define get_server() (`from edge_runner import "
                "MCPModelClass`)"
            )
        if config.model_type_id != "mcp":
            raise ModelFolderError(
                f"{folder / 'config.yaml'}: {model_class.__qualname__} is an MCPModelClass; "
                "set model.model_type_id: mcp"
            )
        signatures: tuple[MethodSignature, ...] = ()  # its tools are the MCP server's
    else:
        signatures = signatures_of(model_class)
    return ModelFolder(
        path=folder,
        config=config,
        model_class=model_class,
        signatures=signatures,
    )


@contextmanager
def _on_sys_path(directory: Path) -> Iterator[None]:
    entry = str(directory)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        # remove our entry only; the model may have added its own meanwhile
        if entry in sys.path:
            sys.path.remove(entry)


def _import_model_file(model_file: Path) -> ModuleType:
    # a unique name per load: two folders (or a reload) never share a module object
    name = f"_edge_runner_model_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, model_file)
    if spec is None or spec.loader is None:
        raise ModelFolderError(f"cannot import {model_file}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    # registered before running, so dataclasses and typing can find the module by name
    sys.modules[name] = module
    try:
        with _on_sys_path(model_file.parent):
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        where = f"{exc.filename or model_file}:{exc.lineno}" if exc.lineno else str(model_file)
        text = f" in `{exc.text.strip()}`" if exc.text and exc.text.strip() else ""
        raise ModelFolderError(f"{where}: syntax error: {exc.msg}{text}") from exc
    except Exception as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, ImportError):
            message = clarifai_compat.import_error_message(exc, model_file)
            if message is not None:
                raise ModelFolderError(message) from exc
        hint = ""
        if isinstance(exc, ModuleNotFoundError):
            hint = "; install it (is it listed in requirements.txt?)"
        raise ModelFolderError(
            f"importing {model_file} failed: {type(exc).__name__}: {exc}{hint}"
        ) from exc
    return module


def _find_model_class(module: ModuleType, model_file: Path) -> type[ModelClass]:
    found = [obj for obj in vars(module).values() if _is_model_class(obj)]
    if len(found) == 1:
        return _servable(found[0])
    if not found:
        raise ModelFolderError(
            f"{model_file} defines no ModelClass subclass; add one, e.g. "
            "`class MyModel(ModelClass):` after `from edge_runner import ModelClass`"
        )
    # prefer classes defined here over imported ones, and a subclass over its own base
    defined = [c for c in found if c.__module__ == module.__name__] or found
    leaves = [c for c in defined if not any(o is not c and issubclass(o, c) for o in defined)]
    if len(leaves) == 1:
        return _servable(leaves[0])
    names = ", ".join(sorted(c.__qualname__ for c in leaves))
    raise ModelFolderError(
        f"{model_file} defines several ModelClass subclasses ({names}); keep one in "
        "1/model.py and move the others to a helper module"
    )


def _is_model_class(obj: object) -> bool:
    # ours (or the compatibility layer's, which is ours), or a user class derived from the
    # installed clarifai package's ModelClass; never a base class imported from either
    if not inspect.isclass(obj) or obj is ModelClass or clarifai_compat.is_clarifai_base(obj):
        return False
    return issubclass(obj, ModelClass) or clarifai_compat.derives_from_clarifai(obj)


def _servable(cls: type) -> type[ModelClass]:
    if issubclass(cls, ModelClass):
        return cls
    return clarifai_compat.adapt_model_class(cls)

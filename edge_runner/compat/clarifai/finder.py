"""The meta-path finder that answers ``clarifai`` imports when the package is not installed.

It sits at the *end* of :data:`sys.meta_path`, so any installed ``clarifai`` (found by the
ordinary path finder first) always wins, and it answers nothing below a ``clarifai`` package
that is not its own. The modules it answers are built from edge-runner's own classes:

============================================  ==============================================
``clarifai.runners.models.model_class``       ``ModelClass`` (edge-runner's; ``@ModelClass.method``)
``clarifai.runners.models.mcp_class``         ``MCPModelClass`` (edge-runner's; ``get_server()``
                                              returns an MCPServer or a fastmcp.FastMCP)
``clarifai.runners.models.openai_class``     ``OpenAIModelClass`` (edge-runner's; wraps a local
                                              OpenAI-compatible server)
``clarifai.runners.utils.data_types``         ``edge_runner.models.data_types``, re-exported
``clarifai.runners.utils.data_utils``         ``Param`` (default, description, choices, min/max),
                                              ``process_image``/``_audio``/``_video``
``clarifai.runners.utils.openai_convertor``   ``build_openai_messages``, ``openai_response``, ...
                                              (:mod:`.openai_convertor`)
``clarifai.utils.logging``                    ``logger`` (the ``edge_runner.model`` logger)
``clarifai.runners.models.model_builder``     ``ModelBuilder`` (``download_checkpoints()`` finds
                                              the checkpoints on this machine)
============================================  ==============================================

The packages above them (``clarifai``, ``clarifai.runners``, ...) are empty. Any other
``clarifai.*`` module is not found, and the loader turns that into an error naming the line.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from edge_runner.compat.clarifai.params import Param

__all__ = ["PACKAGES", "PROVIDED", "ClarifaiShimFinder", "is_shim"]

#: The user model's logger, what ``clarifai.utils.logging.logger`` is here.
MODEL_LOGGER = "edge_runner.model"

#: Marks the modules this finder made.
_SHIM_ATTR = "__edge_runner_shim__"

#: The empty packages on the way down to the modules we provide.
PACKAGES: frozenset[str] = frozenset(
    {
        "clarifai",
        "clarifai.runners",
        "clarifai.runners.models",
        "clarifai.runners.utils",
        "clarifai.utils",
    }
)


def _model_class(module: ModuleType) -> None:
    from edge_runner.models.model_class import ModelClass

    module.ModelClass = ModelClass  # type: ignore[attr-defined]  # a module built at run time


def _mcp_class(module: ModuleType) -> None:
    from edge_runner.models.model_class import MCPModelClass

    module.MCPModelClass = MCPModelClass  # type: ignore[attr-defined]  # a module built at run time


def _openai_class(module: ModuleType) -> None:
    from edge_runner.models.openai_class import OpenAIModelClass

    module.OpenAIModelClass = OpenAIModelClass  # type: ignore[attr-defined]  # built at run time


def _openai_convertor(module: ModuleType) -> None:
    from edge_runner.compat.clarifai import openai_convertor

    for name in openai_convertor.__all__:
        setattr(module, name, getattr(openai_convertor, name))
    module.__all__ = list(openai_convertor.__all__)  # type: ignore[attr-defined]


def _data_types(module: ModuleType) -> None:
    try:
        source = importlib.import_module("edge_runner.models.data_types")
    except ModuleNotFoundError as exc:
        if exc.name != "edge_runner.models.data_types":
            raise
        raise ImportError(
            "this edge-runner has no data types (Image, Text, Concept, ...) yet, so "
            "clarifai.runners.utils.data_types cannot be provided; use str, int, float, bool, "
            "list and dict in the method signatures, or upgrade edge-runner",
            name="clarifai.runners.utils.data_types",
        ) from exc
    names = getattr(source, "__all__", [n for n in vars(source) if not n.startswith("_")])
    for name in names:
        setattr(module, name, getattr(source, name))
    module.__all__ = list(names)  # type: ignore[attr-defined]  # a module built at run time


def _data_utils(module: ModuleType) -> None:
    from edge_runner.compat.clarifai import openai_convertor

    module.Param = Param  # type: ignore[attr-defined]  # a module built at run time
    for name in ("process_image", "process_audio", "process_video"):
        setattr(module, name, getattr(openai_convertor, name))


def _model_builder(module: ModuleType) -> None:
    from edge_runner.compat.clarifai.builder import ModelBuilder

    module.ModelBuilder = ModelBuilder  # type: ignore[attr-defined]  # a module built at run time


def _logging(module: ModuleType) -> None:
    module.logger = logging.getLogger(MODEL_LOGGER)  # type: ignore[attr-defined]


#: The modules we provide: name -> (what it holds, for messages; how to fill it).
PROVIDED: dict[str, tuple[str, Callable[[ModuleType], None]]] = {
    "clarifai.runners.models.model_class": ("ModelClass", _model_class),
    "clarifai.runners.models.mcp_class": ("MCPModelClass", _mcp_class),
    "clarifai.runners.models.openai_class": ("OpenAIModelClass", _openai_class),
    "clarifai.runners.models.model_builder": (
        "ModelBuilder, for download_checkpoints()",
        _model_builder,
    ),
    "clarifai.runners.utils.data_types": (
        "Text, Image, Audio, Video, Frame, Concept, Region, NamedFields, ...",
        _data_types,
    ),
    "clarifai.runners.utils.data_utils": ("Param, process_image, ...", _data_utils),
    "clarifai.runners.utils.openai_convertor": (
        "build_openai_messages, openai_response, ...",
        _openai_convertor,
    ),
    "clarifai.utils.logging": ("logger", _logging),
}


def is_shim(module: ModuleType | None) -> bool:
    """Return True when ``module`` was made by :class:`ClarifaiShimFinder`."""
    return module is not None and getattr(module, _SHIM_ATTR, False) is True


class _ShimLoader(importlib.abc.Loader):
    def __init__(self, fill: Callable[[ModuleType], None] | None) -> None:
        self._fill = fill

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        setattr(module, _SHIM_ATTR, True)
        if self._fill is not None:
            self._fill(module)


class ClarifaiShimFinder(importlib.abc.MetaPathFinder):
    """Answers the ``clarifai`` modules in :data:`PROVIDED` (and their parent packages)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for one of our modules, or None (never below a real ``clarifai``)."""
        if fullname != "clarifai" and not fullname.startswith("clarifai."):
            return None
        if fullname != "clarifai" and not is_shim(sys.modules.get("clarifai")):
            return None  # a real clarifai package is imported: its submodules are its own
        if fullname in PACKAGES:
            spec = importlib.machinery.ModuleSpec(fullname, _ShimLoader(None), is_package=True)
            spec.submodule_search_locations = []  # a package with no files: only we answer
            return spec
        provided = PROVIDED.get(fullname)
        if provided is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _ShimLoader(provided[1]))

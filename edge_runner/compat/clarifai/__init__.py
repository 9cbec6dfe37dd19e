"""Serve a Clarifai model folder unchanged, with or without the ``clarifai`` package.

Without the package, :func:`install` puts :class:`~.finder.ClarifaiShimFinder` at the end of
:data:`sys.meta_path` for the life of the process: ``from clarifai.runners.models.model_class
import ModelClass`` then gives edge-runner's own ``ModelClass`` (imports inside methods work
too), ``Param`` comes from :mod:`.params`, the data types are ``edge_runner.models.data_types``,
``MCPModelClass`` and ``OpenAIModelClass`` are edge-runner's, and ``openai_convertor``'s helpers
are :mod:`.openai_convertor`. With the package installed nothing is shadowed: a class derived
from its ``ModelClass`` (or ``MCPModelClass``, ``OpenAIModelClass``) is adapted
(:func:`adapt_model_class`).
Either way the loader calls :func:`prepare_methods` so a ``Param(...)`` default becomes a plain
default plus :class:`~.params.ParamInfo` metadata.

Only the model-folder loader uses this package; it imports no transport.
"""

from __future__ import annotations

import inspect
import linecache
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from edge_runner.compat.clarifai.finder import PROVIDED, ClarifaiShimFinder, is_shim
from edge_runner.compat.clarifai.params import Param
from edge_runner.models.model_class import METHOD_MARKER, MCPModelClass, ModelClass
from edge_runner.models.openai_class import client_not_set, note_transport_error
from edge_runner.models.param_rules import PARAM_INFO_ATTR, ParamInfo

__all__ = [
    "PARAM_INFO_ATTR",
    "Param",
    "ParamInfo",
    "adapt_model_class",
    "derives_from_clarifai",
    "import_error_message",
    "install",
    "is_clarifai_base",
    "notice_requirements",
    "prepare_methods",
    "real_clarifai_installed",
]

logger = logging.getLogger(__name__)

#: The attribute the real ``ModelClass.method`` sets on a function it marks.
_REAL_METHOD_ATTR = "_cf_method_info"
_REAL_BASE = ("clarifai.runners.models.model_class", "ModelClass")
_REAL_MCP_BASE = ("clarifai.runners.models.mcp_class", "MCPModelClass")
_REAL_OPENAI_BASE = ("clarifai.runners.models.openai_class", "OpenAIModelClass")
_REAL_PARAM = ("clarifai.runners.utils.data_utils", "Param")
_REQUIREMENT = re.compile(r"^\s*clarifai(?![\w.-])", re.IGNORECASE)
_noticed: set[Path] = set()


def real_clarifai_installed() -> bool:
    """Return True when a ``clarifai`` package other than ours can be imported here."""
    module = sys.modules.get("clarifai")
    if module is not None:
        return not is_shim(module)
    for finder in sys.meta_path:
        if isinstance(finder, ClarifaiShimFinder):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and find_spec("clarifai", None) is not None:
            return True
    return False


def install() -> bool:
    """Answer ``clarifai`` imports ourselves from now on, unless the real package is here.

    Idempotent. The finder goes last on :data:`sys.meta_path`, so a ``clarifai`` installed
    later in the process still wins for modules not yet imported.

    Returns:
        True when our finder is (now) installed; False when the real package is installed.
    """
    if real_clarifai_installed():
        return False
    if not any(isinstance(f, ClarifaiShimFinder) for f in sys.meta_path):
        sys.meta_path.append(ClarifaiShimFinder())
    return True


def notice_requirements(folder: Path) -> None:
    """Say once per folder that edge-runner provides the ``clarifai`` its requirements list."""
    requirements = folder / "requirements.txt"
    if folder in _noticed or not requirements.is_file() or real_clarifai_installed():
        return
    try:
        lines = requirements.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return  # installing requirements is not the loader's job; it only reads to inform
    if any(_REQUIREMENT.match(line) for line in lines):
        _noticed.add(folder)
        logger.info(
            "%s lists clarifai; it need not be installed: edge-runner provides what model "
            "folders import from it (%s)",
            requirements,
            ", ".join(sorted(PROVIDED)),
        )


def import_error_message(exc: ImportError, model_file: Path) -> str | None:
    """The message for a failed ``clarifai`` import in ``model_file``, or None if not one.

    Names the line to change (the deepest line of the model folder in the traceback) and
    what the compatibility layer provides instead. None when the real package is installed
    (its errors are its own) or the import was not of ``clarifai``.
    """
    name = exc.name or ""
    if name != "clarifai" and not name.startswith("clarifai."):
        return None
    if real_clarifai_installed():
        return None
    where, line = _line_in(exc.__traceback__, model_file.parent.parent)
    where = where or str(model_file)  # imported by a library outside the folder
    provided = "; ".join(f"{module} ({names})" for module, (names, _) in sorted(PROVIDED.items()))
    code = f": `{line}`" if line else ""
    return (
        f"{where}{code}: the clarifai package is not installed and edge-runner's compatibility "
        f"layer cannot answer this import ({exc}). It provides: {provided}. Change the line to "
        "import from one of those, or install the clarifai package (`pip install clarifai`) "
        "where the runner runs"
    )


def _line_in(tb: TracebackType | None, folder: Path) -> tuple[str, str]:
    where, line = "", ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if Path(filename).is_relative_to(folder):
            where = f"{filename}:{tb.tb_lineno}"
            line = linecache.getline(filename, tb.tb_lineno).strip()
        tb = tb.tb_next
    return where, line


def is_clarifai_base(cls: type) -> bool:
    """Return True for a class the ``clarifai`` package defines (a base, not the user's model)."""
    return cls.__module__.split(".")[0] == "clarifai"


def derives_from_clarifai(cls: type) -> bool:
    """Return True when ``cls`` derives from the real (installed) ``clarifai`` ModelClass."""
    return any((c.__module__, c.__name__) == _REAL_BASE for c in cls.__mro__)


def adapt_model_class(cls: type) -> type[ModelClass]:
    """Make a class derived from the real ``clarifai`` ModelClass servable here.

    Its methods marked with the real ``@ModelClass.method`` are served, their results (the
    package's data types) converted to ours; the result derives from both the user's class
    and ours (so ``cancelled()`` works), under the same name and module. A class derived from
    the package's ``MCPModelClass`` becomes one of ours too (:func:`_adapt_mcp_model_class`).
    """
    real_mcp = _real_base(cls, _REAL_MCP_BASE)
    if real_mcp is not None:
        return _adapt_mcp_model_class(cls, real_mcp)
    from edge_runner.compat.clarifai.convert import adapted_method

    bases: tuple[type, ...] = (cls, ModelClass)
    real_openai = _real_base(cls, _REAL_OPENAI_BASE)
    if real_openai is not None:
        bases = (cls, _reporting_openai_base(real_openai), ModelClass)
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name, None)
        func = _function(attr)
        if func is None or getattr(func, _REAL_METHOD_ATTR, None) is None:
            continue
        if isinstance(attr, staticmethod | classmethod):
            setattr(func, METHOD_MARKER, True)  # rare; served as they are
            continue
        # declared, called and answered with our data types; the method sees the package's
        wrapper = adapted_method(func)
        setattr(wrapper, METHOD_MARKER, True)
        namespace[name] = wrapper
    adapted: type[ModelClass] = type(cls.__name__, bases, namespace)
    adapted.__doc__ = cls.__doc__
    return adapted


def _real_base(cls: type, where: tuple[str, str]) -> type | None:
    return next((c for c in cls.__mro__ if (c.__module__, c.__name__) == where), None)


def _reporting_openai_base(real_openai: Any) -> type:
    """A base between the user's class and the package's ``OpenAIModelClass`` (C3 allows it)
    that tells the runner what the package's class keeps to itself.

    Its transports catch every exception and answer an error object, so the exception is
    noted on the call's record on its way out of ``_route_request`` and ``_raw_sse_stream``
    (an exception before those is the request's fault); ``set_output_context`` reports to
    the runner instead of the package's thread-local list, which nothing here would empty.
    A missing ``client`` is named with the class, as ours does. Nothing is started: the
    package's class starts nothing either.
    """

    def __init__(self: Any) -> None:
        if self.client is None:  # the package says only "Subclasses must set ..."
            raise NotImplementedError(client_not_set(type(self).__name__))
        real_openai.__init__(self)

    def _route_request(self: Any, endpoint: str, request_data: dict[str, Any]) -> Any:
        try:
            return real_openai._route_request(self, endpoint, request_data)
        except Exception as exc:
            note_transport_error(exc)
            raise

    def _raw_sse_stream(self: Any, completion_args: dict[str, Any]) -> Iterator[str]:
        try:
            yield from real_openai._raw_sse_stream(self, completion_args)
        except Exception as exc:
            note_transport_error(exc)
            raise

    return type(
        "ReportingOpenAIModelClass",
        (real_openai,),
        {
            "__module__": __name__,
            "__doc__": "Clarifai's OpenAIModelClass, reporting errors and usage to the runner.",
            "__init__": __init__,
            "_route_request": _route_request,
            "_raw_sse_stream": _raw_sse_stream,
            "set_output_context": ModelClass.set_output_context,
        },
    )


def _adapt_mcp_model_class(cls: type, real_mcp: type) -> type[ModelClass]:
    """``cls`` (derived from the package's ``MCPModelClass``) as an MCPModelClass of ours.

    The package's ``load_model()`` starts Clarifai's own bridge to the server (a fastmcp
    client on a background loop, answering its ``mcp_transport`` method); here the runner
    hosts the server itself, so a base placed between the user's class and the package's
    (C3 allows it: it derives from the package's class) answers ``load_model()`` with nothing.
    A ``load_model()`` the folder defines still runs, and its ``super().load_model()`` lands
    on that base. ``get_server()`` is the folder's.
    """
    hosted = type(
        "HostedMCPModelClass",
        (real_mcp, MCPModelClass),
        {
            "__module__": __name__,
            "__doc__": "Clarifai's MCPModelClass, hosted by edge-runner (no bridge of its own).",
            "load_model": _no_bridge,
        },
    )
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    adapted: type[ModelClass] = type(cls.__name__, (cls, hosted), namespace)
    adapted.__doc__ = cls.__doc__
    return adapted


def _no_bridge(self: object) -> None:
    """Clarifai's bridge is not started: the runner hosts the server returned by get_server()."""


def prepare_methods(cls: type[ModelClass]) -> None:
    """Turn ``Param(...)`` defaults of marked methods into plain defaults plus metadata.

    The function keeps its ``Param`` objects (a direct call still sees them, as in Clarifai);
    its ``__signature__`` shows the plain defaults, which is what signatures are derived from,
    and :data:`PARAM_INFO_ATTR` keeps each parameter's :class:`ParamInfo`.
    """
    for name in dir(cls):
        func = _function(inspect.getattr_static(cls, name, None))
        if func is None or getattr(func, METHOD_MARKER, False) is not True:
            continue
        signature = inspect.signature(func)
        infos: dict[str, ParamInfo] = {}
        params = []
        for p in signature.parameters.values():
            unwrapped = _unwrap_param(p.default)
            if unwrapped is not None:
                default, infos[p.name] = unwrapped
                p = p.replace(default=default)
            params.append(p)
        if infos:
            func.__signature__ = signature.replace(parameters=params)
            setattr(func, PARAM_INFO_ATTR, infos)


def _function(attr: object) -> Any:
    inner = getattr(attr, "__func__", attr)  # staticmethod / classmethod
    return inner if inspect.isfunction(inner) else None


def _unwrap_param(value: object) -> tuple[Any, ParamInfo] | None:
    if isinstance(value, Param):
        return value.default, value.info
    kind = type(value)
    if (kind.__module__, kind.__name__) != _REAL_PARAM:
        return None
    real: Any = value
    choices = real.choices
    return real.default, ParamInfo(
        description=real.description,
        choices=tuple(choices) if choices is not None else None,
        min_value=real.min_value,
        max_value=real.max_value,
        is_param=bool(real.is_param),
    )

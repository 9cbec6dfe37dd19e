"""Method signatures: derived from type hints, sent to the control plane, checked per request.

Pure functions, no I/O. The runner derives signatures from a model class
(:func:`signatures_of`) and registers them; the control plane rebuilds them
(:meth:`MethodSignature.from_dict`), compares runners by :func:`signature_hash`, and checks
every request with :func:`validate_arguments` before a task is queued. The CLI turns
``--arg VALUE`` strings into values with :func:`parse_cli_value`.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import inspect
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from edge_runner.errors import InvalidArgument, ModelFolderError, TypeMismatch, UnsupportedType
from edge_runner.models.codec import to_jsonable
from edge_runner.models.json_types import (
    SUPPORTED_TYPES_TEXT,
    TypeSpec,
    check_value,
    json_type_name,
    mismatch_message,
    parse_spec,
    spec_from_hint,
)
from edge_runner.models.model_class import is_model_method
from edge_runner.models.param_rules import PARAM_INFO_ATTR, ParamInfo, check_rules
from edge_runner.views import JSONObject, JSONValue, MethodView, ParamView

__all__ = [
    "MethodKind",
    "MethodSignature",
    "Param",
    "input_stream_param",
    "parse_cli_value",
    "signature_hash",
    "signature_of",
    "signatures_of",
    "validate_arguments",
]

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_JSON_EXAMPLES = {
    "list": '["a", "b"]',
    "dict": '{"key": "value"}',
    "Iterator": '["a", "b"]',
    "tuple": '[1, "a"]',
    "bytes": '{"base64": "aGk="}',
    "Image": '{"base64": "iVBORw0KGgo..."} or {"url": "https://..."}',
    "Audio": '{"base64": "..."} or {"url": "https://..."}',
    "Video": '{"base64": "..."} or {"url": "https://..."}',
    "Concept": '{"name": "cat", "value": 0.9}',
    "Region": '{"box": [0.1, 0.1, 0.5, 0.5]}',
    "Frame": '{"time": 1.5, "image": {"base64": "..."}}',
    "NamedFields": '{"field": "value"}',
}


class MethodKind(enum.Enum):
    """How a method exchanges data: one answer, a stream of answers, or streams both ways."""

    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    BIDI = "bidi"


@dataclass(frozen=True)
class Param:
    """One keyword argument of a method.

    Attributes:
        name: the argument's name.
        type: readable type (``"int"``, ``"list[dict]"``, ``"str | None"``, ``"Iterator[str]"``).
        required: whether a request must pass it.
        default: the JSON value used when it is not passed (``None`` when required).
        description: a sentence for people and tool schemas (``""`` when none).
        choices: the values allowed, when listed.
        min_value: the smallest number allowed, when set.
        max_value: the largest number allowed, when set.
    """

    name: str
    type: str
    required: bool
    # a list or dict default is not hashable; equality still compares it
    default: JSONValue = field(default=None, hash=False)
    description: str = ""
    choices: tuple[JSONValue, ...] | None = field(default=None, hash=False)
    min_value: float | None = None
    max_value: float | None = None

    def __post_init__(self) -> None:
        parse_spec(self.type)  # raises ValueError early for a type text we could not check

    def to_dict(self) -> ParamView:
        """Return a JSON-able dict; the rules appear only when set (older readers, same hash)."""
        out: ParamView = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
        }
        if self.description:
            out["description"] = self.description
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.min_value is not None:
            out["min_value"] = self.min_value
        if self.max_value is not None:
            out["max_value"] = self.max_value
        return out

    @classmethod
    def from_dict(cls, data: ParamView) -> Param:
        """Rebuild a parameter from :meth:`to_dict`'s output.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not a parameter dict.
        """
        choices = data.get("choices")
        low, high = data.get("min_value"), data.get("max_value")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            required=bool(data["required"]),
            default=data.get("default"),
            description=str(data.get("description") or ""),
            choices=None if choices is None else tuple(choices),
            min_value=None if low is None else float(low),
            max_value=None if high is None else float(high),
        )

    def check(self, value: JSONValue) -> None:
        """Refuse a type-checked value outside the choices or the range.

        Raises:
            InvalidArgument: the message names the parameter and the values allowed.
        """
        check_rules(
            self.name,
            value,
            choices=self.choices,
            min_value=self.min_value,
            max_value=self.max_value,
        )

    @property
    def spec(self) -> TypeSpec:
        """The parsed type."""
        return parse_spec(self.type)

    @property
    def base_type(self) -> str:
        """The type without its parameters or ``| None``: ``"list"`` for ``"list[dict] | None"``."""
        return self.spec.base

    def render(self) -> str:
        """Render as in a Python signature: ``n: int = 5``."""
        text = f"{self.name}: {self.type}"
        return text if self.required else f"{text} = {self.default!r}"


@dataclass(frozen=True)
class MethodSignature:
    """What a model method takes and returns.

    Attributes:
        name: the method's name (the ``{method}`` in ``/v2/models/{id}/{method}``).
        kind: unary, server-streaming or bidirectional.
        params: the keyword arguments, in declaration order.
        returns: readable result type; ``"Iterator[X]"`` for streams.
        description: the first line of the docstring, ``""`` when there is none.
    """

    name: str
    kind: MethodKind
    params: tuple[Param, ...]
    returns: str
    description: str = ""

    def to_dict(self) -> MethodView:
        """Return a JSON-able dict; :meth:`from_dict` reverses it."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "params": [p.to_dict() for p in self.params],
            "returns": self.returns,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: MethodView) -> MethodSignature:
        """Rebuild a signature from :meth:`to_dict`'s output.

        Raises:
            ValueError: ``data`` is not a signature dict (the caller translates it).
        """
        try:
            params = tuple(Param.from_dict(p) for p in data["params"])
            return cls(
                name=str(data["name"]),
                kind=MethodKind(data["kind"]),
                params=params,
                returns=str(data["returns"]),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a method signature: {data!r} ({exc!r})") from exc

    def render(self) -> str:
        """Render as a Python-like line: ``generate(text: str, n: int = 5) -> Iterator[str]``."""
        params = ", ".join(p.render() for p in self.params)
        return f"{self.name}({params}) -> {self.returns}"


def _where(func: Callable[..., object]) -> str:
    code = getattr(inspect.unwrap(func), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}: " if code is not None else ""


def signature_of(func: Callable[..., object]) -> MethodSignature:
    """Derive a method's signature from its type hints, skipping ``self``.

    Raises:
        ModelFolderError: a parameter or the result has no type hint or an unsupported one,
            the method takes ``*args``/``**kwargs`` or positional-only arguments, or is async.
    """
    label = f"{_where(func)}method {getattr(func, '__qualname__', func.__name__)}()"
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise ModelFolderError(f"{label} is async; model methods must be plain `def` functions")
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # a forward reference to a name the module never imported
        raise ModelFolderError(
            f"{label}: its type hints cannot be resolved ({exc}); import the names they use"
        ) from exc
    params = list(inspect.signature(func).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    infos: dict[str, ParamInfo] = getattr(func, PARAM_INFO_ATTR, None) or {}
    out = tuple(_with_info(label, _param_of(label, p, hints), infos.get(p.name)) for p in params)
    streams = [p.name for p in out if p.base_type == "Iterator"]
    if "return" not in hints:
        raise ModelFolderError(
            f"{label} has no return type hint; add one, e.g. `-> str` or `-> Iterator[str]`"
        )
    returns = _return_spec(label, hints["return"])
    streaming = returns is not None and returns.base == "Iterator"
    if len(streams) > 1:
        raise ModelFolderError(
            f"{label} takes several input streams ({', '.join(streams)}); at most one is allowed"
        )
    if streams and not streaming:
        raise ModelFolderError(
            f"{label} takes an input stream '{streams[0]}' but does not return one; "
            "a bidirectional method returns Iterator[...]"
        )
    kind = MethodKind.UNARY
    if streaming:
        kind = MethodKind.BIDI if streams else MethodKind.SERVER_STREAM
    doc = inspect.getdoc(func) or ""
    return MethodSignature(
        name=func.__name__,
        kind=kind,
        params=out,
        returns="None" if returns is None else str(returns),
        description=doc.strip().splitlines()[0].strip() if doc.strip() else "",
    )


def _param_of(label: str, p: inspect.Parameter, hints: dict[str, object]) -> Param:
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
        raise ModelFolderError(
            f"{label} takes {'*' if p.kind is p.VAR_POSITIONAL else '**'}{p.name}; "
            "name each argument with a type hint instead"
        )
    if p.kind is p.POSITIONAL_ONLY:
        raise ModelFolderError(
            f"{label}: parameter '{p.name}' is positional-only; requests pass arguments by "
            "name, so remove the `/`"
        )
    if p.name not in hints:
        raise ModelFolderError(
            f"{label}: parameter '{p.name}' has no type hint; add one, e.g. `{p.name}: str` "
            f"(supported: {SUPPORTED_TYPES_TEXT})"
        )
    try:
        spec = spec_from_hint(hints[p.name], allow_stream=True)
    except UnsupportedType as exc:
        raise ModelFolderError(
            f"{label}: parameter '{p.name}' has unsupported type {exc}; "
            f"supported types: {SUPPORTED_TYPES_TEXT}"
        ) from exc
    if p.default is inspect.Parameter.empty:
        return Param(p.name, str(spec), required=True)
    if p.default is None:
        return Param(p.name, str(spec.with_optional()), required=False, default=None)
    try:
        default = to_jsonable(spec, p.default)  # Text("hi") -> {"text": "hi"}
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(
            f"{label}: default of parameter '{p.name}' ({p.default!r}) is not a JSON value; "
            "use str, int, float, bool, list, dict, a data type (Text, Concept, ...) or None"
        ) from exc
    try:
        default = check_value(spec, default)
    except TypeMismatch as exc:
        raise ModelFolderError(
            f"{label}: default of parameter '{p.name}' ({p.default!r}) is not {spec}; "
            "fix the default or the type hint"
        ) from exc
    return Param(p.name, str(spec), required=False, default=default)


def _with_info(label: str, param: Param, info: ParamInfo | None) -> Param:
    """The parameter with its ``Param(...)`` rules, checked against its type and default."""
    if info is None:
        return param
    where = f"{label}: Param(...) of parameter '{param.name}'"
    choices = None
    if info.choices is not None:
        try:
            choices = tuple(
                check_value(param.spec, to_jsonable(param.spec, c)) for c in info.choices
            )
        except (TypeError, ValueError, TypeMismatch) as exc:
            raise ModelFolderError(
                f"{where} lists choices {list(info.choices)!r} that are not all {param.type}; "
                "fix the choices or the type hint"
            ) from exc
    try:
        low = None if info.min_value is None else float(info.min_value)
        high = None if info.max_value is None else float(info.max_value)
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(
            f"{where} has min_value={info.min_value!r}, max_value={info.max_value!r}; "
            "both must be numbers"
        ) from exc
    ruled = replace(
        param,
        description=info.description or "",
        choices=choices,
        min_value=low,
        max_value=high,
    )
    if not param.required:
        try:
            ruled.check(param.default)
        except InvalidArgument as exc:
            raise ModelFolderError(
                f"{where}: its default breaks its own rule ({exc}); fix the default or the rule"
            ) from exc
    return ruled


def _return_spec(label: str, hint: object) -> TypeSpec | None:
    if hint is None or hint is type(None):
        return None
    try:
        return spec_from_hint(hint, allow_stream=True)
    except UnsupportedType as exc:
        raise ModelFolderError(
            f"{label} returns unsupported type {exc}; results must be JSON: "
            f"{SUPPORTED_TYPES_TEXT}, or Iterator[...] of one of them to stream"
        ) from exc


def signatures_of(cls: type) -> tuple[MethodSignature, ...]:
    """Return the signatures of every method of ``cls`` marked ``@ModelClass.method``, by name.

    Raises:
        ModelFolderError: no method is marked, or a marked method's hints are unusable.
    """
    found: list[MethodSignature] = []
    for name in dir(cls):
        if is_model_method(inspect.getattr_static(cls, name)):
            found.append(replace(signature_of(getattr(cls, name)), name=name))
    if not found:
        try:
            where = f"{inspect.getsourcefile(cls)}: "
        except TypeError:  # a class built at runtime has no source file
            where = ""
        raise ModelFolderError(
            f"{where}{cls.__qualname__} has no model methods; mark at least one method with "
            "@ModelClass.method, e.g. `@ModelClass.method` above `def predict(self, text: str) "
            "-> str:`"
        )
    return tuple(sorted(found, key=lambda s: s.name))


def signature_hash(sigs: Iterable[MethodSignature]) -> str:
    """Return a sha256 hex digest of the signatures' API, stable across processes.

    Descriptions (of methods and of parameters) are left out: runners whose docstrings
    differ still serve the same API. Choices and ranges count: they change what is accepted.
    """
    canonical = [
        {
            **{k: v for k, v in sig.to_dict().items() if k not in ("description", "params")},
            "params": [
                {k: v for k, v in p.to_dict().items() if k != "description"} for p in sig.params
            ],
        }
        for sig in sorted(sigs, key=lambda s: s.name)
    ]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def input_stream_param(sig: MethodSignature) -> Param | None:
    """The parameter a stream-in (``BIDI``) method takes its input stream by, or None."""
    if sig.kind is not MethodKind.BIDI:
        return None
    return next((p for p in sig.params if p.base_type == "Iterator"), None)


def validate_arguments(
    sig: MethodSignature, args: JSONValue, *, input_stream: bool = False
) -> JSONObject:
    """Check request arguments against a signature and fill in defaults.

    Args:
        sig: the method's signature.
        args: keyword arguments decoded from a JSON request body.
        input_stream: the call's input stream comes apart from ``args`` (a stream-in task):
            the method's stream parameter (:func:`input_stream_param`) must not be in ``args``
            and is left out of the result.

    Returns:
        A new dict with every parameter (but the input stream's): ints widened to floats
        where floats go, defaults (fresh copies) for the ones not passed.

    Raises:
        InvalidArgument: the body is not an object, or an argument is unknown, missing or of
            the wrong type; ``argument`` names it.
    """
    if not isinstance(args, dict):
        example = f'{{"{sig.params[0].name}": ...}}' if sig.params else "{}"
        raise InvalidArgument(
            f"the request body must be a JSON object of keyword arguments for {sig.name}() "
            f"(e.g. {example}), got {json_type_name(args)}",
            None,
        )
    known = {p.name: p for p in sig.params}
    for name in args:
        if name not in known:
            accepted = ", ".join(p.render() for p in sig.params) or "no arguments"
            raise InvalidArgument(
                f"{sig.name}() got an unknown argument '{name}'; it accepts: {accepted}",
                argument=str(name),
            )
    streamed = input_stream_param(sig) if input_stream else None
    if streamed is not None and streamed.name in args:
        raise InvalidArgument(
            f"argument '{streamed.name}' of {sig.name}() is its input stream; send its items "
            "as the stream, not among the other arguments",
            argument=streamed.name,
        )
    out: JSONObject = {}
    for p in sig.params:
        if p is streamed:
            continue
        if p.name in args:
            out[p.name] = _checked(p, args[p.name])
        elif p.required:
            raise InvalidArgument(
                f"{sig.name}() is missing the required argument '{p.name}' ({p.type})",
                argument=p.name,
            )
        else:
            out[p.name] = copy.deepcopy(p.default)
    return out


def _checked(p: Param, value: JSONValue) -> JSONValue:
    try:
        checked = check_value(p.spec, value)
    except TypeMismatch as exc:
        message = mismatch_message(f"argument '{p.name}'", p.type, exc, at=p.name)
        raise InvalidArgument(message, argument=p.name) from exc
    p.check(checked)
    return checked


def parse_cli_value(param: Param, text: str) -> JSONValue:
    """Parse a command-line string by the parameter's type.

    ``int``/``float`` as numbers, ``bool`` from true/false/1/0/yes/no, ``str`` as is, ``Text``
    from plain text (or its JSON form); lists, dicts, ``any`` and the other data types as
    JSON. ``null`` gives ``None`` for an optional non-str parameter.

    Raises:
        InvalidArgument: the text does not parse as the type, or the value breaks the
            parameter's rules (choices, range); ``argument`` names the parameter.
    """
    value = _parse_cli_text(param, text)
    param.check(value)  # said here, before a request is sent, as the control plane would
    return value


def _parse_cli_text(param: Param, text: str) -> JSONValue:
    spec = param.spec
    if spec.optional and spec.base != "str" and text.strip().lower() in ("null", "none"):
        return None
    base = spec.base
    if base == "str":
        return text
    if base == "Text" and not text.lstrip().startswith("{"):
        return {"text": text}  # plain text on a command line; a JSON object for a URL
    if base == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise InvalidArgument(
            f"argument '{param.name}' must be bool (true/false, yes/no, 1/0), got {text!r}",
            argument=param.name,
        )
    if base in ("int", "float"):
        try:
            return int(text) if base == "int" else float(text)
        except ValueError as exc:
            raise InvalidArgument(
                f"argument '{param.name}' must be {base}, got {text!r}", argument=param.name
            ) from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        example = _JSON_EXAMPLES.get(base, '"text" or 42')
        raise InvalidArgument(
            f"argument '{param.name}' must be {param.type} written as JSON (e.g. {example}), "
            f"got {text!r}: {exc.msg}",
            argument=param.name,
        ) from exc
    return _checked(param, value)

"""The contexts file: which control planes this user talks to, and which one is current.

The file is Clarifai-shaped YAML and never holds a secret (tokens live in
:mod:`edge_runner.config.secrets`, one entry per context name)::

    current-context: local
    contexts:
      local:
        api_base: http://127.0.0.1:7070
        user_id: admin
      lab:
        api_base: https://runner.lab.example:7070
        user_id: alice
        ca_file: /etc/lab-ca.pem      # any other key is kept as Context.extra

Keys this module does not know are kept on a round trip, at the top level and in each context.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edge_runner.config._atomic import write_private_file
from edge_runner.config.paths import config_dir, config_file, ensure_private_dir
from edge_runner.errors import ConfigError

__all__ = ["ENV_CONTEXT", "Context", "ContextsFile"]

logger = logging.getLogger(__name__)

ENV_CONTEXT = "EDGE_RUNNER_CONTEXT"

_KEY_CURRENT = "current-context"
_KEY_CONTEXTS = "contexts"
_RESERVED_KEYS = frozenset({"api_base", "user_id"})
# Matched against the key with everything but letters and digits removed ("api-key" -> "apikey").
_SECRET_FRAGMENTS = ("token", "secret", "password", "passwd", "apikey", "privatekey")
# Matched against whole words only, so "path" is not mistaken for "pat".
_SECRET_WORDS = frozenset({"pat"})

_NO_CONTEXTS = "No contexts yet. Run `edge-runner up` or `edge-runner login` to create one."


@dataclass(frozen=True)
class Context:
    """One control plane this user talks to.

    Attributes:
        name: the context's name (the key under ``contexts:``; also the secret store entry).
        api_base: the control plane's base URL, e.g. ``http://127.0.0.1:7070``.
        user_id: the user the context's token belongs to.
        extra: any other keys of the context, kept on a round trip; never a secret.
    """

    name: str
    api_base: str
    user_id: str
    extra: dict[str, object] = field(default_factory=dict, hash=False)


@dataclass
class ContextsFile:
    """The contexts file, loaded into memory; change it with :meth:`put`/:meth:`remove`, then
    :meth:`save`.

    Attributes:
        path: where the file lives (and where :meth:`save` writes).
        current: the ``current-context`` name, or None.
        contexts: contexts by name.
    """

    path: Path
    current: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)
    _other: dict[str, object] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | None = None) -> ContextsFile:
        """Read the contexts file; a missing file reads as an empty one.

        Args:
            path: the file; default :func:`~edge_runner.config.paths.config_file`.

        Raises:
            ConfigError: the file cannot be read, is not valid YAML (the message names the file
                and line), has the wrong shape (the message names the key), or holds a secret.
        """
        path = config_file() if path is None else path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            logger.debug("no contexts file at %s", path)
            return cls(path=path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read the contexts file {path}: {exc}.") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(_yaml_error_message(path, exc)) from exc
        return _parse(path, data)

    def save(self) -> None:
        """Write the file atomically with mode 0600 (its directory 0700).

        Raises:
            ConfigError: a context holds a secret-like key, or the file cannot be written.
        """
        for ctx in self.contexts.values():
            _check_context(ctx)
        contexts: dict[str, dict[str, object]] = {
            name: {"api_base": ctx.api_base, "user_id": ctx.user_id, **ctx.extra}
            for name, ctx in self.contexts.items()
        }
        data: dict[str, object] = {_KEY_CURRENT: self.current, _KEY_CONTEXTS: contexts}
        data.update(self._other)
        try:
            body = yaml.safe_dump(
                data, sort_keys=False, default_flow_style=False, allow_unicode=True
            )
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"Cannot write {self.path}: a context's extra values are not plain YAML data "
                f"(strings, numbers, lists, mappings): {exc}"
            ) from exc
        header = "# edge-runner contexts. Tokens are not stored here (see `edge-runner login`).\n"
        self._prepare_dir()
        try:
            write_private_file(self.path, (header + body).encode("utf-8"))
        except OSError as exc:
            raise ConfigError(f"Cannot write the contexts file {self.path}: {exc}.") from exc
        logger.debug("saved %d context(s) to %s", len(self.contexts), self.path)

    def get(self, name: str) -> Context:
        """Return the context called ``name``.

        Raises:
            ConfigError: no such context; the message lists the known ones.
        """
        try:
            return self.contexts[name]
        except KeyError as exc:
            raise ConfigError(self._unknown(name)) from exc

    def active(self, name: str | None = None) -> Context:
        """Return the context to use: ``name``, else ``$EDGE_RUNNER_CONTEXT``, else current.

        Raises:
            ConfigError: none is selected, or the selected one does not exist.
        """
        env_name = os.environ.get(ENV_CONTEXT) or None
        if name:
            return self.get(name)
        if env_name is not None:
            if env_name not in self.contexts:
                raise ConfigError(f"{self._unknown(env_name)} (It was named by {ENV_CONTEXT}.)")
            return self.contexts[env_name]
        if self.current is not None:
            if self.current not in self.contexts:
                raise ConfigError(
                    f"{self._unknown(self.current)} (It is the {_KEY_CURRENT} in {self.path}.)"
                )
            return self.contexts[self.current]
        if not self.contexts:
            raise ConfigError(_NO_CONTEXTS)
        raise ConfigError(
            f"No context is selected. Known contexts: {self._known()}. Pick one with "
            f"`edge-runner context use NAME` or set {ENV_CONTEXT}."
        )

    def put(self, ctx: Context, make_current: bool = False) -> None:
        """Add ``ctx``, replacing a context of the same name.

        Raises:
            ConfigError: the name is empty, or ``extra`` holds a secret-like or reserved key.
        """
        _check_context(ctx)
        self.contexts[ctx.name] = ctx
        if make_current:
            self.current = ctx.name

    def remove(self, name: str) -> None:
        """Remove the context ``name``; it stops being current if it was.

        Its secret is not touched: delete it with
        :meth:`~edge_runner.config.secrets.SecretStore.delete`.

        Raises:
            ConfigError: no such context.
        """
        if name not in self.contexts:
            raise ConfigError(self._unknown(name))
        del self.contexts[name]
        if self.current == name:
            self.current = None

    def _known(self) -> str:
        return ", ".join(sorted(self.contexts))

    def _unknown(self, name: str) -> str:
        if not self.contexts:
            return f"No context named {name!r}. {_NO_CONTEXTS}"
        return (
            f"No context named {name!r}. Known contexts: {self._known()}. "
            f"Create one with `edge-runner context create {name}`."
        )

    def _prepare_dir(self) -> None:
        parent = self.path.parent
        # Our own config dir is made private; a directory the user chose with
        # EDGE_RUNNER_CONFIG (a project folder, their home) is created private but never chmod-ed.
        if not parent.exists() or _same_path(parent, config_dir()):
            ensure_private_dir(parent)


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _yaml_error_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (
        f"{where}: not valid YAML ({problem}). Fix the file, or move it aside and run "
        "`edge-runner up` or `edge-runner login` to write a new one."
    )


#: optional context keys edge-runner reads (beyond api_base and user_id)
_KNOWN_CONTEXT_KEYS = frozenset({"ca_file", "insecure"})


def _parse(path: Path, data: object) -> ContextsFile:
    """Turn the YAML document into a :class:`ContextsFile`, naming the key when it is wrong."""
    if data is None:
        return ContextsFile(path=path)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping with `{_KEY_CURRENT}` and `{_KEY_CONTEXTS}` at the top, "
            f"found {_kind(data)}."
        )
    current = data.get(_KEY_CURRENT)
    if current is not None and not isinstance(current, str):
        raise ConfigError(
            f"{path}: `{_KEY_CURRENT}` must be a context name (a string), found {_kind(current)}."
        )
    raw_contexts = data.get(_KEY_CONTEXTS) or {}
    if not isinstance(raw_contexts, Mapping):
        raise ConfigError(
            f"{path}: `{_KEY_CONTEXTS}` must be a mapping of context names to settings, "
            f"found {_kind(raw_contexts)}."
        )
    contexts: dict[str, Context] = {}
    for name, raw in raw_contexts.items():
        contexts[name] = _parse_context(path, name, raw)
    other = {k: v for k, v in data.items() if k not in (_KEY_CURRENT, _KEY_CONTEXTS)}
    if other:
        logger.warning(
            "%s: unknown top-level key(s) %s (kept, but edge-runner does not read them)",
            path,
            ", ".join(sorted(map(str, other))),
        )
    for ctx in contexts.values():
        unknown = sorted(set(ctx.extra) - _KNOWN_CONTEXT_KEYS)
        if unknown:
            logger.warning(
                "%s: context %r has unknown key(s) %s (kept, but not read)",
                path,
                ctx.name,
                ", ".join(map(str, unknown)),
            )
    return ContextsFile(path=path, current=current or None, contexts=contexts, _other=other)


def _parse_context(path: Path, name: object, raw: object) -> Context:
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{path}: `{_KEY_CONTEXTS}` has a key {name!r}; context names must be non-empty "
            "strings (quote it)."
        )
    key = f"{_KEY_CONTEXTS}.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{path}: `{key}` must be a mapping with `api_base` and `user_id`, found {_kind(raw)}."
        )
    values: dict[str, str] = {}
    for field_name, example in (("api_base", "http://127.0.0.1:7070"), ("user_id", "admin")):
        value = raw.get(field_name)
        if not isinstance(value, str) or not value:
            found = "nothing" if value is None else _kind(value)
            raise ConfigError(
                f"{path}: `{key}.{field_name}` must be a non-empty string (e.g. {example}), "
                f"found {found}."
            )
        values[field_name] = value
    extra = {k: v for k, v in raw.items() if k not in _RESERVED_KEYS}
    secret_key = _find_secret_key(extra)
    if secret_key is not None:
        raise ConfigError(
            f"{path}: `{key}.{secret_key}` looks like a secret, and the contexts file never holds "
            f"secrets. Delete that line and store the token with "
            f"`edge-runner login --context {name}` (or set EDGE_RUNNER_PAT)."
        )
    return Context(name=name, api_base=values["api_base"], user_id=values["user_id"], extra=extra)


def _check_context(ctx: Context) -> None:
    """Refuse a context that cannot be written: empty name, reserved or secret-like extra keys."""
    if not ctx.name or not ctx.name.strip():
        raise ConfigError("A context needs a non-empty name.")
    reserved = sorted(_RESERVED_KEYS.intersection(ctx.extra))
    if reserved:
        raise ConfigError(
            f"Context {ctx.name!r}: {', '.join(reserved)} belong(s) in the Context fields, "
            "not in extra."
        )
    secret_key = _find_secret_key(ctx.extra)
    if secret_key is not None:
        raise ConfigError(
            f"Context {ctx.name!r}: extra key {secret_key!r} looks like a secret; the contexts "
            "file never holds secrets. Store it with SecretStore.set() instead."
        )


def _find_secret_key(values: Mapping[str, object], prefix: str = "") -> str | None:
    """Return the dotted path of the first secret-like key in ``values`` (nested too), or None."""
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if _looks_secret(str(key)):
            return dotted
        if isinstance(value, Mapping):
            found = _find_secret_key(value, f"{dotted}.")
            if found is not None:
                return found
    return None


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    compact = re.sub(r"[^a-z0-9]", "", lowered)
    if any(fragment in compact for fragment in _SECRET_FRAGMENTS):
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[^a-z0-9]+", lowered))


def _kind(value: object) -> str:
    """Describe a YAML value's type for an error message."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}
    for typ, label in names.items():
        if isinstance(value, typ):
            return f"{label} ({value!r})" if typ in (str, bool) else label
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    return type(value).__name__

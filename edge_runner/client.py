"""The one Python client for a control plane, sync and async (the CLI, TUI and MCP use it).

    from edge_runner.client import Client
    client = Client.from_context()          # or Client(api_base, token)
    client.predict("hello", text="hi")      # -> "Hello, hi!"
    client.predict_batch("hello", [{"text": "a"}, {"text": "b"}])  # -> [BatchResult, ...]
    for piece in client.generate("hello", text="hi"):
        print(piece)

httpx errors (through :func:`edge_runner._http.map_httpx_errors`, with :meth:`_Base._unreachable`)
and error answers (:func:`_api_error`) are translated here, at one boundary, into the
:mod:`edge_runner.errors` tree, the same way for the blocking and the asyncio client.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx

from edge_runner._http import describe_http_error, map_httpx_errors
from edge_runner._sse import SSEParser, parse_sse, stream_item
from edge_runner.errors import (
    ApiError,
    ConnectionFailed,
    ErrorCode,
    TaskFailed,
    api_error,
)
from edge_runner.views import (
    ChatCompletionView,
    ControlInfo,
    CreatedTokenView,
    EnrolledRunnerView,
    JSONValue,
    LogRecordView,
    ModelView,
    ReplicaView,
    RevokedTokenView,
    RunnerView,
    TaskView,
    TokenView,
)

__all__ = ["AsyncClient", "BatchResult", "Client", "ClientOptions", "SSEParser", "parse_sse"]


def _arguments(kwargs: dict[str, object]) -> object:
    """Keyword arguments as JSON: data types (``Image``, ``Concept``, ``bytes``...) become
    their JSON forms; plain JSON values pass as they are."""
    if all(_plain(v) for v in kwargs.values()):
        return kwargs
    from edge_runner.models.codec import to_jsonable  # only calls with data types need it

    return to_jsonable(None, kwargs)


def _plain(value: object) -> bool:
    if value is None or isinstance(value, str | int | float):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _seg(value: str) -> str:
    """One URL path segment from a caller's value: ``/``, ``..`` and ``?`` stay inside it."""
    segment = quote(str(value), safe="")
    # quote() leaves dots alone, and a segment of only dots would be resolved away.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _api_error(response: httpx.Response, body: bytes) -> ApiError:
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = (
            ErrorCode.HTTP_ERROR,
            body.decode(errors="replace")[:500] or response.reason_phrase,
        )
    retry = response.headers.get("retry-after")
    retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
    return api_error(response.status_code, code, message, retry_after)


def _answer(response: httpx.Response) -> Any:
    """The JSON of a complete answer, or the error it carries."""
    if response.status_code >= 400:
        raise _api_error(response, response.content)
    return response.json()


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One item of a batch predict's answer (:meth:`Client.predict_batch`), in input order.

    An item that failed does not fail the batch: its error is here, as the :class:`ApiError`
    a single call with the same arguments would have raised (:class:`BadRequest` for a wrong
    argument, :class:`TaskFailed` when the model raised, ...).

    Attributes:
        index: the item's position in the inputs.
        output: what the method returned; None when the item failed.
        error: why the item failed; None when it succeeded.
        task_id: the item's task; None when it was refused before it became one.
    """

    index: int
    output: JSONValue = None
    error: ApiError | None = None
    task_id: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error is None

    def unwrap(self) -> JSONValue:
        """The output, or raise the item's error."""
        if self.error is not None:
            raise self.error
        return self.output


def _batch_results(doc: _Answer) -> list[BatchResult]:
    """A batch answer's results, each failed item's error as the ApiError of its status."""
    results = []
    for item in doc["results"]:
        error = item.get("error")
        if error is None:
            results.append(
                BatchResult(item["index"], item.get("output"), None, item.get("task_id"))
            )
            continue
        status = int(error.get("status", 0))
        failure = api_error(status, str(error.get("code")), str(error.get("message")))
        results.append(BatchResult(item["index"], None, failure, item.get("task_id")))
    return results


_Self = TypeVar("_Self", bound="_Base")

#: An answer's JSON as httpx decodes it: each method says which view it is (a client trusts
#: the control plane that answered).
_Answer = Any
#: The query parameters of a request.
_Params = Mapping[str, str | int]


class ClientOptions(TypedDict, total=False):
    """The options of a client besides its address and token.

    Attributes:
        timeout: seconds a request may take (None: no limit); connecting takes at most 10.
        ca_file: a PEM CA bundle to verify the control plane with (default: the system's).
    """

    timeout: float | None
    ca_file: str | None


class _HttpOptions(TypedDict):
    base_url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    verify: ssl.SSLContext | bool


class _Base:
    def __init__(
        self,
        api_base: str,
        token: str,
        *,
        timeout: float | None = 120.0,
        ca_file: str | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        # A private CA (self-signed control plane) or the system store.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        self._token = token
        self._timeout = timeout
        self._ca_file = ca_file
        self._http_options: _HttpOptions = {
            "base_url": self.api_base,
            "headers": {"Authorization": f"Bearer {token}"},
            "timeout": httpx.Timeout(timeout, connect=10.0),
            "verify": verify,
        }

    @classmethod
    def from_context(
        cls: type[_Self],
        context: str | None = None,
        *,
        api_base: str | None = None,
        token: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> _Self:
        """Build a client from flags/env/the active context (see ``resolve_credentials``)."""
        from edge_runner.config.resolve import resolve_credentials

        creds = resolve_credentials(context=context, api_base=api_base, token=token)
        options.setdefault("ca_file", creds.ca_file)
        return cls(creds.api_base, creds.token, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_base!r})"

    def _stream_target(self, model_id: str, method: str) -> tuple[str, ssl.SSLContext | None]:
        """The WebSocket URL of a stream-in call, and the TLS context for ``wss://``."""
        from edge_runner._stream_in import ws_url  # websockets: only stream-in calls need it

        url = ws_url(self.api_base, f"/v2/models/{_seg(model_id)}/{_seg(method)}/ws")
        if not url.startswith("wss://"):
            return url, None
        return url, ssl.create_default_context(cafile=self._ca_file)

    def _unreachable(self, exc: httpx.HTTPError) -> ConnectionFailed:
        """What an httpx error means here: the control plane could not be reached (any more)."""
        return ConnectionFailed(
            f"cannot reach the control plane at {self.api_base} ({describe_http_error(exc)}); "
            "is it running? (`edge-runner up` or `edge-runner control`)"
        )


class Client(_Base):
    """A blocking client. Use as a context manager, or call :meth:`close`."""

    def __init__(self, api_base: str, token: str, **options: Unpack[ClientOptions]) -> None:
        super().__init__(api_base, token, **options)
        self._http = httpx.Client(**self._http_options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(
        self, method: str, path: str, *, params: _Params | None = None, json: object = None
    ) -> _Answer:
        with map_httpx_errors(self._unreachable):
            response = self._http.request(method, path, params=params, json=json)
        return _answer(response)

    def info(self) -> ControlInfo:
        """Version, protocol version and tunnel addresses."""
        return self._request("GET", "/v2/info")

    def models(self) -> list[ModelView]:
        """The models of this token's user, with method signatures."""
        return list(self._request("GET", "/v2/models")["models"])

    def model(self, model_id: str) -> ModelView:
        """One model with its methods."""
        return self._request("GET", f"/v2/models/{_seg(model_id)}")

    def runners(self) -> list[RunnerView]:
        """This user's runners and their state."""
        return list(self._request("GET", "/v2/runners")["runners"])

    def replicas(self) -> list[ReplicaView]:
        """The live control-plane replicas (one for an embedded control plane)."""
        return list(self._request("GET", "/v2/replicas")["replicas"])

    def predict(self, model_id: str, method: str = "predict", /, **kwargs: object) -> JSONValue:
        """Call a unary method and return its output."""
        return self._request(
            "POST", f"/v2/models/{_seg(model_id)}/{_seg(method)}", json=_arguments(kwargs)
        )["output"]

    def predict_batch(
        self, model_id: str, inputs: Sequence[Mapping[str, object]], method: str = "predict"
    ) -> list[BatchResult]:
        """Call a unary method once per item of ``inputs`` (keyword arguments), as one batch.

        The control plane runs the items in parallel and answers them in order: one
        :class:`BatchResult` per input, a failed item with its error in its place.

        Raises:
            ApiError: the batch as a whole was refused (over the control plane's
                ``--max-batch``, a streaming method, the queue is full, ...).
        """
        path = f"/v2/models/{_seg(model_id)}/{_seg(method)}"
        return _batch_results(
            self._request("POST", path, json=[_arguments(dict(i)) for i in inputs])
        )

    def cancel(self, task_id: str) -> dict[str, str]:
        """Cancel a queued or running task: ``{"task_id": ..., "status": "cancelled"}``."""
        return self._request("DELETE", f"/v2/tasks/{_seg(task_id)}")

    def tasks(self, limit: int = 100) -> list[TaskView]:
        """Queued and running tasks, then the most recent finished ones."""
        return list(self._request("GET", "/v2/tasks", params={"limit": limit})["tasks"])

    def drain_runner(self, runner_id: str) -> dict[str, str]:
        """Ask a runner to stop taking tasks (it finishes the ones it has):
        ``{"runner_id": ..., "status": "draining"}``."""
        return self._request("POST", f"/v2/runners/{_seg(runner_id)}/drain")

    def runner_logs(
        self,
        runner_id: str,
        *,
        limit: int = 200,
        level: str | None = None,
        grep: str | None = None,
    ) -> list[LogRecordView]:
        """The log records a runner sent over its tunnel, oldest first."""
        params = {k: v for k, v in (("limit", limit), ("level", level), ("grep", grep)) if v}
        return list(
            self._request("GET", f"/v2/runners/{_seg(runner_id)}/logs", params=params)["records"]
        )

    def follow_runner_logs(
        self, runner_id: str, *, limit: int = 0, level: str | None = None
    ) -> Iterator[LogRecordView]:
        """The runner's log records as they come (Server-Sent Events); blocks."""
        params: dict[str, str | int] = {"follow": 1, "limit": limit}
        if level:
            params["level"] = level
        path = f"/v2/runners/{_seg(runner_id)}/logs"
        with (
            map_httpx_errors(self._unreachable),
            self._http.stream("GET", path, params=params, timeout=None) as response,
        ):
            if response.status_code >= 400:
                raise _api_error(response, response.read())
            for event, data in parse_sse(response.iter_lines()):
                if event == "log":
                    yield json.loads(data)

    def create_token(
        self, name: str, scopes: list[str], expires_in: float | None = None
    ) -> CreatedTokenView:
        """Create a token; the answer holds the secret, shown this once."""
        body: dict[str, object] = {"name": name, "scopes": scopes}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return self._request("POST", "/v2/tokens", json=body)

    def tokens(self) -> list[TokenView]:
        """This user's tokens (ids, names, scopes; never the secrets)."""
        return list(self._request("GET", "/v2/tokens")["tokens"])

    def revoke_token(self, token_id: str) -> RevokedTokenView:
        """Revoke a token by id; tunnels opened with it close."""
        return self._request("DELETE", f"/v2/tokens/{_seg(token_id)}")

    def enroll_runner(self, runner_id: str) -> EnrolledRunnerView:
        """Exchange this (user) token for a runner credential (``er_rt_``) for ``runner_id``."""
        body = {"runner_id": runner_id}
        return self._request("POST", "/v2/runners/enroll", json=body)

    def generate(
        self, model_id: str, method: str = "generate", /, **kwargs: object
    ) -> Iterator[JSONValue]:
        """Call a streaming method; yields outputs as they arrive."""
        path = f"/v2/models/{_seg(model_id)}/{_seg(method)}"
        with (
            map_httpx_errors(self._unreachable),
            self._http.stream("POST", path, json=_arguments(kwargs)) as response,
        ):
            if response.status_code >= 400:
                raise _api_error(response, response.read())
            for event, data in parse_sse(response.iter_lines()):
                item = stream_item(event, data)
                if event == "done":
                    return
                yield item

    def stream(
        self, model_id: str, method: str, inputs: Iterable[object], /, **kwargs: object
    ) -> Iterator[JSONValue]:
        """Call a stream-in method (``def m(self, items: Iterator[T], ...) -> Iterator[U]``).

        ``inputs`` is read as the model takes its items (a generator may produce them live),
        ``kwargs`` are the method's other arguments; yields outputs as they arrive. Stopping
        early (closing the iterator) cancels the call. Runs over the control plane's
        WebSocket route; ``timeout`` bounds the wait for each next output.
        """
        url, context = self._stream_target(model_id, method)
        from edge_runner._stream_in import stream_in

        return stream_in(
            url,
            self._token,
            inputs,
            _arguments(kwargs),
            ssl_context=context,
            idle_timeout=self._timeout,
        )

    def chat(
        self, model_id: str, messages: Sequence[Mapping[str, object]], /, **options: object
    ) -> ChatCompletionView:
        """One chat completion (``/v1/chat/completions``): the OpenAI ``chat.completion``."""
        body = {**options, "model": model_id, "messages": messages, "stream": False}
        return self._request("POST", "/v1/chat/completions", json=body)

    def chat_stream(
        self, model_id: str, messages: Sequence[Mapping[str, object]], /, **options: object
    ) -> Generator[str, None, None]:
        """Stream a chat answer from ``/v1/chat/completions``; yields text as it comes.

        ``options`` are OpenAI request fields (``max_tokens``, ``temperature``, ...).
        """
        body = {**options, "model": model_id, "messages": messages, "stream": True}
        with (
            map_httpx_errors(self._unreachable),
            self._http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            if response.status_code >= 400:
                raise _api_error(response, response.read())
            for _, data in parse_sse(response.iter_lines()):
                if data == "[DONE]":
                    return
                text = _chat_delta(json.loads(data))
                if text:
                    yield text


def _chat_delta(doc: JSONValue) -> str:
    """The text of one ``chat.completion.chunk``; an error document raises."""
    if not isinstance(doc, dict):
        return ""
    if "error" in doc:
        error = doc["error"] if isinstance(doc["error"], dict) else {"message": doc["error"]}
        raise TaskFailed(0, str(error.get("code", "ERROR")), str(error.get("message")))
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    delta = (choice.get("delta") if isinstance(choice, dict) else None) or {}
    return str((delta.get("content") if isinstance(delta, dict) else None) or "")


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`."""

    def __init__(self, api_base: str, token: str, **options: Unpack[ClientOptions]) -> None:
        super().__init__(api_base, token, **options)
        self._http = httpx.AsyncClient(**self._http_options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, params: _Params | None = None, json: object = None
    ) -> _Answer:
        with map_httpx_errors(self._unreachable):
            response = await self._http.request(method, path, params=params, json=json)
        return _answer(response)

    async def info(self) -> ControlInfo:
        """Version, protocol version and tunnel addresses."""
        return await self._request("GET", "/v2/info")

    async def models(self) -> list[ModelView]:
        """The models of this token's user."""
        return list((await self._request("GET", "/v2/models"))["models"])

    async def model(self, model_id: str) -> ModelView:
        """One model with its methods."""
        return await self._request("GET", f"/v2/models/{_seg(model_id)}")

    async def runners(self) -> list[RunnerView]:
        """This user's runners."""
        return list((await self._request("GET", "/v2/runners"))["runners"])

    async def predict(
        self, model_id: str, method: str = "predict", /, **kwargs: object
    ) -> JSONValue:
        """Call a unary method and return its output."""
        doc = await self._request(
            "POST", f"/v2/models/{_seg(model_id)}/{_seg(method)}", json=_arguments(kwargs)
        )
        return doc["output"]

    async def predict_batch(
        self, model_id: str, inputs: Sequence[Mapping[str, object]], method: str = "predict"
    ) -> list[BatchResult]:
        """Call a unary method once per item of ``inputs``, as one batch; see
        :meth:`Client.predict_batch`."""
        path = f"/v2/models/{_seg(model_id)}/{_seg(method)}"
        return _batch_results(
            await self._request("POST", path, json=[_arguments(dict(i)) for i in inputs])
        )

    async def generate(
        self, model_id: str, method: str = "generate", /, **kwargs: object
    ) -> AsyncIterator[JSONValue]:
        """Call a streaming method; yields outputs as they arrive."""
        path = f"/v2/models/{_seg(model_id)}/{_seg(method)}"
        with map_httpx_errors(self._unreachable):
            async with self._http.stream("POST", path, json=_arguments(kwargs)) as response:
                if response.status_code >= 400:
                    raise _api_error(response, await response.aread())
                parser = SSEParser()
                async for line in response.aiter_lines():
                    parsed = parser.feed(line)
                    if parsed is None:
                        continue
                    item = stream_item(*parsed)
                    if parsed[0] == "done":
                        return
                    yield item

    def stream(
        self,
        model_id: str,
        method: str,
        inputs: Iterable[object] | AsyncIterable[object],
        /,
        **kwargs: object,
    ) -> AsyncIterator[JSONValue]:
        """Call a stream-in method (see :meth:`Client.stream`); ``inputs`` may be async."""
        url, context = self._stream_target(model_id, method)
        from edge_runner._stream_in import astream_in

        return astream_in(
            url,
            self._token,
            inputs,
            _arguments(kwargs),
            ssl_context=context,
            idle_timeout=self._timeout,
        )

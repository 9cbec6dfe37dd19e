"""httpx errors are translated at one boundary, the same way for the blocking and asyncio client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

from edge_runner._http import describe_http_error, map_httpx_errors
from edge_runner.client import AsyncClient, Client
from edge_runner.errors import ConnectionFailed


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback address whose port is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_only_httpx_errors_are_translated_and_the_cause_is_kept() -> None:
    """An httpx error becomes the translated one, chained; anything else passes untouched."""
    cause = httpx.ReadTimeout("")

    def lost(exc: httpx.HTTPError) -> ConnectionFailed:
        return ConnectionFailed(f"lost: {describe_http_error(exc)}")

    with (
        pytest.raises(ConnectionFailed, match=r"^lost: ReadTimeout$") as caught,
        map_httpx_errors(lost),
    ):
        raise cause
    assert caught.value.__cause__ is cause
    with pytest.raises(ValueError), map_httpx_errors(ConnectionFailed):
        raise ValueError("not ours to translate")


def test_blocking_and_asyncio_clients_say_the_same_when_nothing_answers(refusing_url: str) -> None:
    """Unary and streaming calls of both clients raise the same ConnectionFailed."""

    def blocking() -> list[BaseException]:
        errors: list[BaseException] = []
        with Client(refusing_url, "token") as client:
            for call in (client.info, lambda: list(client.generate("m"))):
                with pytest.raises(ConnectionFailed) as caught:
                    call()
                errors.append(caught.value)
        return errors

    async def asyncio_client() -> list[BaseException]:
        errors: list[BaseException] = []
        async with AsyncClient(refusing_url, "token") as client:
            with pytest.raises(ConnectionFailed) as caught:
                await client.info()
            errors.append(caught.value)
            with pytest.raises(ConnectionFailed) as caught:
                _ = [item async for item in client.generate("m")]
            errors.append(caught.value)
        return errors

    errors = blocking() + asyncio.run(asyncio_client())
    assert len(errors) == 4
    for error in errors:  # the words of the cause differ (sockets vs anyio), the mapping not
        assert isinstance(error.__cause__, httpx.ConnectError)
        assert str(error) == (
            f"cannot reach the control plane at {refusing_url} "
            f"({describe_http_error(error.__cause__)}); "
            "is it running? (`edge-runner up` or `edge-runner control`)"
        )

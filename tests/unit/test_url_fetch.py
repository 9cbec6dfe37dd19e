"""Fetching input URLs: a real HTTP server on loopback, and every refusal the rules promise."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from edge_runner.backends.url_fetch import MAX_REDIRECTS, UrlFetcher, check_address
from edge_runner.errors import BackendError, ErrorCode
from tests.conftest import MS

BODY = b"\x89PNG not really" * 10


class _Handler(http.server.BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path
        if path == "/image":
            self._send(200, BODY)
        elif path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", path[len("/to?") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/chunked":  # no Content-Length: the cap counts what arrives
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BODY * 10)
            self.close_connection = True
        elif path == "/stall":
            self.release.wait(10_000 * MS)
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1:0; its base URL."""
    release = threading.Event()
    handler = type("H", (_Handler,), {"release": release})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(10_000 * MS)


def _refusal(fetcher: UrlFetcher, url: str) -> str:
    with pytest.raises(BackendError) as info:
        fetcher.fetch(url)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    return str(info.value)


def test_fetches_from_loopback_and_follows_redirects(server: str) -> None:
    """A URL's body comes back; a redirect to another allowed URL is followed."""
    fetcher = UrlFetcher(timeout=10_000 * MS, max_bytes=1000)
    assert fetcher.fetch(f"{server}/image") == BODY
    assert fetcher.fetch(f"{server}/to?{server}/image") == BODY


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fd00:ec2::254]/", "cloud metadata address"),
        ("http://0.0.0.0/", "not a unicast address"),
        ("ftp://127.0.0.1/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http:///x", "names no host"),
    ],
)
def test_refused_urls_are_never_fetched(url: str, words: str) -> None:
    """Other schemes and link-local, metadata or non-unicast addresses are refused, asking for
    the bytes."""
    message = _refusal(UrlFetcher(timeout=10_000 * MS), url)
    assert words in message and "send the bytes instead" in message


def test_a_redirect_is_checked_again(server: str) -> None:
    """A redirect from an allowed host to the metadata address is refused."""
    fetcher = UrlFetcher(timeout=10_000 * MS)
    assert "link-local" in _refusal(
        fetcher, f"{server}/to?http://169.254.169.254/latest/meta-data/"
    )
    assert f"more than {MAX_REDIRECTS} redirects" in _refusal(fetcher, f"{server}/loop")


def test_the_size_cap_and_the_deadline(server: str) -> None:
    """A body over the cap is refused (from Content-Length, or counted); a server that stalls
    fails at the deadline; an error status is reported."""
    fetcher = UrlFetcher(timeout=300 * MS, max_bytes=len(BODY) - 1)
    assert "over the" in _refusal(fetcher, f"{server}/image")
    assert "over the" in _refusal(fetcher, f"{server}/chunked")
    assert "could not fetch" in _refusal(fetcher, f"{server}/stall")
    assert "HTTP 404" in _refusal(UrlFetcher(timeout=10_000 * MS), f"{server}/missing")


def test_check_address() -> None:
    """Loopback and private LAN addresses may be fetched from; link-local ones may not."""
    assert check_address("127.0.0.1") is None and check_address("10.1.2.3") is None
    assert check_address("::1") is None
    assert check_address("169.254.169.254") is not None
    assert check_address("fe80::1%eth0") is not None
    assert check_address("224.0.0.1") is not None

"""Fetching the URLs of data-type inputs (``Image(url=...)``), only where a runner allows it.

A runner started with ``--allow-url-fetch`` fetches a media input that has a URL and no bytes
before the method runs; without it such an input fails with a message asking for the bytes
(air-gapped sites have nothing to fetch from, and a runner on a LAN must not become a way in:
SSRF). When fetching is allowed:

- only ``http`` and ``https``;
- the host is resolved once and every address checked: link-local (``169.254.0.0/16``,
  ``fe80::/10``, where cloud metadata services live), the known metadata addresses, multicast,
  unspecified and reserved ones are refused; the connection goes to the checked address, so a
  second DNS answer cannot swap it (the name still goes in ``Host`` and TLS SNI);
- redirects (at most :data:`MAX_REDIRECTS`) are followed by hand, each target checked again;
- one deadline (``timeout``) for the whole fetch, and the body is capped at ``max_bytes``
  (``Content-Length`` first, then counted as it arrives).

Every failure is a :class:`~edge_runner.errors.BackendError` with ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from urllib.parse import urljoin, urlsplit

import httpx

from edge_runner._http import describe_http_error, map_httpx_errors
from edge_runner.errors import BackendError, ErrorCode

__all__ = ["MAX_REDIRECTS", "UrlFetcher", "check_address"]

MAX_REDIRECTS = 5
#: metadata services outside the link-local block (AWS over IPv6; Alibaba Cloud)
_METADATA = (ipaddress.ip_network("fd00:ec2::/32"), ipaddress.ip_network("100.100.100.200/32"))
_CHUNK = 64 * 1024
_AWS_IMDS = (
    (169 << 24) | (254 << 16) | (169 << 8) | 254
)  # in the link-local block: named for the message


def _refused(url: str, why: str) -> BackendError:
    return BackendError(
        ErrorCode.INVALID_ARGUMENT,
        f'refusing to fetch {url[:200]!r}: {why}; send the bytes instead ({{"base64": "..."}})',
    )


def check_address(address: str) -> str | None:
    """Why ``address`` (an IP) must not be fetched from, or ``None`` when it may be."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:  # this machine (::1 sits in a "reserved" block)
        return None
    if any(ip in net for net in _METADATA):
        return f"{ip} is a cloud metadata address"
    if ip.is_link_local:  # 169.254.169.254, the usual metadata service, among them
        return f"{ip} is a link-local address (where cloud metadata services live)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address"
    return None


class UrlFetcher:
    """Fetches one URL at a time under the rules in the module docstring.

    Args:
        timeout: seconds for the whole fetch, redirects included.
        max_bytes: the most bytes a body may have.
    """

    def __init__(self, *, timeout: float = 30.0, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes

    def fetch(self, url: str, cancel: threading.Event | None = None) -> bytes:
        """The body at ``url``.

        Raises:
            BackendError: ``INVALID_ARGUMENT``: a refused scheme or address, too many
                redirects, an error status, a body over the cap, the deadline, or a network
                error (the message says which).
        """
        deadline = time.monotonic() + self.timeout
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = self._one(current, deadline, cancel)
            if location is None:
                if status >= 400:
                    raise BackendError(
                        ErrorCode.INVALID_ARGUMENT, f"fetching {current[:200]!r} gave HTTP {status}"
                    )
                return body
            current = urljoin(current, location)
        raise _refused(url, f"more than {MAX_REDIRECTS} redirects")

    def _one(
        self, url: str, deadline: float, cancel: threading.Event | None
    ) -> tuple[int, str | None, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise _refused(url, "only http and https URLs are fetched")
        host = parts.hostname
        if not host:
            raise _refused(url, "it names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise _refused(url, "its port is not a number") from exc
        address = self._resolve(url, host, port)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _refused(url, f"the {self.timeout:g} s deadline passed")
        # connect to the address that was checked; the name goes in Host and in TLS SNI
        literal = f"[{address}]" if ":" in address else address
        pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "edge-runner"}

        def failed(exc: httpx.HTTPError) -> BackendError:
            return BackendError(
                ErrorCode.INVALID_ARGUMENT,
                f"could not fetch {url[:200]!r}: {describe_http_error(exc)}",
            )

        with (
            map_httpx_errors(failed),
            httpx.Client(timeout=remaining, trust_env=False, follow_redirects=False) as client,
            client.stream(
                "GET", pinned, headers=headers, extensions={"sni_hostname": host}
            ) as response,
        ):
            if response.is_redirect:
                location = response.headers.get("location")
                if not location:
                    raise _refused(url, f"HTTP {response.status_code} without a Location")
                return response.status_code, location, b""
            return response.status_code, None, self._read(url, response, deadline, cancel)

    def _resolve(self, url: str, host: str, port: int) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise BackendError(
                ErrorCode.INVALID_ARGUMENT, f"could not resolve the host of {url[:200]!r}: {exc}"
            ) from exc
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:  # every answer: one bad one refuses the name
            why = check_address(address)
            if why is not None:
                raise _refused(url, why)
        return addresses[0]

    def _read(
        self,
        url: str,
        response: httpx.Response,
        deadline: float,
        cancel: threading.Event | None,
    ) -> bytes:
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise _refused(url, f"its {length} bytes are over the {self.max_bytes}-byte limit")
        body = bytearray()
        for piece in response.iter_bytes(_CHUNK):
            body += piece
            if len(body) > self.max_bytes:
                raise _refused(url, f"it is over the {self.max_bytes}-byte limit")
            if time.monotonic() > deadline:
                raise _refused(url, f"the {self.timeout:g} s deadline passed")
            if cancel is not None and cancel.is_set():
                raise BackendError(ErrorCode.CANCELLED, "cancelled while fetching an input")
        return bytes(body)

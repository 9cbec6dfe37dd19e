"""Looking at a TLS server's certificate: what it says, and whether our trust settings accept it.

Two handshakes: one that verifies nothing, to read the certificate even when it would be refused
(so the report can name it), then one verified exactly as the CLI verifies (the CA file or the
system store, and the host name).
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass

__all__ = ["CertInfo", "TlsReport", "inspect_tls"]


@dataclass(frozen=True)
class CertInfo:
    """The server certificate's identity and validity.

    Attributes:
        subject: RFC 4514 subject, e.g. ``CN=127.0.0.1``.
        issuer: RFC 4514 issuer.
        not_after: the end of validity (UTC).
        names: DNS names and IP addresses it is valid for.
    """

    subject: str
    issuer: str
    not_after: datetime.datetime
    names: tuple[str, ...]


@dataclass(frozen=True)
class TlsReport:
    """The outcome of :func:`inspect_tls`.

    Attributes:
        cert: the server's certificate, or None when no handshake succeeded.
        version: the TLS version negotiated (``TLSv1.3``).
        verified: whether the verified handshake succeeded.
        verify_code: OpenSSL's verification error code (0 when verified or not a cert problem).
        error: why a handshake failed ("" when verified).
    """

    cert: CertInfo | None = None
    version: str = ""
    verified: bool = False
    verify_code: int = 0
    error: str = ""


#: OpenSSL X509_V_ERR_* codes the doctor explains
HOSTNAME_MISMATCH = 62
CERT_EXPIRED = 10


def _cert_info(der: bytes) -> CertInfo:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [*san.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        names=names,
    )


def _handshake(
    host: str, port: int, context: ssl.SSLContext, timeout: float
) -> tuple[bytes | None, str]:
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        return tls.getpeercert(binary_form=True), tls.version() or ""


def inspect_tls(host: str, port: int, ca_file: str | None, timeout: float) -> TlsReport:
    """Read ``host:port``'s certificate and verify it against ``ca_file`` (or the system store).

    Raises:
        OSError: nothing accepts a TCP connection there (refused, unreachable, timed out).
        ssl.SSLError: ``ca_file`` cannot be loaded.
    """
    verified_context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    try:
        der, version = _handshake(host, port, loose, timeout)
    except ssl.SSLError as exc:
        return TlsReport(error=f"the TLS handshake failed: {exc.reason or exc}")
    cert = _cert_info(der) if der else None
    try:
        _handshake(host, port, verified_context or ssl.create_default_context(), timeout)
    except ssl.SSLCertVerificationError as exc:
        return TlsReport(
            cert, version, False, exc.verify_code, str(exc.verify_message or exc.reason or exc)
        )
    except ssl.SSLError as exc:
        return TlsReport(cert, version, False, 0, str(exc.reason or exc))
    return TlsReport(cert, version, True)

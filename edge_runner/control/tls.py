"""TLS material for the control plane: a private CA and a server certificate it signs.

``edge-runner control --tls-self-signed`` keeps both under ``<data dir>/tls/`` (keys 0600) and
reuses them on later starts; runners and clients trust ``ca.pem`` (``--ca-file``, or the
context's ``ca_file``). The CA's SHA-256 fingerprint is printed so it can be checked out of band.

The certificate names localhost, the loopback addresses, the host name and the ``--host``
address; for a wildcard ``--host`` (0.0.0.0, ::) every address of this machine's interfaces
too, since clients on the LAN dial one of those. Nothing is looked up (no DNS).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_runner.config import write_private_file

__all__ = ["TlsFiles", "fingerprint", "self_signed", "server_names"]

logger = logging.getLogger(__name__)

_WILDCARDS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the server certificate and key, and of the CA that signed them."""

    cert: Path
    key: Path
    ca: Path


def fingerprint(cert_pem: bytes) -> str:
    """``SHA256:AB:CD:...`` of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def self_signed(data_dir: Path, hosts: list[str]) -> TlsFiles:
    """Create (or reuse) a private CA and a server certificate for ``hosts`` under data_dir/tls."""
    folder = data_dir / "tls"
    files = TlsFiles(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    if files.cert.exists() and files.key.exists() and files.ca.exists():
        _warn_if_not_covered(files.cert, hosts)
        return files
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("edge-runner private CA"))
        .issuer_name(_name("edge-runner private CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = server_names(hosts)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(next((h for h in hosts if h not in _WILDCARDS), "localhost")))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    files.cert.write_bytes(server_cert.public_bytes(pem))
    write_private_file(
        files.key,
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    # The CA key is not kept: nothing else is ever signed with it.
    return files


def server_names(hosts: list[str]) -> list[x509.GeneralName]:
    """The subject alternative names for a server listening on ``hosts``."""
    wanted = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    for host in hosts:
        if host in _WILDCARDS:
            wanted |= _interface_addresses()
        else:
            wanted.add(host)
    names: list[x509.GeneralName] = []
    for host in sorted(wanted):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _interface_addresses() -> set[str]:
    """This machine's unicast addresses (link-local ones need a scope, so they are left out)."""
    import psutil

    found = set()
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(addr.address.split("%")[0])
            except ValueError:
                continue
            if not ip.is_link_local and not ip.is_multicast:
                found.add(str(ip))
    return found


def _warn_if_not_covered(cert_file: Path, hosts: list[str]) -> None:
    """A reused certificate made for another --host: say so, since clients dialling it fail."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    missing = [h for h in hosts if h not in _WILDCARDS and h not in have]
    if missing:
        logger.warning(
            "the TLS certificate in %s does not name %s (it was made for another --host); "
            "clients dialling that address will refuse it. Remove that folder to make a new "
            "CA and certificate (then copy the new ca.pem to every runner and client), or use "
            "--tls-cert/--tls-key",
            cert_file.parent,
            ", ".join(missing),
        )

"""Container health check: ``python healthcheck.py control|runner`` exits 0 when healthy.

- ``control``: ``GET /healthz`` on 127.0.0.1 (``EDGE_RUNNER_HEALTH_PORT``, default 7070), over
  TLS first (a loopback liveness probe, so the certificate is not checked), then plain HTTP.
- ``runner``: the runner's local API (loopback, no port published) says it is registered with
  the control plane, the same thing its systemd watchdog follows.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def control() -> bool:
    """Whether the control plane answers /healthz."""
    port = int(os.environ.get("EDGE_RUNNER_HEALTH_PORT", "7070"))
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    for scheme, context in (("https", unverified), ("http", None)):
        try:
            url = f"{scheme}://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=3, context=context) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            continue
    return False


def runner() -> bool:
    """Whether the runner in this container is registered (its local API's snapshot)."""
    from edge_runner.local_client import LocalClient

    try:
        with LocalClient.find() as client:
            return bool(client.snapshot().get("ready"))
    except Exception:  # no runner yet, or it is stopping: unhealthy either way
        return False


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "control"
    sys.exit(0 if (control() if what == "control" else runner()) else 1)

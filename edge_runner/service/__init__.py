"""Running edge-runner as a service: the systemd notify protocol and the unit files.

- :mod:`.notify`: ``sd_notify`` spoken directly (``READY=1``, ``STATUS=``, ``STOPPING=1``,
  ``WATCHDOG=1``) over ``$NOTIFY_SOCKET``, with the protocol logic free of I/O.
- :mod:`.loop`: the asyncio task that sends status lines and watchdog pings for a daemon.
- :mod:`.daemons`: what ``control``, ``runner`` and ``up`` report, and when they are healthy.
- :mod:`.units`: systemd units and launchd plists, rendered from one place.
- :mod:`.credentials`: the token a service manager hands a runner (``LoadCredential=``).

Nothing here imports the control plane or the runner at run time, so ``edge-runner service``
stays as light as the other client commands.
"""

from __future__ import annotations

__all__: list[str] = []

"""Limit the local ICE host candidates to chosen addresses.

aioice gathers host candidates from every interface except loopback, and has no per-connection option to
change that. Tests, ``serve`` and ``demo`` must keep every packet on 127.0.0.1, and a user on a machine with
many interfaces may want to pick one. The only hook is the module-level ``aioice.ice.get_host_addresses``,
so pinning is process-wide: call :func:`pin_host_addresses` before creating peer connections.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

import aioice.ice

from ..errors import ConfigError

log = logging.getLogger(__name__)

_original = aioice.ice.get_host_addresses


def pin_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice offer exactly ``addresses`` as host candidates; an empty sequence restores the default."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    pinned: list[str] = []
    for address in addresses:
        try:
            pinned.append(str(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise ConfigError(f"--ice-host {address!r} is not an IP address; give one like 127.0.0.1") from exc

    def pinned_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = pinned_host_addresses
    log.debug("ICE host candidates pinned to %s", pinned)

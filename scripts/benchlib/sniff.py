"""When the last packet from a process reached loopback: a packet socket on ``lo``, and the process's ports.

:class:`LoopbackSniffer` reads every IPv4 packet delivered on ``lo`` (an ``AF_PACKET`` socket, so it needs root
or CAP_NET_RAW) in a thread and keeps, per (protocol, source port, kind), the ``time.monotonic()`` at which the
latest one was read: one dict update per packet, nothing kept beyond that. Kinds follow what a dead-link
watchdog can count: TCP segments that carry data (``"data"``; the kernel's bare ACKs are sent for a stopped
process too, so they are left out), and UDP datagrams split by RFC 7983's first-byte ranges into ``"stun"``
(ICE consent) and ``"media"`` (DTLS, SCTP inside it, RTP and RTCP). The time is taken when the thread reads
the packet, which is within a millisecond or so of its delivery on an idle loop.

:func:`socket_ports` lists the local ports of a process's sockets from /proc (no psutil: not a dependency).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_HOST = 0  # on lo each packet is seen twice: as PACKET_OUTGOING and as PACKET_HOST; keep the delivery
READ_TIMEOUT_S = 0.1  # how often the thread looks at its stop flag


def udp_kind(first_byte: int) -> str:
    """RFC 7983: 0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP (everything that is not ICE is "media" here)."""
    return "stun" if first_byte < 4 else "media"


def classify(packet: bytes) -> tuple[str, int, str] | None:
    """(protocol, source port, kind) of an IPv4 TCP or UDP packet, or None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4], "big")
    proto = packet[9]
    body = packet[header:total]
    if proto == socket.IPPROTO_TCP and len(body) >= 20:
        payload = len(body) - (body[12] >> 4) * 4
        return ("tcp", int.from_bytes(body[0:2], "big"), "data") if payload > 0 else None
    if proto == socket.IPPROTO_UDP and len(body) > 8:
        return "udp", int.from_bytes(body[0:2], "big"), udp_kind(body[8])
    return None


class LoopbackSniffer:
    """``with LoopbackSniffer() as sniffer``: ``sniffer.last_from(ports, kinds)`` is the newest arrival time."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int, str], float] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self._thread = threading.Thread(target=self._read, name="bench-sniffer", daemon=True)

    def __enter__(self) -> LoopbackSniffer:
        self._sock.bind(("lo", 0))
        self._sock.settimeout(READ_TIMEOUT_S)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._sock.close()

    def _read(self) -> None:
        sock, last = self._sock, self.last
        while not self._stop.is_set():
            try:
                packet, address = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return  # closed under us
            at = time.monotonic()
            if address[1] != ETH_P_IP or address[2] != PACKET_HOST:
                continue
            key = classify(packet)
            if key is not None:
                last[key] = at  # one writer; readers take a snapshot

    def last_from(self, ports: set[tuple[str, int]], kinds: set[str]) -> float | None:
        """When the newest packet of one of ``kinds`` from one of ``ports`` (protocol, port) was read."""
        times = [t for (proto, port, kind), t in dict(self.last).items() if (proto, port) in ports and kind in kinds]
        return max(times) if times else None


def sniffer_unavailable() -> str | None:
    """Why a packet socket cannot be opened here (None when it can)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL)).close()
    except (OSError, AttributeError) as exc:  # AttributeError: no AF_PACKET on this platform
        return f"no packet socket ({exc}); needs root or CAP_NET_RAW"
    return None


def socket_ports(pid: int) -> set[tuple[str, int]]:
    """(protocol, local port) of every TCP and UDP socket process ``pid`` has open, IPv4 and IPv6."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we look
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports: set[tuple[str, int]] = set()
    for proto in ("tcp", "udp"):
        for table in (proto, proto + "6"):
            path = Path(f"/proc/{pid}/net/{table}")
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add((proto, int(fields[1].rsplit(":", 1)[1], 16)))
    return ports

"""Dead link: the last packet from a frozen server → the client shows ``reconnecting: connection lost``.

The client is the real program (``python -m voicecoach run --plain``, a meeting WAV on ``--loop`` as its
microphone); the server (:class:`~benchlib.serverproc.ServerProcess`) is another process. Once the link has
been up for ``SETTLE_S``, the server is frozen with SIGSTOP, as ``tests/faults/test_dead_link.py`` does: no close,
no error, nothing more on the wire. The end point is the moment the bench reads the client's
``! reconnecting: connection lost (...)`` line (what the user sees). Then the server is thawed, the client
reconnects, and the next freeze follows on the new link.

The start point is the last packet the server's sockets put on loopback before the freeze, seen by a packet
socket (:mod:`benchlib.sniff`), counting what each watchdog counts: on WebRTC every UDP datagram that is not
STUN (RTP, RTCP, DTLS/SCTP), on the WebSocket every TCP segment with data (frames and pongs). Without a
packet socket (not root) the start point is the freeze itself, and ``measured_from`` says so: that figure can
read shorter than the watchdog's bound, because the last packet may have come before the freeze (up to one
RTCP interval on WebRTC, up to a heartbeat on an idle WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.common import LOOPBACK, child_env, python, speech
from benchlib.serverproc import ServerProcess
from benchlib.sniff import LoopbackSniffer, sniffer_unavailable, socket_ports
from benchlib.stats import summarize
from voicecoach.audio.files import wav_header
from voicecoach.audio.frames import WIRE_RATE, silence

LINES = ("Point one is the budget.", "Point two is the hiring plan.", "Point three is the launch date.")
SETTLE_S = 2.0  # audio and events flowing on the new link before the freeze
# The WebRTC watchdog checks every 0.5 s from the moment the link is up, so a freeze a fixed time after the
# link came up always falls at the same point between two checks, and every sample would read the same. The
# freezes are spread evenly over one check interval instead.
PHASE_SPREAD_S = 0.5
LOST = "reconnecting: connection lost"
CONNECTED = "connected over"
COUNTED = {"webrtc": {"media"}, "websocket": {"data"}}  # what each watchdog counts (see the module doc)
CLIENT_ENV = {"VOICECOACH_HTTP_TIMEOUT": "2"}  # a reconnect to the frozen server gives up quickly


def _mic(path: Path) -> Path:
    gap = silence(WIRE_RATE)
    pcm = np.concatenate([part for line in LINES for part in (speech(line), gap)])
    path.write_bytes(wav_header(WIRE_RATE, 1, pcm.size * 2) + pcm.astype("<i2").tobytes())
    return path


class _Lines:
    """The client's stdout lines with the monotonic time each was read."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []

    def count(self, fragment: str) -> int:
        return sum(fragment in line for _, line in self.seen)

    def nth(self, fragment: str, n: int) -> tuple[float, str]:
        return [(t, line) for t, line in self.seen if fragment in line][n]

    async def until(self, fragment: str, n: int, limit_s: float, proc: asyncio.subprocess.Process) -> None:
        try:
            async with asyncio.timeout(limit_s):
                while self.count(fragment) < n:
                    if proc.returncode is not None:
                        raise RuntimeError(f"the client exited ({proc.returncode}) waiting for {fragment!r}")
                    await asyncio.sleep(0.01)
        except TimeoutError:
            tail = "\n".join(line for _, line in self.seen[-8:])
            raise TimeoutError(f"no {fragment!r} line #{n} within {limit_s:g} s; the client said:\n{tail}") from None


async def _freezes(tmp: Path, transport: str, n: int, sniffer: LoopbackSniffer | None) -> dict[str, Any]:
    mic = _mic(tmp / "deadlink-mic.wav")
    shown: list[float] = []
    from_freeze: list[float] = []
    quiet_before_freeze: list[float] = []
    reasons: list[str] = []
    async with ServerProcess(tmp, utterances=list(LINES) * 200) as server:
        command = [python(), "-m", "voicecoach", "run", "--plain", "--transport", transport]
        command += ["--base-url", server.base_url, "--ice-host", LOOPBACK, "--input-file", str(mic), "--loop"]
        command += ["--output-file", str(tmp / "deadlink-out.wav"), "--duration", f"{30 * n + 30}"]
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_env(tmp, CLIENT_ENV),
        )
        lines = _Lines()

        async def read() -> None:
            assert proc.stdout is not None
            while raw := await proc.stdout.readline():
                lines.seen.append((time.monotonic(), raw.decode(errors="replace").rstrip()))

        reader = asyncio.create_task(read(), name="deadlink-client-lines")
        try:
            for i in range(n):
                await lines.until(CONNECTED, i + 1, 30, proc)
                await asyncio.sleep(SETTLE_S + PHASE_SPREAD_S * i / n)
                ports = socket_ports(server.pid)
                os.kill(server.pid, signal.SIGSTOP)
                frozen = time.monotonic()
                try:
                    await lines.until(LOST, i + 1, 15, proc)
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                at, line = lines.nth(LOST, i)
                from_freeze.append((at - frozen) * 1000)
                reasons.append(line.split(LOST, 1)[1].strip(" ()"))
                last = sniffer.last_from(ports, COUNTED[transport]) if sniffer is not None else None
                if sniffer is not None and last is None:
                    raise RuntimeError(f"no packet from the server's ports {sorted(ports)} was seen on lo")
                if last is not None:
                    shown.append((at - last) * 1000)
                    quiet_before_freeze.append((frozen - last) * 1000)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGCONT)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    out: dict[str, Any] = {
        "freeze_to_shown_ms": summarize(from_freeze),
        "reasons_shown": sorted(set(reasons)),
    }
    if sniffer is not None:
        out["last_packet_to_shown_ms"] = summarize(shown)
        out["last_packet_before_freeze_ms"] = summarize(quiet_before_freeze)
    out["measured_from"] = "last packet" if sniffer is not None else "freeze"
    out["shown_ms"] = out["last_packet_to_shown_ms" if sniffer is not None else "freeze_to_shown_ms"]
    return out


def run(tmp: Path, *, freezes: int) -> dict[str, Any]:
    """``freezes`` freezes per transport, WebRTC then the WebSocket."""
    why = sniffer_unavailable()
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        sniffer = stack.enter_context(LoopbackSniffer()) if why is None else None
        for transport in ("webrtc", "websocket"):
            out[transport] = asyncio.run(_freezes(tmp, transport, freezes, sniffer))
    if why is not None:
        out["last_packet"] = f"not measured: {why}; figures run from the freeze"
    return out

"""Acoustic echo cancellation on the microphone: WebRTC's AEC3, through livekit's ``AudioProcessingModule``.

On laptop speakers the microphone hears the coach's voice and the other side of the call. AEC3 learns the
path from the speakers to the microphone from a far-end reference (:mod:`voicecoach.audio.echo_reference`)
and subtracts it, so that the user's own voice, even over the coach's ("got it" while it talks), is what
reaches the server. livekit's build was measured best of the maintained packages with wheels for Linux,
macOS and Windows (next-wave.md §3: 35-40 dB of echo reduction within 2 s, about 0.08 ms of CPU per 10 ms).

:class:`EchoCancelledSource` wraps the microphone's :class:`~voicecoach.audio.base.FrameSource`, so that both
transports, the meter and the mute all see the cleaned signal. Each 20 ms frame is processed as the two 10 ms
blocks AEC3 takes, each with the far end of the same moment. livekit is imported only here, and only when
echo cancellation is on; if it cannot load, :func:`load_aec3` raises :class:`EchoCancellerMissing`, which
the caller turns into one line and the ``mute_mic_while_speaking`` fallback.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import AudioError
from .base import FrameSource
from .echo_reference import Cursor, FarEnd, PlayedTap
from .frames import FRAME_MS, WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm

log = logging.getLogger(__name__)

BLOCK_SAMPLES = WIRE_RATE // 100  # AEC3 takes exactly 10 ms per call
# AEC3 is handed, with each mic block, the far end of this much later: it cancels poorly when the echo
# trails its reference by under ~3 ms (a laptop's speaker-to-mic path is under 1 ms, and the timestamps may
# be a few ms off either way), and follows delays of hundreds of ms (tests/audio/test_echo_source.py).
REFERENCE_LEAD_S = 0.010
LEAD_SAMPLES = round(REFERENCE_LEAD_S * WIRE_RATE)
LIVE_WAIT_S = 0.025  # how long a frame waits at most for a far end that is behind it (the monitor, our playout)
INSTALL_HINT = "pip install 'livekit>=1.2.1'"


class EchoCancellerMissing(AudioError):
    """The echo canceller's package is not installed or cannot load on this machine."""


class Canceller(Protocol):
    """Removes the echo of ``far`` from ``near``: both one 10 ms block (:data:`BLOCK_SAMPLES`) of 48 kHz mono."""

    def process(self, near: Pcm, far: Pcm) -> Pcm: ...


class Aec3:
    """livekit's ``AudioProcessingModule`` with echo cancellation on (noise suppression and high-pass optional).

    Automatic gain control stays off: the server's own input processing and VAD expect the level as spoken.
    """

    def __init__(self, rtc: Any, *, noise_suppression: bool, high_pass_filter: bool) -> None:
        self._frame = rtc.AudioFrame
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=high_pass_filter
        )
        # The far end is aligned with the microphone by time (echo_reference), so all that is left between
        # them is the acoustic path: a few milliseconds, which AEC3's own delay estimator follows.
        self._apm.set_stream_delay_ms(0)

    def process(self, near: Pcm, far: Pcm) -> Pcm:
        self._apm.process_reverse_stream(self._frame(far.tobytes(), WIRE_RATE, 1, BLOCK_SAMPLES))
        frame = self._frame(near.tobytes(), WIRE_RATE, 1, BLOCK_SAMPLES)
        self._apm.process_stream(frame)  # in place
        return np.frombuffer(frame.data, dtype=np.int16).copy()


def load_aec3(*, noise_suppression: bool = True, high_pass_filter: bool = True) -> Aec3:
    """AEC3, or :class:`EchoCancellerMissing` naming why it cannot load and how to fix it."""
    try:
        rtc = importlib.import_module("livekit.rtc")
        return Aec3(rtc, noise_suppression=noise_suppression, high_pass_filter=high_pass_filter)
    except ImportError as exc:
        raise EchoCancellerMissing(f"the livekit package is missing ({exc}); install it with {INSTALL_HINT}") from exc
    except Exception as exc:  # its native library failed to load or start (an unsupported platform)
        raise EchoCancellerMissing(f"livekit's audio processing cannot start here ({exc})") from exc


@dataclass
class EchoStats:
    """What the canceller did, for the benchmarks and the debug log (all on the event loop's clock)."""

    frames: int = 0
    cpu_s: float = 0.0  # CPU time of the event loop's thread spent in the canceller
    added_s: list[float] = field(default_factory=list)  # per frame: mic frame read → frame returned
    late_reference: int = 0  # frames that waited LIVE_WAIT_S and went on with part of the far end missing
    stalled_reference: int = 0  # frames not waited for: the live far end was further behind than a wait

    def keep(self, added: float) -> None:
        if len(self.added_s) < 100_000:  # about half an hour of frames: plenty for a benchmark
            self.added_s.append(added)


class EchoCancelledSource:
    """The microphone with the speakers' echo removed; otherwise the :class:`FrameSource` it wraps.

    ``far`` is the reference; ``live`` says it is fed by a capture that may be a little behind the microphone
    (the call's monitor), in which case a frame waits up to :data:`LIVE_WAIT_S` for it; ``played`` is our own
    playout tap, drained before every frame and waited for in the same way (a device queues its blocks only a
    few ms before they play, and the far end is read :data:`REFERENCE_LEAD_S` ahead). A canceller that fails
    mid-run is dropped with one warning and the microphone goes on unprocessed: losing the user's voice would
    be worse than hearing an echo.
    """

    def __init__(
        self,
        mic: FrameSource,
        canceller: Canceller,
        far: FarEnd,
        *,
        played: PlayedTap | None = None,
        live: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mic = mic
        self._canceller: Canceller | None = canceller
        self._far = far
        self._played = played
        self._live = live
        self._clock = clock
        self._cursor = Cursor()
        self.realtime = mic.realtime
        self.stats = EchoStats()

    @property
    def jumps(self) -> int:
        """Re-anchors of the microphone's position (stalls, restarts): each costs AEC3 a re-convergence."""
        return self._cursor.jumps

    @property
    def active(self) -> bool:
        return self._canceller is not None

    async def read(self) -> Pcm:
        pcm = await self._mic.read()
        read_at = self._clock()
        began = getattr(self._mic, "frame_time", None)
        if began is None:  # a file paced by the track: read as its frame is due
            began = read_at - FRAME_MS / 1000
        at = self._cursor.place(began, WIRE_FRAME_SAMPLES)
        if self._canceller is None:
            return pcm
        needed = at + WIRE_FRAME_SAMPLES + LEAD_SAMPLES
        if self._played is not None:
            self._played.drain()
        if self._far_is_close_behind(needed):  # worth a bounded wait: the far end is coming
            if self._played is not None:
                self.stats.late_reference += not await self._played.wait_until(needed, LIVE_WAIT_S)
            elif self._live:
                self.stats.late_reference += not await self._far.wait_until(needed, LIVE_WAIT_S)
        elif self._far.end is None or self._far.end < needed:
            self.stats.stalled_reference += 1
        out = self._cancel(pcm, at)
        self.stats.keep(self._clock() - read_at)
        return out

    def _far_is_close_behind(self, needed: int) -> bool:
        """Worth waiting for: the far end is behind, but by less than a wait (a stalled capture is not waited
        for, or every frame would add the whole wait and the microphone's queue would overflow)."""
        end = self._far.end
        return end is not None and 0 < needed - end <= LIVE_WAIT_S * WIRE_RATE

    def _cancel(self, pcm: Pcm, at: int) -> Pcm:
        assert self._canceller is not None
        cpu = time.thread_time()  # this thread's only: PortAudio's and aiortc's threads are not ours to count
        out = np.empty_like(pcm)
        try:
            for lo in range(0, WIRE_FRAME_SAMPLES, BLOCK_SAMPLES):
                hi = lo + BLOCK_SAMPLES
                far = self._far.read(at + lo + LEAD_SAMPLES, BLOCK_SAMPLES)
                out[lo:hi] = self._canceller.process(pcm[lo:hi], far)
        except Exception as exc:  # the native library failed: keep the user's voice, drop the canceller
            log.warning("echo cancellation stopped (%s); the microphone goes on without it", exc)
            self._canceller = None
            return pcm
        self.stats.cpu_s += time.thread_time() - cpu
        self.stats.frames += 1
        return out

    def close(self) -> None:
        stats = self.stats
        if stats.frames:
            added = sorted(stats.added_s)
            log.debug(
                "echo cancellation: %d frames, %.0f us of CPU per 10 ms block, added latency median %.2f ms, "
                "%d frames with the far end late, %d with it stalled",
                stats.frames, stats.cpu_s / (2 * stats.frames) * 1e6, added[len(added) // 2] * 1000,
                stats.late_reference, stats.stalled_reference,
            )  # fmt: skip
        self._mic.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else a device source offers (frame_time, last_latency_s, ended...) is the microphone's.
        # Private names never are: before __init__ has set _mic (a copy, a failed init) that would recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._mic, name)

"""Echo cancellation: echo reduction, with clock drift, the canceller's cost, and "got it" over the coach's voice.

- :func:`run_device` (``echo``): real devices on the bench's virtual PulseAudio. ``module-loopback`` plays
  ``vspeaker.monitor`` into ``vmic`` (the microphone's feed) 80 ms late and attenuated: the speakers' echo. The
  real :class:`~voicecoach.audio.echo.EchoCancelledSource` reads the default input (``vmic.monitor``) through a
  :class:`~voicecoach.audio.devices.DeviceSource` while a :class:`~voicecoach.audio.devices.DeviceSink` plays
  espeak-ng speech on ``vspeaker``. Two reference paths, one pass each: our playout (``PlayedTap``, what a run
  with no call capture uses) and the call's monitor (``CallAudioTee`` on ``vspeaker.monitor``, ``live=True``,
  which may wait for the reference). Per pass: ERLE = 10·log10(Σ raw mic² / Σ cancelled²) over the frames after
  the first 2 s of echo; the canceller's CPU per 10 ms block (``stats.cpu_s / (2 · stats.frames)``: the
  thread time of its calls); the latency it adds, mic frame read → cancelled
  frame returned (``stats.added_s``). Kept alongside, to explain a low ERLE: the worst and median 1 s window,
  how often the mic's and the reference's cursors re-anchored (each costs AEC3 a re-convergence), frames that
  went on with the live reference late, and how far behind the monitor was when a mic frame was read.
- :func:`run_drift` (``echo_drift``): a *synthetic* path, because two virtual sinks of one daemon share its
  clock. The speaker's clock runs 200 ppm fast: the far end is resampled by 200 ppm in numpy, then delayed
  80 ms, low-passed, given a diffuse tail and a noise floor (next-wave.md §3.2's path), and fed through the real
  ``EchoCancelledSource`` + ``PlayedTap`` with simulated frame times (speaker blocks placed at the DAC times a
  200 ppm fast clock gives). The same run at 0 ppm is the control. Long enough in the full run for the
  reference's cursor to re-anchor once (the drift reaches its 10 ms slack after 50 s).
- :func:`run_interrupt` (``echo_interrupt``): the real client (``Runner`` with the echo canceller from
  ``setup_echo``, ``echo_cancellation = "on"``) on the devices and the loopback above, against the local
  server in another process (espeak-ng voice). A long hint plays on ``vspeaker``; after 1 s of the coach alone
  "Got it, thanks." is played into ``vmic`` over it. The server's VAD must hear it through the canceller, end
  the turn while the coach still talks, and transcribe it; the coach then interrupts. Figures: the phrase's last
  sample handed to ``vmic`` → the coach's last audible sample handed to ``vspeaker`` (both streams' output
  latency, reported, sits on both ends), split at the transcript's arrival; and the VAD turns the coach's echo
  made while it spoke alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchlib.common import bench_settings, speech, speech_kind
from benchlib.live import RunningSession
from benchlib.stats import summarize

LOOPBACK_MS = 80
LOOPBACK_VOLUME = "60%"  # PulseAudio volumes are cubic: 60 % is -13.3 dB of coupling
CONVERGE_S = 2.0  # ERLE is judged after this much echo (the issue: "after 2 s")
ECHO_FLOOR_DBFS = -50.0  # a frame whose raw mic is below this carries no echo worth measuring
FAR_TEXT = (
    "Start with the numbers from last quarter, then compare the two options side by side, say which one you "
    "would pick and why, and close with the single risk that worries you most about the other one. "
)
PHRASE = "Got it, thanks."
COACH_ALONE_S = 1.0  # the coach speaks alone this long before the phrase: its echo must make no VAD turn
INTERRUPT_WAIT_S = 8.0
SLOW_ROUND_S = 1.5  # a round this slow (or missed) keeps the cleaned microphone's level profile
SETTLE_S = 0.6  # after a round: the player's post-flush hold (200 ms) and the server VAD's silence
DRIFT_PPM = 200.0
SIM_INPUT_LATENCY_S = 0.020  # simulated: a mic frame is read this long after its last sample
SIM_OUTPUT_LATENCY_S = 0.015  # simulated: a speaker block is queued this long before it plays
SIM_BLOCK = 180  # simulated speaker callback block (3.75 ms, as PulseAudio asks for on vspeaker)

Pcm = npt.NDArray[np.int16]


# --- shared -----------------------------------------------------------------------------------------------


def _energy(frames: list[Pcm]) -> npt.NDArray[np.float64]:
    """Mean square of each frame."""
    return np.array([float(np.mean(f.astype(np.float64) ** 2)) for f in frames])


def erle(raw: list[Pcm], out: list[Pcm], frame_s: float) -> dict[str, Any]:
    """ERLE over the frames that carry echo, after the first :data:`CONVERGE_S` of it (and over those first
    seconds, for information); also the worst 1 s window after convergence. Zero output reads as one LSB of
    noise, so a perfect cancellation gives a large finite figure instead of infinity."""
    r, o = _energy(raw), _energy(out)
    floor = (10 ** (ECHO_FLOOR_DBFS / 20) * 32768) ** 2
    loud = np.flatnonzero(r > floor)
    if loud.size == 0:
        raise RuntimeError("no echo reached the microphone (is the loopback loaded?)")
    first = int(loud[0])
    settled = first + round(CONVERGE_S / frame_s)
    after = loud[loud >= settled]
    if after.size == 0:
        raise RuntimeError("the echo lasted less than the convergence time")

    def db(index: npt.NDArray[np.int64]) -> float:
        return 10 * math.log10(r[index].sum() / max(o[index].sum(), float(index.size)))

    per_s = round(1 / frame_s)
    # Windows with at least half a second of echo in them (a pause between sentences says little).
    windows = [
        w
        for k in range(settled, int(after[-1]) + 1, per_s)
        if (w := after[(after >= k) & (after < k + per_s)]).size >= per_s // 2
    ] or [after]
    return {
        "erle_db": round(db(after), 1),
        "erle_first_2_s_db": round(db(loud[loud < settled]), 1),
        "erle_worst_1_s_window_db": round(min(db(w) for w in windows), 1),
        "erle_median_1_s_window_db": round(float(np.median([db(w) for w in windows])), 1),
        "raw_echo_dbfs": round(10 * math.log10(r[after].mean() / 32768**2), 1),
        "echo_frames_judged": int(after.size),
    }


class _RawTap:
    """The microphone, keeping a copy of every raw frame for the ERLE (what the canceller was given)."""

    realtime = True

    def __init__(self, inner: Any, far: Any = None) -> None:
        self.inner = inner
        self.frames: list[Pcm] = []
        self.frame_time: float | None = None
        self._far = far
        self.behind_ms: list[float] = []  # how far the reference's end was behind the frame's end, when read

    async def read(self) -> Pcm:
        pcm: Pcm = await self.inner.read()
        self.frame_time = self.inner.frame_time
        self.frames.append(pcm.copy())
        if self._far is not None and self._far.end is not None and self.frame_time is not None:
            self.behind_ms.append((round(self.frame_time * 48000) + pcm.size - self._far.end) / 48)
        return pcm

    def close(self) -> None:
        self.inner.close()


def _canceller_figures(stats: Any) -> dict[str, Any]:
    added = [s * 1000 for s in stats.added_s]
    return {
        "cpu_ms_per_10ms_block": round(stats.cpu_s / (2 * stats.frames) * 1000, 4) if stats.frames else None,
        "added_ms": summarize(added),
        "late_reference_frames": stats.late_reference,  # waited LIVE_WAIT_S, went on with part of it missing
        "stalled_reference_frames": stats.stalled_reference,  # too far behind to wait for
        "frames": stats.frames,
    }


# --- the virtual echo path --------------------------------------------------------------------------------


def _pactl(*args: str) -> str:
    done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@contextlib.contextmanager
def echo_path() -> Iterator[dict[str, Any]]:
    """``vspeaker.monitor`` → ``vmic``, :data:`LOOPBACK_MS` late, at :data:`LOOPBACK_VOLUME` (inside the bench's
    virtual PulseAudio); yields what was loaded. ``adjust_time=0``: the module does not retune its rate to hold
    the latency, so the echo's delay stays what the figure's name says."""
    module = _pactl(
        "load-module", "module-loopback", "source=vspeaker.monitor", "sink=vmic", f"latency_msec={LOOPBACK_MS}",
        "source_dont_move=true", "sink_dont_move=true", "adjust_time=0",
    ).strip()  # fmt: skip
    try:
        inputs = [line.split("\t") for line in _pactl("list", "short", "sink-inputs").splitlines()]
        # The module's own sink input: the one its driver column names (there is no other stream yet).
        ours = [f[0] for f in inputs if len(f) > 3 and "loopback" in f[3]]
        if not ours:
            raise RuntimeError(f"module-loopback {module} has no sink input: {inputs}")
        _pactl("set-sink-input-volume", ours[0], LOOPBACK_VOLUME)
        db = 60 * math.log10(float(LOOPBACK_VOLUME.rstrip("%")) / 100)
        yield {"echo_path": f"module-loopback vspeaker.monitor → vmic, {LOOPBACK_MS} ms, {db:.1f} dB"}
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            _pactl("unload-module", module)


def play(sink: Any, pcm: Pcm) -> None:
    """Play 48 kHz mono ``pcm`` on ``sink`` (a DeviceSink, or a recording wrapper around one) from a buffer of its
    own that holds all of it (the sink's ``write`` buffer holds 4 s), at the device's rate and channels."""
    from voicecoach.audio.frames import resample
    from voicecoach.audio.playout import PlayoutBuffer

    data = resample(pcm, 48000, sink.rate, sink.channels)
    buffer = PlayoutBuffer(sink.rate, sink.channels, prebuffer_ms=0, capacity_s=data.shape[0] / sink.rate + 1)
    buffer.push(data)
    sink.start(buffer.pull)


async def _pass(reference: str, far_pcm: Pcm) -> dict[str, Any]:
    """One pass of :func:`run_device`: ``reference`` is "playout" or "monitor"."""
    from voicecoach.audio.devices import DeviceSink, DeviceSource, resolve_device
    from voicecoach.audio.echo import EchoCancelledSource, load_aec3
    from voicecoach.audio.echo_reference import PLAYED_BLOCKS, CallAudioTee, FarEnd, PlayedTap
    from voicecoach.audio.frames import FRAME_MS
    from voicecoach.audio.loopback import open_them

    far = FarEnd()
    # How far behind the live reference is matters only where the canceller waits for it (the monitor): our
    # playout is drained into the far end after the mic read, which this tap sees before.
    mic = _RawTap(DeviceSource(resolve_device(None, "input")), far if reference == "monitor" else None)
    sink = DeviceSink(resolve_device(None, "output"))
    out: list[Pcm] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            if reference == "playout":
                sink.played = deque(maxlen=PLAYED_BLOCKS)
                tap = PlayedTap(far, sink.played, sink.rate, sink.channels)
                source = EchoCancelledSource(mic, load_aec3(), far, played=tap)
                what = "our playout (PlayedTap on the DeviceSink)"
                anchors: Any = tap  # what counts the reference's re-anchors (``.jumps``)
            else:
                choice = open_them("auto")
                if choice.source is None:
                    raise RuntimeError(f"no monitor to use as the reference: {choice.notice}")
                stack.push_async_callback(choice.source.aclose)
                tee = CallAudioTee(choice.source, far)
                await stack.enter_async_context(tee.running())
                source = EchoCancelledSource(mic, load_aec3(), far, live=True)
                what = f"the call's monitor, live ({choice.source.description})"
                anchors = tee
            for _ in range(25):  # half a second of the streams settling before the far end speaks
                out.append(await source.read())
            play(sink, far_pcm)
            frames = far_pcm.size // 960 + round(LOOPBACK_MS / FRAME_MS) + 10
            async with asyncio.timeout(frames * FRAME_MS / 1000 + 10):
                for _ in range(frames):
                    out.append(await source.read())
    finally:
        mic.close()
        sink.close()
    return {
        "reference": what,
        **erle(mic.frames, out, FRAME_MS / 1000),
        **_canceller_figures(source.stats),
        # The mic frame's end minus the reference's end when the frame was read (< 0: the reference was ahead;
        # the canceller waits for REFERENCE_LEAD_S more than the frame's end).
        **({"reference_behind_at_read_ms": summarize(mic.behind_ms[25:])} if mic.behind_ms else {}),
        "reference_re_anchors": anchors.jumps,
        "mic_re_anchors": source.jumps,
        "output_latency_ms": round(sink.output_latency * 1000, 1),
        "input_latency_ms": round(mic.inner.input_latency * 1000, 1),
    }


def run_device(seconds: float) -> dict[str, Any]:
    """Both reference paths, ``seconds`` of far-end speech each (``CONVERGE_S`` of it to converge)."""
    from benchlib.audio_env import virtual_device

    far_pcm = _speech_for(seconds)
    with virtual_device() as reason:
        if reason is not None:
            return {"skipped": f"not measured: {reason}"}
        from voicecoach.audio.devices import rescan_devices

        rescan_devices()
        with echo_path() as path:
            out: dict[str, Any] = {**path, "far_end": f"{far_pcm.size / 48000:.1f} s of {speech_kind()} speech"}
            for reference in ("playout", "monitor"):
                out[reference] = asyncio.run(_pass(reference, far_pcm))
    return out


def _speech_for(seconds: float) -> Pcm:
    """``seconds`` of far-end speech (the text repeated, cut at a frame)."""
    one = speech(FAR_TEXT)
    pcm = np.concatenate([one] * max(1, math.ceil(seconds * 48000 / one.size)))[: round(seconds * 48000)]
    return pcm[: pcm.size // 960 * 960]


# --- clock drift, synthetic -------------------------------------------------------------------------------


def _room(rate: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """next-wave.md §3.2's echo path after the delay: a 3-tap speaker low-pass at -4 dB, and a diffuse tail
    (RT60 200 ms) 12 dB below it."""
    tail_n = round(0.3 * rate)
    t = np.arange(tail_n) / rate
    tail = rng.standard_normal(tail_n) * np.exp(-6.9 * t / 0.2)
    tail *= 10 ** (-12 / 20) * 0.63 / math.sqrt(float(np.sum(tail**2)))
    h = np.zeros(tail_n)
    h[:3] = np.array([0.25, 0.5, 0.25]) * 10 ** (-4 / 20)
    h[48:] += tail[: tail_n - 48]  # the tail starts 1 ms after the direct sound
    return h


def _convolve(x: npt.NDArray[np.float64], h: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Linear convolution through the FFT (np.convolve is direct: minutes for a minute of audio and a 0.3 s tail)."""
    size = 1 << (x.size + h.size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: x.size + h.size - 1]


class _SimMic:
    """A microphone whose frames come from an array, with ``frame_time`` on the simulated clock."""

    realtime = True

    def __init__(self, mic: Pcm) -> None:
        self._mic = mic
        self._k = 0
        self.frame_time: float | None = None

    async def read(self) -> Pcm:
        lo = self._k * 960
        self.frame_time = lo / 48000
        self._k += 1
        return self._mic[lo : lo + 960]

    def close(self) -> None:
        pass


async def _drift_once(far: Pcm, ppm: float, seed: int) -> dict[str, Any]:
    from voicecoach.audio.echo import EchoCancelledSource, load_aec3
    from voicecoach.audio.echo_reference import FarEnd, PlayedTap

    rate = 48000
    rng = np.random.default_rng(seed)
    speed = 1 + ppm * 1e-6  # the speaker plays `speed` samples per mic sample
    start = 0.5 + SIM_OUTPUT_LATENCY_S  # the far end's first sample leaves the speaker then (mic clock)
    n = far.size + round((start + 1.0) * rate)
    n -= n % 960
    # What the microphone hears: the speaker's sample k plays at start + k / (rate * speed), LOOPBACK_MS later
    # it reaches the mic; each mic sample reads the far end at that (fractional) index.
    index = (np.arange(n) / rate - start - LOOPBACK_MS / 1000) * rate * speed
    heard = np.interp(index, np.arange(far.size), far.astype(np.float64), left=0.0, right=0.0)
    echo = _convolve(heard, _room(rate, rng))[:n]
    noise = rng.standard_normal(n) * 32768 * 10 ** (-62 / 20)
    mic = np.clip(np.round(echo + noise), -32768, 32767).astype(np.int16)
    played: deque[tuple[Pcm, float]] = deque()
    far_end = FarEnd()
    tap = PlayedTap(far_end, played, rate, 1)
    now = [0.0]
    mic_source = _RawTap(_SimMic(mic))
    source = EchoCancelledSource(mic_source, load_aec3(), far_end, played=tap, clock=lambda: now[0])
    blocks = [far[k : k + SIM_BLOCK] for k in range(0, far.size, SIM_BLOCK)]
    queued = 0
    out: list[Pcm] = []
    for frame in range(n // 960):
        now[0] = (frame + 1) * 960 / rate + SIM_INPUT_LATENCY_S
        # The speaker's callback has queued every block due to play within its output latency of now.
        while queued < len(blocks) and start + queued * SIM_BLOCK / (rate * speed) <= now[0] + SIM_OUTPUT_LATENCY_S:
            played.append((blocks[queued].reshape(-1, 1), start + queued * SIM_BLOCK / (rate * speed)))
            queued += 1
        out.append(await source.read())
    return {
        **erle(mic_source.frames, out, 0.02),
        "cpu_ms_per_10ms_block": _canceller_figures(source.stats)["cpu_ms_per_10ms_block"],
        "reference_re_anchors": tap.jumps,
        "seconds": round(n / rate, 1),
    }


def run_drift(seconds: float, ppm: float = DRIFT_PPM) -> dict[str, Any]:
    far = _speech_for(seconds)

    async def both() -> dict[str, Any]:
        return {"drift": await _drift_once(far, ppm, 7), "control_0_ppm": await _drift_once(far, 0.0, 7)}

    figures = asyncio.run(both())
    return {
        "method": f"synthetic path through the real EchoCancelledSource + PlayedTap, simulated frame times: "
        f"speaker clock +{ppm:g} ppm, {LOOPBACK_MS} ms, -4 dB low-passed, RT60 200 ms tail at -12 dB, "
        "noise -62 dBFS",
        "far_end": f"{far.size / 48000:.1f} s of {speech_kind()} speech",
        "ppm": ppm,
        **figures["drift"],
        "control_0_ppm": figures["control_0_ppm"],
    }


# --- interrupt by phrase over the coach on speakers -------------------------------------------------------


def _phrase_sink() -> Any:
    """A DeviceSink on ``vmic`` (the user's mouth): the ALSA ``pulse`` device opened with ``PULSE_SINK=vmic``,
    set only while it opens, under the lock every stream open takes (as ``audio.loopback`` does for sources)."""
    from benchlib.live import RecordingPullSink
    from voicecoach.audio.devices import OPEN_LOCK, DeviceSink, resolve_device

    with OPEN_LOCK:
        saved = os.environ.get("PULSE_SINK")
        os.environ["PULSE_SINK"] = "vmic"
        try:
            return RecordingPullSink(DeviceSink(resolve_device("pulse", "output")))
        finally:
            if saved is None:
                os.environ.pop("PULSE_SINK", None)
            else:
                os.environ["PULSE_SINK"] = saved


class _LevelTap:
    """The cleaned microphone as the transport takes it, keeping (monotonic time, RMS dBFS) per frame: where a
    round misses, whether the phrase was too soft or the echo held the server's VAD open shows here."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.realtime = inner.realtime
        self.levels: list[tuple[float, float]] = []

    async def read(self) -> Pcm:
        from voicecoach.audio.frames import rms

        pcm: Pcm = await self.inner.read()
        self.levels.append((time.monotonic(), 20 * math.log10(max(rms(pcm), 1e-6))))
        return pcm

    def profile(self, start: float, seconds: float, step: float = 0.1) -> list[int]:
        """The loudest frame of each ``step`` from ``start`` on, dBFS."""
        bins: list[float] = [-120.0] * round(seconds / step)
        for at, db in self.levels:
            k = int((at - start) / step)
            if 0 <= k < len(bins):
                bins[k] = max(bins[k], db)
        return [round(b) for b in bins]

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Client(RunningSession):
    """``async with``: the real Runner on the devices, echo-cancelled by ``setup_echo``, live."""

    task_name = "bench-echo-session"

    def __init__(self, base_url: str) -> None:
        from benchlib.live import BenchView, RecordingPullSink
        from voicecoach.audio.devices import DeviceSink, DeviceSource, resolve_device
        from voicecoach.coach.actions import Intent
        from voicecoach.coach.settings import CoachSettings
        from voicecoach.echo_setup import setup_echo
        from voicecoach.runner import Runner

        settings = bench_settings(base_url, echo_cancellation="on", coach=CoachSettings(cooldown_seconds=0.0))
        mic = DeviceSource(resolve_device(None, "input"))
        speaker = DeviceSink(resolve_device(None, "output"))
        self.echo = setup_echo(settings, mic, speaker, None, them_is_monitor=False)
        if not self.echo.active:
            mic.close()
            speaker.close()
            raise RuntimeError(f"the echo canceller is not on: {self.echo.notice or self.echo.decision.why}")
        self.sink = RecordingPullSink(speaker)  # setup_echo tapped the DeviceSink itself; this wraps its pull
        self.view = BenchView()
        self.intents: asyncio.Queue[Intent] = asyncio.Queue()
        self.levels = _LevelTap(self.echo.source)
        self.runner = Runner(self.echo.settings, self.view, self.levels, self.sink, intents=self.intents)

    def jumps(self) -> tuple[int, int]:
        """Re-anchors so far of the microphone's cursor and of our playout's (each costs AEC3 a re-convergence)."""
        source: Any = self.echo.source
        played = source._played
        return source.jumps, played.jumps if played is not None else 0

    def round_profile(self, rnd: int, said_at: float, ms: int | None) -> dict[str, Any]:
        """A slow or missed round (``ms`` None): the cleaned microphone's level from the phrase on."""
        return {"round": rnd, "ms": ms, "re_anchors": self.jumps(),
                "dbfs_per_100ms_from_phrase": self.levels.profile(said_at, 4.0)}  # fmt: skip

    def user_turns(self) -> list[Any]:
        return [m for m in self.runner.coach.conversation.messages() if m.role == "user"]


@contextlib.asynccontextmanager
async def _server(tmp: Path, rounds: int) -> AsyncIterator[Any]:
    from benchlib.hints import LONG_HINT
    from benchlib.serverproc import ServerProcess

    # Each VAD turn is transcribed as the next utterance; spare ones so that a turn the echo made cannot leave
    # the phrase untranscribed (such a turn is counted, see `self_turns`).
    config = {"utterances": [PHRASE] * (2 * rounds + 4), "responses": [LONG_HINT], "response_latency": 0.05}
    async with ServerProcess(tmp, voice="auto", **config) as server:
        yield server


async def _interrupts(tmp: Path, rounds: int) -> dict[str, Any]:
    from benchlib.hints import SILENCE_METRIC
    from voicecoach.coach.actions import Intent
    from voicecoach.server.session import SessionOptions

    phrase_pcm = speech(PHRASE)
    results: dict[str, list[float]] = {"phrase_end_to_silent_ms": [], "phrase_end_to_transcript_ms": [],
                                       "transcript_to_silent_ms": [], "flush_to_silent_ms": []}  # fmt: skip
    self_turns = 0
    missed: list[str] = []
    profiles: list[dict[str, Any]] = []
    jumps_by_round: list[tuple[int, int]] = []  # (mic, playout) re-anchors so far, at each round's end
    user = _phrase_sink()
    try:
        async with _server(tmp, rounds) as server, _Client(server.base_url) as client:
            view, coach, player = client.view, client.runner.coach, client.runner.player
            for rnd in range(rounds):
                await client.wait(lambda: not coach.busy and not player.is_playing, 10, "quiet")
                await asyncio.sleep(SETTLE_S)
                turns = len(client.user_turns())
                client.intents.put_nowait(Intent.QUICK_HINT)
                await client.wait(lambda: player.is_playing, 10, "the hint to sound")
                await asyncio.sleep(COACH_ALONE_S)
                alone = len(client.user_turns()) - turns  # the echo of the coach alone made these
                self_turns += alone
                mark = len(view.seen)
                said_at = time.monotonic()
                play(user, phrase_pcm)
                try:
                    await client.wait(view.has(mark, "metric", SILENCE_METRIC), INTERRUPT_WAIT_S, "the interrupt")
                except TimeoutError:
                    missed.append(f"round {rnd}: not interrupted within {INTERRUPT_WAIT_S:g} s of the phrase")
                    profiles.append(client.round_profile(rnd, said_at, None))
                    client.intents.put_nowait(Intent.INTERRUPT)
                    await client.wait(lambda: not player.is_playing, 10, "the player to fall silent")
                    continue
                flush = view.since(mark, "flush")[0]
                assert flush.asked_at is not None
                phrase_end = user.log.silent_at(said_at)
                silent = client.sink.log.silent_at(phrase_end)
                results["phrase_end_to_silent_ms"].append((silent - phrase_end) * 1000)
                jumps_by_round.append(client.jumps())
                if silent - phrase_end > SLOW_ROUND_S:
                    profiles.append(client.round_profile(rnd, said_at, round((silent - phrase_end) * 1000)))
                results["phrase_end_to_transcript_ms"].append((flush.asked_at - phrase_end) * 1000)
                results["transcript_to_silent_ms"].append((silent - flush.asked_at) * 1000)
                results["flush_to_silent_ms"].append(max(0.0, silent - flush.at) * 1000)
            heard = len(client.user_turns())
            silence_ms = client.runner.settings.vad_silence_ms
            stats = client.echo.source.stats  # type: ignore[attr-defined]
            canceller = _canceller_figures(stats)
    finally:
        user.close()
    options = SessionOptions()
    # What the local server spends by design before the transcript can arrive: the VAD's silence, then its
    # simulated transcription latency, then the second word ("it", which completes "got it").
    floor = silence_ms + (options.transcription_latency + options.transcription_word_interval) * 1000
    return {
        **{name: summarize(values) for name, values in results.items()},
        # In round order (the summary above loses it): which rounds make the tail.
        "phrase_end_to_silent_ms_by_round": [round(ms) for ms in results["phrase_end_to_silent_ms"]],
        "re_anchors_by_round": jumps_by_round,
        "rounds": rounds,
        "rounds_not_interrupted": len(missed),
        "missed": missed,
        "slow_round_profiles": profiles,  # over SLOW_ROUND_S, or missed (ms None)
        "self_turns_while_coach_alone": self_turns,
        "user_turns": heard,  # the phrase's, plus any the echo made: rounds + self turns when all is well
        "server_floor_ms": round(floor, 1),
        "server_floor": f"VAD silence {silence_ms} ms + transcription {options.transcription_latency * 1000:g} ms "
        f"+ one word {options.transcription_word_interval * 1000:g} ms",
        "phrase_output_latency_ms": round(user.output_latency * 1000, 1),
        "speaker_output_latency_ms": round(client.sink.output_latency * 1000, 1),
        "canceller_cpu_ms_per_10ms_block": canceller["cpu_ms_per_10ms_block"],
        "canceller_added_ms": canceller["added_ms"],
    }


def run_interrupt(tmp: Path, rounds: int) -> dict[str, Any]:
    from benchlib.audio_env import virtual_device

    with virtual_device() as reason:
        if reason is not None:
            return {"skipped": f"not measured: {reason}"}
        from voicecoach.audio.devices import rescan_devices

        rescan_devices()
        with echo_path() as path:
            return {**path, "coach_voice": speech_kind(), **asyncio.run(_interrupts(tmp, rounds))}

"""The streaming Silero VAD: the decision rule on scripted probabilities (a unit test of one part), then the
real model on espeak-ng speech with silences and noise, fed as the server feeds it (20 ms frames, 48 kHz)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from tests.local.speech import espeak

from voicecoach.audio.frames import FRAME_MS, WIRE_FRAME_SAMPLES, Pcm, envelope, silence
from voicecoach.local.vad import WINDOW_MS, WINDOW_SAMPLES, SileroModel, SileroVad
from voicecoach.server.vad import VadEvent, VadSettings

RATE = 48_000
# Onset: within 100 ms. End of speech: within 150 ms, because Silero scores a word-final release burst (the
# "p" of "help", 40 dB down) as silence while the level truth counts it, and in noise its hysteresis holds a
# decaying vowel a little longer; neither loses audio, since the turn's audio runs on for silence_duration_ms.
ONSET_TOLERANCE_MS = 100
END_TOLERANCE_MS = 150


class Scripted:
    """A stand-in model that answers a fixed probability per window (the decision rule alone)."""

    def __init__(self, probabilities: Iterable[float]) -> None:
        self._p = iter(probabilities)

    def probability(self, window: np.ndarray) -> float:
        return next(self._p, 0.0)


def run(vad: SileroVad, audio: Pcm) -> list[VadEvent]:
    events = []
    for k in range(audio.size // WIRE_FRAME_SAMPLES):
        event = vad.push_frame(audio[k * WIRE_FRAME_SAMPLES : (k + 1) * WIRE_FRAME_SAMPLES], (k + 1) * FRAME_MS)
        if event is not None:
            events.append(event)
    return events


def windows_of_audio(windows: int) -> Pcm:
    """Enough 48 kHz audio for ``windows`` Silero windows (plus the resampler's delay)."""
    return silence(windows * WINDOW_SAMPLES * 3 + WIRE_FRAME_SAMPLES)


# --- the rule -----------------------------------------------------------------------------------------------


def scripted_events(probabilities: Sequence[float], settings: VadSettings) -> list[VadEvent]:
    return run(SileroVad(settings, Scripted(probabilities)), windows_of_audio(len(probabilities) + 40))


def test_one_voiced_window_is_a_click_not_a_turn() -> None:
    assert scripted_events([0.0] * 10 + [0.9] + [0.0] * 30, VadSettings(0.5, 300, 200)) == []


def test_threshold_is_the_speech_probability() -> None:
    probs = [0.0] * 20 + [0.6] * 20 + [0.0] * 30
    assert [e.kind for e in scripted_events(probs, VadSettings(0.5, 0, 200))] == ["started", "stopped"]
    assert scripted_events(probs, VadSettings(0.7, 0, 200)) == []


def test_hysteresis_keeps_a_turn_through_soft_windows_above_threshold_minus_015() -> None:
    soft = [0.0] * 10 + [0.9] * 5 + [0.4] * 20 + [0.9] * 5 + [0.0] * 40  # 0.4 >= 0.5 - 0.15
    assert [e.kind for e in scripted_events(soft, VadSettings(0.5, 0, 200))] == ["started", "stopped"]
    softer = [0.0] * 10 + [0.9] * 5 + [0.3] * 20 + [0.9] * 5 + [0.0] * 40
    assert [e.kind for e in scripted_events(softer, VadSettings(0.5, 0, 200))] == ["started", "stopped"] * 2


def test_event_times_follow_prefix_padding_and_silence_duration() -> None:
    probs = [0.0] * 30 + [0.9] * 25 + [0.0] * 40
    events = scripted_events(probs, VadSettings(0.5, 300, 500))
    onset, offset = 30 * WINDOW_MS, 55 * WINDOW_MS  # 960 ms, 1760 ms, give or take the resampler's delay
    assert [e.kind for e in events] == ["started", "stopped"]
    assert abs(events[0].ms - (onset - 300)) <= WINDOW_MS
    assert abs(events[1].ms - (offset + 500)) <= WINDOW_MS
    no_pad = scripted_events(probs, VadSettings(0.5, 0, 500))
    assert no_pad[0].ms - events[0].ms == 300


def test_prefix_padding_never_reaches_into_the_previous_turn() -> None:
    probs = [0.0] * 5 + [0.9] * 10 + [0.0] * 8 + [0.9] * 10 + [0.0] * 20
    first_stop, second_start = scripted_events(probs, VadSettings(0.5, 1000, 200))[1:3]
    assert second_start.ms == first_stop.ms


def test_reset_forgets_the_turn_in_progress() -> None:
    vad = SileroVad(VadSettings(0.5, 0, 200), Scripted([0.9] * 100))
    assert [e.kind for e in run(vad, windows_of_audio(10))] == ["started"]
    vad.reset(floor_ms=400)
    assert not vad.in_speech
    event = vad.push_frame(silence(WIRE_FRAME_SAMPLES), 420)
    event = event or vad.push_frame(silence(WIRE_FRAME_SAMPLES), 440)
    event = event or vad.push_frame(silence(WIRE_FRAME_SAMPLES), 460)
    event = event or vad.push_frame(silence(WIRE_FRAME_SAMPLES), 480)
    assert event is not None and event.kind == "started" and event.ms >= 400


def test_frames_longer_than_a_window_are_refused() -> None:
    vad = SileroVad(VadSettings(), Scripted([]))
    with pytest.raises(ValueError, match="longer than 32 ms"):
        vad.push_frame(silence(RATE // 10), 100)


# --- the real model -----------------------------------------------------------------------------------------


def test_streaming_windows_match_faster_whispers_batch_run() -> None:
    from faster_whisper.vad import get_vad_model

    audio = np.concatenate([silence(8000), espeak("hello can you hear me"), silence(8000)])
    x = audio.astype(np.float32) / 32768.0
    x = x[: x.size // WINDOW_SAMPLES * WINDOW_SAMPLES]
    batch = np.asarray(get_vad_model()(x)).reshape(-1)
    model = SileroModel()
    streamed = [model.probability(x[i : i + WINDOW_SAMPLES]) for i in range(0, x.size, WINDOW_SAMPLES)]
    assert np.allclose(streamed, batch, atol=1e-4)
    assert max(streamed) > 0.9 and streamed[0] < 0.1


@dataclass
class Recording:
    audio: Pcm
    truth: list[tuple[int, int]]  # speech in ms: the first and last 10 ms above -40 dBFS of each rendering


def speech_span(speech: Pcm) -> tuple[int, int]:
    loud = np.nonzero(envelope(speech, RATE, 10) > 10 ** (-40 / 20))[0]
    return int(loud[0]) * 10, int(loud[-1]) * 10 + 10


def utterances(gaps_s: Sequence[float], texts: Sequence[str], noise: float = 0.0) -> Recording:
    """``texts`` spoken one after the other, each followed by its gap, after 1 s of silence; noise optional."""
    parts, truth, pos_ms = [silence(RATE)], [], 1000
    for text, gap in zip(texts, gaps_s, strict=True):
        speech = espeak(text, rate=RATE)
        first, last = speech_span(speech)
        truth.append((pos_ms + first, pos_ms + last))
        parts += [speech, silence(int(gap * RATE))]
        pos_ms += speech.size * 1000 // RATE + int(gap * 1000)
    audio = np.concatenate(parts)
    if noise:
        rng = np.random.default_rng(7)
        audio = np.clip(audio + rng.normal(0.0, noise, audio.size), -32768, 32767).astype(np.int16)
    return Recording(audio, truth)


THREE = ("hello can you hear me", "thank you very much for your help", "i am nervous about my job interview tomorrow")


@pytest.mark.parametrize("noise", [0.0, 300.0], ids=["clean", "noise-40dBFS"])
def test_three_utterances_give_three_turns_near_the_truth(noise: float) -> None:
    settings = VadSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    rec = utterances([1.0, 1.2, 1.5], THREE, noise)
    events = run(SileroVad(settings), rec.audio)
    assert [e.kind for e in events] == ["started", "stopped"] * 3, events
    for (start, stop), (first, last) in zip(zip(events[::2], events[1::2], strict=True), rec.truth, strict=True):
        onset = start.ms + settings.prefix_padding_ms
        offset = stop.ms - settings.silence_duration_ms
        assert abs(onset - first) <= ONSET_TOLERANCE_MS, (onset, first)
        assert abs(offset - last) <= END_TOLERANCE_MS, (offset, last)
        assert start.ms <= first and stop.ms >= last, "the turn's audio must hold all of the speech"


@pytest.mark.parametrize("sigma", [300.0, 1000.0, 3000.0])
def test_noise_alone_never_starts_a_turn(sigma: float) -> None:
    rng = np.random.default_rng(3)
    noise = np.clip(rng.normal(0.0, sigma, 4 * RATE), -32768, 32767).astype(np.int16)
    assert run(SileroVad(VadSettings()), noise) == []


def test_a_low_threshold_is_honoured_by_the_real_model() -> None:
    """White noise at -30 dBFS scores about 0.01 to 0.05 (median 0.025): a threshold of 0.02 lets it start a
    turn, the default 0.5 does not."""
    rng = np.random.default_rng(3)
    noise = np.clip(rng.normal(0.0, 1000.0, 4 * RATE), -32768, 32767).astype(np.int16)
    assert run(SileroVad(VadSettings(threshold=0.5)), noise) == []
    assert [e.kind for e in run(SileroVad(VadSettings(threshold=0.02)), noise)][:1] == ["started"]


def test_silence_duration_decides_whether_a_pause_ends_the_turn() -> None:
    rec = utterances([0.2, 1.5], THREE[:2])
    pause = rec.truth[1][0] - rec.truth[0][1]  # about 0.6 s: the rendering's own tail silence + 0.2 s
    assert 400 < pause < 800, pause
    short = run(SileroVad(VadSettings(0.5, 300, pause - 250)), rec.audio)
    long = run(SileroVad(VadSettings(0.5, 300, pause + 250)), rec.audio)
    assert [e.kind for e in short] == ["started", "stopped"] * 2
    assert [e.kind for e in long] == ["started", "stopped"]
    assert long[1].ms > short[3].ms - 100

"""The server's parts: the outgoing audio track, voices, scenarios, codecs, configuration, ``serve``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from voicecoach.audio.frames import pcm_from_frame, rms
from voicecoach.errors import ConfigError
from voicecoach.server import RealtimeServer, ServerConfig, serve, voice
from voicecoach.server.audio_track import ResponseAudioTrack
from voicecoach.server.codec import decode_audio, encode_pcm24
from voicecoach.server.scenario import (
    DEFAULT_RESPONSE,
    PLACEHOLDER_UTTERANCE,
    Scenario,
    ScenarioCursor,
    default_scenario,
    load_scenario,
)
from voicecoach.server.schema import WireError
from voicecoach.server.voice import parse_wav, render_speech, speech_pcm, synth_speech

# --- the outgoing track ---------------------------------------------------------------------------------------


async def test_track_frames_are_continuous_and_report_playback() -> None:
    reports: list[tuple[str, int, bool]] = []
    track = ResponseAudioTrack(lambda *report: reports.append(report))
    try:
        frames = [await track.recv()]
        track.enqueue("resp_a", np.full(1000, 3000, dtype=np.int16))
        track.enqueue("resp_b", np.full(500, -3000, dtype=np.int16))
        frames += [await track.recv() for _ in range(3)]
        assert [f.pts for f in frames] == [0, 960, 1920, 2880]
        assert all(f.sample_rate == 48000 and f.samples == 960 and f.layout.name == "mono" for f in frames)
        pcm = [pcm_from_frame(f)[:, 0] for f in frames]
        assert rms(pcm[0]) == 0 and rms(pcm[3]) == 0
        assert (pcm[1] == 3000).all()
        assert (pcm[2][:40] == 3000).all() and (pcm[2][40:540] == -3000).all() and (pcm[2][540:] == 0).all()
        assert reports == [("resp_a", 20, False), ("resp_a", 20, True), ("resp_b", 10, True)]

        track.enqueue("resp_c", np.full(48000, 3000, dtype=np.int16))
        assert rms(pcm_from_frame(await track.recv())) > 0
        track.clear()
        assert track.queued_samples == 0
        assert rms(pcm_from_frame(await track.recv())) == 0  # silent within one frame
    finally:
        track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


# --- voices ---------------------------------------------------------------------------------------------------


def test_synth_speech_is_deterministic_and_speech_like() -> None:
    a, b = synth_speech("Hello there, friend."), synth_speech("Hello there, friend.")
    assert np.array_equal(a, b)
    assert a.size == pytest.approx(48000 * (3 * 0.4 + 2 * 0.06), abs=3)  # 0.4 s a word, pauses at punctuation
    assert 0.05 < rms(a) < 0.3
    assert synth_speech("Hello", 24000).size == synth_speech("Hello").size // 2
    assert synth_speech("").size == 0
    assert not np.array_equal(synth_speech("alpha"), synth_speech("omega"))


def _streaming_wav(pcm: np.ndarray, rate: int) -> bytes:
    """A WAV like espeak-ng's --stdout: placeholder sizes instead of real ones."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF\xff\xff\xff\x7fWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\x7f" + pcm.tobytes()


def test_parse_wav_trusts_the_data_not_the_header() -> None:
    pcm = (np.arange(2205) % 100).astype(np.int16)
    parsed, rate = parse_wav(_streaming_wav(pcm, 22050))
    assert rate == 22050 and np.array_equal(parsed, pcm)
    with pytest.raises(ValueError, match="RIFF"):
        parse_wav(b"nonsense")


@pytest.mark.skipif(voice.espeak_path() is None, reason="espeak-ng is not installed")
async def test_espeak_renders_real_speech() -> None:
    spoken = speech_pcm("Good question.")
    assert 0.5 < spoken.size / 48000 < 3 and rms(spoken) > 0.02
    rendered = await render_speech("Good question.", "auto")
    assert abs(rendered.size - spoken.size) < 4800
    assert np.array_equal(await render_speech("Good question.", "synth"), synth_speech("Good question."))


def test_espeak_mode_needs_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voice, "espeak_path", lambda: None)
    with pytest.raises(ConfigError, match="espeak-ng"):
        voice.check_voice_mode("espeak")
    voice.check_voice_mode("auto")
    assert np.array_equal(speech_pcm("hi"), synth_speech("hi"))


# --- scenarios ------------------------------------------------------------------------------------------------


def test_scenario_files(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('utterances = ["one", "two"]\nresponses = ["r"]\n')
    assert load_scenario(toml) == Scenario(utterances=["one", "two"], responses=["r"])
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"utterances": ["x"]}))
    assert load_scenario(js) == Scenario(utterances=["x"])
    for name, text, message in [
        ("bad.toml", "utterances = [1]", "bad 'utterances.0'"),
        ("extra.toml", "replies = []", "bad 'replies'"),
        ("broken.toml", "utterances = [", "is not valid TOML"),
        ("broken.json", "{", "is not valid JSON"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_scenario(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_scenario_cursor_and_defaults() -> None:
    cursor = ScenarioCursor(Scenario(utterances=["a"], responses=["r1", "r2"]))
    assert [cursor.next_utterance() for _ in range(3)] == ["a", PLACEHOLDER_UTTERANCE, PLACEHOLDER_UTTERANCE]
    assert [cursor.next_response() for _ in range(3)] == ["r1", "r2", "r1"]
    assert ScenarioCursor(Scenario()).next_response() == DEFAULT_RESPONSE
    builtin = default_scenario()
    assert len(builtin.utterances) >= 5 and builtin.responses
    assert any("good question" in u.lower() for u in builtin.utterances)


def test_server_config_scenario_precedence(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('utterances = ["from file"]')
    given = Scenario(utterances=["given"])
    assert ServerConfig(scenario=given, scenario_path=path).resolved_scenario() == given
    assert ServerConfig(scenario_path=path).resolved_scenario().utterances == ["from file"]
    assert ServerConfig().resolved_scenario() == default_scenario()
    assert "sk-secret" not in repr(ServerConfig(api_key="sk-secret"))


# --- codecs ---------------------------------------------------------------------------------------------------


def test_g711_and_pcm_decoding() -> None:
    ulaw_silence = base64.b64encode(bytes([0xFF] * 800)).decode()  # 100 ms of µ-law silence
    pcm = decode_audio(ulaw_silence, {"type": "audio/pcmu"}, "audio")
    assert abs(pcm.size - 4800) < 50 and np.abs(pcm).max() < 10
    alaw_loud = base64.b64encode(bytes([0xAA, 0x2A] * 400)).decode()  # ±full-scale square wave
    assert rms(decode_audio(alaw_loud, {"type": "audio/pcma"}, "audio")) > 0.5
    tone = synth_speech("hello")
    round_trip = decode_audio(encode_pcm24(tone), {"type": "audio/pcm", "rate": 24000}, "audio")
    assert abs(round_trip.size - tone.size) < 100 and abs(rms(round_trip) - rms(tone)) < 0.01
    with pytest.raises(WireError) as caught:
        decode_audio("***", {"type": "audio/pcm"}, "item.content[0].audio")
    assert caught.value.param == "item.content[0].audio"


# --- serve / run_serve ----------------------------------------------------------------------------------------


async def test_serve_runs_until_cancelled() -> None:
    urls: list[str] = []
    task = asyncio.create_task(serve(ServerConfig(voice="synth"), ready=urls.append))
    try:
        async with asyncio.timeout(10):
            while not urls:
                await asyncio.sleep(0.01)
        assert urls[0].startswith("http://127.0.0.1:") and urls[0].endswith("/v1")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_run_serve_prints_one_line_and_stops_on_sigterm() -> None:
    code = "from voicecoach.server import ServerConfig, run_serve; raise SystemExit(run_serve(ServerConfig(port=0)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)  # bounded wait for the first line
        assert ready, "run_serve printed nothing within 20 s"
        line = proc.stdout.readline().decode()
        assert line.startswith("voicecoach local Realtime server listening on http://127.0.0.1:")
        assert line.rstrip().endswith("/v1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def test_port_in_use_is_a_config_error() -> None:
    async with RealtimeServer(ServerConfig(voice="synth")) as first:
        port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await RealtimeServer(ServerConfig(voice="synth", port=port)).start()

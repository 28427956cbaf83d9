"""FileSource: input files streamed from disk through av, in any common format, with loop and an end signal."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from audiofakes import tone
from test_wav import write_test_wav

from voicecoach.audio import files
from voicecoach.audio.base import EndingSource
from voicecoach.audio.files import FileSource, wav_header
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, rms
from voicecoach.errors import AudioError

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed (apt-get install sox)")


async def read_all(source: FileSource, frames: int) -> Pcm:
    got = [await source.read() for _ in range(frames)]
    assert all(f.shape == (WIRE_FRAME_SAMPLES,) and f.dtype == np.int16 for f in got)
    return np.concatenate(got)


def dominant_hz(pcm: Pcm, rate: int = WIRE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


def encode(path: Path, pcm: Pcm, rate: int, codec: str) -> None:
    """Write int16 ``(n,)``/``(n, channels)`` PCM with av's encoder ``codec`` (the container from the suffix)."""
    two_d = pcm.reshape(pcm.shape[0], -1)
    layout = "mono" if two_d.shape[1] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(two_d).reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def sox_tone(path: Path, rate: int, channels: int, freq: int, *options: str) -> None:
    """1 s of a sine at 0.3 of full scale made by sox (an independent writer); ``options``: output options."""
    cmd = ["sox", "-n", "-r", str(rate), "-c", str(channels), *options, str(path), "synth", "1", "sine", str(freq)]
    subprocess.run([*cmd, "vol", "0.3"], check=True, timeout=30, capture_output=True)


async def check_tone(source: FileSource, seconds: float, freq: float, level: float, rel: float = 0.05) -> None:
    """The source yields ``seconds`` of a steady tone at 48 kHz mono, then ends (``rel``: level tolerance)."""
    audio = await read_all(source, int(seconds * 50) + 5)  # a few frames past the end
    body = audio[4800 : int(seconds * WIRE_RATE) - 4800]  # skip codec and resampler edges
    assert dominant_hz(body) == pytest.approx(freq, abs=3)
    assert rms(body) == pytest.approx(level / np.sqrt(2), rel=rel)
    assert source.ended.is_set()
    assert not audio[-WIRE_FRAME_SAMPLES:].any()  # silence after the end


async def test_float32_wav_is_read_and_clipped_not_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "float.wav"
    signal = tone(1000, freq=440, rate=44100, level=0.3)
    write_test_wav(path, signal, 44100, 32, tag=3)
    await check_tone(FileSource(path), 1.0, 440, 0.3)
    loud = tmp_path / "loud.wav"  # floats beyond full scale (legal in float WAV) must clip, not wrap around
    x = np.full(4800, 1.5, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 48000, 48000 * 4, 4, 32)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(x)) + x
    loud.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    frames = await read_all(FileSource(loud), 5)
    assert frames[100:4700].min() >= 32000


async def test_24_bit_extensible_wav_from_sox(tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed (apt-get install sox)")
    path = tmp_path / "s24.wav"
    sox_tone(path, 96000, 2, 300, "-b", "24")
    assert struct.unpack_from("<H", path.read_bytes(), 20)[0] == 0xFFFE  # sox wrote WAVE_FORMAT_EXTENSIBLE
    await check_tone(FileSource(path), 1.0, 300, 0.3)


@pytest.mark.parametrize(("suffix", "codec", "channels"), [(".mp3", "libmp3lame", 1), (".mp3", "libmp3lame", 2)])
async def test_mp3_mono_and_stereo_made_with_av(tmp_path: Path, suffix: str, codec: str, channels: int) -> None:
    path = tmp_path / f"in{suffix}"
    encode(path, tone(1000, freq=440, rate=44100, level=0.3, channels=channels), 44100, codec)
    await check_tone(FileSource(path), 1.0, 440, 0.3, rel=0.1)  # lame's output is 0.4 dB down on this tone


@needs_sox
@pytest.mark.parametrize(("suffix", "channels"), [(".flac", 2), (".ogg", 1), (".ogg", 2)])
async def test_flac_and_ogg_made_with_sox(tmp_path: Path, suffix: str, channels: int) -> None:
    path = tmp_path / f"in{suffix}"
    sox_tone(path, 32000, channels, 500)
    await check_tone(FileSource(path), 1.0, 500, 0.3)


async def test_stereo_is_mixed_down_not_reduced_to_its_left_channel(tmp_path: Path) -> None:
    path = tmp_path / "right-only.wav"
    right = tone(500, freq=600, level=0.4)
    write_test_wav(path, np.stack([np.zeros_like(right), right], axis=1), 48000)
    audio = await read_all(FileSource(path), 25)
    assert rms(audio[4800:-4800]) == pytest.approx(0.2 / np.sqrt(2), rel=0.05)  # the average of L and R


async def test_the_end_signal_is_set_by_the_read_of_the_last_frame_then_silence(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    pcm = ((np.arange(2 * WIRE_FRAME_SAMPLES + 100) % 200) + 1).astype(np.int16)
    write_test_wav(path, pcm, 48000)
    source = FileSource(path)
    assert isinstance(source, EndingSource)
    first, second = await source.read(), await source.read()
    assert not source.ended.is_set()
    third = await source.read()
    assert source.ended.is_set()
    assert np.array_equal(np.concatenate([first, second, third[:100]]), pcm)  # 48 kHz mono: bit-exact
    assert not third[100:].any()
    for _ in range(3):
        assert not (await source.read()).any()
    source.close()
    assert not (await source.read()).any()  # closed: still silence, no error


async def test_loop_starts_again_at_the_end_and_never_ends(tmp_path: Path) -> None:
    path = tmp_path / "loop.wav"
    pcm = ((np.arange(3 * WIRE_FRAME_SAMPLES) % 200) + 1).astype(np.int16)  # 60 ms, never zero
    write_test_wav(path, pcm, 48000)
    source = FileSource(path, loop=True)
    audio = await read_all(source, 3 * 10)  # ten passes
    assert not source.ended.is_set()
    assert np.array_equal(audio, np.tile(pcm, 10))  # seamless: no gap or padding between passes
    source.close()


async def test_a_loop_over_a_file_with_no_audio_ends_instead_of_spinning(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(wav_header(48000, 1, 0))
    source = FileSource(path, loop=True)
    assert not (await source.read()).any()
    assert source.ended.is_set()


def sparse_wav(path: Path, hours: float, rate: int = 48000) -> int:
    """A WAV of ``hours`` of silence that takes no disk space (a header, then a hole); returns its size."""
    data_bytes = int(hours * 3600 * rate) * 2
    with path.open("wb") as f:
        f.write(wav_header(rate, 1, data_bytes))
        f.truncate(44 + data_bytes)
    return 44 + data_bytes


def bytes_read_by_this_process() -> int:
    """``rchar`` of /proc/self/io: every byte this process got from read() calls, cached or not."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
async def test_a_ten_hour_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    """Opening a 10-hour (3.5 GB) WAV and reading from it reads a few packets, and the buffer stays bounded."""
    path = tmp_path / "ten-hours.wav"
    size = sparse_wav(path, 10)
    before = bytes_read_by_this_process()
    source = FileSource(path)
    most = 0
    for _ in range(500):  # 10 s of audio
        await source.read()
        most = max(most, source.buffered_samples)
    read = bytes_read_by_this_process() - before
    assert read < 4_000_000, f"read {read} bytes of a {size}-byte file to play 10 s of it"
    assert most <= 16 * WIRE_FRAME_SAMPLES  # a few packets ahead, never more
    assert not source.ended.is_set()
    source.close()


async def test_damage_past_the_start_ends_the_file_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "damaged.wav"
    write_test_wav(path, tone(2000), 48000)
    real_open = files._open

    def damaged_after_a_while(p: Path) -> tuple[av.container.InputContainer, Iterator[av.AudioFrame]]:
        container, decoded = real_open(p)

        def frames() -> Iterator[av.AudioFrame]:
            for i, frame in enumerate(decoded):
                if i == 10:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
                yield frame

        return container, frames()

    monkeypatch.setattr(files, "_open", damaged_after_a_while)
    source = FileSource(path)  # the start decodes: no error at open
    audio = await read_all(source, 100)
    assert source.ended.is_set()
    assert 5 * WIRE_FRAME_SAMPLES < np.flatnonzero(audio).max() < 2000 * 48  # some audio, then the end


async def test_a_file_cut_short_plays_what_is_there_and_ends(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_test_wav(path, tone(500), 48000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 1])  # the header still claims 500 ms; an odd byte count
    audio = await read_all(FileSource(path), 30)
    assert 0.2 * WIRE_RATE < np.flatnonzero(audio).max() < 0.3 * WIRE_RATE


def test_a_file_whose_first_audio_is_damaged_fails_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "broken.flac"
    write_test_wav(path, tone(200), 48000)
    real_open = files._open

    def broken(p: Path) -> tuple[av.container.InputContainer, Iterator[av.AudioFrame]]:
        container, _decoded = real_open(p)

        def frames() -> Iterator[av.AudioFrame]:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield  # a generator

        return container, frames()

    monkeypatch.setattr(files, "_open", broken)
    with pytest.raises(AudioError, match=r"input file .*broken\.flac is damaged: .*Invalid data") as info:
        FileSource(path)
    assert "\n" not in str(info.value)

"""Reading audio files (read_wav, FileSource basics), WAV writing, PcmSource framing, NullSink.

Streaming, loop, the end signal and formats other than WAV are in test_file_source.py."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from audiofakes import tone

from voicecoach.audio.files import FileSource, NullSink, PcmSource, WavSink, read_wav
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, rms
from voicecoach.errors import AudioError


def write_test_wav(
    path: Path, pcm16: np.ndarray, rate: int, bits: int = 16, *, extensible: bool = False, tag: int = 1
) -> None:
    """An independent WAV writer (not WavSink): int16 samples stored at ``bits`` width."""
    two_d = pcm16.reshape(len(pcm16), -1)
    channels = two_d.shape[1]
    x = two_d.astype(np.int64).reshape(-1)
    if tag == 3:  # IEEE float, full scale = 1.0
        raw = (x / 32768.0).astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        raw = ((x >> 8) + 128).astype(np.uint8).tobytes()
    elif bits == 16:
        raw = x.astype("<i2").tobytes()
    elif bits == 24:
        v = (x << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = v.tobytes()
    else:
        raw = (x << 16).astype("<i4").tobytes()
    align = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * align, align, bits, 22, bits, 0)
        fmt += struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    # An odd-sized extra chunk before "fmt " checks that chunks are walked with their padding.
    extra = b"note" + struct.pack("<I", 3) + b"abc\x00"
    body = b"WAVE" + extra + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(raw)) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("extensible", [False, True])
def test_read_wav_round_trips_every_pcm_width(tmp_path: Path, bits: int, channels: int, extensible: bool) -> None:
    src = tone(100, rate=22050, channels=channels)
    path = tmp_path / "in.wav"
    write_test_wav(path, src, 22050, bits, extensible=extensible)
    pcm, rate = read_wav(path)
    assert rate == 22050
    assert pcm.shape == src.shape
    tolerance = 256 if bits == 8 else 0  # 8-bit keeps only the top byte
    assert np.abs(pcm.astype(np.int32) - src.astype(np.int32)).max() <= tolerance


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
async def test_wav_source_converts_to_48k_mono_frames(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "in.wav"
    write_test_wav(path, tone(500, freq=300, rate=rate, channels=2), rate)
    source = FileSource(path)
    assert source.realtime is False
    frames = [await source.read() for _ in range(26)]
    assert all(f.shape == (WIRE_FRAME_SAMPLES,) and f.dtype == np.int16 for f in frames)
    audio = np.concatenate(frames)
    # Level and shape survive resampling: a steady tone at 0.3 of full scale has rms 0.3 / sqrt(2).
    assert rms(audio[2400:-2400]) == pytest.approx(0.3 / np.sqrt(2), rel=0.03)
    assert source.ended.is_set()
    assert not frames[-1].any()  # after the end: silence


async def test_pcm_source_pads_the_last_frame_then_gives_silence_forever() -> None:
    pcm = np.arange(1, 2 * WIRE_FRAME_SAMPLES + 101, dtype=np.int16)
    source = PcmSource(pcm, 48000)
    first, second = await source.read(), await source.read()
    assert not source.ended.is_set()
    third = await source.read()
    assert source.ended.is_set()
    assert np.array_equal(np.concatenate([first, second]), pcm[: 2 * WIRE_FRAME_SAMPLES])
    assert np.array_equal(third[:100], pcm[-100:]) and not third[100:].any()
    for _ in range(3):
        assert not (await source.read()).any()


async def test_pcm_source_finishes_exactly_at_a_frame_boundary_and_when_empty() -> None:
    exact = PcmSource(np.ones(WIRE_FRAME_SAMPLES, dtype=np.int16), 48000)
    await exact.read()
    assert exact.ended.is_set()
    for rate in (48000, 16000):
        empty = PcmSource(np.zeros(0, dtype=np.int16), rate)
        assert not (await empty.read()).any()
        assert empty.ended.is_set()


async def test_closed_pcm_source_reads_silence() -> None:
    source = PcmSource(tone(200), 48000)
    source.close()
    assert not (await source.read()).any()


def test_missing_wav_names_the_file_and_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=r"nope\.wav does not exist.*--input-file"):
        FileSource(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"ID3\x03" + b"\x00" * 100,
        b"hello, this is a text file\n" * 20,
        b"RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00",
        b"RIFF\x20\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00",
        b"RIFF\x20\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00",
    ],
)
def test_a_file_that_is_not_audio_gives_a_one_line_error_at_open(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    for attempt in (lambda: FileSource(path), lambda: read_wav(path)):
        with pytest.raises(AudioError) as info:
            attempt()
        text = str(info.value)
        assert "bad.wav" in text and "WAV, FLAC, Ogg or MP3" in text and "\n" not in text


def test_a_compressed_wav_codec_ffmpeg_lacks_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    write_test_wav(path, tone(20), 48000, 16, tag=0x7777)  # a format tag no decoder knows
    with pytest.raises(AudioError, match=r"x\.wav"):
        FileSource(path)


def test_unreadable_path_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"cannot read input file .*Is a directory"):
        FileSource(tmp_path)  # a directory


def test_wav_cut_short_is_read_up_to_the_last_whole_sample(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    src = tone(100, channels=2)
    write_test_wav(path, src, 48000)
    data = path.read_bytes()
    path.write_bytes(data[:-1001])  # the header still claims the full size
    pcm, _ = read_wav(path)
    assert pcm.shape[0] == (len(data) - 1001 - (len(data) - src.nbytes)) // 4
    assert np.array_equal(pcm, src[: pcm.shape[0]])


@pytest.mark.parametrize(("rate", "channels"), [(24000, 1), (48000, 2), (16000, 1)])
def test_wav_sink_round_trip(tmp_path: Path, rate: int, channels: int) -> None:
    path = tmp_path / "out.wav"
    sink = WavSink(path, rate, channels)
    chunks = [tone(20, freq=500 + 10 * i, rate=rate, channels=channels) for i in range(10)]
    for chunk in chunks:
        sink.write(chunk)
    sink.close()
    sink.close()  # idempotent
    pcm, got_rate = read_wav(path)
    assert got_rate == rate and sink.frames_written == sum(c.shape[0] for c in chunks)
    assert np.array_equal(pcm, np.concatenate(chunks))


def test_wav_sink_adapts_a_mono_write_to_stereo(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = WavSink(path, 48000, 2)
    sink.write(tone(20))
    sink.close()
    pcm, _ = read_wav(path)
    assert pcm.shape == (960, 2) and np.array_equal(pcm[:, 0], pcm[:, 1])


def test_wav_sink_keeps_the_header_valid_while_writing(tmp_path: Path) -> None:
    """A process killed mid-session leaves a file whose header covers what was synced (the clock says when)."""
    now = [0.0]
    path = tmp_path / "live.wav"
    sink = WavSink(path, 24000, 1, clock=lambda: now[0])
    assert read_wav(path)[0].size == 0  # valid and empty from the start
    for _ in range(50):  # 1 s of audio over 1 s of "time"
        sink.write(tone(20, rate=24000))
        now[0] += 0.02
    synced = read_wav(path)[0]  # the file as a reader sees it now, without close()
    header_frames = struct.unpack_from("<I", path.read_bytes(), 40)[0] // 2
    assert header_frames == synced.size
    assert synced.size >= 24000 * 0.5  # synced at least every HEADER_INTERVAL_S
    sink.close()
    assert read_wav(path)[0].size == 24000


def test_wav_sink_unwritable_path_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"cannot write output file .*--output-file"):
        WavSink(tmp_path / "no" / "such" / "dir.wav")


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
@pytest.mark.parametrize("args", [["-b", "24", "-c", "2"], ["-b", "8", "-c", "1"], ["-b", "32", "-c", "4"]])
def test_reads_what_sox_writes(tmp_path: Path, args: list[str]) -> None:
    """Cross-check against another writer: sox uses WAVE_FORMAT_EXTENSIBLE for 24-bit and multi-channel."""
    src = tmp_path / "src.wav"
    write_test_wav(src, tone(300, freq=700, rate=44100), 44100)
    out = tmp_path / "sox.wav"
    subprocess.run(["sox", str(src), *args, str(out)], check=True, timeout=30, capture_output=True)
    pcm, rate = read_wav(out)
    mono = pcm if pcm.ndim == 1 else pcm[:, 0]
    original = read_wav(src)[0]
    assert rate == 44100 and mono.shape == original.shape
    assert np.corrcoef(mono.astype(np.float64), original.astype(np.float64))[0, 1] > 0.99  # sox dithers


def test_null_sink_discards_and_counts() -> None:
    sink = NullSink()
    assert (sink.rate, sink.channels) == (48000, 1)
    sink.write(tone(20))
    sink.close()
    assert sink.frames_written == 960

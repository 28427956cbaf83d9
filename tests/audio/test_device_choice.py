"""Device selection, the device table, and life without PortAudio (no sound server needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audiofakes import tone

from voicecoach.audio import devices
from voicecoach.audio.devices import DeviceInfo, format_device_table, open_sink, open_source, resolve_device
from voicecoach.audio.files import FileSource, WavSink
from voicecoach.errors import AudioError, DeviceNotFound, PortAudioMissing

FAKE = [
    DeviceInfo(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 2, 48000.0, False, False),
    DeviceInfo(1, "USB Headset", 1, 0, 16000.0, False, False),
    DeviceInfo(2, "pulse", 32, 32, 44100.0, False, False),
    DeviceInfo(3, "default", 32, 32, 44100.0, True, True),
    DeviceInfo(4, "HDMI 0 (hw:1,3)", 0, 8, 48000.0, False, False),
]


@pytest.fixture
def fake_devices(monkeypatch: pytest.MonkeyPatch) -> list[DeviceInfo]:
    listing = list(FAKE)
    monkeypatch.setattr(devices, "list_devices", lambda: listing)
    return listing


@pytest.mark.usefixtures("fake_devices")
@pytest.mark.parametrize(
    ("spec", "kind", "index"),
    [
        (None, "input", 3),
        (None, "output", 3),
        (2, "output", 2),
        ("4", "output", 4),
        (" 1 ", "input", 1),
        ("usb", "input", 1),
        ("HEADSET", "input", 1),
        ("hdmi", "output", 4),
        ("Pulse", "input", 2),
    ],
)
def test_resolve_by_default_index_or_name(spec: str | int | None, kind: devices.Kind, index: int) -> None:
    assert resolve_device(spec, kind).index == index


@pytest.mark.usefixtures("fake_devices")
def test_an_exact_name_beats_substrings_and_ambiguity_is_an_error() -> None:
    FAKE_WITH_TWIN = DeviceInfo(5, "pulse monitor", 2, 0, 48000.0, False, False)
    devices.list_devices().append(FAKE_WITH_TWIN)
    assert resolve_device("pulse", "input").index == 2
    with pytest.raises(DeviceNotFound, match=r"'puls' matches several input devices \(2 pulse, 5 pulse monitor\)"):
        resolve_device("puls", "input")


@pytest.mark.usefixtures("fake_devices")
@pytest.mark.parametrize(
    ("spec", "kind", "what"),
    [
        ("usb", "output", "no output device matches 'usb'"),  # exists, but has no outputs
        (4, "input", "no input device with index 4"),
        ("nosuch", "input", "no input device matches 'nosuch'"),
    ],
)
def test_a_missing_device_lists_the_available_ones(spec: str | int, kind: devices.Kind, what: str) -> None:
    with pytest.raises(DeviceNotFound) as info:
        resolve_device(spec, kind)
    message = str(info.value)
    assert message.startswith(what) and "`voicecoach devices`" in message and "\n" not in message
    assert "3 default" in message and "2 pulse" in message
    assert ("1 USB Headset" in message) == (kind == "input")
    assert f"--{kind}-file" in message


def test_no_devices_at_all_says_so_and_offers_files(fake_devices: list[DeviceInfo]) -> None:
    fake_devices.clear()
    with pytest.raises(
        DeviceNotFound, match=r"no default output device; there are no audio output devices .*--output-file"
    ):
        resolve_device(None, "output")


def test_no_default_device(fake_devices: list[DeviceInfo]) -> None:
    fake_devices[:] = [d for d in fake_devices if not d.is_default_input]
    with pytest.raises(DeviceNotFound, match="no default input device; available: 0 HDA"):
        resolve_device(None, "input")


def test_device_table_shows_index_name_channels_rate_and_defaults() -> None:
    lines = format_device_table(FAKE).splitlines()
    assert lines[0].split() == ["#", "name", "in", "out", "rate", "default"]
    assert len(lines) == 1 + len(FAKE)
    assert lines[4].split() == ["3", "default", "32", "32", "44100", "input,", "output"]
    assert lines[2].split() == ["1", "USB", "Headset", "1", "0", "16000"]
    assert "no audio devices found" in format_device_table([])


def test_without_portaudio_devices_fail_clearly_and_files_still_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_portaudio() -> None:
        raise OSError("PortAudio library not found")

    monkeypatch.setattr(devices, "_import_sounddevice", no_portaudio)
    for attempt in (devices.list_devices, lambda: open_source(None, None), lambda: open_sink(None, "pulse")):
        with pytest.raises(PortAudioMissing) as info:
            attempt()
        assert str(info.value) == devices.PORTAUDIO_MISSING
        assert isinstance(info.value.__cause__, OSError)
        assert isinstance(info.value, AudioError) and info.value.exit_code == 2
    wav = tmp_path / "in.wav"
    WavSink(wav, 16000).close()
    source = open_source(wav, "ignored when a file is given")
    sink = open_sink(tmp_path / "out.wav", None, rate=16000)
    assert isinstance(source, FileSource) and isinstance(sink, WavSink) and sink.rate == 16000
    sink.write(tone(20, rate=16000))
    sink.close()


def test_audio_modules_do_not_import_sounddevice() -> None:
    """Importing every audio module, and using files, must not load PortAudio (checked in a fresh interpreter)."""
    code = (
        "import sys, numpy as np\n"
        "from voicecoach.audio import alsa, base, devices, files, frames, playout, tracks\n"
        "files.PcmSource(np.zeros(960, dtype=np.int16), 48000)\n"
        "print('sounddevice' in sys.modules)\n"
    )
    src = str(Path(devices.__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": src}, check=True
    )
    assert out.stdout.strip() == "False"


def test_file_source_and_sink_are_chosen_over_devices(tmp_path: Path) -> None:
    """No device is even looked up when files are given (this runs without any sound server)."""
    wav = tmp_path / "in.wav"
    sink = WavSink(wav, 48000)
    sink.write(np.ones(960, dtype=np.int16))
    sink.close()
    assert isinstance(open_source(wav, None), FileSource)
    out = open_sink(tmp_path / "o.wav", None)
    assert isinstance(out, WavSink) and out.rate == 24000 and out.channels == 1
    out.close()

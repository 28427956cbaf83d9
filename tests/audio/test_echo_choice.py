"""``echo_cancellation = auto``: which runs get the echo canceller, from device names and the sound server's port.

The rules run on made-up PortAudio names and a fake sink probe; the real probe runs against the private
PulseAudio of ``virtual_audio`` (its null sink is no headset; one added with a headset form factor is).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pulse
import pytest

from voicecoach.audio import devices, pactl
from voicecoach.audio.devices import DeviceInfo
from voicecoach.audio.echo_choice import EchoDecision, card_of, choose, headset_sink, sound_server_sink
from voicecoach.audio.pactl import PulseSink


def dev(name: str, index: int = 0) -> DeviceInfo:
    return DeviceInfo(index, name, 2, 2, 48000.0, False, False)


def no_probe() -> PulseSink | None:
    raise AssertionError("the sound server must not be asked here")


class FakeProbe:
    def __init__(self, sink: PulseSink | None) -> None:
        self.sink = sink
        self.calls = 0

    def __call__(self) -> PulseSink | None:
        self.calls += 1
        return self.sink


LAPTOP = "HDA Intel PCH: ALC257 Analog (hw:0,0)"
WEBCAM = "HD Webcam C525: USB Audio (hw:1,0)"
SPEAKERS_PORT = PulseSink("alsa_output.pci.analog-stereo", "Built-in Audio Analog Stereo", "analog-output-speaker",
                          "Speakers", "Speaker", "internal")  # fmt: skip


# --- the setting itself, and files --------------------------------------------------------------------------


def test_off_and_on_are_obeyed_whatever_the_devices() -> None:
    assert choose("off", dev(LAPTOP), dev(LAPTOP), probe=no_probe) == EchoDecision(False, "echo_cancellation is off")
    assert choose("on", dev(WEBCAM), dev("AirPods Pro"), probe=no_probe) == EchoDecision(
        True, "echo_cancellation is on"
    )


@pytest.mark.parametrize(("mic", "speaker", "end"), [(None, dev(LAPTOP), "microphone"), (dev(LAPTOP), None, "output")])
def test_a_file_at_either_end_is_off_in_auto_and_said_when_forced_on(
    mic: DeviceInfo | None, speaker: DeviceInfo | None, end: str
) -> None:
    auto = choose("auto", mic, speaker, probe=no_probe)
    assert not auto.on and f"the {end} is a file" in auto.why
    forced = choose("on", mic, speaker, probe=no_probe)
    assert forced.on and f"the {end} is a file" in forced.why and "no echo to cancel" in forced.why
    assert not choose("auto", None, None, probe=no_probe).on


# --- one card -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mic", "speaker"),
    [
        (LAPTOP, LAPTOP),  # ALSA's duplex device
        (LAPTOP, "HDA Intel PCH: HDMI 0 (hw:0,3)"),  # same card index, another device on it
        ("HDA Intel PCH: ALC257 Analog", "HDA Intel PCH: ALC257 Alt Analog"),  # no hw part: the name before ':'
        ("MacBook Pro Microphone", "MacBook Pro Speakers"),  # macOS: the in/out word dropped
        ("Built-in Microphone", "Built-in Output"),
        ("Microphone Array (Realtek(R) Audio)", "Speakers (Realtek(R) Audio)"),  # Windows: the adapter in brackets
        # The "always": one card is evidence enough, even when the output's name says headphones.
        ("Microphone (Realtek(R) Audio)", "Headphones (Realtek(R) Audio)"),
    ],
)
def test_the_same_card_is_on(mic: str, speaker: str) -> None:
    decision = choose("auto", dev(mic), dev(speaker), probe=no_probe)
    assert decision == EchoDecision(True, f"the microphone and the output are on one card: {speaker}")


@pytest.mark.parametrize("name", ["default", "pulse", "sysdefault", "pipewire", " Pulse ", "jack"])
def test_generic_names_are_no_evidence_of_one_card(name: str) -> None:
    assert card_of(name) is None
    assert card_of("pulse: something") is None  # the part before ':' is generic too


def test_generic_names_on_both_sides_go_on_to_the_headset_question() -> None:
    probe = FakeProbe(PulseSink("bt", "WH-1000XM4", "headphone-output", "Headphone", "Headphones", "headphone"))
    decision = choose("auto", dev("pulse"), dev("pulse"), probe=probe)
    assert decision == EchoDecision(False, "the output is a headset: WH-1000XM4 (Headphone)") and probe.calls == 1
    # sysdefault bypasses the sound server: nothing to ask, and no card in common either.
    decision = choose("auto", dev("sysdefault"), dev("sysdefault"), probe=no_probe)
    assert decision == EchoDecision(True, "the output is not a headset: sysdefault")


def test_different_cards_without_a_headset_are_on() -> None:
    assert card_of(WEBCAM) == "hw:1" and card_of(LAPTOP) == "hw:0"
    decision = choose("auto", dev(WEBCAM), dev(LAPTOP), probe=no_probe)
    assert decision == EchoDecision(True, f"the output is not a headset: {LAPTOP}")


# --- the output's name --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "speaker",
    [
        "USB Headset: Audio (hw:2,0)",
        "Headphones (Realtek(R) Audio)",
        "External Headphones",
        "AirPods Pro",
        "Galaxy Buds2 Pro",
        "Pixel Buds",
        "Jabra Hands-Free",
        "Headset Earphone (Jabra EVOLVE 65)",
        "Sony WH-1000XM4 headphone",
        "EarPods",
    ],
)
def test_an_output_named_like_a_headset_is_off(speaker: str) -> None:
    decision = choose("auto", dev(WEBCAM), dev(speaker), probe=no_probe)
    assert decision == EchoDecision(False, f"the output is a headset: {speaker}")


@pytest.mark.parametrize(
    "speaker", ["Speakers (Realtek(R) Audio)", "Budget Speakers", "Rosebuds Soundbar", "DELL U2720Q (hw:3,3)"]
)
def test_words_that_only_contain_headset_words_do_not_count(speaker: str) -> None:
    assert choose("auto", dev(WEBCAM), dev(speaker), probe=no_probe).on


# --- the sound server's port (generic output on Linux) ------------------------------------------------------


@pytest.mark.parametrize(
    "sink",
    [
        PulseSink("alsa", "Built-in Audio", "analog-output-headphones", "Headphones", "Headphones", "internal"),
        PulseSink("alsa", "Built-in Audio", "analog-output-headphones", "Headphones"),  # pactl < 14: no type
        PulseSink("bluez_output.x.1", "Jabra Elite", "headset-output", "Headset", "Headset", "headset"),
        PulseSink("bluez_output.y.1", "Some Device", "speaker-output", "Speaker", "Speaker", "headphone"),
        PulseSink("usb", "USB Audio", "analog-output", "Analog Output", "Headset"),  # the port type alone
    ],
)
def test_a_headset_port_or_form_factor_of_the_default_sink_is_off(sink: PulseSink) -> None:
    assert headset_sink(sink)
    probe = FakeProbe(sink)
    decision = choose("auto", dev("default"), dev("default"), probe=probe)
    assert not decision.on and decision.why.startswith(f"the output is a headset: {sink.description}")
    assert probe.calls == 1


def test_a_speaker_port_is_on_and_named() -> None:
    probe = FakeProbe(SPEAKERS_PORT)
    decision = choose("auto", dev("pulse"), dev("pipewire"), probe=probe)
    assert decision == EchoDecision(True, "the output is not a headset: Built-in Audio Analog Stereo (Speakers)")
    hdmi = PulseSink("alsa_output.hdmi", "Built-in Audio Digital Stereo (HDMI)", "hdmi-output-0", "HDMI / DisplayPort",
                     "HDMI", "internal")  # fmt: skip
    assert not headset_sink(hdmi)


def test_an_unknown_sink_is_on() -> None:
    probe = FakeProbe(None)
    decision = choose("auto", dev(LAPTOP), dev("pulse"), probe=probe)
    assert decision == EchoDecision(True, "the output is not known to be a headset: pulse") and probe.calls == 1


def test_a_named_output_is_never_probed() -> None:
    assert choose("auto", dev("pulse"), dev(LAPTOP), probe=no_probe).on


# --- pactl's text -------------------------------------------------------------------------------------------

# As PulseAudio 16.1 prints it with LC_ALL=C (trimmed), with tabs: a laptop card on its headphones, and a
# Bluetooth headset.
PACTL_SINKS = """\
Sink #54
\tState: RUNNING
\tName: alsa_output.pci-0000_00_1f.3.analog-stereo
\tDescription: Built-in Audio Analog Stereo
\tDriver: module-alsa-card.c
\tVolume: front-left: 32768 /  50% / -18.06 dB,   front-right: 32768 /  50% / -18.06 dB
\t        balance 0.00
\tProperties:
\t\talsa.card = "0"
\t\tdevice.bus = "pci"
\t\tdevice.form_factor = "internal"
\tPorts:
\t\tanalog-output-speaker: Speakers (type: Speaker, priority: 10000, availability group: Legacy 3, not available)
\t\tanalog-output-headphones: Headphones (type: Headphones, priority: 9900, availability group: Legacy 2, available)
\tActive Port: analog-output-headphones
\tFormats:
\t\tpcm

Sink #60
\tState: IDLE
\tName: bluez_output.00_1B_66_AA_BB_CC.1
\tDescription: Jabra Elite 75t
\tProperties:
\t\tdevice.bus = "bluetooth"
\t\tdevice.form_factor = "headset"
\tPorts:
\t\theadset-output: Headset (priority: 0, available)
\tActive Port: headset-output
\tFormats:
\t\tpcm

Sink #61
\tName: vspeaker
\tDescription: VirtualSpeaker
\tProperties:
\t\tdevice.class = "abstract"
\tFormats:
\t\tpcm
"""


def test_pactl_sinks_are_parsed_with_their_active_port_and_form_factor() -> None:
    assert pactl._parse_sinks(PACTL_SINKS) == [
        PulseSink("alsa_output.pci-0000_00_1f.3.analog-stereo", "Built-in Audio Analog Stereo",
                  "analog-output-headphones", "Headphones", "Headphones", "internal"),
        PulseSink("bluez_output.00_1B_66_AA_BB_CC.1", "Jabra Elite 75t", "headset-output", "Headset", None, "headset"),
        PulseSink("vspeaker", "VirtualSpeaker"),
    ]  # fmt: skip
    assert [headset_sink(s) for s in pactl._parse_sinks(PACTL_SINKS)] == [True, True, False]


# --- the real probe -----------------------------------------------------------------------------------------


def test_without_pactl_the_probe_says_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pactl on it
    assert sound_server_sink() is None
    assert choose("auto", dev("pulse"), dev("pulse")) == EchoDecision(
        True, "the output is not known to be a headset: pulse"
    )


def test_a_pactl_that_hangs_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pactl"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pactl, "PACTL_TIMEOUT_S", 0.2)
    assert sound_server_sink() is None  # (pytest's timeout fails the test if the probe is not bounded)


def pulse_device(name: str) -> DeviceInfo:
    return next(d for d in devices.list_devices() if d.name == name)


def test_the_real_probe_finds_the_virtual_null_sink_not_a_headset(virtual_audio: pulse.VirtualAudio) -> None:
    sink = sound_server_sink()
    assert sink == PulseSink("vspeaker", "VirtualSpeaker")
    decision = choose("auto", pulse_device("pulse"), pulse_device("pulse"))
    assert decision == EchoDecision(True, "the output is not a headset: VirtualSpeaker")


@contextlib.contextmanager
def headset_sink_loaded(audio: pulse.VirtualAudio) -> Iterator[str]:
    """A null sink that says it is a headset, unloaded afterwards (the daemon is shared by the session)."""
    props = "sink_properties='device.description=VirtualHeadset device.form_factor=headset'"
    loaded = subprocess.run(
        ["pactl", "load-module", "module-null-sink", "sink_name=vheadset", props],
        env=audio.child_env(), capture_output=True, text=True, check=True, timeout=pactl.PACTL_TIMEOUT_S,
    )  # fmt: skip
    try:
        yield "vheadset"
    finally:
        subprocess.run(
            ["pactl", "unload-module", loaded.stdout.strip()],
            env=audio.child_env(), check=True, timeout=pactl.PACTL_TIMEOUT_S,
        )  # fmt: skip


def test_the_real_probe_sees_a_headset_form_factor(
    virtual_audio: pulse.VirtualAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    with headset_sink_loaded(virtual_audio) as name:
        monkeypatch.setenv("PULSE_SINK", name)  # where the pulse plugin would play (the default stays put)
        sink = sound_server_sink()
        assert sink is not None and sink.name == name and sink.form_factor == "headset"
        decision = choose("auto", pulse_device("pulse"), pulse_device("default"))
        assert decision == EchoDecision(False, "the output is a headset: VirtualHeadset")
    assert sound_server_sink() is None  # PULSE_SINK names a sink that is gone: unknown, not an error
    monkeypatch.delenv("PULSE_SINK")
    assert sound_server_sink() == PulseSink("vspeaker", "VirtualSpeaker")

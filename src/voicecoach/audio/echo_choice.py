"""Whether a run needs echo cancellation (``echo_cancellation = "auto" | "on" | "off"``).

``auto`` asks one question: can the speakers' sound reach the microphone? Not when either end is a file, nor
through a headset. It can when both devices are on one sound card (a laptop's speakers and microphone), and
when the output is not known to be a headset, because cancelling an echo that is not there costs little (AEC3
passes the microphone through) while a missed echo makes the coach trigger on its own words.

Evidence, in order: the PortAudio names (the card part, and headset words in the output's name), then, for the
generic ``pulse``/``default``/``pipewire`` output on Linux, the sound server's active port of the sink it plays
on (``pactl``, through :mod:`voicecoach.audio.pactl`). That probe is an argument, so :func:`choose` stays a pure
function of what it is given.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import pactl
from .devices import DeviceInfo
from .pactl import PulseSink, PulseUnavailable

log = logging.getLogger(__name__)

# PortAudio names that say which software path plays, not which card: no evidence of a shared card.
GENERIC_NAMES = frozenset({"default", "pulse", "sysdefault", "pipewire", "jack", "dmix", "dsnoop"})
# Those that reach the sound server, which knows the real sink and its port.
SOUND_SERVER_NAMES = frozenset({"default", "pulse", "pipewire"})
# Words of a headset, matched as words in any case: "Headphones (Realtek(R) Audio)", "Galaxy Buds2 Pro",
# "analog-output-headphones", "headset-output".
_HEADSET = re.compile(
    r"(?<![a-z])(head ?sets?|head ?phones?|earphones?|ear ?buds?|earpods|airpods|buds|hands[- ]?free|handset"
    r"|earpiece)(?![a-z])",
    re.IGNORECASE,
)
# pactl's port types and device.form_factor values that are worn on (or held to) the ear.
_HEADSET_PORT_TYPES = frozenset({"headphones", "headset", "handset", "earpiece", "handsfree"})
_HEADSET_FORM_FACTORS = frozenset({"headset", "headphone", "hands-free", "handset"})
# The words that tell a card's input from its output, dropped to compare what is left of two names.
_IO_WORDS = re.compile(
    r"(?<![a-z])(microphones?|mic|array|speakers?|headphones?|headsets?|earphones?|input|output|line in|line out)"
    r"(?![a-z])",
    re.IGNORECASE,
)
_ALSA_CARD = re.compile(r"\(hw:(\d+),\d+\)")  # "HDA Intel PCH: ALC257 Analog (hw:0,0)"
_ADAPTER = re.compile(r"\((.+)\)\s*$")  # Windows: "Speakers (Realtek(R) Audio)", the endpoint then the adapter

SinkProbe = Callable[[], PulseSink | None]


@dataclass(frozen=True)
class EchoDecision:
    on: bool
    why: str


def sound_server_sink() -> PulseSink | None:
    """The sink the generic device plays on, or None when nobody can say (not Linux, no pactl, no server).

    Each pactl call is bounded by ``pactl.PACTL_TIMEOUT_S``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return pactl.output_sink()
    except PulseUnavailable as exc:
        log.debug("cannot ask the sound server which output plays: %s", exc)
        return None


def choose(
    setting: str, mic: DeviceInfo | None, speaker: DeviceInfo | None, *, probe: SinkProbe = sound_server_sink
) -> EchoDecision:
    """``mic``/``speaker`` None: that end is a file. ``probe`` is asked only for a generic sound-server output."""
    if setting == "off":
        return EchoDecision(False, "echo_cancellation is off")
    if setting == "on":
        if mic is None or speaker is None:
            return EchoDecision(True, f"echo_cancellation is on, though {_file_end(mic)} (no echo to cancel)")
        return EchoDecision(True, "echo_cancellation is on")
    if mic is None or speaker is None:
        return EchoDecision(False, f"{_file_end(mic)}: no sound travels from speakers to microphone")
    card = card_of(mic.name)
    if card is not None and card == card_of(speaker.name):
        return EchoDecision(True, f"the microphone and the output are on one card: {speaker.name}")
    if _HEADSET.search(speaker.name):
        return EchoDecision(False, f"the output is a headset: {speaker.name}")
    if speaker.name.strip().lower() in SOUND_SERVER_NAMES:
        sink = probe()
        if sink is None:
            return EchoDecision(True, f"the output is not known to be a headset: {speaker.name}")
        if headset_sink(sink):
            return EchoDecision(False, f"the output is a headset: {_sink_name(sink)}")
        return EchoDecision(True, f"the output is not a headset: {_sink_name(sink)}")
    return EchoDecision(True, f"the output is not a headset: {speaker.name}")


def card_of(name: str) -> str | None:
    """What names the physical card in a PortAudio device name, the same for its input and its output; None
    for a generic name (it says nothing about the card)."""
    text = " ".join(name.split())
    if (alsa := _ALSA_CARD.search(text)) is not None:
        return f"hw:{alsa[1]}"
    if text.lower() in GENERIC_NAMES:
        return None
    if ": " in text:  # ALSA without the hw part: "HDA Intel PCH: ALC257 Analog"
        text = text.split(": ", 1)[0]
        return None if text.lower() in GENERIC_NAMES else text.lower()
    if (adapter := _ADAPTER.search(text)) is not None:
        return adapter[1].lower()
    left = " ".join(_IO_WORDS.sub(" ", text).split()).lower()  # macOS: "MacBook Pro Microphone"/"… Speakers"
    return left or None


def headset_sink(sink: PulseSink) -> bool:
    """The sink's active port, or the device itself, is worn on the ear."""
    if (sink.port_type or "").lower() in _HEADSET_PORT_TYPES:
        return True
    if (sink.form_factor or "").lower() in _HEADSET_FORM_FACTORS:
        return True
    return any(_HEADSET.search(text) for text in (sink.active_port, sink.port_description) if text)


def _sink_name(sink: PulseSink) -> str:
    return f"{sink.description} ({sink.port_description})" if sink.port_description else sink.description


def _file_end(mic: DeviceInfo | None) -> str:
    return "the microphone is a file" if mic is None else "the output is a file"

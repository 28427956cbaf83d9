"""Whether a run needs echo cancellation (``echo_cancellation = "auto" | "on" | "off"``). Placeholder."""

from __future__ import annotations

from dataclasses import dataclass

from .devices import DeviceInfo


@dataclass(frozen=True)
class EchoDecision:
    on: bool
    why: str


def choose(setting: str, mic: DeviceInfo | None, speaker: DeviceInfo | None) -> EchoDecision:
    if setting == "off":
        return EchoDecision(False, "--echo-cancellation off")
    if setting == "on":
        return EchoDecision(True, "--echo-cancellation on")
    if mic is None or speaker is None:
        return EchoDecision(False, "a file in or out: no sound reaches the microphone from the speakers")
    return EchoDecision(True, "the output is not a headset")

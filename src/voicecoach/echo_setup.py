"""Puts the echo canceller between the microphone and the link, when the run needs one.

:func:`setup_echo` takes the opened audio (microphone, speaker, the call's audio) and the settings, decides
(``echo_cancellation``: :func:`voicecoach.audio.echo_choice.choose`), and returns an :class:`EchoSetup`:
the source the links should read, the call's audio for the them link, the settings to run with, and what to
tell the user. The far-end reference is the monitor of the speakers' sink when the call's audio comes from
there (it holds the call and the hints), else our own playout.

When the canceller cannot load, the run goes on with ``mute_mic_while_speaking``: one line says so.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .audio.base import FrameSink, FrameSource
from .audio.devices import DeviceSink, DeviceSource
from .audio.echo import EchoCancelledSource, EchoCancellerMissing, load_aec3
from .audio.echo_choice import EchoDecision, choose
from .audio.echo_reference import PLAYED_BLOCKS, CallAudioTee, FarEnd, PlayedTap
from .config import Settings

log = logging.getLogger(__name__)


@dataclass
class EchoSetup:
    """What the run reads and says once the echo canceller is in place (or known not to be)."""

    source: FrameSource  # the microphone, echo-cancelled when ``active``
    them: FrameSource | None  # the call's audio for the them link (a branch of the tee when it is the reference)
    settings: Settings  # with mute_mic_while_speaking on when the canceller was wanted but cannot load
    decision: EchoDecision
    active: bool
    notice: str | None = None  # one line for the user (the fallback), or None
    tee: CallAudioTee | None = None

    @property
    def label(self) -> str:
        """For the status line: ``echo: on``, ``echo: off`` or ``echo: muting``."""
        if self.active:
            return "echo: on"
        return "echo: muting" if self.settings.coach.mute_mic_while_speaking and self.decision.on else "echo: off"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Owns the call-audio reader while the run lasts (nothing to own without one)."""
        if self.tee is None:
            yield
            return
        async with self.tee.running():
            yield


def setup_echo(
    settings: Settings, mic: FrameSource, speaker: FrameSink, them: FrameSource | None, *, them_is_monitor: bool
) -> EchoSetup:
    """``them_is_monitor``: the call's audio is the monitor of the sink the speaker plays on (it holds the
    hints too), so it is the whole far end."""
    decision = choose(
        settings.echo_cancellation,
        mic.device if isinstance(mic, DeviceSource) else None,
        speaker.device if isinstance(speaker, DeviceSink) else None,
    )
    log.debug("echo cancellation %s: %s", "on" if decision.on else "off", decision.why)
    if not decision.on:
        return EchoSetup(mic, them, settings, decision, active=False)
    try:
        canceller = load_aec3(noise_suppression=settings.noise_suppression, high_pass_filter=settings.high_pass_filter)
    except EchoCancellerMissing as exc:
        coach = settings.coach.model_copy(update={"mute_mic_while_speaking": True})
        notice = f"echo cancellation unavailable: {exc}; the microphone is muted while the coach speaks instead"
        return EchoSetup(mic, them, settings.model_copy(update={"coach": coach}), decision, False, notice)
    far = FarEnd()
    if them is not None and them_is_monitor:
        tee = CallAudioTee(them, far)
        source = EchoCancelledSource(mic, canceller, far, live=True)
        return EchoSetup(source, tee.branch(), settings, decision, active=True, tee=tee)
    played = None
    if isinstance(speaker, DeviceSink):
        speaker.played = deque(maxlen=PLAYED_BLOCKS)
        played = PlayedTap(far, speaker.played, speaker.rate, speaker.channels)
        speaker.on_played = played.notify
    return EchoSetup(EchoCancelledSource(mic, canceller, far, played=played), them, settings, decision, active=True)

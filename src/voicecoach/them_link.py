"""The other side of the call ("them"): a second, transcription-only link of the same run.

The call's audio (the monitor of the default sink, or ``--them-file``) goes to its own Realtime session of
``type: "transcription"`` over the WebSocket (``{base_url}/realtime?intent=transcription``, no model in the
URL; next-wave.md §2): server VAD cuts it into turns and ``them_transcription_model`` transcribes them. The
session only listens: nothing plays from it, and no response is ever asked of it.

:class:`ThemLink` is owned by the runner as one task (:meth:`ThemLink.run`, cancelled and awaited at the end
of the run). It keeps its link up on its own, apart from the main one, so that a failure of either is reported
on its own and never ends the run:

- **connect**: key → WebSocket → ``session.update`` → ``session.updated``, then audio flows. A failure is one
  warning line (again only when the failure changes) and a retry after :data:`RECONNECT_DELAYS_S` (the last
  delay repeats for as long as the run lasts: the call's audio is worth having back whenever the server is);
- **lost**: the same line and the same back-off;
- **rollover**: a transcription session has the same 60-minute cap as the main one, so the link is renewed
  ``rollover_margin`` before ``session_max_seconds``, at a moment when no turn of theirs is open (or at the
  cap's edge if they never pause). Nothing needs carrying over: a transcription session has no conversation.

Every server event goes to ``on_message`` (the runner's receive path: events file with ``"channel": "them"``,
then the coach's them channel) and comes back parsed, so that this module can follow the link's own state
(ready, open turns, errors) without parsing twice.

**The coach's own voice.** When the call's audio is the monitor of the sink the hints play on (headphones
and a call app on the same default output), every hint is captured as well. With ``gate`` the
uplink sends silence (continuous, so the server's VAD and timestamps go on) from the moment the player starts
sounding until :data:`GATE_RELEASE_S` after it stops, the monitor's latency and the hint's tail included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr

from .audio.base import FrameSource
from .audio.frames import WIRE_RATE, Pcm, silence
from .config import Settings
from .errors import ConnectError, TransportError
from .link import Link, hold
from .protocol import client_events as ce
from .protocol import server_events as se
from .session_config import build_transcription_session
from .tasks import cancel_all
from .transport.base import AudioOut, TransportFactory
from .transport.choice import key_source_for
from .transport.credentials import ApiKey, KeySource, obtain_client_secret
from .transport.websocket import WebSocketTransport
from .transport.websocket_wire import transcription_url

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # then the last one, for as long as the run lasts
GATE_RELEASE_S = 0.3  # after the player stops: device and monitor latency, and the tail of the last word
CHANNEL: Literal["them"] = "them"
ROLLOVER = "renewing the session before its time limit"

Credential = Callable[[], Awaitable[SecretStr]]
OnMessage = Callable[[str | bytes], se.ServerEvent]


class InputOnlyWebSocket(WebSocketTransport):
    """The WebSocket transport without playout: a transcription session sends no audio back."""

    async def play(self, player: AudioOut) -> None:
        await self.closed.wait()


class _NoPlayer:
    async def run(self, track: Any) -> None:  # never called: InputOnlyWebSocket.play does not use it
        return None


class GatedSource:
    """A :class:`FrameSource` that reads ``source`` on and gives silence instead while ``gated()`` holds.

    It also keeps the capture time of the first frame read since :meth:`restart` (``epoch``): on the WebSocket
    that is the first sample of a session's input audio, where its ``audio_start_ms`` count from. A source with
    ``frame_time`` (a device: when the frame was captured, before its queue) says it; else it is the read time
    less one frame (a file paced by the uplink is read as its frame is due).
    """

    def __init__(self, source: FrameSource, gated: Callable[[], bool]) -> None:
        self._source = source
        self._gated = gated
        self.realtime = source.realtime
        self.frames_gated = 0
        self.epoch: float | None = None

    def restart(self) -> None:
        """A new session begins: the next frame read is its first."""
        self.epoch = None

    async def read(self) -> Pcm:
        pcm = await self._source.read()  # drained while gated, so nothing stale is sent when it opens
        if self.epoch is None:
            captured = getattr(self._source, "frame_time", None)
            self.epoch = captured if isinstance(captured, float) else time.monotonic() - len(pcm) / WIRE_RATE
        if self._gated():
            self.frames_gated += 1
            return silence(len(pcm))
        return pcm

    def close(self) -> None:
        self._source.close()


@dataclass
class RolloverClock:
    """When a transcription session is renewed (pure: times are the caller's monotonic seconds).

    ``due(now)`` from ``session_max - margin`` after the link opened while no turn is open, and unconditionally
    from ``session_max - margin / 4`` (a speaker who never pauses must not reach the server's cap).
    """

    session_max: float
    margin: float
    opened_at: float | None = None
    open_turns: int = 0

    def opened(self, now: float) -> None:
        self.opened_at, self.open_turns = now, 0

    def due(self, now: float) -> bool:
        if self.opened_at is None:
            return False
        age = now - self.opened_at
        return age >= self.session_max - self.margin / 4 or (
            age >= self.session_max - self.margin and self.open_turns == 0
        )

    def next_check(self, now: float) -> float:
        """Seconds until :meth:`due` may first hold (0 once it may)."""
        if self.opened_at is None:
            return self.session_max
        return max(0.0, self.opened_at + self.session_max - self.margin - now)


class ThemLink:
    def __init__(
        self,
        settings: Settings,
        source: FrameSource,
        *,
        on_message: OnMessage,
        on_sent: Callable[[dict[str, Any]], None],
        on_notice: Callable[[str], None],
        clock: Callable[[], float],
        gate: bool = False,
        on_up: Callable[[float], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        factory: TransportFactory | None = None,
        credential: Credential | None = None,
    ) -> None:
        """``on_notice(text)`` shows one warning line. ``on_up(epoch)``: a session takes audio, its first sample
        captured at ``epoch`` (``time.monotonic()``; its ``audio_start_ms`` count from there). ``on_lost(reason)``:
        it is gone. ``factory``/``credential`` replace the WebSocket and the key (tests). Raises a one-line
        ConfigError/AuthError for unusable credentials at once."""
        self.settings = settings
        self.source = GatedSource(source, self.gated)
        self.links = 0  # connections made: 1 + reconnects + rollovers
        self.failures = 0  # connect attempts that failed
        self.link: Link | None = None
        self.audio_origin: float | None = None  # when the current session's first sample was captured (monotonic)
        self._on_message = on_message
        self._on_up = on_up
        self._on_lost = on_lost
        self._on_sent = on_sent
        self._notice = on_notice
        self._clock = clock
        self._gate = gate
        self._sounding = False
        self._release_at = 0.0
        self._factory = factory
        self._credential = credential
        self._keys: KeySource | None = None if credential is not None else key_source_for(settings)
        self._rollover = RolloverClock(settings.session_max_seconds, settings.rollover_margin)
        self._renew = asyncio.Event()
        self._ready = asyncio.Event()
        self._epoch_told = False

    # --- the coach's voice ----------------------------------------------------------------------------------

    def playback(self, sounding: bool, at: float) -> None:
        """The player started or stopped sounding (the runner's edges), ``at`` on the run's clock."""
        self._sounding = sounding
        if not sounding:
            self._release_at = at + GATE_RELEASE_S

    def gated(self) -> bool:
        return self._gate and (self._sounding or self._clock() < self._release_at)

    # --- the task -------------------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """The current link's session answered its configuration: the call's audio is being transcribed."""
        return self._ready.is_set()

    def renew(self) -> None:
        """Close the current link and open a fresh session (tests; the rollover does it by itself)."""
        self._renew.set()

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Keep the link up until cancelled. Never raises for a connection that fails or is lost."""
        failures, said = 0, ""
        while True:
            try:
                link = await self._open(http)
            except (ConnectError, TimeoutError) as exc:
                delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
                failures += 1
                self.failures += 1
                if str(exc) != said:  # one line per kind of failure, not one every 15 s for a whole meeting
                    said = str(exc)
                    self._notice(f"the other side's transcription is not connected ({exc}); retrying in {delay:g} s")
                log.debug("them link: attempt %d failed (%s); next in %g s", failures, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures, said = 0, ""
            reason = await self._hold(link)
            if reason != ROLLOVER:  # a rollover is routine: nothing to tell
                self._notice(f"the other side's transcription: {reason}; reconnecting")

    async def _open(self, http: aiohttp.ClientSession) -> Link:
        s = self.settings
        update = ce.SessionUpdate(session=build_transcription_session(s)).to_wire()
        factory = self._factory or _factory(http, s)
        link = await Link.open(
            credential=self._key(http), factory=factory, source=self.source, session_update=update,
            timeout_s=s.connect_timeout,
        )  # fmt: skip
        self._on_sent(update)
        try:
            answer = se.parse_server_event(await link.ready(s.connect_timeout))
            if isinstance(answer, se.ErrorEvent):  # e.g. a server without transcription sessions
                said = f"{answer.error.code or answer.error.type}: {answer.error.message}"
                raise TransportError(f"the server refused the transcription session ({said})")
        except BaseException:
            await link.close()
            raise
        return link

    async def _hold(self, link: Link) -> str:
        """Serve one link until it is lost or renewed; close it. Returns why it ended."""
        self.link, self.links = link, self.links + 1
        self._renew.clear()
        self.source.restart()
        link.uplink.open_gate()
        self.audio_origin = self._clock()
        self._rollover.opened(self.audio_origin)
        self._ready.set()
        self._epoch_told = False
        renewing = asyncio.create_task(self._renewal(), name="them-rollover")
        try:
            await hold(link, self._received, _NoPlayer(), self._renew, closing=self._unlinked)
        finally:
            await cancel_all([renewing])
        reason = ROLLOVER if self._renew.is_set() else f"connection lost ({link.transport.close_reason})"
        if self._on_lost is not None:
            self._on_lost(reason)
        return reason

    def _unlinked(self) -> None:
        self._ready.clear()
        self.link = None

    async def _renewal(self) -> None:
        while not self._renew.is_set():
            wait = self._rollover.next_check(self._clock())
            try:
                async with asyncio.timeout(max(wait, 0.25)):  # once due, look again 4 times a second
                    await self._renew.wait()
            except TimeoutError:
                if self._rollover.due(self._clock()):
                    log.debug("them session rollover")
                    self._renew.set()

    def _received(self, raw: str | bytes) -> None:
        if not self._epoch_told and (epoch := self.source.epoch) is not None:
            self._epoch_told = True  # known once audio flows: long before a turn can start
            self.audio_origin = epoch
            if self._on_up is not None:
                self._on_up(epoch)
        event = self._on_message(raw)
        if isinstance(event, se.SpeechStarted):
            self._rollover.open_turns += 1
        elif isinstance(event, se.TranscriptionCompleted | se.TranscriptionFailed):
            self._rollover.open_turns = max(0, self._rollover.open_turns - 1)
        # Errors on this link are the coach's to report (its them channel); they never end the run.

    def _key(self, http: aiohttp.ClientSession) -> Credential:
        if self._credential is not None:
            return self._credential
        keys = self._keys
        assert keys is not None, "set in __init__ whenever no credential was injected"
        if isinstance(keys, ApiKey):
            standard = keys.key  # the WebSocket takes the standard key itself: no client secret to mint

            async def direct() -> SecretStr:
                return standard

            return direct
        s = self.settings

        async def minted() -> SecretStr:
            secret = await obtain_client_secret(
                http, keys, session=build_transcription_session(s), ttl_seconds=s.token_ttl_seconds,
                timeout_s=s.http_timeout,
            )  # fmt: skip
            return secret.value

        return minted


def _factory(http: aiohttp.ClientSession, settings: Settings) -> TransportFactory:
    url = transcription_url(settings.base_url)

    def make(source: FrameSource, key: SecretStr) -> InputOnlyWebSocket:
        return InputOnlyWebSocket(source, http, url, key)

    return make

"""The session runner: a thin asyncio pump around the pure coach. The one module that knows every part.

Lifecycle of :meth:`SessionRunner.run`::

    loop:
        client secret → WebRTC connect → session.update                       (a "link")
        TaskGroup { server events → coach, remote audio → player, playback watch,
                    intents → coach, supervisor (stop, duration, loss, rollover) }
        link lost or rolled over → back off, reconnect;  stopped → leave
    close everything (always, in reverse order)

The coach decides; this module moves bytes and executes the coach's actions, in order, at once. The first
connection must succeed (a bad key or an unreachable server is reported, not retried); after that, a lost
link is re-established with backoff unless the failure is fatal (bad key, no quota).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from .audio.files import FrameSink, FrameSource
from .audio.tracks import MicTrack, Player
from .coach.actions import (
    Action,
    EndSession,
    ExpectAudio,
    FlushPlayback,
    Intent,
    Metric,
    Notice,
    OpenMic,
    Quit,
    Reconnect,
    Send,
    SetMicMuted,
    StatusChanged,
    TranscriptChanged,
)
from .coach.coach import Coach
from .coach.conversation import Message
from .coach.settings import CoachSettings
from .config import Settings
from .errors import AuthError, ConnectError, SessionError, TransportError, VoicecoachError
from .events_log import EventsLog
from .protocol import client_events as ce
from .protocol.server_events import (
    MalformedEvent,
    ServerEvent,
    SpeechStarted,
    TranscriptionCompleted,
    TranscriptionFailed,
    decode_message,
    parse_server_dict,
)
from .session_config import build_session
from .store import SessionFile, SessionStore
from .transport.ice import pin_host_addresses
from .transport.signaling import ClientSecret, create_client_secret, post_offer
from .transport.token_client import fetch_from_token_server
from .transport.webrtc import RealtimeConnection
from .ui.view import View

log = logging.getLogger(__name__)

PLAYBACK_POLL_S = 0.01
PLAYBACK_HANGOVER_S = 0.8
LOCAL_KEY_FOR_LOOPBACK = "sk-local-no-key-needed"
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
ROLLOVER_MIN_SHARE = 0.2  # a link lives at least this share of session_max_seconds before it rolls over

Outcome = Literal["stopped", "lost", "renew"]


class _LinkOver(Exception):
    """Raised inside a link's task group to end it."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


@dataclass
class SessionReport:
    """What a finished session leaves behind (for summaries, tests and benchmarks)."""

    reason: str = ""
    connect_ms: dict[str, float] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    cost_usd: float = 0.0
    transcript: list[str] = field(default_factory=list)
    links: int = 0  # connections made: 1 + reconnects + rollovers
    session_path: Path | None = None  # the crash-safe transcript file, when kept
    underruns: int = 0  # times the player ran dry while playing


@dataclass
class _Link:
    conn: RealtimeConnection
    mic: MicTrack
    ready_at: float | None = None  # session.updated seen


class SessionRunner:
    def __init__(
        self,
        settings: Settings,
        view: View,
        source: FrameSource,
        sink: FrameSink,
        *,
        intents: asyncio.Queue[Intent] | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.view = view
        self.clock = clock
        self.coach = Coach(settings.coach, model=settings.model)
        self.intents: asyncio.Queue[Intent] = intents or asyncio.Queue()
        self.player = Player(sink, prebuffer_ms=settings.prebuffer_ms)
        self.report = SessionReport()
        self._source = source
        self._sink = sink
        self._store = store
        self.session_file: SessionFile | None = None
        self._interrupts = 0
        self._link: _Link | None = None
        self._muted = False
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()  # the current link's session.updated arrived
        self._stop_reason = ""
        self._renew = asyncio.Event()
        self._renew_reason = ""
        self._end_error: VoicecoachError | None = None
        self._flush_at: float | None = None
        self._kept: set[tuple[str, str]] = set()  # (role, id) of transcript items already finished
        self._open_turns: set[str] = set()  # this link's user turns: speech started, not yet transcribed
        self._t0 = clock()
        self._events = EventsLog(settings.events_file, self._t0) if settings.events_file else None

    # --- public -----------------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Ask the session to end cleanly (safe from any task on the loop)."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def apply_coach_settings(self, settings: CoachSettings) -> None:
        """Use new phrases, windows and durations from now on. Raises ValueError for unusable phrases.

        None of the coach settings live in the server's session config (phrases are matched here, windows and
        durations shape each hint request), so no ``session.update`` is needed.
        """
        self.coach.reconfigure(settings)
        self.settings = self.settings.model_copy(update={"coach": settings})

    async def run(self) -> SessionReport:
        """Run until stopped (duration, quit, signal) or a fatal error. Raises VoicecoachError subclasses."""
        try:
            if self.settings.ice_hosts:  # pinning is process-wide: never undo another part's pin
                pin_host_addresses(self.settings.ice_hosts)
            if self._store is not None:
                meta = {"model": self.settings.model, "base_url": self.settings.base_url}
                self.session_file = self._store.create(meta)
                self.report.session_path = self.session_file.path
            # Keys are read for the whole session, not per link: quit works while (re)connecting, and a hint
            # asked for then goes out as soon as the session is ready.
            intents = asyncio.create_task(self._intents(), name="intents")
            try:
                async with aiohttp.ClientSession() as http:
                    await self._links(http)
            finally:
                intents.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await intents
        finally:
            await self._close()
        if self._end_error is not None:
            raise self._end_error
        return self.report

    # --- the link loop ----------------------------------------------------------------------------------

    async def _links(self, http: aiohttp.ClientSession) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                link = await self._unless_stopped(self._open_link(http))
            except ConnectError as exc:
                if self.report.links == 0 or not exc.retryable or failures >= len(RECONNECT_DELAYS_S):
                    raise
                delay = RECONNECT_DELAYS_S[failures]
                failures += 1
                # The failed attempt left the coach in Connecting; the next attempt's connect() needs it back
                # in Disconnected (Connecting → reconnect is not a legal move). The notice below says why.
                lost = self.coach.disconnected(self.clock(), str(exc))
                self._execute([a for a in lost if not isinstance(a, Notice)])
                self._execute([Notice("warning", f"reconnect failed ({exc}); retrying in {delay:g} s")])
                await self._sleep_unless_stopped(delay)
                continue
            if link is None:
                self.report.reason = self._stop_reason
                return
            failures = 0
            self.report.links += 1
            try:
                outcome, reason = await self._pump(link)
            finally:
                await self._close_link(link)
            self.report.reason = reason
            if outcome == "stopped":
                return
            self._ready.clear()
            self._execute(self.coach.disconnected(self.clock(), reason))
            self._execute([Notice("warning", f"reconnecting: {reason}", {"reconnecting": True})])

    async def _open_link(self, http: aiohttp.ClientSession) -> _Link:
        s = self.settings
        t0 = self.clock()
        self._execute(self.coach.connect(t0))
        if self.report.links == 0:
            self.view.info(f"connecting to {s.base_url} (model {s.model})")
        secret = await self._client_secret(http)
        t_token = self.clock()

        async def exchange(offer: str) -> str:
            answer = await post_offer(http, s.base_url, secret.value, offer, s.http_timeout)
            return answer.sdp

        mic = MicTrack(self._source)
        mic.muted = self._muted
        conn = RealtimeConnection(mic, ice_servers=s.ice_servers)
        try:
            await conn.connect(exchange, s.connect_timeout)
        except BaseException:
            await conn.close()
            mic.stop()
            raise
        link = _Link(conn, mic)
        self._link = link
        self.report.connect_ms = {"token_ms": (t_token - t0) * 1000, **conn.timings.phases}
        self._send(ce.SessionUpdate(session=build_session(s)))
        return link

    async def _client_secret(self, http: aiohttp.ClientSession) -> ClientSecret:
        s = self.settings
        if s.token_url:
            return await fetch_from_token_server(http, s.token_url, s.token_secret, s.http_timeout)
        request = ce.ClientSecretRequest(
            expires_after=ce.ExpiresAfter(seconds=s.token_ttl_seconds), session=build_session(s, with_model=True)
        )
        return await create_client_secret(http, s.base_url, self._api_key(), request, s.http_timeout)

    def _api_key(self) -> SecretStr:
        key = self.settings.api_key
        if key is not None and key.get_secret_value():
            return key
        if _is_loopback(self.settings.base_url):
            # A local server (voicecoach serve) accepts any key; do not make people invent one.
            return SecretStr(LOCAL_KEY_FOR_LOOPBACK)
        raise AuthError("no API key: set OPENAI_API_KEY (or api_key in the config file)")

    async def _unless_stopped(self, opening: Coroutine[Any, Any, _Link]) -> _Link | None:
        """Open a link, or give up at once when stop() is called meanwhile (None)."""
        task = asyncio.create_task(opening, name="open-link")
        stopped = asyncio.create_task(self._stop.wait(), name="stop-wait")
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()  # _open_link closes what it had opened
            await asyncio.gather(task, stopped, return_exceptions=True)
        if task.cancelled():
            return None
        return task.result()  # a link, or the ConnectError that stopped it

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    # --- one link ---------------------------------------------------------------------------------------

    async def _pump(self, link: _Link) -> tuple[Outcome, str]:
        self._renew.clear()
        self._open_turns.clear()
        ended: _LinkOver | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._server_events(link), name="server-events")
                tg.create_task(self._play(link), name="player")
                tg.create_task(self._watch_playback(), name="playback-watch")
                tg.create_task(self._supervise(link), name="supervisor")
                tg.create_task(self._rollover_when_due(link), name="rollover")
        except* _LinkOver as group:
            first = group.exceptions[0]
            assert isinstance(first, _LinkOver)
            ended = first
        assert ended is not None, "the supervisor always ends a link with _LinkOver"
        log.debug("link over: %s (%s)", ended.outcome, ended.reason)
        return ended.outcome, ended.reason

    async def _supervise(self, link: _Link) -> None:
        conn = link.conn
        waits = [
            asyncio.ensure_future(self._stop.wait()),
            asyncio.ensure_future(conn.closed.wait()),
            asyncio.ensure_future(self._renew.wait()),
        ]
        try:
            async with asyncio.timeout(self._remaining()):
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            self.stop(f"--duration {self.settings.duration:g} s reached")
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if self._stop.is_set():
            raise _LinkOver("stopped", self._stop_reason)
        if self._renew.is_set():
            raise _LinkOver("renew", self._renew_reason)
        raise _LinkOver("lost", f"connection lost ({conn.close_reason})")

    def _remaining(self) -> float | None:
        if self.settings.duration is None:
            return None
        return max(0.0, self.settings.duration - (self.clock() - self._t0))

    async def _rollover_when_due(self, link: _Link) -> None:
        """Renew the session before the server's maximum duration, never in the middle of a hint or a user turn.

        Due at ``session_max_seconds - rollover_margin_seconds`` after the link opened (but never before
        ``ROLLOVER_MIN_SHARE`` of the maximum); from then on the first moment with no hint in flight and no user
        turn awaiting its transcript is used (closing the link then would lose that turn: the old session never
        transcribes it, the new one hears only its tail). Half-way through the margin it renews regardless,
        because ``session_expired`` would end the hint and the turn anyway.
        """
        s = self.settings
        opened = self.clock()
        # A margin as long as the session itself would renew every link the moment it opened: a reconnect storm.
        # So a link always lives for at least a share of the session's maximum.
        margin = min(s.rollover_margin, s.session_max_seconds * (1 - ROLLOVER_MIN_SHARE))
        due = opened + s.session_max_seconds - margin
        hard = opened + s.session_max_seconds - margin / 2
        await asyncio.sleep(max(0.0, due - self.clock()))
        # The pure coach has no event to await; this short poll runs once per session hour.
        while (self.coach.busy or self._open_turns) and self.clock() < hard:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._renew_reason = "rolling over to a fresh session before the server's time limit"
        self._renew.set()

    async def _server_events(self, link: _Link) -> None:
        while True:
            raw = await link.conn.messages.get()
            self.receive(raw, self.clock())

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        """Handle one data-channel message: parse, log, let the coach decide, execute. Never raises for bad input.

        Public so that benchmarks and tests can drive exactly the path a received message takes.
        """
        data = decode_message(raw)
        if isinstance(data, MalformedEvent):
            event: ServerEvent = data
            record: Any = {"type": "voicecoach.malformed", "reason": data.reason, "raw": data.raw}
        else:
            event, record = parse_server_dict(data), data
        self._track_turn(event)
        if self._events is not None:
            self._events.write("received", record, now)
        actions = self.coach.handle(event, now)
        self._execute(actions)
        return actions

    def execute(self, actions: list[Action]) -> None:
        """Carry out actions the coach returned outside :meth:`receive` (benchmarks driving the coach directly)."""
        self._execute(actions)

    def _track_turn(self, event: ServerEvent) -> None:
        # A committed turn is only safe once its transcript (or its failure) has arrived; see the rollover.
        match event:
            case SpeechStarted(item_id=item_id):
                self._open_turns.add(item_id)
            case TranscriptionCompleted(item_id=item_id) | TranscriptionFailed(item_id=item_id):
                self._open_turns.discard(item_id)
            case _:
                pass

    async def _play(self, link: _Link) -> None:
        track = await link.conn.remote_track()
        await self.player.run(track)

    async def _watch_playback(self) -> None:
        """Tell the coach when the player starts, and when it has been quiet for PLAYBACK_HANGOVER_S.

        The hang-over keeps the pause between two sentences from counting as the end of a hint.
        """
        playing = False
        quiet_since: float | None = None
        while True:
            await asyncio.sleep(PLAYBACK_POLL_S)
            now = self.clock()
            sounding = self.player.is_playing
            if self._flush_at is not None and not sounding:
                asked, self._flush_at = self._flush_at, None
                self._execute([Metric("hint.interrupt_to_silence_ms", (now - asked) * 1000)])
            if sounding:
                quiet_since = None
                if not playing:
                    playing = True
                    self._execute(self.coach.playback(True, now))
            elif playing:
                quiet_since = quiet_since if quiet_since is not None else now
                if now - quiet_since >= PLAYBACK_HANGOVER_S:
                    playing = False
                    self._execute(self.coach.playback(False, now))

    async def _intents(self) -> None:
        while True:
            intent = await self.intents.get()
            if intent is not Intent.QUIT and not self.coach.live:
                # A key pressed (or a script line read) while connecting acts once the session is ready.
                await self._ready.wait()
            self._execute(self.coach.command(intent, self.clock()))

    # --- actions ------------------------------------------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            self._apply(action)
            self.view.show(action, self.clock())

    def _apply(self, action: Action) -> None:
        match action:
            case Send(event=event, asked_at=asked_at):
                self._send(event)
                if asked_at is not None and isinstance(event, ce.ResponseCreate):
                    self._execute([Metric("hint.trigger_to_send_ms", (self.clock() - asked_at) * 1000)])
            case ExpectAudio(response_id=response_id):
                self.player.mark_response(response_id)
            case FlushPlayback(asked_at=asked_at):
                self.player.flush()
                self._flush_at = asked_at
            case SetMicMuted(muted=muted):
                self._muted = muted
                if self._link is not None:
                    self._link.mic.muted = muted
            case OpenMic():
                if self._link is not None:
                    self._link.mic.open_gate()
                self._ready.set()
            case Metric():
                self.report.metrics.append(action)
                if self._events is not None:
                    record = {"type": "voicecoach.metric", "name": action.name, "value": action.value, **action.data}
                    self._events.write("local", record, self.clock())
            case TranscriptChanged(message=m, final=True) if m.text.strip() and (m.role, m.item_id) not in self._kept:
                # First final wins, as in the session file: a hint finished and later cut off is one item.
                self._kept.add((m.role, m.item_id))
                who = "You" if m.role == "user" else "Coach"
                self.report.transcript.append(f"{who}: {m.text.strip()}")
                self._keep(m)
            case Notice(data={"interrupt": why}):
                self._interrupts += 1
                self._keep_record({"kind": "interrupt", "key": f"interrupt-{self._interrupts}", "why": why})
            case EndSession(reason=reason, fatal=fatal):
                if fatal:
                    self._end_error = SessionError(f"the server ended the session: {reason}")
                self.stop(reason)
            case Reconnect(reason=reason):
                self._renew_reason = reason
                self._renew.set()
            case Quit():
                self.stop("quit")
            case StatusChanged() | TranscriptChanged() | Notice():
                pass

    def _keep(self, m: Message) -> None:
        """Append a finished transcript item to the session file (fsynced before the next one)."""
        if m.role == "user":
            self._keep_record({"kind": "utterance", "key": m.item_id, "role": "user", "text": m.text.strip()})
        else:
            record = {"kind": "hint", "key": m.item_id, "tier": m.tier, "text": m.text.strip()}
            self._keep_record({**record, "interrupted": m.interrupted})

    def _keep_record(self, record: dict[str, Any]) -> None:
        if self.session_file is not None:
            self.session_file.append(record)

    def _send(self, event: ce.ClientEvent) -> None:
        link = self._link
        if link is None:
            return
        wire = event.to_wire()
        try:
            link.conn.send(wire)
        except TransportError as exc:
            self.view.show(Notice("error", str(exc)), self.clock())
            return
        if self._events is not None:
            self._events.write("sent", wire, self.clock())

    async def _close_link(self, link: _Link) -> None:
        if self._link is link:
            self._link = None
        await link.conn.close()
        link.mic.stop()

    async def _close(self) -> None:
        self.report.cost_usd = self.coach.usage.cost_usd
        self.report.underruns = self.player.underruns
        if self._link is not None:
            await self._close_link(self._link)
        if self.coach.live or self.coach.state.value == "connecting":
            self._execute(self.coach.close(self.clock()))
        self._source.close()
        self._sink.close()
        if self._events is not None:
            self._events.close()
        if self.session_file is not None:
            self.session_file.close()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")

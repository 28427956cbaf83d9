"""The runner: lifecycle only. It wires the coach, the links, the player, the journal and the view together.

Lifecycle of :meth:`Runner.run`::

    journal, intents task, deadline task, the them link's task   (for the whole run)
    loop:
        Connector.open: credentials → transport → session.update   (backoff on a retryable failure)
        link.serve: server events → coach, remote audio → player   (until lost, renewed or stopped)
        link.close
    close everything (always, in reverse order)

The other side of the call (``them``), when there is a source for it, is a second link with its own task,
backoff and rollover (:mod:`voicecoach.them_link`); its events reach the coach's them channel through
:meth:`Runner.receive_them`. Its failures are warnings: they never end the run.

The coach decides (:mod:`voicecoach.coach`), the executor acts (:mod:`voicecoach.executor`), and the runner
sleeps until the coach's next deadline. The first connection must succeed (a bad key or server is reported,
not retried); after that a lost link is re-established with backoff unless the failure is fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp

from .audio.base import EndingSource, FrameSink, FrameSource
from .audio.tracks import Player
from .coach.actions import Action, Intent, LinkUp, Notice, Reconnecting
from .coach.coach import Coach
from .coach.settings import CoachSettings
from .coach.timing import TimingSettings
from .coach.usage import LOCAL_MODEL
from .config import Settings
from .connector import Connector, Credential, Opened
from .errors import ConnectError
from .events_log import EventsLog
from .executor import Executor, RunReport
from .journal import Journal
from .link import Link, hold
from .protocol.server_events import ServerEvent
from .store import SessionStore
from .tasks import cancel_all, unless_set
from .them_link import CHANNEL, ThemLink
from .transport.base import TransportFactory
from .transport.ice import pin_host_addresses
from .ui.view import View

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)

__all__ = ["RunReport", "Runner"]


class Runner:
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
        factory: TransportFactory | None = None,
        credential: Credential | None = None,
        them: FrameSource | None = None,  # the call's audio, for a second link (voicecoach.them_link)
        them_gate: bool = False,  # it is the monitor of the sink the hints play on: silence while they sound
        context_text: str = "",  # the person's documents (voicecoach.context), first in every hint
    ) -> None:
        self.settings = settings
        self.view = view
        self.clock = clock
        self.coach = Coach(
            settings.coach,
            model=LOCAL_MODEL if settings.local else settings.model,  # --local: priced at zero
            timing=TimingSettings(settings.session_max_seconds, settings.rollover_margin, settings.duration),
            transcription_models={"you": settings.transcription_model, CHANNEL: settings.them_transcription_model}
            if not settings.local
            else {"you": LOCAL_MODEL, CHANNEL: LOCAL_MODEL},
            context_text=context_text,
            them_capture=them is not None,
        )
        self.intents: asyncio.Queue[Intent] = intents or asyncio.Queue()
        self.player = Player(sink, prebuffer_ms=settings.prebuffer_ms, on_sounding=self._on_sounding)
        self.report = RunReport()
        self._source = source
        self._sink = sink
        self._them_source = (them, them_gate)
        self.them: ThemLink | None = None  # made by run(): its credentials are checked there, as the main link's
        self._connect = (factory, credential)  # None, None: from the settings (tests pass in-memory ones)
        self._t0 = clock()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._renew = asyncio.Event()
        self._renew_reason = ""
        self._ready = asyncio.Event()  # the current link's session.updated arrived
        self._wake = asyncio.Event()  # the coach's next deadline may have moved
        self._events = EventsLog(settings.events_file, self._t0) if settings.events_file else None
        self.journal = Journal(store, {"model": settings.model, "base_url": settings.base_url})
        self.executor = Executor(
            view=view, player=self.player, journal=self.journal, events=self._events, report=self.report,
            control=self, clock=clock)  # fmt: skip

    # --- public -----------------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end cleanly (safe from any task on the loop)."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """A stop was asked: the run is ending, and an intent would go nowhere."""
        return self._stop.is_set()

    def command(self, intent: Intent, source: str = "key") -> list[Action] | None:
        """Carry out ``intent`` now when the session is live and return the actions it gave; else queue it, as a
        key pressed while connecting (it acts once the session is ready), and return None.

        For askers outside the intents queue (``voicecoach ctl``, a global hotkey), on the loop thread: the
        intent acts within this call. ``source`` ("ctl", "hotkey") names the asker in an interrupt's record.
        """
        if not self.coach.live:
            self.intents.put_nowait(intent)
            return None
        actions = self.coach.command(intent, self.clock(), source)
        self.execute(actions)
        return actions

    def renew(self, reason: str) -> None:
        """Close the current link and open a fresh session, keeping the conversation (rollover, expiry)."""
        self._renew_reason = reason
        self._renew.set()

    def ready(self) -> None:
        self._ready.set()

    def apply_coach_settings(self, settings: CoachSettings, context_text: str | None = None) -> None:
        """New phrases, windows, durations and context (None: keep it) from the next hint on (ValueError for
        unusable phrases); none is in the server's session config."""
        self.coach.reconfigure(settings, context_text)
        self.settings = self.settings.model_copy(update={"coach": settings})

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        """Handle one server message: parse, log, let the coach decide, execute. Never raises for bad input.
        Public so that benchmarks and tests can drive exactly the path a received message takes."""
        actions = self.coach.handle(self.executor.received(raw, now), now)
        self.execute(actions)
        return actions

    def receive_them(self, raw: str | bytes, now: float) -> ServerEvent:
        """Handle one message of the other side's link (into the coach's them channel); returns it parsed."""
        event = self.executor.received(raw, now, channel=CHANNEL)
        self.execute(self.coach.handle_them(event, now))
        return event

    def execute(self, actions: list[Action]) -> None:
        """Carry out the coach's actions; the coach's next deadline may have moved with them."""
        self.executor.execute(actions)
        self._wake.set()

    async def run(self) -> RunReport:
        """Run until stopped (duration, quit, signal, end of input) or a fatal error. Raises VoicecoachError."""
        try:
            if self.settings.ice_hosts:  # pinning is process-wide: never undo another part's pin
                pin_host_addresses(self.settings.ice_hosts)
            factory, key = self._connect
            connector = Connector(
                self.settings, on_sent=self.executor.sent, on_retry=self._retrying, factory=factory, credential=key
            )  # unusable credentials fail here, before anything is sent or saved
            them, gate = self._them_source
            if them is not None:
                self.them = ThemLink(
                    self.settings, them, on_message=lambda raw: self.receive_them(raw, self.clock()), clock=self.clock,
                    on_sent=partial(self.executor.sent, channel=CHANNEL), on_notice=self._retrying, gate=gate,
                    on_up=partial(self.coach.channel_started, CHANNEL),
                    on_lost=lambda why: self.execute(self.coach.them_disconnected(self.clock(), why)),
                )  # fmt: skip
            # Keys and deadlines live for the whole run, not per link: quit and --duration work while
            # (re)connecting, and a hint asked for then goes out as soon as the session is ready. Owned here
            # (not a TaskGroup) so that a ConnectError reaches the caller as itself, not in an ExceptionGroup.
            helpers = [
                asyncio.create_task(self._intents(), name="intents"),
                asyncio.create_task(self._deadlines(), name="deadlines"),
                asyncio.create_task(self._input_end(), name="input-end"),
            ]
            try:
                async with aiohttp.ClientSession() as http:
                    # The other side's link lives beside the main one's, for the whole run, on its own backoff.
                    them_task = [asyncio.create_task(self.them.run(http), name="them")] if self.them else []
                    try:
                        await self._links(partial(connector.open, http, self._source))
                    finally:
                        await cancel_all(them_task)
            finally:
                await cancel_all(helpers)
        finally:
            await self._close()
        if self.report.end_error is not None:
            raise self.report.end_error
        return self.report

    # --- links ------------------------------------------------------------------------------------------

    async def _links(self, connect: Callable[[], Awaitable[Opened]]) -> None:
        failures = 0
        while not self._stop.is_set():
            self.execute(self.coach.connect(self.clock()))
            if self.report.links == 0:
                self.view.info(f"connecting to {self.settings.base_url} (model {self.settings.model})")
            try:
                link = await unless_set(self._open(connect), self._stop)
            except ConnectError as exc:
                if self.report.links == 0 or not exc.retryable or failures >= len(RECONNECT_DELAYS_S):
                    raise
                delay = RECONNECT_DELAYS_S[failures]
                failures += 1
                # The failed attempt left the coach in Connecting; the next attempt's connect() needs it back in
                # Disconnected. Its notice is dropped: the Reconnecting line below says it better.
                lost = self.coach.disconnected(self.clock(), str(exc))
                self.execute([a for a in lost if not isinstance(a, Notice)])
                self.execute([Reconnecting(f"reconnect failed ({exc}); retrying in {delay:g} s")])
                await unless_set(asyncio.sleep(delay), self._stop)
                continue
            if link is None:  # stopped while connecting
                break
            failures = 0
            reason = await self._hold(link)
            if self._stop.is_set():
                break
            self._ready.clear()
            self.execute(self.coach.disconnected(self.clock(), reason))
            self.execute([Reconnecting(reason)])
        self.report.reason = self._stop_reason

    async def _open(self, connect: Callable[[], Awaitable[Opened]]) -> Link:
        opened = await connect()
        link = opened.link
        link.uplink.muted = self.executor.muted
        self.report.links += 1
        self.report.connect_ms = link.timings
        self.report.transport = link.transport.name
        self.executor.link = link
        self.execute([LinkUp(link.transport.name, opened.why)])
        return link

    async def _hold(self, link: Link) -> str:
        """Serve one link until it is lost, renewed or stopped; close it. Returns why it ended."""
        self._renew.clear()
        await hold(link, self._on_message, self.player, self._stop, self._renew, closing=self.executor.unlink)
        if self._renew.is_set():
            return self._renew_reason
        return f"connection lost ({link.transport.close_reason})"

    def _retrying(self, text: str) -> None:
        self.execute([Notice("warning", text)])

    def _on_message(self, raw: str | bytes) -> None:
        if (epoch := self.executor.new_audio_epoch()) is not None:  # this session's turns go where spoken
            self.coach.channel_started("you", epoch)
        self.receive(raw, self.clock())

    # --- the run's own tasks ----------------------------------------------------------------------------

    async def _intents(self) -> None:
        while True:
            intent = await self.intents.get()
            if intent is not Intent.QUIT and not self.coach.live:
                # A key pressed (or a script line read) while connecting acts once the session is ready.
                await self._ready.wait()
            self.execute(self.coach.command(intent, self.clock()))

    async def _deadlines(self) -> None:
        """Sleep until the coach's next deadline (or until an action may have moved it), then tick."""
        while True:
            self._wake.clear()
            deadline = self.coach.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            if deadline is not None and self.clock() >= deadline:
                self.execute(self.coach.tick(self.clock()))

    async def _input_end(self) -> None:
        """An ``--input-file`` run (without ``--loop``) ends by itself once the file's last words are handled."""
        source = self._source
        if self.settings.input_file is None or self.settings.loop or not isinstance(source, EndingSource):
            return
        await source.ended.wait()
        self.execute(self.coach.input_ended(self.clock()))

    def _on_sounding(self, sounding: bool, at: float) -> None:
        """The player started or stopped producing sound, ``at`` the moment it was handed to the device or file.
        The coach applies the hang-over and measures trigger → audible and interrupt → silence from these edges;
        the them link gates its uplink on them."""
        self.execute(self.coach.playback(sounding, at))
        if self.them is not None:
            self.them.playback(sounding, at)

    async def _close(self) -> None:
        self.report.underruns = self.player.underruns
        self.report.device_underruns = self.player.device_underruns
        self.report.them_links = self.them.links if self.them is not None else 0
        if self.coach.live or self.coach.state.value == "connecting":
            self.execute(self.coach.close(self.clock()))
        self.report.cost_usd, self.report.cost = self.coach.cost_usd, self.coach.cost.breakdown()  # after the cut
        for source in (self._source, self._them_source[0] or self._source):
            source.close()  # closing twice is harmless: a closed source stays closed
        self._sink.close()
        if self._events is not None:
            self._events.close()
        await self.journal.aclose({"cost_usd": self.report.cost_usd, "reason": self.report.reason})
        self.report.session_path = self.journal.path

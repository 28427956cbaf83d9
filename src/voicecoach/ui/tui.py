"""The full-screen terminal UI (Textual): status bar, live transcript, event log, settings and help.

:class:`CoachApp` owns one run. On mount it builds the runner with its own :class:`TuiView` and runs
``run_handle.run()`` in a Textual worker (owned by the app, cancelled by Textual if the app goes away). Keys
become :class:`~voicecoach.coach.actions.Intent` values on ``run_handle.intents``. When the run ends the app shows
a summary and exits with 0, or with the ``exit_code`` of the :class:`~voicecoach.errors.VoicecoachError` that
ended it; no exception from the run ever reaches the screen as a traceback.

Quitting is graceful first: ``q`` sends the QUIT intent (the coach closes the session), a second ``q`` calls
``run_handle.stop()``, a third cancels the worker, a fourth exits at once. Ctrl-C is the impatient way: one press
stops the run (it still saves the transcript and prices what was generated), the app exits as soon as it
has, and ``run()`` returns 130 with ``quit_by_interrupt`` set, as for a SIGINT in line mode. Every key comes from
the one key table, :mod:`voicecoach.ui.keys`.

Profiles: the status bar names the active one; ``p`` picks another, live (:meth:`CoachApp.switch_profile`). The
settings screen edits what is in effect, and saves it to the active profile's ``[profiles.NAME]`` table (or
``[coach]`` without one); an edit made this session is kept when switching away and back, as the file would
give it on the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Footer, Input
from textual.worker import Worker

from ..coach.actions import Intent, LinkUp, Metric, Notice, Reconnecting, StatusChanged, TranscriptChanged
from ..coach.conversation import Message
from ..coach.settings import CoachSettings
from ..coach.state import State
from ..config import Settings, with_profile
from ..config_writer import save_coach_settings
from ..context import load_context
from ..errors import VoicecoachError
from ..profiles import available_profiles
from .keys import textual_bindings, tui_actions
from .tui_screens import NO_PROFILE, HelpScreen, ProfileChoice, ProfileScreen, SettingsScreen
from .tui_view import Pending, StatusModel, TuiView, log_entries
from .tui_widgets import EventLog, StatusBar, Transcript
from .view import View, VoiceOutput

log = logging.getLogger(__name__)

FLUSH_HZ = 30.0
LINGER_S = 2.0  # how long the summary stays on screen when the session ends by itself
ALERTS_PER_BATCH = 3  # toasts per batch; a burst of errors must not bury the screen in notifications
_LIVE = frozenset({State.LISTENING, State.SPEAKING, State.MUTED})
INTERRUPTED_EXIT = 130  # what a shell reports for a SIGINT; Ctrl-C in the UI ends the same way
# Ctrl-C must work everywhere, dialogs included; the main screen's other keys do nothing under a dialog.
_MAIN_SCREEN_ACTIONS = tui_actions() - {"interrupt_quit"}


class ReportLike(Protocol):
    """What the app reads from the value ``run()`` returns (``runner.RunReport`` fits)."""

    @property
    def reason(self) -> str: ...

    @property
    def cost_usd(self) -> float: ...


class RunControl(Protocol):
    """The part of :class:`voicecoach.runner.Runner` the UI drives."""

    @property
    def intents(self) -> asyncio.Queue[Intent]: ...

    def stop(self, reason: str = "stopped") -> None: ...

    async def run(self) -> ReportLike: ...

    def apply_coach_settings(self, settings: CoachSettings, context_text: str | None = None) -> None:
        """Use new coach settings (and context text; None keeps it) at once. Raises ValueError for unusable
        phrases."""


MakeRun = Callable[[View], RunControl]


class CoachApp(App[int]):
    """The terminal UI of one run. ``run()`` returns the exit code (also in ``return_code``).

    After exit, ``summary`` holds the last line (summary or error) and ``report`` the run's report (None if
    it failed), so the caller can print them once the terminal is back to normal. ``quit_by_interrupt`` is True
    when Ctrl-C ended it (the exit code is then 130 unless the run itself failed).

    ``voice`` says where the coach's voice goes (default: the output file or device of ``settings``); pass
    ``VoiceOutput("none")`` when no sound device was found, and the UI says so. ``echo_label`` is whether the
    microphone is echo-cancelled ("echo: on", ``app.Runs.echo_label``), for the status bar (None: not shown).
    """

    CSS_PATH = "tui.tcss"
    TITLE = "voicecoach"
    # No command palette: it has nothing of ours to offer, and its "^p palette" took the footer's last 13
    # columns, which pushed Help and Quit off an 80-column screen.
    ENABLE_COMMAND_PALETTE = False
    # The screen gets the class -narrow below 90 columns (tui.tcss tightens the footer there).
    # Why the noqa: Textual declares this `ClassVar[...] | None`, an annotation mypy will not let a subclass repeat.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = list(textual_bindings())

    def __init__(
        self,
        settings: Settings,
        make_run: MakeRun,
        config_path: Path,
        *,
        linger_s: float = LINGER_S,
        flush_hz: float = FLUSH_HZ,
        voice: VoiceOutput | None = None,
        echo_label: str | None = None,
        notices: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self._notices = tuple(notices)  # start-up lines (no call audio, no echo canceller), for the event log
        self.settings = settings
        # What a profile switch starts from (config.with_profile): the settings as loaded, without this session's
        # edits, which _edits keeps by the table they were saved to ("coach", "profiles.NAME").
        self._loaded = settings
        self._edits: dict[str, dict[str, Any]] = {}
        self._saved_to: dict[str, list[str]] = {}
        self.config_path = config_path
        self.view = TuiView()
        self.voice = voice or voice_of(settings)
        self.status = StatusModel(model=settings.model, voice=self.voice, echo=echo_label, profile=settings.profile)
        self.quit_by_interrupt = False
        self.run_handle: RunControl | None = None
        self.run_active = False
        self.report: ReportLike | None = None
        self.summary: str | None = None
        self.linger_s = linger_s
        self.flush_hz = flush_hz
        self._make_run = make_run
        self._worker: Worker[None] | None = None
        self._quit_presses = 0
        self._result = 0
        self._t0: float | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Transcript(id="transcript")
        yield EventLog(id="event-log")
        yield Footer()

    def on_mount(self) -> None:
        self.transcript = self.query_one(Transcript)
        self.event_log = self.query_one(EventLog)
        self.status_bar = self.query_one(StatusBar)
        self.event_log.display = False
        self.status_bar.show_status(self.status)
        self.transcript.focus()
        self.view.info(self.voice.line())
        for line in self._notices:
            self.view.info(line)
        if self.voice.kind == "none":
            self.notify(self.voice.line(), severity="warning", markup=False)
        # Timers and workers started here belong to the app: Textual stops and cancels them when it exits.
        self.set_interval(1 / self.flush_hz, self.apply_pending, name="apply-pending")
        self._worker = self.run_worker(self._run_coach(), name="session", exit_on_error=False)

    async def _run_coach(self) -> None:
        try:
            self.run_handle = self._make_run(self.view)
            self.run_active = True
            report = await self.run_handle.run()
        except VoicecoachError as exc:
            self._finished(f"session failed: {exc}", exc.exit_code, "error")
        except asyncio.CancelledError:
            if self._quit_presses >= 3:  # a forced quit; otherwise Textual is shutting down and we stay quiet
                code = INTERRUPTED_EXIT if self.quit_by_interrupt else 1
                self._finished("quit before the session had closed", code, "warning")
            raise
        except Exception as exc:  # a bug below us: keep the screen intact, report it, exit non-zero
            log.debug("session crashed", exc_info=True)
            self._finished(f"session crashed: {type(exc).__name__}: {exc}", 1, "error")
        else:
            self.report = report
            code = INTERRUPTED_EXIT if self.quit_by_interrupt else 0
            self._finished(f"session ended: {report.reason} · cost ${report.cost_usd:.4f}", code, "information")

    def _finished(self, text: str, code: int, severity: SeverityLevel) -> None:
        self.run_active = False
        self.apply_pending()  # the last actions of the session must be on screen with the summary
        self.summary = text
        self._result = code
        log.debug("session finished (exit %d): %s", code, text)
        entry = (Notice("error" if code else "info", text), self.view.last_now)
        self.event_log.add(log_entries([entry], self._t0))
        self.notify(text, severity=severity, markup=False)
        if self._quit_presses or self.linger_s <= 0:
            self._exit_now()
        else:
            self.set_timer(self.linger_s, self._exit_now, name="linger")

    def _exit_now(self) -> None:
        self.exit(self._result, return_code=self._result)

    # --- batched updates ----------------------------------------------------------------------------------

    def apply_pending(self) -> None:
        """Apply everything the runner showed since the last call, as one batch (called ~30 times a second)."""
        batch = self.view.drain()
        if not batch:
            return
        if self._t0 is None:
            self._t0 = next((now for _item, now in batch if now is not None), None)
        self._apply(batch)

    def _apply(self, batch: list[Pending]) -> None:
        # Deltas of one message collapse into one widget update; dict order keeps each line where it first was.
        updates: dict[tuple[str, str], tuple[Message, bool]] = {}
        alerts: list[Notice] = []
        status_before = self.status.render()
        for item, _now in batch:
            match item:
                case StatusChanged(state=state):
                    self.status.on_state(state)
                case TranscriptChanged(message=message, final=final):
                    updates[(message.role, message.item_id)] = (message, final)
                case Reconnecting():
                    self.status.on_reconnecting()
                    alerts.append(Notice("warning", item.text))
                case LinkUp(why=why):
                    self.status.on_link(item)
                    if why:  # a fallback is worth a toast: the user may want to know UDP is blocked here
                        alerts.append(Notice("warning", item.text))
                case Notice(level=level):
                    if level in ("warning", "error"):
                        alerts.append(item)
                case Metric():
                    self.status.on_metric(item)
                case _:
                    pass
        if updates:
            self.transcript.upsert(updates.values())
        status_after = self.status.render()
        if status_after != status_before:
            self.status_bar.show_status(self.status)
        self.event_log.add(log_entries(batch, self._t0))
        for notice in alerts[:ALERTS_PER_BATCH]:
            self.notify(notice.text, severity="error" if notice.level == "error" else "warning", markup=False)
        if len(alerts) > ALERTS_PER_BATCH:
            more = len(alerts) - ALERTS_PER_BATCH
            self.notify(f"{more} more warnings or errors: press l for the event log", severity="warning")

    # --- keys -----------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The main screen's keys do nothing under a dialog (its own keys and inputs come first).
        if action in _MAIN_SCREEN_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action == "leave_filter":
            # Esc only means something in the log's filter box; elsewhere it is left to Textual.
            return isinstance(self.focused, Input) and self.focused.id == "log-filter"
        return True

    def action_intent(self, value: str) -> None:
        if self.run_handle is None or not self.run_active:
            self.notify("the session is not running", severity="warning")
            return
        self.run_handle.intents.put_nowait(Intent(value))

    async def action_quit(self) -> None:
        """``q`` (and Ctrl+Q): graceful first, more forceful on each further press; exits if nothing runs."""
        self._quit_step()

    def _quit_step(self) -> None:
        handle, worker = self.run_handle, self._worker
        if handle is None or worker is None or not self.run_active:
            self._exit_now()
            return
        self._quit_presses += 1
        log.debug("quit pressed (%d)", self._quit_presses)
        if self._quit_presses == 1:
            handle.intents.put_nowait(Intent.QUIT)
            if self.status.state not in _LIVE:
                # The runner only reads intents once connected; while connecting, stop is the way out.
                handle.stop("quit")
        elif self._quit_presses == 2:
            handle.stop("quit")
        elif self._quit_presses == 3:
            worker.cancel()
        else:
            self._exit_now()

    def action_interrupt_quit(self) -> None:
        """Ctrl-C: stop the run now (it still saves and prices what it has) and exit once it has ended.

        One press is enough. Later presses escalate like ``q`` (cancel the run, then exit at once), for a
        run stuck while closing.
        """
        self.quit_by_interrupt = True
        handle = self.run_handle
        if handle is None or self._worker is None or not self.run_active:
            self._result = self._result or INTERRUPTED_EXIT
            self._exit_now()
            return
        if self._quit_presses < 2:
            self._quit_presses = 2  # as if q had been pressed twice: no QUIT intent, the run is stopped
            log.debug("ctrl+c: stopping the run")
            handle.stop("Ctrl-C")
        else:
            self._quit_step()

    def action_help_quit(self) -> None:
        # Textual's own Ctrl-C handler shows a "press ctrl+q to quit" toast; here Ctrl-C quits.
        self.action_interrupt_quit()

    def action_leave_filter(self) -> None:
        self.transcript.focus()

    def action_toggle_log(self) -> None:
        self.event_log.display = not self.event_log.display
        if self.event_log.display:
            # After the next refresh: the log must know its width to wrap long lines at the screen's edge.
            self.call_after_refresh(self.event_log.rebuild)

    def action_settings(self) -> None:
        screen = SettingsScreen(
            self.settings.coach,
            self._save_settings,
            profile=self.settings.profile,
            config_path=self.config_path,
            on_switch_profile=self.action_profiles,
        )
        self.push_screen(screen, self._settings_closed)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.settings.coach, self.settings.profile))

    def action_profiles(self) -> None:
        self.push_screen(ProfileScreen(available_profiles(self.settings), self.settings.profile), self._profile_picked)

    def _save_settings(self, new: CoachSettings) -> str | None:
        """Apply to the running session, then persist. Returns an error line, or None when both worked."""
        if self.run_handle is not None and self.run_active:
            try:
                self.run_handle.apply_coach_settings(new)
            except ValueError as exc:
                return f"not applied: {_first_line(exc)}"
        before, profile = self.settings.coach, self.settings.profile
        self.settings = self.settings.model_copy(update={"coach": new})
        edited = {k: v for k, v in new.model_dump().items() if getattr(before, k) != v}
        try:
            self._saved_to = save_coach_settings(self.config_path, new, before=before, profile=profile)
        except VoicecoachError as exc:
            self._remember({("coach" if profile is None else f"profiles.{profile}"): list(edited)}, edited)
            return f"applied to this session, but not saved: {exc}"
        self._remember(self._saved_to, edited)
        return None

    def _remember(self, tables: dict[str, list[str]], values: dict[str, Any]) -> None:
        for table, keys in tables.items():
            self._edits.setdefault(table, {}).update({k: values[k] for k in keys if k in values})

    def _settings_closed(self, result: CoachSettings | None) -> None:
        if result is None:
            return
        if not self._saved_to:
            self.notify("settings unchanged", markup=False)
            return
        where = ", ".join(f"[{table}] ({', '.join(keys)})" for table, keys in self._saved_to.items())
        self.notify(f"settings saved to {where} in {self.config_path}", markup=False)

    # --- profiles -------------------------------------------------------------------------------------------

    def _profile_picked(self, choice: ProfileChoice | None) -> None:
        if choice is not None and choice.name != self.settings.profile:
            self.switch_profile(choice.name)

    def switch_profile(self, name: str | None) -> bool:
        """Use profile ``name`` (None: none) from the next hint on. Its context files are read first: a file that
        cannot be used is one error line in the event log, and nothing changes. Returns whether it switched.

        Only coach settings (and the context) change live. A profile's voice and session instructions are part of
        the Realtime session, whose voice is fixed once it has spoken: they wait for the next session.
        """
        label = name or f"'{NO_PROFILE}'"
        if self.run_handle is None or not self.run_active:
            self.notify("the session is not running", severity="warning")
            return False
        old = self.settings
        try:
            new = self._settings_for(name)
            context = load_context(new.coach.context_files, new.coach.context_limit_tokens)
            self.run_handle.apply_coach_settings(new.coach, context_text=context.text)
        except (VoicecoachError, ValueError) as exc:
            self.view.note("error", f"profile {label} not switched: {_first_line(exc)}")
            return False
        self.settings = new
        self.status.profile = new.profile
        self.status_bar.show_status(self.status)
        what = f"profile {name}: the next hint uses it" if name else "no profile: the next hint uses the base settings"
        self.view.note("info", f"{what}; {context.describe()}")
        # The session keeps the voice and instructions it started with; say so once per change, not on a way back.
        session = self._loaded
        again = f"the next run with --profile {name or repr('')}"
        if new.voice != old.voice and new.voice != session.voice:
            self.view.note("info", f"voice {new.voice} applies from {again}; this run keeps {session.voice}")
        if new.instructions != old.instructions and new.instructions != session.instructions:
            owner = f"profile {name}" if name else "the base settings"
            self.view.note("info", f"the session instructions of {owner} apply from {again}; this run keeps its own")
        return True

    def _settings_for(self, name: str | None) -> Settings:
        """The settings of profile ``name``: as the config file gives them, with this session's edits on top
        (a profile's own first, then those saved to [coach], which beats every profile in the file too)."""
        new = with_profile(self._loaded, name)
        edits = {**(self._edits.get(f"profiles.{name}", {}) if name else {}), **self._edits.get("coach", {})}
        if not edits:
            return new
        coach = CoachSettings.model_validate({**new.coach.model_dump(), **edits})
        return new.model_copy(update={"coach": coach})


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def voice_of(settings: Settings) -> VoiceOutput:
    """Where the voice goes when the caller did not say: the output file, else the chosen (or default) device."""
    if settings.output_file is not None:
        return VoiceOutput("file", str(settings.output_file))
    return VoiceOutput("device", settings.output_device or "")

"""``voicecoach run``: open the audio, pick the UI, run once, say where things are."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import platformdirs

from .audio.base import FrameSink, FrameSource
from .audio.devices import open_sink, open_source
from .audio.loopback import ThemChoice, open_them
from .coach.actions import Intent
from .config import Settings, default_config_path
from .context import EMPTY_CONTEXT, Context, load_context
from .control import Controls, remote_controls
from .echo_setup import setup_echo
from .runner import Runner, RunReport
from .store import SessionStore
from .summary import cost_line
from .ui.plain import PlainView
from .ui.plain_keys import read_intents
from .ui.view import View, VoiceOutput

StopHook = Callable[[Callable[[str], None]], None]


def use_tui(settings: Settings) -> bool:
    """The full-screen UI on a terminal; line mode when asked (--plain) or when output is piped."""
    return not settings.plain and sys.stdout.isatty() and sys.stdin.isatty()


async def run_app(settings: Settings, on_stop: StopHook, config_path: Path | None = None) -> int:
    # The context files first: a missing or oversized one fails here (exit 2), before a device is opened or a
    # byte is sent, not at the first hint.
    context = load_context(settings.coach.context_files, settings.coach.context_limit_tokens)
    source = open_source(settings.input_file, settings.input_device, loop=settings.loop)
    try:
        sink = open_sink(settings.output_file, settings.output_device, rate=settings.output_rate)
    except BaseException:
        source.close()
        raise
    try:
        them = open_them(settings.them_device, them_file=settings.them_file)
    except BaseException:
        source.close()
        sink.close()
        raise
    try:
        return await _run(settings, on_stop, config_path, source, sink, them, context)
    finally:
        if them.source is not None:
            await them.source.aclose()


async def _run(
    settings: Settings,
    on_stop: StopHook,
    config_path: Path | None,
    source: FrameSource,
    sink: FrameSink,
    them: ThemChoice,
    context: Context = EMPTY_CONTEXT,
) -> int:
    store = SessionStore() if settings.keep_sessions else None
    # The monitor of the default output also carries the coach's voice when it plays there: the them link
    # hears silence while a hint sounds (a file, or a voice written to a file, needs no gate). For the same
    # reason it is the echo canceller's whole far end.
    gate = them.source is not None and settings.them_file is None and settings.output_file is None
    echo = setup_echo(settings, source, sink, them.source, them_is_monitor=gate)
    settings, source = echo.settings, echo.source
    # The status bar says the session is local (voicecoach run --local): next to the echo state, its one slot.
    status_label = f"local · {echo.label}" if settings.local else echo.label
    notices = [line for line in (them.notice, echo.notice) if line]
    if context.files:
        notices.append(context.describe(settings.coach.context_limit_tokens))
    async with echo.running():
        if use_tui(settings):
            runs = Runs(settings, source, sink, store, them=echo.them, them_gate=gate, echo_label=status_label)
            runs.context_text = context.text
            runs.notices = [*notices, f"{echo.label} ({echo.decision.why})"]
            on_stop(runs.stop)
            code, report = await run_tui(runs, config_path or default_config_path())
            if report is not None:
                print_summary(PlainView(), report)
            return code
        view = PlainView()
        for line in notices:
            view.info(line)
        view.info(f"{echo.label} ({echo.decision.why})")
        report = await run_with_keys(
            settings, view, source, sink, on_stop, store, them=echo.them, them_gate=gate, context_text=context.text
        )
    print_summary(view, report)
    return 0


async def run_with_keys(
    settings: Settings,
    view: View,
    source: FrameSource,
    sink: FrameSink,
    on_stop: StopHook,
    store: SessionStore | None = None,
    *,
    them: FrameSource | None = None,
    them_gate: bool = False,
    context_text: str = "",
) -> RunReport:
    """Run a session in line mode with stdin keys feeding its intents; the key reader is owned here."""
    intents: asyncio.Queue[Intent] = asyncio.Queue()
    runner = Runner(
        settings, view, source, sink, intents=intents, store=store, them=them, them_gate=them_gate,
        context_text=context_text,
    )  # fmt: skip
    on_stop(runner.stop)
    if isinstance(view, PlainView):
        view.on_closed = runner.stop  # `voicecoach run --plain | head`: a closed pipe ends the run cleanly
    keys = asyncio.create_task(read_intents(intents, on_help=view.info), name="keys")
    controls = Controls(lambda: runner, lambda: settings.profile)
    try:
        async with remote_controls(controls, settings.hotkeys, view.info):
            return await runner.run()
    finally:
        keys.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keys


class Runs:
    """Makes the runner of a session for whichever UI asks (``make_run``), and can stop all it made.

    The UI creates the session with its own view, so a signal handler cannot hold the runner up front; it
    holds this instead.
    """

    def __init__(
        self,
        settings: Settings,
        source: FrameSource,
        sink: FrameSink,
        store: SessionStore | None,
        *,
        them: FrameSource | None = None,
        them_gate: bool = False,
        echo_label: str = "echo: off",
    ) -> None:
        """``them``/``them_gate``: the other side of the call, as :class:`~voicecoach.runner.Runner` takes it;
        ``echo_label``: whether the microphone is echo-cancelled, for the status line."""
        self.settings = settings
        self.echo_label = echo_label
        self.notices: list[str] = []  # start-up lines the UI shows in its event log
        self.context_text = ""  # the person's documents, first in every hint (voicecoach.context)
        self._args = (source, sink, store)
        self._them = (them, them_gate)
        self._runners: list[Runner] = []
        self._stopped = ""  # a stop asked before the UI made its runner: that runner starts stopped

    def __call__(self, view: View) -> Runner:
        source, sink, store = self._args
        them, them_gate = self._them
        runner = Runner(
            self.settings, view, source, sink, store=store, them=them, them_gate=them_gate,
            context_text=self.context_text,
        )  # fmt: skip
        if isinstance(view, PlainView):
            view.on_closed = runner.stop  # a closed output pipe ends the run cleanly
        self._runners.append(runner)
        if self._stopped:
            runner.stop(self._stopped)
        return runner

    def current(self) -> Runner | None:
        """The runner of the session now running (the last one made), or None before the UI has made one."""
        return self._runners[-1] if self._runners else None

    def stop(self, reason: str) -> None:
        self._stopped = self._stopped or reason
        for runner in self._runners:
            runner.stop(reason)


async def run_tui(runs: Runs, config_path: Path, voice: VoiceOutput | None = None) -> tuple[int, RunReport | None]:
    """Run one session in the full-screen UI; afterwards print its last line on the normal screen.

    ``voice``: where the coach's voice goes, when the settings do not say it (no sound device in the demo).
    """
    from .ui.tui import CoachApp

    quiet_logging_for_tui()
    app = CoachApp(runs.settings, runs, config_path, voice=voice, echo_label=runs.echo_label, notices=runs.notices)
    # The profile is the app's: it can switch it while the session runs. Lines go to its event log.
    controls = Controls(runs.current, lambda: app.settings.profile)
    async with remote_controls(controls, runs.settings.hotkeys, app.view.info):
        code = await app.run_async()
    if app.summary:
        print(app.summary)
    report = app.report if isinstance(app.report, RunReport) else None
    return (code if code is not None else app.return_code or 0), report


def print_summary(view: View, report: RunReport) -> None:
    phases = ", ".join(f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in report.connect_ms.items())
    view.info(f"session ended: {report.reason}")
    if phases:
        view.info(f"connect: {phases}")
    view.info(cost_line(report))
    view.info(f"playback underruns: {report.underruns} (sound card: {report.device_underruns})")
    if report.session_path is not None:
        view.info(f"transcript: {report.session_path} (voicecoach sessions show {report.session_path.stem})")


def quiet_logging_for_tui() -> None:
    """Anything written to stderr would tear the full-screen display: log to a file (--debug) or nowhere."""
    root = logging.getLogger()
    if root.level <= logging.DEBUG:
        path = platformdirs.user_log_path("voicecoach") / "voicecoach.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        for old in root.handlers:
            for f in old.filters:
                handler.addFilter(f)  # keep the secret-redacting filter
        print(f"voicecoach: debug log in {path}", file=sys.stderr)
    else:
        handler = logging.NullHandler()
    root.handlers[:] = [handler]

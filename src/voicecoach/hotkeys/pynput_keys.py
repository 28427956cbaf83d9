"""Global hotkeys through pynput (X11, macOS, Windows): its ``GlobalHotKeys`` listener on its own thread.

The thread is a one-way handoff, like the audio callbacks (design.md §5.5): a press only calls
``loop.call_soon_threadsafe(on_press, name)``; nothing on that thread prints, logs, awaits or raises. A failure
of the thread itself (the X server went away) is handed to the loop the same way (``on_failure``).

pynput is imported here, lazily, and only from :meth:`PynputHotkeys.start`: on X11 importing
``pynput.keyboard`` opens a connection to the display, and an absent display or package is a one-line reason,
never a crash.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .choose import INSTALL, UNTRUSTED, USE_CTL
from .keys import Binding

log = logging.getLogger(__name__)

READY_S = 5.0  # the listener opens its display connections and says it is ready within milliseconds
JOIN_S = 2.0  # ... and ends as soon as it is told to (see _end_x11_recording)


class PynputHotkeys:
    """``bindings`` (command → binding) listened for on pynput's thread; ``on_press(command)`` on the loop.

    Call :meth:`start` once (it returns None, or why the hotkeys are off), then :meth:`stop` once, from the
    loop. After :meth:`stop` the thread has ended (or, if pynput does not end it within ``JOIN_S``, it is a
    daemon thread that no longer calls back).
    """

    def __init__(
        self,
        bindings: Mapping[str, Binding],
        on_press: Callable[[str], None],
        on_failure: Callable[[str], None] = lambda line: None,
    ) -> None:
        self._bindings = dict(bindings)
        self._on_press = on_press
        self._on_failure = on_failure
        self._listener: Any = None
        self._ready = False
        self._stopping = False

    @property
    def thread(self) -> threading.Thread | None:
        """The listener thread (for tests: it must not be alive after :meth:`stop`)."""
        listener: threading.Thread | None = self._listener
        return listener

    async def start(self) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            keyboard = importlib.import_module("pynput.keyboard")
        except ModuleNotFoundError as exc:  # pynput or one of its dependencies (python-xlib, six, evdev)
            return f"{exc.name or 'pynput'} is not installed: {INSTALL}"
        except Exception as exc:  # on X11 the import connects to the display (ImportError, or Xlib's own)
            return _display_problem(exc)
        # The first of "ready" (pynput's wait() returned) and "the thread ended" (with its exception, if any).
        started: asyncio.Future[BaseException | str | None] = loop.create_future()

        def hop(callback: Callable[[Any], None], argument: Any) -> None:  # on pynput's threads
            try:
                loop.call_soon_threadsafe(callback, argument)
            except RuntimeError:  # the loop has closed: the run is over, nobody is listening
                pass

        def settle(outcome: BaseException | str | None) -> None:  # on the loop
            if not started.done():
                started.set_result(outcome)
            elif outcome != READY and not self._stopping:  # the thread ended while the run goes on
                why = f" ({_one_line(outcome)})" if isinstance(outcome, BaseException) else ""
                self._on_failure(f"hotkeys: stopped: the key listener ended{why}; {USE_CTL}")

        def deliver(name: str) -> None:  # on the loop
            if not self._stopping:
                self._on_press(name)

        def pressed(name: str) -> Callable[[], None]:
            return lambda: hop(deliver, name)

        hotkeys = {str(binding): pressed(name) for name, binding in self._bindings.items()}
        try:
            listener = _listener_class(keyboard.GlobalHotKeys)(hotkeys, lambda exc: hop(settle, exc))
        except ValueError as exc:  # a key this platform's backend has no code for (<insert> on macOS)
            return f"pynput does not know {exc} on this platform; pick another key"
        self._listener = listener
        listener.start()
        _wait_ready(listener, lambda: hop(settle, READY))
        try:
            async with asyncio.timeout(READY_S):
                outcome = await started
        except TimeoutError:
            outcome = f"the key listener did not start within {READY_S:g} s; {USE_CTL}"
        if getattr(listener, "IS_TRUSTED", True) is False:  # macOS: pynput's own AXIsProcessTrusted() check
            outcome = UNTRUSTED
        if outcome == READY:
            self._ready = True
        if outcome == READY and not self._stopping:
            log.debug("pynput hotkeys listening: %s", list(hotkeys))
            return None
        await self.stop()
        if isinstance(outcome, str):
            return outcome
        return _display_problem(outcome) if outcome is not None else "the key listener ended as soon as it started"

    async def stop(self) -> None:
        listener, self._stopping = self._listener, True
        if listener is None:
            return
        if not self._ready:
            # pynput's stop() waits, without a timeout, for a readiness that a thread which died first never
            # reaches. Such a thread has ended; one still starting is a daemon whose presses are now ignored.
            log.debug("pynput listener stopped before it was ready (alive: %s)", listener.is_alive())
            return
        listener.stop()
        _end_x11_recording(listener)
        try:
            await asyncio.to_thread(listener.join, JOIN_S)
        except Exception as exc:  # pynput's join re-raises what its thread raised
            log.debug("pynput listener ended with %r", exc)
        if listener.is_alive():
            log.debug("pynput listener still running %g s after stop (a daemon thread: it ends with us)", JOIN_S)


READY = "ready"


def _listener_class(base: type[Any]) -> type[Any]:
    """pynput's GlobalHotKeys, whose thread reports its end (and its exception) instead of printing it."""

    class Listener(base):  # type: ignore[misc]  # (base is Any: pynput has no type information)
        def __init__(
            self, hotkeys: dict[str, Callable[[], None]], ended: Callable[[BaseException | None], None]
        ) -> None:
            super().__init__(hotkeys)
            self.name = "hotkeys-pynput"
            self._voicecoach_ended = ended

        def run(self) -> None:
            # threading's excepthook would print a traceback to stderr from this thread.
            failure: BaseException | None = None
            try:
                super().run()
            except Exception as exc:
                failure = exc
            self._voicecoach_ended(failure)

    return Listener


def _wait_ready(listener: Any, ready: Callable[[], None]) -> None:
    """Call ``ready`` once pynput's ``wait()`` returns. It has no timeout and never returns if the thread dies
    before it is ready, so a daemon thread does the waiting: one that never returns leaves nothing to join."""

    def wait() -> None:
        listener.wait()
        ready()

    threading.Thread(target=wait, name="hotkeys-pynput-ready", daemon=True).start()


def _end_x11_recording(listener: Any) -> None:
    """Make pynput's X11 thread end now, not at the next key event.

    pynput 1.8.2's xorg ``stop()`` queues RECORD's DisableContext on the connection its thread is blocked
    reading, and never flushes it, so the thread (and ``join``) waits for the next key press anywhere on the
    display (pynput issue #75, open fix #583). Sending the request on the listener's other connection, as that
    fix does, ends the recording at once. Only the xorg backend has these attributes; the others stop on their own.
    """
    display = getattr(listener, "_display_stop", None)
    context = getattr(listener, "_context", None)
    if display is None or context is None:
        return
    try:
        display.record_disable_context(context)
        display.flush()
    except Exception as exc:  # the thread closed the connection first: it has ended anyway
        log.debug("X11 record context already gone: %r", exc)


def _display_problem(exc: BaseException) -> str:
    text = str(exc)
    if "X connection" in text or type(exc).__module__.startswith("Xlib"):
        display = os.environ.get("DISPLAY", "")
        return f"cannot connect to the X display {display!r} (is an X server running there?); {USE_CTL}"
    return f"pynput cannot start: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]

"""Reading keys in line mode: single keypresses on a TTY, one command per line otherwise (so scripts can drive it).

Both feed the same :class:`~voicecoach.coach.actions.Intent` queue; what each key means comes from the one key
table in :mod:`voicecoach.ui.keys`. ``?``, ``help`` and anything unknown hand the key help to ``on_help`` (line
mode prints it). On a TTY the terminal is put in cbreak mode (no echo, no line buffering) and always restored,
even when the session ends with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Literal, TextIO

from ..coach.actions import Intent
from .keys import HELP, lookup, parse_command, plain_help

log = logging.getLogger(__name__)

OnHelp = Callable[[str], None]
# CSI (ESC [ … final byte), SS3 (ESC O x) and two-byte (ESC x) sequences, or a lone ESC.
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?", re.DOTALL)


async def read_intents(
    queue: asyncio.Queue[Intent], stream: TextIO | None = None, *, on_help: OnHelp | None = None
) -> None:
    """Feed ``queue`` from ``stream`` (stdin) until EOF or cancellation.

    ``on_help`` gets the key help, one line per call, for ``?``/``help`` and after any unknown key or command
    (None: nothing is said). It runs on the event loop, in the reader's task.
    """
    stream = stream or sys.stdin
    put = _Putter(queue, on_help)
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return  # no real stdin (e.g. under some test runners): no keys
    mode = os.fstat(fd).st_mode
    if os.isatty(fd):
        with _cbreak(fd):
            await _read_chars(fd, put)
    elif stat.S_ISREG(mode):
        # A regular file cannot be polled; it is all there already.
        for line in stream:
            put.line(line.rstrip("\n"))
    elif stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        await _read_lines(fd, put)
    else:
        # /dev/null and other devices cannot be polled and carry no commands: no keys, and no error.
        log.debug("stdin is not a terminal, pipe or file: keys are off")


async def _read_chars(fd: int, put: _Putter) -> None:
    async for chunk in _chunks(fd):
        # Arrow and function keys arrive as escape sequences: not keys of ours, and not worth a help each.
        text = _ESCAPE_SEQUENCE.sub("", chunk.decode(errors="ignore"))
        unknown = ""
        for char in text:
            found = lookup(char)
            if found is None and not char.isspace():
                unknown = unknown or char
            else:
                put.found(found)
        if unknown:  # once per chunk: a pasted word asks for the help once, not once a letter
            put.unknown(unknown)


async def _read_lines(fd: int, put: _Putter) -> None:
    pending = b""
    async for chunk in _chunks(fd):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            put.line(raw.decode(errors="ignore"))
    if pending:  # the last line had no newline before EOF: it is a command all the same
        put.line(pending.decode(errors="ignore"))


async def _chunks(fd: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[bytes] = asyncio.Queue()

    def on_readable() -> None:
        try:
            data = os.read(fd, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        ready.put_nowait(data)
        if not data:
            loop.remove_reader(fd)

    loop.add_reader(fd, on_readable)
    try:
        while data := await ready.get():
            yield data
    finally:
        loop.remove_reader(fd)


class _Putter:
    """Where what was read goes: intents to the queue, the help (for ``?`` and unknown input) to ``on_help``."""

    def __init__(self, queue: asyncio.Queue[Intent], on_help: OnHelp | None) -> None:
        self.queue = queue
        self.on_help = on_help

    def line(self, line: str) -> None:
        found = parse_command(line)
        if found is None and line.strip():
            self.unknown(line.strip())
        else:
            self.found(found)

    def found(self, found: Intent | Literal["help"] | None) -> None:
        if found == HELP:
            self._help()
        elif found is not None:
            self.queue.put_nowait(found)

    def unknown(self, raw: str) -> None:
        log.debug("unknown key input %r", raw)
        if self.on_help is not None:
            self.on_help(f"unknown key or command {raw[:40]!r}")
        self._help()

    def _help(self) -> None:
        if self.on_help is not None:
            for text in plain_help():
                self.on_help(text)


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

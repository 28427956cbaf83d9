"""Keys in line mode: single keypresses on a TTY, one command per line otherwise (so scripts can drive it).

Both feed the same :class:`~voicecoach.coach.actions.Intent` queue. On a TTY the terminal is put in cbreak mode
(no echo, no line buffering) and always restored, even when the session ends with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TextIO

from ..coach.actions import Intent, intent_for_key

log = logging.getLogger(__name__)

WORDS = {
    "hint": Intent.QUICK_HINT,
    "guidance": Intent.FULL_GUIDANCE,
    "interrupt": Intent.INTERRUPT,
    "space": Intent.INTERRUPT,
    "mute": Intent.TOGGLE_MUTE,
    "quit": Intent.QUIT,
}


def parse_command(line: str) -> Intent | None:
    """One line of script input: a key letter (h g i m q), a space, or a word (hint, guidance, …)."""
    if line.strip() == "" and " " in line:
        return Intent.INTERRUPT
    word = line.strip().lower()
    return WORDS.get(word) or (intent_for_key(word) if len(word) == 1 else None)


async def read_intents(queue: asyncio.Queue[Intent], stream: TextIO | None = None) -> None:
    """Feed ``queue`` from ``stream`` (stdin) until EOF or cancellation."""
    stream = stream or sys.stdin
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return  # no real stdin (e.g. under some test runners): no keys
    mode = os.fstat(fd).st_mode
    if os.isatty(fd):
        with _cbreak(fd):
            await _read_chars(fd, queue)
    elif stat.S_ISREG(mode):
        # A regular file cannot be polled; it is all there already.
        for line in stream:
            _put(queue, parse_command(line.rstrip("\n")), line)
    elif stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        await _read_lines(fd, queue)
    else:
        # /dev/null and other devices cannot be polled and carry no commands: no keys, and no error.
        log.debug("stdin is not a terminal, pipe or file: keys are off")


async def _read_chars(fd: int, queue: asyncio.Queue[Intent]) -> None:
    async for chunk in _chunks(fd):
        for char in chunk.decode(errors="ignore"):
            _put(queue, intent_for_key(char), char)


async def _read_lines(fd: int, queue: asyncio.Queue[Intent]) -> None:
    pending = b""
    async for chunk in _chunks(fd):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="ignore")
            _put(queue, parse_command(line), line)
    if pending:  # the last line had no newline before EOF: it is a command all the same
        line = pending.decode(errors="ignore")
        _put(queue, parse_command(line), line)


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


def _put(queue: asyncio.Queue[Intent], intent: Intent | None, raw: str) -> None:
    if intent is None:
        if raw.strip():
            log.debug("ignored key input %r", raw)
        return
    queue.put_nowait(intent)


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

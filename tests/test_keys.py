"""Keys in line mode: single letters, words and space lines; files, pipes and /dev/null as stdin."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from voicecoach.coach.actions import Intent
from voicecoach.ui.keys import parse_command, read_intents


@pytest.mark.parametrize(
    ("line", "intent"),
    [
        ("h", Intent.QUICK_HINT),
        ("H", Intent.QUICK_HINT),
        ("hint", Intent.QUICK_HINT),
        ("g", Intent.FULL_GUIDANCE),
        ("i", Intent.INTERRUPT),
        (" ", Intent.INTERRUPT),
        ("space", Intent.INTERRUPT),
        ("m", Intent.TOGGLE_MUTE),
        ("  q  ", Intent.QUIT),
        ("x", None),
        ("", None),
        ("hello", None),
    ],
)
def test_parse_command(line: str, intent: Intent | None) -> None:
    assert parse_command(line) is intent


async def read_all(path: str) -> list[Intent]:
    queue: asyncio.Queue[Intent] = asyncio.Queue()
    with open(path) as stream:
        async with asyncio.timeout(5):
            await read_intents(queue, stream)
    return [queue.get_nowait() for _ in range(queue.qsize())]


async def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    script = tmp_path / "keys.txt"
    script.write_text("h\n\ng\nnonsense\nq\n")
    assert await read_all(str(script)) == [Intent.QUICK_HINT, Intent.FULL_GUIDANCE, Intent.QUIT]


async def test_dev_null_means_no_keys_and_no_error() -> None:
    assert await read_all(os.devnull) == []


async def test_a_pipe_is_read_line_by_line_until_eof() -> None:
    read_fd, write_fd = os.pipe()
    queue: asyncio.Queue[Intent] = asyncio.Queue()
    with os.fdopen(read_fd) as stream:
        reader = asyncio.create_task(read_intents(queue, stream))
        os.write(write_fd, b"m\n")
        async with asyncio.timeout(5):
            assert await queue.get() is Intent.TOGGLE_MUTE
        os.write(write_fd, b"i\nq")  # the last line has no newline yet: not a command until it ends
        async with asyncio.timeout(5):
            assert await queue.get() is Intent.INTERRUPT
        assert queue.empty()
        os.close(write_fd)  # EOF ends the line
        async with asyncio.timeout(5):
            await reader
    assert queue.get_nowait() is Intent.QUIT

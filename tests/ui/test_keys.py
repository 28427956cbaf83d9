"""The one key table, and line mode's key reader: letters, words, `?`, unknown input; files, pipes, /dev/null."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from voicecoach.coach.actions import Intent
from voicecoach.ui.keys import HELP, KEYS, help_rows, intent_for_key, parse_command, plain_help, textual_bindings
from voicecoach.ui.plain_keys import read_intents


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
        ("?", HELP),
        ("help", HELP),
        ("x", None),
        ("l", None),  # the event log is the full-screen UI's alone
        ("", None),
        ("hello", None),
    ],
)
def test_parse_command(line: str, intent: Intent | None) -> None:
    assert parse_command(line) == intent


def test_intent_for_key_is_only_intents() -> None:
    assert intent_for_key("G") is Intent.FULL_GUIDANCE
    assert intent_for_key(" ") is Intent.INTERRUPT
    assert intent_for_key("?") is None
    assert intent_for_key("x") is None


def test_every_intent_has_a_key_and_bindings_match_the_table() -> None:
    assert {k.intent for k in KEYS if k.intent is not None} == set(Intent)
    by_key = {b.key: b for b in textual_bindings()}
    assert by_key["h"].action == "intent('quick')"
    assert by_key["space"].action == "intent('interrupt')" and not by_key["space"].show
    assert by_key["q"].action == "quit" and by_key["q"].description == "Quit"
    assert by_key["question_mark"].description == "Help" and by_key["question_mark"].key_display == "?"
    assert by_key["ctrl+c"].action == "interrupt_quit" and by_key["ctrl+c"].priority
    assert by_key["escape"].action == "leave_filter" and not by_key["escape"].show


def test_help_of_each_mode_lists_only_its_keys() -> None:
    tui = dict(help_rows("tui"))
    plain = dict(help_rows("plain"))
    assert "l" in tui and "s" in tui and "Esc" in tui
    assert "l" not in plain and "s" not in plain
    assert plain["i / space / interrupt"] == "interrupt the coach at once"
    assert plain["q / quit"] == "quit" and "again" in tui["q"]
    assert any(line.startswith("  ? / help ") for line in plain_help())


async def read_all(path: str) -> tuple[list[Intent], list[str]]:
    queue: asyncio.Queue[Intent] = asyncio.Queue()
    said: list[str] = []
    with open(path) as stream:
        async with asyncio.timeout(5):
            await read_intents(queue, stream, on_help=said.append)
    return [queue.get_nowait() for _ in range(queue.qsize())], said


async def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    script = tmp_path / "keys.txt"
    script.write_text("h\n\ng\nq\n")
    assert await read_all(str(script)) == ([Intent.QUICK_HINT, Intent.FULL_GUIDANCE, Intent.QUIT], [])


async def test_question_mark_and_unknown_commands_print_the_key_help(tmp_path: Path) -> None:
    script = tmp_path / "keys.txt"
    script.write_text("?\nnonsense\nh\n")
    intents, said = await read_all(str(script))
    assert intents == [Intent.QUICK_HINT]
    help_lines = plain_help()
    assert said == [*help_lines, "unknown key or command 'nonsense'", *help_lines]
    assert any("quick hint" in line for line in help_lines)


async def test_dev_null_means_no_keys_and_no_error() -> None:
    assert await read_all(os.devnull) == ([], [])


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


async def test_a_terminal_reads_single_keys_and_answers_unknown_ones_with_the_help() -> None:
    import pty
    import termios

    leader, follower = pty.openpty()
    queue: asyncio.Queue[Intent] = asyncio.Queue()
    said: list[str] = []
    with os.fdopen(follower) as stream:
        reader = asyncio.create_task(read_intents(queue, stream, on_help=said.append))
        try:
            # Wait for cbreak mode: setting it flushes pending input, so a key typed earlier would be lost.
            async with asyncio.timeout(5):
                while termios.tcgetattr(follower)[3] & termios.ICANON:
                    await asyncio.sleep(0.01)
            os.write(leader, b"h")
            async with asyncio.timeout(5):
                assert await queue.get() is Intent.QUICK_HINT
            os.write(leader, b"\x1b[A")  # an arrow key: ignored, no help
            os.write(leader, b"x")
            async with asyncio.timeout(5):
                while not said:
                    await asyncio.sleep(0.01)
            assert said[0] == "unknown key or command 'x'"
            assert said[1:] == plain_help()
            assert queue.empty()
        finally:
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            os.close(leader)

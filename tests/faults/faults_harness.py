"""Helpers for the fault-injection tests: a live session to poke at, a view that keeps time, item accounting."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
import wave
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from e2e_harness import settings_for

from voicecoach.audio.files import PcmSource, WavSink
from voicecoach.audio.frames import WIRE_RATE, Pcm
from voicecoach.coach.actions import Action, Reconnecting, StatusChanged
from voicecoach.coach.state import State
from voicecoach.runner import Runner, RunReport
from voicecoach.server import RealtimeServer
from voicecoach.store import SessionStore
from voicecoach.ui.plain import PlainView

# Figures measured by the tests, printed in pytest's terminal summary (see conftest.py).
FIGURES: list[str] = []


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` every 10 ms; fail the test with ``what`` if it does not hold within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds:g} s waiting for {what}") from None


class RecordingView:
    """A PlainView that also keeps every action with the runner's clock, for assertions and timings."""

    def __init__(self) -> None:
        self.text = io.StringIO()
        self._plain = PlainView(self.text)
        self.actions: list[tuple[float, Action]] = []

    def show(self, action: Action, now: float) -> None:
        self.actions.append((now, action))
        self._plain.show(action, now)

    def info(self, text: str) -> None:
        self._plain.info(text)

    def times(self, predicate: Callable[[Action], bool]) -> list[float]:
        return [t for t, a in self.actions if predicate(a)]

    def reconnecting_at(self) -> list[float]:
        return self.times(lambda a: isinstance(a, Reconnecting))

    def ready_at(self) -> list[float]:
        """When the coach became ready (``session.updated`` on a link), one entry per link."""
        return self.times(
            lambda a: isinstance(a, StatusChanged) and a.state is State.LISTENING and a.previous is State.CONNECTING
        )


@dataclass
class LiveSession:
    """A Runner running in a task against ``server``; stop it with :meth:`finish` (or leave the block)."""

    server: RealtimeServer
    runner: Runner
    view: RecordingView
    task: asyncio.Task[RunReport]

    @classmethod
    async def start(cls, server: RealtimeServer, tmp_path: Path, audio: Pcm, **overrides: Any) -> LiveSession:
        settings = settings_for(server, tmp_path, **overrides)
        view = RecordingView()
        store = SessionStore(tmp_path / "sessions")
        runner = Runner(settings, view, PcmSource(audio, WIRE_RATE), WavSink(tmp_path / "out.wav"), store=store)
        task = asyncio.create_task(runner.run(), name="session-under-test")
        return cls(server, runner, view, task)

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.task.done():
            self.runner.stop("test over")
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(self.task, return_exceptions=kind is not None)
        finally:
            if not self.task.done():
                self.task.cancel()
                await asyncio.gather(self.task, return_exceptions=True)

    async def finish(self, seconds: float = 10.0) -> RunReport:
        self.runner.stop("test condition met")
        async with asyncio.timeout(seconds):
            return await self.task

    # --- conditions -------------------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.runner.clock()

    async def until(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        def holds() -> bool:
            if self.task.done():  # the session ended (or crashed): say so at once instead of timing out
                self.task.result()
                raise AssertionError(f"the session ended while waiting for {what}")
            return condition()

        await until(holds, seconds, what)

    def lines(self, who: str) -> list[str]:
        return [line for line in self.runner.report.transcript if line.startswith(f"{who}:")]

    def listening(self) -> bool:
        return self.runner.coach.state is State.LISTENING and not self.runner.coach.busy

    async def ready(self, links: int = 1, seconds: float = 10.0) -> None:
        """Wait until the ``links``-th link is ready (session.updated seen) and the coach idle."""
        await self.until(lambda: len(self.view.ready_at()) >= links and self.listening(), seconds, f"link {links}")


def session_items(runner: Runner) -> list[dict[str, Any]]:
    """The items of the runner's session file, read back from disk (the header left out)."""
    path = runner.report.session_path or runner.journal.path
    assert path is not None, "the session kept no file"
    return [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]


@dataclass
class Accounting:
    """Finished items on the server's side (ground truth) against the client's session file."""

    expected: dict[str, str]  # key (user item id, or hint response id) → text, as the server finished it
    kept: Counter[str]  # key → how many times it is in the session file
    texts: dict[str, str]  # key → text in the session file

    @property
    def lost(self) -> list[str]:
        return [key for key in self.expected if key not in self.kept]

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.kept.values())

    @property
    def phantoms(self) -> list[str]:
        """Items in the file that the server never finished."""
        return [key for key in self.kept if key not in self.expected]


def item_accounting(server: RealtimeServer, runner: Runner) -> Accounting:
    """Every transcription the server completed and every hint transcript it finished, on every call, against
    the utterances and hints in the client's session file (matched by key: item id, response id)."""
    expected: dict[str, str] = {}
    for call in server.calls:
        for event in call.events_sent:
            if event["type"] == "conversation.item.input_audio_transcription.completed":
                expected[event["item_id"]] = event["transcript"]
            elif event["type"] == "response.output_audio_transcript.done":
                expected[event["response_id"]] = event["transcript"]
    items = [i for i in session_items(runner) if i["kind"] in ("utterance", "hint")]
    return Accounting(expected, Counter(i["key"] for i in items), {i["key"]: i["text"] for i in items})


def figure(test: str, **values: float | int | str) -> None:
    parts = ", ".join(f"{k} {v:.0f} ms" if k.endswith("_ms") else f"{k} {v}" for k, v in values.items())
    FIGURES.append(f"{test}: {parts}")


def elapsed_ms(start: float, end: float) -> float:
    return (end - start) * 1000


def monotonic() -> float:
    return time.monotonic()


class Cli:
    """``python -m voicecoach ARGS`` as a subprocess: its stdout read line by line as it comes, stderr kept whole.

    Leave with :meth:`wait` (the exit code), :meth:`kill` (SIGKILL) or :meth:`close` (kills it if still running);
    the reader tasks are owned here and always awaited.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._cursor = 0
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.out), name="cli-stdout"),
            asyncio.create_task(self._read(proc.stderr, self.err), name="cli-stderr"),
        ]

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Cli:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voicecoach",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        return cls(proc)

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    async def line(self, fragment: str, seconds: float) -> str:
        """The next stdout line (after the last one matched) that contains ``fragment``."""
        found: list[str] = []

        def seen() -> bool:
            for i in range(self._cursor, len(self.out)):
                if fragment in self.out[i]:
                    self._cursor = i + 1
                    found.append(self.out[i])
                    return True
            if self.proc.returncode is not None and all(r.done() for r in self._readers):
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {fragment!r}:\n{self.stdout}\n{self.stderr}"
                )
            return False

        await until(seen, seconds, f"{fragment!r} on stdout")
        return found[0]

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.out)

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        await self.proc.stdin.drain()

    async def wait(self, seconds: float) -> int:
        try:
            async with asyncio.timeout(seconds):
                code = await self.proc.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            await self.close()
            raise AssertionError(f"still running after {seconds:g} s:\n{self.stdout}\n{self.stderr}") from None
        return code

    async def kill(self) -> int:
        self.proc.kill()
        return await self.wait(10)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def write_wav(path: Path, pcm: Pcm) -> Path:
    """48 kHz mono 16-bit WAV (the scripted meeting a subprocess reads as its microphone)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WIRE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def assert_one_line_error(code: int, err: str, exit_code: int, *words: str) -> str:
    """Exit ``exit_code`` with exactly one stderr line, ``voicecoach: error: ...``, containing ``words``."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == exit_code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("voicecoach: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]

"""A fake session for the terminal UI tests: run() waits for stop(); the test pushes actions through its View."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from textual.pilot import Pilot

from voicecoach.coach.actions import Action, Intent
from voicecoach.coach.conversation import Message
from voicecoach.coach.settings import CoachSettings
from voicecoach.ui.view import View

WAIT_S = 5.0


@dataclass
class FakeReport:
    reason: str = "quit"
    cost_usd: float = 0.0123


class FakeRun:
    def __init__(self, view: View) -> None:
        self.view = view
        self.intents: asyncio.Queue[Intent] = asyncio.Queue()
        self.applied: list[CoachSettings] = []
        self.contexts: list[str | None] = []  # the context_text of each apply_coach_settings (None: kept)
        self.stop_reasons: list[str] = []
        self.fail_with: BaseException | None = None
        self.reject_settings: str | None = None
        self.ignore_stop = False
        self.report = FakeReport()
        self._stopped = asyncio.Event()
        self.now = 100.0

    def stop(self, reason: str = "stopped") -> None:
        self.stop_reasons.append(reason)
        self._stopped.set()

    async def run(self) -> FakeReport:
        if self.ignore_stop:
            await asyncio.Event().wait()  # a session stuck while closing: only cancellation ends it
        await self._stopped.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.report.reason = self.stop_reasons[0]
        return self.report

    def apply_coach_settings(self, settings: CoachSettings, context_text: str | None = None) -> None:
        if self.reject_settings is not None:
            raise ValueError(self.reject_settings)
        self.applied.append(settings)
        self.contexts.append(context_text)

    def push(self, *actions: Action) -> None:
        for action in actions:
            self.now += 0.01
            self.view.show(action, self.now)


class SessionFactory:
    """``make_run`` for CoachApp; keeps the session it made so the test can drive it."""

    def __init__(self, configure: Callable[[FakeRun], None] | None = None) -> None:
        self.run: FakeRun | None = None
        self.configure = configure

    def __call__(self, view: View) -> FakeRun:
        self.run = FakeRun(view)
        if self.configure is not None:
            self.configure(self.run)
        return self.run


def msg(
    item_id: str,
    role: Literal["user", "coach", "them"],
    text: str,
    *,
    done: bool = False,
    tier: str | None = None,
    interrupted: bool = False,
    label: str | None = None,
    started_at: float = 0.0,
) -> Message:
    return Message(
        item_id=item_id,
        role=role,
        text=text,
        done=done,
        tier=tier,
        interrupted=interrupted,
        label=label,
        started_at=started_at,
    )


async def wait_until(pilot: Pilot[int], condition: Callable[[], object], within: float = WAIT_S) -> None:
    """Poll ``condition`` between app ticks; fail the test (TimeoutError) if it does not hold in time."""
    async with asyncio.timeout(within):
        while not condition():
            await pilot.pause(0.01)

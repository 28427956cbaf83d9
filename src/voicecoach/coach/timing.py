"""Every deadline of the coach, pure: ``now`` is passed in and nothing here sleeps.

The runner asks the coach for :meth:`~voicecoach.coach.coach.Coach.next_deadline`, sleeps until then or until
an event arrives (whichever is first), and calls ``tick(now)``. After every call into the coach the deadline may
have moved, so the runner asks again; a deadline already past means "tick now". The deadlines:

- **Rollover** (:class:`Rollover`): a Realtime session ends at ``session_max_seconds`` (``session_expired``).
  The link is renewed before that, at a quiet moment: no hint in flight and no user turn awaiting its
  transcript (closing then would lose the turn: the old session never transcribes it, the new one hears only
  its tail). Half-way through the margin it renews regardless, because ``session_expired`` would end the hint
  and the turn anyway.
- **Playback hang-over** (:class:`HangOver`): the player reports raw edges (sound started, sound stopped); the
  pause between two sentences of a hint must not count as its end, so "stopped" only counts after
  ``PLAYBACK_HANGOVER_S`` of quiet.
- **Pending hints** (``Hint.silent_until`` in :mod:`.hints`): a request the server never answers, or answers
  and then goes silent on, is dropped after ``PENDING_TIMEOUT_S`` so it cannot block the coach forever.
- **The run's duration** (:class:`Duration`, ``--duration``): it counts from the first connect and runs on
  while reconnecting.
- **The end of an input file** (:class:`InputEnd`): the run ends by itself once what the file said has been
  transcribed and any hint it asked for has been heard.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import server_events as se

PLAYBACK_HANGOVER_S = 0.8
PENDING_TIMEOUT_S = 10.0
INPUT_END_GRACE_S = 1.0
ROLLOVER_MIN_SHARE = 0.2  # a link lives at least this share of session_max_seconds before it rolls over
DEFAULT_SESSION_MAX_S = 3600.0  # the Realtime API's limit (realtime-protocol.md)
DEFAULT_ROLLOVER_MARGIN_S = 120.0
ROLLOVER_REASON = "rolling over to a fresh session before the server's time limit"


@dataclass(frozen=True)
class TimingSettings:
    """The limits the deadlines come from (config.py's ``session_max_seconds``, ``rollover_margin``, ``duration``)."""

    session_max_seconds: float = DEFAULT_SESSION_MAX_S
    rollover_margin_seconds: float = DEFAULT_ROLLOVER_MARGIN_S
    duration_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.session_max_seconds > 0:
            raise ValueError(f"session_max_seconds must be > 0, got {self.session_max_seconds}")
        if not self.rollover_margin_seconds >= 0:
            raise ValueError(f"rollover_margin_seconds must be >= 0, got {self.rollover_margin_seconds}")
        if self.duration_seconds is not None and not self.duration_seconds > 0:
            raise ValueError(f"duration_seconds must be > 0, got {self.duration_seconds}")


class Rollover:
    """When the current link's session should be renewed. Armed by :meth:`opened`, spent once it fires."""

    def __init__(self, session_max_seconds: float, margin_seconds: float) -> None:
        # A margin as long as the session itself would renew every link the moment it opened: a reconnect
        # storm. So a link always lives for at least a share of the session's maximum.
        margin = min(margin_seconds, session_max_seconds * (1 - ROLLOVER_MIN_SHARE))
        self._due_after = session_max_seconds - margin
        self._hard_after = session_max_seconds - margin / 2
        self.due: float | None = None  # from then on, the first quiet moment
        self.hard: float | None = None  # then regardless

    def opened(self, now: float) -> None:
        """A link's session is ready (``session.updated``): its clock starts now."""
        self.due, self.hard = now + self._due_after, now + self._hard_after

    def closed(self) -> None:
        self.due = self.hard = None

    def deadline(self, quiet: bool) -> float | None:
        """When to look again. Quietness only changes through calls into the coach, after which the runner asks
        again, so while it is busy the next moment that matters is the hard limit."""
        if self.due is None or self.hard is None:
            return None
        return self.due if quiet else self.hard

    def fire(self, now: float, quiet: bool) -> bool:
        """True (once per link) when it is time to roll over."""
        if self.due is None or self.hard is None or now < self.due:
            return False
        if quiet or now >= self.hard:
            self.closed()
            return True
        return False


class HangOver:
    """The player's raw sounding edges, debounced: playing ends only after ``seconds`` of quiet."""

    def __init__(self, seconds: float = PLAYBACK_HANGOVER_S) -> None:
        self.seconds = seconds
        self.sounding = False  # the raw state, as last reported
        self.playing = False  # the debounced state
        self._quiet_since: float | None = None

    def edge(self, sounding: bool, now: float) -> bool:
        """Record a raw edge. True when this starts playing (the debounced start, for a caller that wants it)."""
        self.sounding = sounding
        if sounding:
            self._quiet_since = None
            started, self.playing = not self.playing, True
            return started
        if self.playing and self._quiet_since is None:
            self._quiet_since = now
        return False

    def deadline(self) -> float | None:
        return None if self._quiet_since is None else self._quiet_since + self.seconds

    def fire(self, now: float) -> bool:
        """True (once) when the player has been quiet for the hang-over: playing has ended."""
        # Compared with the deadline itself (not now - since): tick(next_deadline()) must fire, float or not.
        if self._quiet_since is None or now < self._quiet_since + self.seconds:
            return False
        self.playing, self._quiet_since = False, None
        return True


class Duration:
    """``--duration``: the run ends this long after it started, connected or not."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end: float | None = None
        self._fired = False

    @property
    def reason(self) -> str:
        return f"--duration {self.seconds or 0:g} s reached"

    def start(self, now: float) -> None:
        """The run started (the first connect). Later calls change nothing."""
        if self.seconds is not None and self.end is None:
            self.end = now + self.seconds

    def deadline(self) -> float | None:
        return None if self._fired else self.end

    def fire(self, now: float) -> bool:
        """True (once) when the duration has elapsed."""
        if self._fired or self.end is None or now < self.end:
            return False
        self._fired = True
        return True


def earliest(*deadlines: float | None) -> float | None:
    """The first of some deadlines; None when there is none."""
    known = [d for d in deadlines if d is not None]
    return min(known) if known else None


class InputEnd:
    """The microphone's input file has ended (no ``--loop``): the run ends once the last utterance has been
    transcribed and no hint is in flight or playing, but not before ``INPUT_END_GRACE_S`` (the server's VAD
    needs that much of the silence that follows the file to close its last turn)."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._fired = False

    def ended(self, now: float) -> None:
        if self.at is None:
            self.at = now + INPUT_END_GRACE_S

    def deadline(self, idle: bool) -> float | None:
        """While not idle, nothing to wait for: the call into the coach that makes it idle re-asks."""
        return None if self._fired or not idle else self.at

    def fire(self, now: float, idle: bool) -> bool:
        if self._fired or self.at is None or not idle or now < self.at:
            return False
        self._fired = True
        return True


class Deadlines:
    """The coach's clocks for one run, and the user turns that keep a link from being quiet."""

    def __init__(self, settings: TimingSettings) -> None:
        self.rollover = Rollover(settings.session_max_seconds, settings.rollover_margin_seconds)
        self.hangover = HangOver()
        self.duration = Duration(settings.duration_seconds)
        self.input_end = InputEnd()
        # This link's user turns: speech started, transcript not yet in. Closing the link would lose them.
        self.open_turns: set[str] = set()
        self.flushed_at: float | None = None  # an interrupt flushed a sounding player: awaiting its silence

    def track_turn(self, event: se.ServerEvent) -> None:
        # A committed turn is only safe once its transcript (or its failure) has arrived; see the rollover.
        match event:
            case se.SpeechStarted(item_id=item_id):
                self.open_turns.add(item_id)
            case se.TranscriptionCompleted(item_id=item_id) | se.TranscriptionFailed(item_id=item_id):
                self.open_turns.discard(item_id)
            case _:
                pass

    def link_closed(self) -> None:
        """A link is gone (or a new one is starting): its turns and its rollover go with it."""
        self.open_turns.clear()
        self.rollover.closed()

    def silenced(self, now: float) -> float | None:
        """The player fell silent: milliseconds since the interrupt that flushed it (once), else None."""
        if self.flushed_at is None:
            return None
        flushed_at, self.flushed_at = self.flushed_at, None
        return (now - flushed_at) * 1000

    def idle(self, quiet: bool) -> bool:
        """Quiet, and nothing sounding or within its hang-over: a moment the run may end at."""
        return quiet and not self.hangover.sounding and not self.hangover.playing

    def next(self, *, quiet: bool, hint_deadline: float | None) -> float | None:
        return earliest(
            self.duration.deadline(),
            self.rollover.deadline(quiet),
            self.hangover.deadline(),
            self.input_end.deadline(self.idle(quiet)),
            hint_deadline,
        )

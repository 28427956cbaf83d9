"""The two channels' clocks and turns: when each utterance was spoken, on one clock for both links.

Pure: no I/O and no clock; ``now`` (monotonic seconds, the coach's clock) is passed in.

The microphone ("you") and the other side of the call ("them") are transcribed on two Realtime sessions, whose
transcripts arrive in their own time: the other side's question may complete a second after the user's answer
to it. The transcript must read in the order things were *said*, so each utterance gets a start time on the
coach's clock (:meth:`SpokenClock.spoken_at`), from its ``input_audio_buffer.speech_started``:

- **Audio time** (preferred). ``audio_start_ms`` counts from the first sample written to that session's input
  buffer. The runner tells the coach when that first sample was captured on each link (its *epoch*,
  :meth:`SpokenClock.started`, again after every reconnect: a new session starts counting at 0), and the start
  is ``epoch + audio_start_ms / 1000``. Exact up to the epoch's own error (a frame, 20 ms) and independent of
  the network, the server's VAD latency and the transport (WebRTC's jitter buffer, the WebSocket's chunking),
  which differ between the two links. Its weakness: audio the server never got (a WebRTC packet lost for good)
  shifts the rest of that session earlier by its length; with continuous audio (silence frames while muted)
  there is none to speak of.
- **Arrival time** (the fallback, a link with no epoch). ``now`` when ``speech_started`` arrives: the true
  start plus the VAD's detection delay (``prefix_padding_ms`` is back-dated in ``audio_start_ms`` but not in
  arrival) plus that link's latency, typically 0.2-0.5 s. Both links pay it, so turns more than ~0.5 s apart
  keep their order as long as the two links' delays differ by less than the gap; a congested link breaks that.
  Mixing the two (one link with an epoch, one without) adds that delay to one side only: give both or neither.

A start is never later than ``now`` (a wrong epoch cannot put a turn in the future).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .cost import CHANNELS, Channel

MAX_TURNS = 64  # turns remembered per channel (their start and end); a meeting's older ones are not needed


@dataclass
class Turn:
    """One utterance's spoken interval on the coach's clock (``end`` None while it is still being said)."""

    item_id: str
    start: float
    end: float | None = None
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None

    @property
    def speech_seconds(self) -> float | None:
        """The committed speech, as the server's VAD measured it (what a per-minute model bills)."""
        if self.audio_start_ms is None or self.audio_end_ms is None:
            return None
        return max(0.0, (self.audio_end_ms - self.audio_start_ms) / 1000)


class SpokenClock:
    """Each link's audio epoch, and the turns heard on each channel (bounded)."""

    def __init__(self) -> None:
        self._epochs: dict[Channel, float | None] = dict.fromkeys(CHANNELS)
        self._turns: dict[Channel, OrderedDict[str, Turn]] = {c: OrderedDict() for c in CHANNELS}

    def started(self, channel: Channel, epoch: float | None) -> None:
        """A link's session began taking audio: its first sample was captured at ``epoch`` (None: unknown)."""
        self._epochs[channel] = epoch

    def epoch(self, channel: Channel) -> float | None:
        return self._epochs[channel]

    def spoken_at(self, channel: Channel, audio_ms: int | None, now: float) -> float:
        epoch = self._epochs[channel]
        if epoch is None or audio_ms is None:
            return now
        return min(now, epoch + audio_ms / 1000)

    def speech_started(self, channel: Channel, item_id: str, audio_start_ms: int | None, now: float) -> Turn:
        turns = self._turns[channel]
        turn = turns.get(item_id)
        start = self.spoken_at(channel, audio_start_ms, now)
        if turn is None:
            turn = turns[item_id] = Turn(item_id, start)
            while len(turns) > MAX_TURNS:
                turns.popitem(last=False)
        turn.start, turn.audio_start_ms = start, audio_start_ms
        return turn

    def speech_stopped(self, channel: Channel, item_id: str, audio_end_ms: int | None, now: float) -> Turn | None:
        turn = self._turns[channel].get(item_id)
        if turn is not None:
            turn.end = max(turn.start, self.spoken_at(channel, audio_end_ms, now))
            turn.audio_end_ms = audio_end_ms
        return turn

    def turn(self, channel: Channel, item_id: str) -> Turn | None:
        return self._turns[channel].get(item_id)

    def turns(self, channel: Channel) -> list[Turn]:
        """The remembered turns of ``channel``, oldest first."""
        return list(self._turns[channel].values())

    def forget(self, channel: Channel, item_id: str) -> None:
        self._turns[channel].pop(item_id, None)

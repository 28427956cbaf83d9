"""The coach's states and every legal move between them, in one table.

::

    Disconnected ──connect──► Connecting ──ready──► Listening ◄──done/interrupt── Speaking
         ▲                        │  ▲                 │  ▲ ──────speak──────────►   │
         └────────lost/close──────┘  └──reconnect──────┤  │                          │
                                                       mute unmute                   mute
                                                       ▼  │                          │
                                                       Muted ◄───────────────────────┘

*Muted* means the microphone sends silence. The coach may still finish speaking while muted (``speak`` and
``done`` keep Muted), so unmuting always lands in Listening; the runner re-enters Speaking if audio is still
playing. ``lost`` (transport gone) and ``close`` reach Disconnected from anywhere connected; ``reconnect``
goes back to Connecting. Anything else is a bug in the caller and raises :class:`InvalidTransition`.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LISTENING = "listening"
    SPEAKING = "speaking"
    MUTED = "muted"


class Move(StrEnum):
    CONNECT = "connect"
    READY = "ready"
    SPEAK = "speak"
    DONE = "done"
    INTERRUPT = "interrupt"
    MUTE = "mute"
    UNMUTE = "unmute"
    LOST = "lost"
    RECONNECT = "reconnect"
    CLOSE = "close"


S, M = State, Move
_LIVE = (S.LISTENING, S.SPEAKING, S.MUTED)

TRANSITIONS: dict[tuple[State, Move], State] = {
    (S.DISCONNECTED, M.CONNECT): S.CONNECTING,
    (S.DISCONNECTED, M.CLOSE): S.DISCONNECTED,
    (S.CONNECTING, M.READY): S.LISTENING,
    (S.CONNECTING, M.LOST): S.DISCONNECTED,
    (S.CONNECTING, M.CLOSE): S.DISCONNECTED,
    (S.LISTENING, M.SPEAK): S.SPEAKING,
    (S.LISTENING, M.MUTE): S.MUTED,
    (S.SPEAKING, M.DONE): S.LISTENING,
    (S.SPEAKING, M.INTERRUPT): S.LISTENING,
    (S.SPEAKING, M.MUTE): S.MUTED,
    (S.MUTED, M.UNMUTE): S.LISTENING,
    (S.MUTED, M.SPEAK): S.MUTED,
    (S.MUTED, M.DONE): S.MUTED,
    (S.MUTED, M.INTERRUPT): S.MUTED,
    **{(state, M.LOST): S.DISCONNECTED for state in _LIVE},
    **{(state, M.RECONNECT): S.CONNECTING for state in (*_LIVE, S.DISCONNECTED)},
    **{(state, M.CLOSE): S.DISCONNECTED for state in _LIVE},
}


class InvalidTransition(RuntimeError):
    """A move that the table does not allow from the current state (a bug in the caller)."""

    def __init__(self, state: State, move: Move) -> None:
        super().__init__(f"cannot {move.value} while {state.value}")
        self.state = state
        self.move = move


def next_state(state: State, move: Move) -> State:
    try:
        return TRANSITIONS[(state, move)]
    except KeyError as exc:
        raise InvalidTransition(state, move) from exc

"""The one transition table: every legal move lands where the diagram says, every other move is refused."""

from __future__ import annotations

import itertools

import pytest

from voicecoach.coach.state import TRANSITIONS, InvalidTransition, Move, State, next_state

S, M = State, Move

EXPECTED = {
    (S.DISCONNECTED, M.CONNECT): S.CONNECTING,
    (S.DISCONNECTED, M.RECONNECT): S.CONNECTING,
    (S.DISCONNECTED, M.CLOSE): S.DISCONNECTED,
    (S.CONNECTING, M.READY): S.LISTENING,
    (S.CONNECTING, M.LOST): S.DISCONNECTED,
    (S.CONNECTING, M.CLOSE): S.DISCONNECTED,
    (S.LISTENING, M.SPEAK): S.SPEAKING,
    (S.LISTENING, M.MUTE): S.MUTED,
    (S.LISTENING, M.LOST): S.DISCONNECTED,
    (S.LISTENING, M.RECONNECT): S.CONNECTING,
    (S.LISTENING, M.CLOSE): S.DISCONNECTED,
    (S.SPEAKING, M.DONE): S.LISTENING,
    (S.SPEAKING, M.INTERRUPT): S.LISTENING,
    (S.SPEAKING, M.MUTE): S.MUTED,
    (S.SPEAKING, M.LOST): S.DISCONNECTED,
    (S.SPEAKING, M.RECONNECT): S.CONNECTING,
    (S.SPEAKING, M.CLOSE): S.DISCONNECTED,
    (S.MUTED, M.UNMUTE): S.LISTENING,
    (S.MUTED, M.SPEAK): S.MUTED,
    (S.MUTED, M.DONE): S.MUTED,
    (S.MUTED, M.INTERRUPT): S.MUTED,
    (S.MUTED, M.LOST): S.DISCONNECTED,
    (S.MUTED, M.RECONNECT): S.CONNECTING,
    (S.MUTED, M.CLOSE): S.DISCONNECTED,
}


def test_table_is_exactly_the_diagram() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "move"), sorted(EXPECTED, key=str))
def test_every_legal_transition(state: State, move: Move) -> None:
    assert next_state(state, move) is EXPECTED[(state, move)]


ILLEGAL = [pair for pair in itertools.product(State, Move) if pair not in EXPECTED]


@pytest.mark.parametrize(("state", "move"), ILLEGAL, ids=[f"{s}-{m}" for s, m in ILLEGAL])
def test_every_illegal_transition_is_refused_naming_the_state(state: State, move: Move) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(state, move)
    assert state.value in str(info.value) and move.value in str(info.value)
    assert info.value.state is state


def test_there_are_illegal_moves_to_refuse() -> None:
    # e.g. speaking before the session is ready, or unmuting what is not muted.
    assert (S.CONNECTING, M.SPEAK) in ILLEGAL
    assert (S.LISTENING, M.UNMUTE) in ILLEGAL
    assert (S.DISCONNECTED, M.READY) in ILLEGAL

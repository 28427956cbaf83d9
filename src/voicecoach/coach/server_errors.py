"""What the coach does about a server ``error`` event: ignore a harmless race, renew, end, or show it.

Pure. The codes and their meaning are in realtime-protocol.md §8.
"""

from __future__ import annotations

from ..protocol.server_events import ErrorDetail
from .actions import Action, EndSession, Notice, Reconnect

# Errors the API sends for races that are harmless (§8): logged, never shown as failures.
BENIGN_ERRORS = frozenset({"response_cancel_not_active", "conversation_already_has_active_response"})
FATAL_ERRORS = frozenset({"invalid_api_key", "insufficient_quota"})
# The session is over but a new one can carry on (§8: "reconnect with a fresh token").
RENEW_ERRORS = frozenset({"session_expired"})


def error_actions(err: ErrorDetail) -> list[Action]:
    if err.code in BENIGN_ERRORS:
        return [Notice("debug", f"server: {err.message}")]
    if err.code in RENEW_ERRORS:
        return [Notice("warning", f"server: {err.message}"), Reconnect(err.code or "session over")]
    if err.code in FATAL_ERRORS:
        return [Notice("error", f"server: {err.message}"), EndSession(err.code or "error", fatal=True)]
    return [Notice("error", f"server error ({err.code or err.type}): {err.message}")]

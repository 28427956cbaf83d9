"""``GET /v1/realtime?model=…``: the Realtime WebSocket, refused and accepted as OpenAI's is (realtime-protocol.md
§2.7, §8).

A refusal is not an HTTP status: the socket is upgraded, one ``error`` event is sent, and the socket closes
with OpenAI's close code, its reason being ``<error type>.<error code>``. Checked in this order:

=================================  ==============================  ======  ==========================================
situation                          ``error.code``                  close   close reason
=================================  ==============================  ======  ==========================================
no key (header or subprotocol)     ``null``                        3000    ``invalid_request_error`` (UNCONFIRMED)
wrong key, expired ``ek_``         ``invalid_api_key``             3000    ``invalid_request_error.invalid_api_key``
an ``OpenAI-Beta`` header          ``beta_api_shape_disabled``     4000    ``invalid_request_error.beta_api_shape_…``
an ``intent`` but "transcription"  ``invalid_value`` (UNCONFIRMED)  4000    ``invalid_request_error.invalid_value``
no ``model`` (standard key)        ``missing_model``               4000    ``invalid_request_error.missing_model``
a model not served in realtime     ``invalid_model``               4000    ``invalid_request_error.invalid_model``
=================================  ==============================  ======  ==========================================

``?intent=transcription`` (no model: next-wave.md §2.1) opens a transcription-only session
(``session.type`` "transcription", see session.py); a ``model`` given with it is ignored (UNCONFIRMED).

The order of the checks and the exact messages of the missing-key and beta errors are UNCONFIRMED (the codes
and close codes are from a live capture). An ``ek_`` key carries its session, model included, so ``model`` may
be left out with one (a given one must still be a realtime model; the token's model wins).

Browsers cannot set headers: they offer the subprotocols ``realtime`` and ``openai-insecure-api-key.<key>``;
the key is taken from there, and ``realtime`` is selected in the 101 (Chromium drops the handshake otherwise).
An ``Origin`` header is never a reason to refuse.

Not a WebSocket upgrade: 400. A server started with ``--transport webrtc``: 404 (see app.transport_refused).
HTTP faults on the ``realtime`` endpoint (faults.py): a 401 fault is answered like a wrong key (upgrade, error,
close 3000); any other status is a plain HTTP error before the upgrade, as a failing proxy would answer.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiohttp import web

from .app import SERVER_KEY, Auth, error_response, transport_refused
from .catalog import (
    invalid_model,
    is_realtime_model,
    is_transcription_model,
    missing_model,
    transcription_model_as_session_model,
)
from .fitting import encode
from .schema import WireError, invalid_value

log = logging.getLogger(__name__)

CLOSE_AUTH = 3000
CLOSE_REQUEST = 4000
SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
# One input_audio_buffer.append may carry up to 15 MiB of audio (§3.2); its base64 and JSON wrap add a third.
MAX_MESSAGE_BYTES = 21 * 1024 * 1024
CLOSE_TIMEOUT_SECONDS = 1.0
TRANSCRIPTION_INTENT = "transcription"  # how long a server close waits for the client's close frame

MISSING_KEY_MESSAGE = "Missing bearer or basic authentication in header"
# UNCONFIRMED wording; the code and close 4000 are from the 2026-09 capture.
BETA_MESSAGE = (
    "The Realtime API beta interface has been removed: remove the 'OpenAI-Beta: realtime=v1' header to use "
    "the GA interface."
)


def _subprotocol_key(request: web.Request) -> str | None:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    for protocol in (p.strip() for p in offered.split(",")):
        if protocol.startswith(KEY_SUBPROTOCOL) and len(protocol) > len(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return None


def _refusal(request: web.Request, auth: Auth) -> tuple[WireError, int] | None:
    """Why this connection must be refused (the error and the close code), or None."""
    if auth.missing:
        return WireError(None, MISSING_KEY_MESSAGE), CLOSE_AUTH
    if auth.failure is not None:
        message, code = auth.failure
        return WireError(code, message), CLOSE_AUTH
    if "OpenAI-Beta" in request.headers:
        return WireError("beta_api_shape_disabled", BETA_MESSAGE), CLOSE_REQUEST
    intent = request.query.get("intent")
    if intent is not None and intent != TRANSCRIPTION_INTENT:
        return invalid_value("intent", intent, (TRANSCRIPTION_INTENT,)), CLOSE_REQUEST
    if intent == TRANSCRIPTION_INTENT:
        return None
    model = request.query.get("model")
    if model is None or not model.strip():
        if auth.session is None:
            return missing_model(None), CLOSE_REQUEST
        return None
    if is_transcription_model(model):
        return transcription_model_as_session_model(model, None), CLOSE_REQUEST
    if not is_realtime_model(model):
        return invalid_model(model, None), CLOSE_REQUEST
    return None


async def realtime_websocket(request: web.Request) -> web.StreamResponse:
    server = request.app[SERVER_KEY]
    if (refused := transport_refused(request, "websocket")) is not None:
        return refused
    ws = web.WebSocketResponse(
        autoping=False,  # the connection answers pings itself, so that a frozen one can stop (websocket.py)
        protocols=(SUBPROTOCOL,),
        max_msg_size=MAX_MESSAGE_BYTES,
        timeout=CLOSE_TIMEOUT_SECONDS,
    )
    if not ws.can_prepare(request).ok:
        return error_response(
            400, "This endpoint expects a WebSocket upgrade: connect with ws:// (or wss://) to /v1/realtime?model=…"
        )
    fault = server.faults.check("realtime")
    if fault is not None and fault[0] != 401:
        status, message, code = fault
        return error_response(status, message, code=code)
    auth = Auth(request, allow_ephemeral=True, token=_subprotocol_key(request))
    refusal = (WireError(fault[2], fault[1]), CLOSE_AUTH) if fault is not None else _refusal(request, auth)
    try:
        await ws.prepare(request)
    except ConnectionError as exc:  # the client gave up during the upgrade (a frozen peer thawed too late)
        log.debug("websocket upgrade abandoned by the client: %s", exc)
        return ws
    if refusal is not None:
        error, close_code = refusal
        log.debug("websocket refused: %s (close %d)", error.code, close_code)
        await _refuse(ws, server.new_event_id(), error, close_code)
        return ws
    call = await server.open_websocket(
        ws,
        request.transport,
        auth.session,
        request.query.get("model"),
        transcription=request.query.get("intent") == TRANSCRIPTION_INTENT,
    )
    try:
        await call.wait()
    finally:
        await call.close("the connection ended")
    return ws


async def _refuse(ws: web.WebSocketResponse, event_id: str, error: WireError, close_code: int) -> None:
    event: dict[str, Any] = {"type": "error", "event_id": event_id, "error": error.to_error(None)}
    reason = f"{error.kind}.{error.code}" if error.code else error.kind
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(encode(event))
        await ws.close(code=close_code, message=reason.encode()[:123])

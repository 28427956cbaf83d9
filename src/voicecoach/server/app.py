"""The HTTP side of the local Realtime server (aiohttp), realtime-protocol.md §1.1, §2.1, §12.1.

* ``POST /v1/realtime/client_secrets`` — standard key → ``{"value": "ek_…", "expires_at", "session"}``; the
  ``session`` is a realtime one or a transcription-only one (``type: "transcription"``), and the key opens it.
* ``POST /v1/realtime/calls`` — ``application/sdp`` (ephemeral or standard key) or ``multipart/form-data``
  with ``sdp`` and ``session`` parts → ``201``, ``application/sdp`` answer, ``Location: /v1/realtime/calls/rtc_…``.
* ``POST /v1/realtime/calls/{call_id}/hangup`` → ``200``, the call ends.
* ``GET /v1/realtime?model=…`` (or ``?intent=transcription``) upgraded to a WebSocket (:mod:`.ws_endpoint`).
* ``OPTIONS /v1/realtime/*`` → ``204``, a browser's CORS preflight; every answer under ``/v1/realtime/`` carries
  ``Access-Control-Allow-Origin`` (errors too), and the ``201`` of ``/calls`` exposes ``Location``.

Standard keys: with ``ServerConfig.api_key``/``api_keys`` (``voicecoach serve --require-key``/``--keys-file``)
only those are accepted, and any other gets OpenAI's 401 body; without them any non-``ek_`` key is.

Errors are OpenAI-style JSON bodies ``{"error": {"message", "type", "param", "code"}}``. Keys are never
echoed whole (the real API shows a masked form) and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .call import OfferError
from .faults import Endpoint
from .schema import Enum, Int, Obj, WireError, missing_parameter, unknown_parameter
from .validation import validate_session

if TYPE_CHECKING:
    from .realtime_server import RealtimeServer

log = logging.getLogger(__name__)

SERVER_KEY: web.AppKey[RealtimeServer] = web.AppKey("voicecoach_realtime_server")
_EXPIRES_AFTER = Obj({"anchor": Enum(("created_at",)), "seconds": Int(minimum=10, maximum=7200)})


# CORS as api.openai.com serves it on /v1/realtime/*, so that a browser page (OpenAI's Agents SDK for JavaScript,
# with an ephemeral key) can reach this server. The allowed request headers are a fixed list, as OpenAI's are (a
# browser client that added its own header was refused there: openclaw/openclaw#76435), so a client that sends
# a header OpenAI would refuse fails here too. Location is exposed: the SDK reads the call id from it.
CORS_PREFIX = "/v1/realtime/"
CORS_ALLOW_METHODS = "GET, POST, OPTIONS"
CORS_ALLOW_HEADERS = ", ".join(
    (
        "Authorization",
        "Content-Type",
        "Accept",
        "OpenAI-Beta",
        "OpenAI-Organization",
        "OpenAI-Project",
        "X-OpenAI-Agents-SDK",
        "X-Stainless-Arch",
        "X-Stainless-Lang",
        "X-Stainless-OS",
        "X-Stainless-Package-Version",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    )
)
CORS_MAX_AGE_SECONDS = 86400


def build_app(server: RealtimeServer) -> web.Application:
    # Imported here: the WebSocket endpoint uses this module's auth and error helpers.
    from .ws_endpoint import realtime_websocket

    app = web.Application()
    app[SERVER_KEY] = server
    app.router.add_post("/v1/realtime/client_secrets", client_secrets)
    app.router.add_post("/v1/realtime/calls", create_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/hangup", hangup)
    app.router.add_route("OPTIONS", CORS_PREFIX + "{tail:.*}", preflight)
    app.router.add_get("/v1/realtime", realtime_websocket)
    app.on_response_prepare.append(_cors_headers)
    return app


async def preflight(request: web.Request) -> web.Response:
    """A browser's CORS preflight: say which methods and headers a page may use (no auth, as browsers send none)."""
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
        },
    )


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under /v1/realtime/ (errors included: a page must be able to read the 401's body)."""
    if not request.path.startswith(CORS_PREFIX):
        return
    response.headers["Access-Control-Allow-Origin"] = "*"
    if "Location" in response.headers:
        response.headers["Access-Control-Expose-Headers"] = "Location"


def error_response(status: int, message: str, *, code: str | None = None, param: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _wire_error(exc: WireError) -> web.Response:
    return error_response(400, exc.message, code=exc.code, param=exc.param)


def mask(token: str) -> str:
    """The API's way of quoting a bad key: enough to recognise it, not enough to use it."""
    if len(token) < 12:
        return "*" * len(token)
    return f"{token[:3]}{'*' * (len(token) - 7)}{token[-4:]}"


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Auth:
    """Who is calling: a standard API key, a live ephemeral key (with its session), or nobody (a 401).

    ``token``: the key when it did not come in the Authorization header (a browser's WebSocket subprotocol).
    ``missing``/``failure`` (message, code) say why it was refused; ``error`` is the HTTP answer for that."""

    def __init__(self, request: web.Request, *, allow_ephemeral: bool, token: str | None = None) -> None:
        server = request.app[SERVER_KEY]
        self.session: dict[str, Any] | None = None
        self.error: web.Response | None = None
        self.missing = False
        self.failure: tuple[str, str | None] | None = None
        token = token or _bearer(request)
        if token is None:
            self.missing = True
            self.error = error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
            return
        if token.startswith("ek_") and allow_ephemeral:
            secret = server.lookup_secret(token)
            if secret is None:
                self._refuse(f"Invalid or expired ephemeral key: {mask(token)}.")
            else:
                self.session = secret
            return
        accepted = server.config.accepted_keys()
        # Compare with every key (no early exit), so the time taken does not tell which key nearly matched.
        matches = [hmac.compare_digest(token.encode(), key.encode()) for key in accepted]
        ok = not token.startswith("ek_") and (not accepted or any(matches))
        if not ok:
            self._refuse(
                f"Incorrect API key provided: {mask(token)}. "
                "You can find your API key at https://platform.openai.com/account/api-keys."
            )

    def _refuse(self, message: str) -> None:
        self.failure = (message, "invalid_api_key")
        self.error = error_response(401, message, code="invalid_api_key")


def _injected_fault(request: web.Request, endpoint: Endpoint) -> web.Response | None:
    """The error a fault rule answers this request with (see faults.py), counting the request."""
    fault = request.app[SERVER_KEY].faults.check(endpoint)
    if fault is None:
        return None
    status, message, code = fault
    return error_response(status, message, code=code)


async def client_secrets(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    if (fault := _injected_fault(request, "client_secrets")) is not None:
        return fault
    auth = Auth(request, allow_ephemeral=False)
    if auth.error is not None:
        return auth.error
    try:
        body = json.loads(await request.text())
    except ValueError:
        return error_response(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        )
    try:
        if not isinstance(body, dict):
            raise WireError("invalid_type", "Invalid type for request body: expected an object.")
        for key in body:
            if key not in ("expires_after", "session"):
                raise unknown_parameter(key)
        if body.get("session") is None:
            raise missing_parameter("session")
        expires = _EXPIRES_AFTER.check(body.get("expires_after") or {}, "expires_after")
        session = validate_session(body["session"], "session")
    except WireError as exc:
        return _wire_error(exc)
    value, expires_at, effective = server.mint_secret(session, int(expires.get("seconds", 600)))
    log.debug("minted an ephemeral key expiring at %d", expires_at)
    return web.json_response({"value": value, "expires_at": expires_at, "session": effective})


def transport_refused(request: web.Request, transport: str) -> web.Response | None:
    """The 404 of a server started without ``transport`` (``voicecoach serve --transport``), else None."""
    if request.app[SERVER_KEY].config.serves(transport):
        return None
    other = "websocket" if transport == "webrtc" else "webrtc"
    return error_response(
        404,
        f"This server does not serve the {transport} transport (voicecoach serve --transport {other}); "
        f"connect over {other}, or start the server with --transport both.",
        code="transport_not_served",
    )


async def create_call(request: web.Request) -> web.StreamResponse:
    server = request.app[SERVER_KEY]
    if (refused := transport_refused(request, "webrtc")) is not None:
        return refused
    if (fault := _injected_fault(request, "calls")) is not None:
        return fault
    auth = Auth(request, allow_ephemeral=True)
    if auth.error is not None:
        return auth.error
    requested: dict[str, Any] | None = None
    if request.content_type == "multipart/form-data":
        offer = ""
        reader = await request.multipart()
        async for part in reader:
            name = getattr(part, "name", None)
            text = await part.text() if isinstance(part, BodyPartReader) else ""
            if name == "sdp":
                offer = text
            elif name == "session":
                try:
                    requested = validate_session(json.loads(text), "session")
                except ValueError:
                    return error_response(400, "The 'session' part is not valid JSON.", param="session")
                except WireError as exc:
                    return _wire_error(exc)
    elif request.content_type in ("application/sdp", "text/plain"):
        offer = await request.text()
    else:
        return error_response(
            400,
            f"Unsupported content type '{request.content_type}': send the SDP offer as 'application/sdp', "
            "or as the 'sdp' part of 'multipart/form-data'.",
        )
    if not offer.strip():
        return error_response(400, "Missing required parameter: 'sdp'.", code="missing_required_parameter", param="sdp")
    if (delay := server.faults.answer_delay_seconds) > 0:
        server.faults.injected["answer_delay"] += 1
        await asyncio.sleep(delay)
        if request.transport is None or request.transport.is_closing():
            # The client gave up waiting: answering would open a call nobody will ever join.
            server.faults.injected["answer_abandoned"] += 1
            log.debug("the client left during an injected answer delay; no call opened")
            return error_response(408, "The client closed the request before the answer was ready.")
    try:
        call, answer = await server.open_call(offer, auth.session, requested)
    except OfferError as exc:
        return error_response(400, f"Invalid SDP offer: {exc}", code="invalid_offer", param="sdp")
    # The exact Location format is UNCONFIRMED (realtime-protocol.md §2.1, §13); clients take its last segment.
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call.id}"},
    )


async def hangup(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    if (refused := transport_refused(request, "webrtc")) is not None:
        return refused
    auth = Auth(request, allow_ephemeral=True)
    if auth.error is not None:
        return auth.error
    call_id = request.match_info["call_id"]
    if not await server.hang_up(call_id):
        return error_response(404, f"Call '{call_id}' not found.", code="call_not_found", param="call_id")
    return web.json_response({})

"""Fault injection for the local Realtime server: break calls and HTTP answers on purpose.

The product's reconnect, rollover and hostile-input handling can only be trusted if they are exercised against
a server that misbehaves the way real networks and servers do. Two kinds of fault:

* **HTTP faults**, set up ahead (``ServerConfig(faults=FaultConfig(...))``) or changed at run time on
  ``server.faults`` (a :class:`Faults`): answer an error status to ``client_secrets`` and/or ``calls`` from the
  Nth request on (``HttpFault``), or hold every SDP answer back for a while (``answer_delay_seconds``)::

      server.faults.fail("client_secrets", from_request=2)       # "401 on reconnect"
      server.faults.answer_delay_seconds = 3.0                   # "slow SDP answer"

* **Call faults**, done now to one live :class:`~voicecoach.server.call.Call` (``server.calls[i]``) through the
  same object: :meth:`Faults.kill_peer` (the server closes the peer connection, or the network goes silent),
  :meth:`Faults.drop_channel` (only the ``oai-events`` data channel closes), :meth:`Faults.send_raw` (any text
  or bytes, as-is: hostile input) and :meth:`Faults.expire_session` (``session_expired`` now, then the call
  closes, as at the real 60-minute limit)::

      await server.faults.kill_peer(server.calls[0])
      server.faults.send_raw(server.calls[0], "{not json")

* **WebSocket faults**, done now to one live :class:`~voicecoach.server.websocket.WebSocketCall` (also in
  ``server.calls``): :meth:`Faults.drop` (the TCP connection ends with no close frame: the client sees 1006),
  :meth:`Faults.freeze` / :meth:`Faults.thaw` (the connection sends nothing, not even pong replies, and reads
  nothing, until thawed: a dead link the client can only find by its own pings). The call faults above work on
  a WebSocket call too: ``kill_peer(call, "close")`` is :meth:`drop`, ``kill_peer(call, "blackhole")`` is
  :meth:`freeze`, ``drop_channel`` is :meth:`drop`; ``send_raw`` sends a text (str) or binary (bytes) frame.
  HTTP faults on the ``realtime`` endpoint answer the WebSocket upgrade (see ws_endpoint.py).

Every fault is logged at DEBUG and counted in :attr:`Faults.injected`, so a test can tell what it did.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .outputs import CloseCall, Output
from .schema import WireError
from .websocket import WebSocketCall

if TYPE_CHECKING:
    from .call import Call
    from .session import RealtimeSession

    AnyCall = Call | WebSocketCall

log = logging.getLogger(__name__)

Endpoint = Literal["client_secrets", "calls", "realtime"]
KillMode = Literal["close", "blackhole"]

# Bodies in the style the real API answers these statuses with (realtime-protocol.md §8).
_HTTP_ERRORS: dict[int, tuple[str, str | None]] = {
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    ),
    403: ("You do not have access to this resource.", None),
    429: ("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota"),
    500: ("The server had an error while processing your request. Sorry about that!", None),
    503: ("The engine is currently overloaded, please try again later.", None),
}
# The SDP offer is sent with the ephemeral key, so a 401 there is about that key.
_CALLS_401 = ("Invalid or expired ephemeral key.", "invalid_api_key")


class HttpFault(BaseModel):
    """Answer ``status`` to requests to ``endpoint``: the ``from_request``-th (1-based, counted since the server
    started) and, for ``times`` requests (``None``: every one from then on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint
    status: int = Field(default=401, ge=400, le=599)
    from_request: int = Field(default=1, ge=1)
    times: int | None = Field(default=None, ge=1)

    def applies(self, number: int) -> bool:
        """Whether the ``number``-th request to the endpoint gets this fault."""
        if number < self.from_request:
            return False
        return self.times is None or number < self.from_request + self.times


class FaultConfig(BaseModel):
    """The faults a server starts with (``ServerConfig.faults``). None by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http: list[HttpFault] = []
    answer_delay_seconds: float = Field(default=0.0, ge=0)


class Faults:
    """A server's live fault state: the HTTP rules in force, request counts, and what was injected.

    Mutable at run time from the event loop (tests change it between steps); the HTTP handlers consult it.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        config = config or FaultConfig()
        self.http: list[HttpFault] = list(config.http)
        self.answer_delay_seconds = config.answer_delay_seconds
        self.requests: Counter[str] = Counter()  # requests seen per endpoint, faulted or not
        self.injected: Counter[str] = Counter()  # faults done, by kind ("http 401 calls", "kill_peer close", ...)

    def fail(self, endpoint: Endpoint, *, status: int = 401, from_request: int = 1, times: int | None = None) -> None:
        """Add an HTTP fault (see :class:`HttpFault`)."""
        self.http.append(HttpFault(endpoint=endpoint, status=status, from_request=from_request, times=times))

    def check(self, endpoint: Endpoint) -> tuple[int, str, str | None] | None:
        """Count one request to ``endpoint``; ``(status, message, code)`` when a fault answers it, else None.

        Called once per request, before the request is looked at (a refused key is refused whatever it is).
        """
        self.requests[endpoint] += 1
        number = self.requests[endpoint]
        for fault in self.http:
            if fault.endpoint == endpoint and fault.applies(number):
                message, code = _HTTP_ERRORS.get(fault.status, (f"Injected fault: HTTP {fault.status}.", None))
                if (endpoint, fault.status) == ("calls", 401):
                    message, code = _CALLS_401
                self._note(f"http {fault.status} {endpoint}", f"request #{number}")
                return fault.status, message, code
        return None

    # --- call faults: done now to one live call ---------------------------------------------------------------

    async def kill_peer(self, call: AnyCall, mode: KillMode = "close") -> None:
        """Kill the call's peer connection.

        ``"close"``: the server closes it at once (the client sees DTLS/SCTP shut down within milliseconds, as
        when the server's side of a call crashes). ``"blackhole"``: the network dies: the server's ICE sockets
        close, so nothing more is sent or answered and the client is told nothing; it can only notice by itself
        (ICE consent freshness: about 30 s with aioice's defaults). The server's own call ends either way.
        """
        self._note(f"kill_peer {mode}", call.id)
        if isinstance(call, WebSocketCall):
            if mode == "blackhole":
                call.freeze()
            else:
                call.drop()
            return
        if mode == "close":
            await call.close("killed by a fault")
            return
        for connection in _ice_connections(call):
            # aioice keeps its sockets in private protocol objects; cutting the network means closing them.
            for protocol in list(getattr(connection, "_protocols", [])):
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.close()

    def drop_channel(self, call: AnyCall) -> bool:
        """Close only the ``oai-events`` data channel (the peer connection stays up). False if it was not open.

        On a WebSocket there is only the socket: it is dropped (see :meth:`drop`)."""
        self._note("drop_channel", call.id)
        return call.drop() if isinstance(call, WebSocketCall) else call.close_channel()

    def drop(self, call: WebSocketCall) -> bool:
        """End a WebSocket's TCP connection now, with no close frame. False if it was already closed."""
        self._note("drop", call.id)
        return call.drop()

    def freeze(self, call: WebSocketCall) -> None:
        """A WebSocket stops sending anything (events and pong replies) and reading, until :meth:`thaw`."""
        self._note("freeze", call.id)
        call.freeze()

    def thaw(self, call: WebSocketCall) -> None:
        """A frozen WebSocket carries on (what it held back goes out; overdue timers fire at once)."""
        self._note("thaw", call.id)
        call.thaw()

    def send_raw(self, call: AnyCall, message: str | bytes) -> bool:
        """Send ``message`` on the events channel exactly as given (hostile input: not JSON-checked, not kept in
        ``events_sent``). False if the channel is not open or the message is over the peer's size limit."""
        self.injected["send_raw"] += 1  # no log line: a flood sends thousands
        return call.send_raw(message)

    def expire_session(self, call: AnyCall) -> None:
        """``error`` ``session_expired`` now, then the call closes, as the real API does at its maximum duration.

        Runs in the call's pump, so it is ordered with everything else the call sends.
        """
        self._note("expire_session", call.id)
        call.run_in_pump(_expire)

    def _note(self, kind: str, detail: str) -> None:
        self.injected[kind] += 1
        log.debug("fault injected: %s (%s)", kind, detail)


def _expire(session: RealtimeSession, now: float) -> list[Output]:
    # The same two outputs the core produces at its own deadline, built from its public parts.
    if session.closed:
        return []
    session.closed = True
    minutes = f"{session.options.session_max_seconds / 60:g}"
    error = WireError("session_expired", f"Your session hit the maximum duration of {minutes} minutes.")
    return [session.event("error", error=error.to_error(None)), CloseCall("session_expired")]


def _ice_connections(call: Call) -> list[Any]:
    """The aioice connections under a call's peer connection (one with BUNDLE, as aiortc does)."""
    pc = call.peer_connection
    found: list[Any] = []
    transports = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        ice = getattr(dtls, "transport", None)
        # aiortc keeps the aioice Connection private; a fault injector has to reach it to cut the network.
        connection = getattr(ice, "_connection", None)
        if connection is not None and all(connection is not c for c in found):
            found.append(connection)
    return found

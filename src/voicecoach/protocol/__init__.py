"""The Realtime wire protocol: typed client events we send and server events we consume.

Pure: no I/O. See realtime-protocol.md for the facts behind every model.
"""

from .client_events import ClientEvent, SessionConfig, WireModel
from .server_events import MalformedEvent, ServerEvent, UnknownEvent, parse_server_event

__all__ = [
    "ClientEvent",
    "MalformedEvent",
    "ServerEvent",
    "SessionConfig",
    "UnknownEvent",
    "WireModel",
    "parse_server_event",
]

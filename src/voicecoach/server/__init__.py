"""A local server that speaks the OpenAI Realtime API (GA) over WebRTC and WebSocket: the product's offline twin.

``voicecoach serve`` and ``voicecoach demo`` run it, and every client test runs against it. It follows
realtime-protocol.md: the same endpoints, event names and shapes, ordering and errors. It cannot understand
speech, so what it "hears" and "says" comes from a scenario (:mod:`.scenario`).

Layers: a sans-I/O core (:mod:`.session`, :mod:`.handlers`, :mod:`.responses`, :mod:`.conversation`,
:mod:`.input_audio`, :mod:`.vad`, :mod:`.usage`, :mod:`.validation`, :mod:`.catalog`, :mod:`.defaults`) driven by one
pump per call (:mod:`.pump`): a WebRTC call (:mod:`.call`, :mod:`.audio_track`, :mod:`.fitting`) or a WebSocket
(:mod:`.websocket`, :mod:`.ws_endpoint`), behind an aiohttp app (:mod:`.app`) owned by :class:`RealtimeServer`.
"""

from __future__ import annotations

from .call import Call
from .config import ServerConfig, load_keys_file, serve_config
from .realtime_server import RealtimeServer, run_serve, serve
from .scenario import Scenario, default_scenario, load_scenario
from .session import RealtimeSession, SessionOptions
from .voice import render_speech, speech_pcm, synth_speech
from .websocket import WebSocketCall

__all__ = [
    "Call",
    "RealtimeServer",
    "RealtimeSession",
    "Scenario",
    "ServerConfig",
    "SessionOptions",
    "WebSocketCall",
    "default_scenario",
    "load_keys_file",
    "load_scenario",
    "render_speech",
    "run_serve",
    "serve",
    "serve_config",
    "speech_pcm",
    "synth_speech",
]

"""The other side's transcription session sends only what the real API accepts, checked against the ``openai``
types with the same checker as every other client event (:mod:`test_conformance_client`).

What goes on the wire is checked, not only the model: the WebSocket transport rewrites ``session.update``
(formats), and a transcription session must get no ``audio.output`` from it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from test_conformance_client import check, unknown_keys
from voicecoach.config import Settings
from voicecoach.protocol import client_events as ce
from voicecoach.session_config import build_transcription_session
from voicecoach.transport.websocket_wire import transcription_url, with_pcm_formats

pytest.importorskip("openai.types.realtime")

SETTINGS = [
    Settings(),
    Settings(them_transcription_model="gpt-4o-transcribe", transcription_language="de", noise_reduction="off"),
    Settings(noise_reduction="far_field", vad_threshold=0.8, vad_silence_ms=200),
]


def wire_update(settings: Settings) -> dict[str, Any]:
    """The ``session.update`` as the WebSocket transport puts it on the wire."""
    return with_pcm_formats(ce.SessionUpdate(session=build_transcription_session(settings)).to_wire())


@pytest.mark.parametrize("settings", SETTINGS, ids=["defaults", "4o-de-no-nr", "far-field"])
def test_transcription_session_update_is_accepted_by_the_sdk_types(settings: Settings) -> None:
    event = wire_update(settings)
    check(event)
    session = event["session"]
    assert session["type"] == "transcription"
    assert set(session) == {"type", "audio"}  # no model, voice, instructions or output modalities
    assert set(session["audio"]) == {"input"}  # it never speaks: an audio.output would be an unknown parameter
    audio_in = session["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["transcription"]["model"] == settings.them_transcription_model
    assert audio_in["turn_detection"]["type"] == "server_vad"
    assert "create_response" not in audio_in["turn_detection"]  # nothing to create in a transcription session


def test_the_append_it_sends_is_accepted_by_the_sdk_types() -> None:
    audio = base64.b64encode(b"\x00\x01" * 480).decode("ascii")
    # The transport writes appends by hand (no model, for speed): the same text it sends is checked here.
    check(json.loads(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}'))


def test_transcription_client_secret_request_matches_the_sdk_params() -> None:
    from openai.types.realtime import ClientSecretCreateParams

    request = ce.ClientSecretRequest(
        expires_after=ce.ExpiresAfter(seconds=600), session=build_transcription_session(Settings())
    ).to_wire()
    assert list(unknown_keys(request, ClientSecretCreateParams)) == []
    assert request["session"]["type"] == "transcription" and "model" not in request["session"]


def test_transcription_url_has_the_intent_and_no_model() -> None:
    assert transcription_url("https://api.openai.com/v1") == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert transcription_url("http://127.0.0.1:8765/v1/") == "ws://127.0.0.1:8765/v1/realtime?intent=transcription"

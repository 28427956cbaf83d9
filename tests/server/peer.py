"""A minimal WebRTC client for testing the local server (deliberately not the product's client).

It does what any Realtime WebRTC client does (realtime-protocol.md §6.1): one sendrecv audio transceiver
with a microphone track, the ``oai-events`` data channel created before the offer, the offer POSTed to
``/realtime/calls``. Its microphone plays queued PCM in real time (silence otherwise); everything received
(events and audio) is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from voicecoach.audio.frames import Pcm, downmix, pcm_from_frame, silence
from voicecoach.server.audio_track import ResponseAudioTrack
from voicecoach.transport.ice import pin_host_addresses


class TestPeer:
    __test__ = False  # not a test class, despite the name

    def __init__(self, at_open: list[dict[str, Any]] | None = None) -> None:
        """``at_open``: events to send the moment the channel opens (as clients may, before session.created)."""
        pin_host_addresses(["127.0.0.1"])
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = ResponseAudioTrack()
        self.events: list[dict[str, Any]] = []
        self.heard: list[Pcm] = []
        self.call_id: str | None = None
        self._arrived = asyncio.Event()
        self._open = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.channel = self.pc.createDataChannel("oai-events")
        self.pc.addTransceiver(self.mic, direction="sendrecv")

        @self.channel.on("open")
        def on_open() -> None:
            for event in at_open or []:
                self.send(event)
            self._open.set()

        @self.channel.on("message")
        def on_message(message: str | bytes) -> None:
            self.events.append(json.loads(message))
            self._arrived.set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._reader = asyncio.create_task(self._read(track))

    async def connect(self, base_url: str, key: str, *, seconds: float = 10.0) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
        async with asyncio.timeout(seconds):
            async with aiohttp.ClientSession() as http:
                url = f"{base_url}/realtime/calls"
                async with http.post(url, data=self.pc.localDescription.sdp, headers=headers) as resp:
                    body = await resp.text()
                    assert resp.status == 201, body
                    self.call_id = resp.headers["Location"].rsplit("/", 1)[-1]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
            await self._open.wait()

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    def say(self, pcm: Pcm) -> None:
        self.mic.enqueue("mic", pcm)

    async def wait_for(self, kind: str, *, after: int = 0, seconds: float = 10.0) -> dict[str, Any]:
        """The first event of ``kind`` at index >= ``after``, waiting up to ``seconds``."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[after:] if e["type"] == kind), None)

        async with asyncio.timeout(seconds):
            while (event := found()) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return event

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events[after:]]

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    self.heard.append(downmix(pcm_from_frame(frame)))

    @property
    def received_audio(self) -> Pcm:
        return np.concatenate(self.heard) if self.heard else silence(0)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.mic.stop()
        await self.pc.close()

"""Hint cost against meeting length: input tokens of a quick hint after 5, 50 and 500 earlier messages.

Pure, no network: the client's coach builds each hint request, and the local server's sans-I/O core
(:class:`voicecoach.server.RealtimeSession`) answers it, computing ``usage`` by the OpenAI rule it implements
(text 1 token per 4 characters, user audio 10 tokens per second, context = the response's ``input`` for an
out-of-band response). The server's conversation holds every utterance as a user audio item (4 s each, with
its transcript), as after server VAD; the coach's transcript holds the same messages.

Both window modes are measured (``text``: the window as one text message, the default; ``references``: user
turns by item reference, so the model hears their audio), and for contrast an in-band response, whose input
is the whole conversation: the cost that bounded windows avoid.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from benchlib.common import bench_settings
from voicecoach.audio.frames import WIRE_RATE, silence
from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.usage import cost_usd, prices_for
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.server import RealtimeSession, Scenario, synth_speech
from voicecoach.server.codec import encode_pcm24
from voicecoach.server.defaults import default_session
from voicecoach.server.outputs import Output, SendEvent, Synthesize
from voicecoach.session_config import build_session

LINES = (
    "Thanks for joining, everyone. Let's look at the plan for the next quarter.",
    "The first milestone is the new onboarding flow for small teams.",
    "We also need to settle the pricing change before the summer starts.",
    "Marketing wants the launch date fixed by the end of the month.",
    "Support tickets went down by a fifth after the last release.",
)  # five lines: 5, 50 and 500 are multiples, so every window holds the same text and any drift is real
HINT = "Start with the numbers from last quarter."
UTTERANCE_S = 4.0
SIZES = (5, 50, 500)
WindowMode = Literal["text", "references"]
MODES: tuple[WindowMode, ...] = ("text", "references")


def _events(outputs: list[Output]) -> list[dict[str, Any]]:
    return [o.event for o in outputs if isinstance(o, SendEvent)]


def _respond(server: RealtimeSession, wire: dict[str, Any], now: float) -> dict[str, Any]:
    """Send one response.create; drive the server until response.done; return that event's response."""
    outputs = server.receive_text(json.dumps(wire), now)
    for output in outputs:
        if isinstance(output, Synthesize):
            outputs += server.speech_ready(output.response_id, synth_speech(output.text), now)
    for step in range(1, 200):  # generation is paced; jump ahead until it is done
        done = [e for e in _events(outputs) if e["type"] == "response.done"]
        if done:
            response: dict[str, Any] = done[0]["response"]
            return response
        outputs = server.tick(now + step)
    errors = [e for e in _events(outputs) if e["type"] == "error"]
    raise RuntimeError(f"no response.done (errors: {errors})")


class _Meeting:
    """A coach and a server core that have heard the same utterances."""

    def __init__(self) -> None:
        self.settings = bench_settings("http://127.0.0.1:9/v1")
        self.coach = Coach(self.settings.coach, model=self.settings.model)
        self.server = RealtimeSession(
            default_session("sess_bench"), now=0.0, unix_time=time.time(), scenario=Scenario(responses=[HINT])
        )
        self.server.start(0.0)
        self.now = 0.0
        self.heard = 0
        self.coach.connect(self.now)
        self._feed({"type": "session.update", "session": build_session(self.settings).to_wire()})
        self._audio = encode_pcm24(silence(int(UTTERANCE_S * WIRE_RATE)))

    def _feed(self, client_event: dict[str, Any]) -> list[dict[str, Any]]:
        events = _events(self.server.receive_text(json.dumps(client_event), self.now))
        for event in events:
            self.coach.handle(parse_server_dict(event), self.now)
        return events

    def hear(self, until: int) -> None:
        """Utterances until ``until`` have been heard: server user items (audio), and their transcripts."""
        while self.heard < until:
            self.now += UTTERANCE_S + 1.0
            text = LINES[self.heard % len(LINES)]
            content = [{"type": "input_audio", "audio": self._audio, "transcript": text}]
            for event in self._feed(
                {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content}}
            ):
                if event["type"] == "conversation.item.added":
                    done = {"type": "conversation.item.input_audio_transcription.completed", "content_index": 0}
                    self.coach.handle(
                        parse_server_dict({**done, "item_id": event["item"]["id"], "transcript": text}), self.now
                    )
            self.heard += 1

    def quick_hint(self, mode: WindowMode) -> dict[str, Any]:
        self.coach.reconfigure(self.settings.coach.model_copy(update={"window_mode": mode}))
        actions = self.coach.command(Intent.QUICK_HINT, self.now)
        [request] = [a.event for a in actions if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)]
        response = _respond(self.server, request.to_wire(), self.now)
        for kind in ("response.created", "response.done"):  # the coach learns the hint's id, then its end
            self.coach.handle(parse_server_dict({"type": kind, "response": response}), self.now)
        self.coach.command(Intent.INTERRUPT, self.now)  # the hint is over: the next one starts idle
        self.now += 10
        return response

    def whole_conversation(self) -> dict[str, Any]:
        """An in-band response (input: the whole conversation); its answer is deleted so as not to count later."""
        response = _respond(self.server, {"type": "response.create"}, self.now)
        for item in response["output"]:
            self._feed({"type": "conversation.item.delete", "item_id": item["id"]})
        self.now += 10
        return response


def run() -> dict[str, Any]:
    meeting = _Meeting()
    prices = prices_for(meeting.settings.model)
    out: dict[str, Any] = {mode: {} for mode in MODES}
    out["whole_conversation"] = {}
    for n in SIZES:
        meeting.hear(n)
        for mode in MODES:
            usage = meeting.quick_hint(mode)["usage"]
            details = usage["input_token_details"]
            out[mode][str(n)] = {
                "input_tokens": usage["input_tokens"],
                "text_tokens": details["text_tokens"],
                "audio_tokens": details["audio_tokens"],
                "input_usd": round(cost_usd(_input_only(usage), prices), 6),
            }
        usage = meeting.whole_conversation()["usage"]
        out["whole_conversation"][str(n)] = {
            "input_tokens": usage["input_tokens"],
            "input_usd": round(cost_usd(_input_only(usage), prices), 6),
        }
    for mode in MODES:  # 1.0 = flat: the hint costs the same however long the meeting has run
        tokens = [out[mode][str(n)]["input_tokens"] for n in SIZES]
        out[f"{mode}_growth_ratio"] = round(max(tokens) / min(tokens), 3)
    return out


def _input_only(usage: dict[str, Any]) -> dict[str, Any]:
    """The usage with its output zeroed: the price of the context alone (output does not depend on it)."""
    return {**usage, "output_tokens": 0, "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}

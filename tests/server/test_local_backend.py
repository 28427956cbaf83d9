"""The live seam in the sans-I/O core: what a backend that hears and speaks for real is asked, and what the core
makes of its answers (transcripts, sentences, the end of a reply), next to the scripted path it must match.

No models here: the "backend" is this test, answering the core's Transcribe and Generate outputs by hand with the
synthetic voice (tests/server/test_local_backend_real.py runs the real one).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from tests.conformance import server_event_adapter
from tests.server.helpers import SCENARIO, Harness, collapse
from tests.server.test_server_responses import AUDIO_ORDER

from voicecoach.audio.frames import Pcm
from voicecoach.server.backend import LiveLines, ReplyUsage
from voicecoach.server.codec import encode_output
from voicecoach.server.outputs import Generate, Output, StopGenerating, Transcribe
from voicecoach.server.session import SessionOptions
from voicecoach.server.vad import EnergyVad, TurnDetector, VadSettings
from voicecoach.server.voice import synth_speech

MANUAL = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
TRANSCRIBED = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"}}},
    },
}
SENTENCES = ("Start with the numbers.", "Revenue grew twelve percent.")


class LiveHarness(Harness):
    """The session on live lines; the backend's work it is asked for is kept for the test to answer."""

    def __init__(self, options: SessionOptions | None = None) -> None:
        self.detectors: list[VadSettings] = []
        self.asked: list[Output] = []
        super().__init__(options=options, scenario=LiveLines(self._detector))  # type: ignore[arg-type]

    def _detector(self, settings: VadSettings) -> TurnDetector:
        self.detectors.append(settings)
        return EnergyVad(settings)

    def apply(self, outputs: list[Output]) -> None:
        self.asked += [o for o in outputs if isinstance(o, Transcribe | Generate | StopGenerating)]
        super().apply(outputs)

    def generate(self) -> Generate:
        jobs = [o for o in self.asked if isinstance(o, Generate)]
        assert jobs, f"no Generate asked: {self.asked}"
        return jobs[-1]

    def stops(self) -> list[str]:
        return [o.response_id for o in self.asked if isinstance(o, StopGenerating)]

    def speak(self, response_id: str, *sentences: str) -> None:
        for text in sentences:
            self.apply(self.session.reply_sentence(response_id, text, synth_speech(text), self.now))

    def end(self, response_id: str, usage: ReplyUsage | None = None, error: str | None = None) -> None:
        self.apply(self.session.reply_end(response_id, usage, error, self.now))


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def hint(max_output_tokens: int | str = "inf", modality: str = "audio") -> dict[str, Any]:
    return {
        "type": "response.create",
        "response": {
            "conversation": "none",
            "instructions": "One short hint.",
            "input": [user_text("How do we scale the support team?")],
            "max_output_tokens": max_output_tokens,
            "output_modalities": [modality],
            "metadata": {"voicecoach_hint": "1"},
        },
    }


def live() -> LiveHarness:
    h = LiveHarness()
    h.send(MANUAL)
    return h


def test_a_live_reply_has_the_scripted_event_order_in_band() -> None:
    scripted = Harness()
    scripted.send(MANUAL)
    start = len(scripted.events)
    scripted.send({"type": "response.create"})
    scripted.wait_for("output_audio_buffer.stopped")

    h = live()
    start_live = len(h.events)
    h.send({"type": "response.create"})
    job = h.generate()
    h.step()
    assert h.types(start_live) == ["response.created"]  # nothing else until the backend has a sentence
    h.speak(job.response_id, SENTENCES[0])
    h.quiet(0.1)  # the first sentence plays while the model writes the next one
    h.speak(job.response_id, SENTENCES[1])
    h.end(job.response_id, ReplyUsage(input_tokens=30, output_tokens=12))
    h.wait_for("output_audio_buffer.stopped")
    assert collapse(h.types(start_live)) == collapse(scripted.types(start)) == AUDIO_ORDER
    deltas = h.of("response.output_audio_transcript.delta")
    assert "".join(d["delta"] for d in deltas) == " ".join(SENTENCES)  # one space between sentences
    assert all(d["obfuscation"] for d in deltas)
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == " ".join(SENTENCES)


def test_out_of_band_hint_maps_instructions_input_and_budget_and_leaves_the_conversation() -> None:
    h = live()
    h.send(hint(max_output_tokens=150))
    request = h.generate().request
    assert request.instructions == "One short hint."
    assert request.items == [user_text("How do we scale the support team?")]
    assert request.max_output_tokens == 150 and request.modality == "audio"
    h.speak(h.generate().response_id, SENTENCES[0])
    h.end(h.generate().response_id)
    h.wait_for("output_audio_buffer.stopped")
    assert "conversation.item.added" not in h.types()
    assert h.of("response.created")[0]["response"]["metadata"] == {"voicecoach_hint": "1"}
    assert len(h.session.conversation) == 0


def test_item_references_reach_the_model_as_the_items_they_name() -> None:
    h = live()
    h.send({"type": "conversation.item.create", "item": {"id": "item_ctx", **user_text("The budget is tight.")}})
    create = hint()
    create["response"]["input"] = [{"type": "item_reference", "id": "item_ctx"}, user_text("Any advice?")]
    h.send(create)
    items = h.generate().request.items
    assert items[0]["id"] == "item_ctx" and items[0]["content"] == [
        {"type": "input_text", "text": "The budget is tight."}
    ]
    assert items[1] == user_text("Any advice?")
    h.send({"type": "response.create", "response": {"output_modalities": ["text"]}})  # in band: the conversation
    assert [i["id"] for i in h.generate().request.items] == ["item_ctx"]


def test_usage_counts_the_models_tokens_and_the_voices_seconds() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, *SENTENCES)
    h.end(rid, ReplyUsage(input_tokens=57, output_tokens=11))
    usage = h.of("response.done")[0]["response"]["usage"]
    seconds = sum(synth_speech(s).size for s in SENTENCES) / 48_000
    assert usage["input_tokens"] == usage["input_token_details"]["text_tokens"] == 57
    assert usage["input_token_details"]["audio_tokens"] == 0
    assert usage["output_token_details"] == {"text_tokens": 11, "audio_tokens": round(seconds * 20)}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert h.of("rate_limits.updated")  # and the budget is spent as on the scripted path


def test_max_output_tokens_cuts_text_and_audio_at_the_same_word_and_stops_the_model() -> None:
    h = live()
    h.send(hint(max_output_tokens=40))  # ~1.6 s of speech with its text
    rid = h.generate().response_id
    h.speak(rid, "One two three four five six seven eight nine ten.")
    assert h.stops() == [rid]
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "incomplete" and done["status_details"] == {
        "type": "incomplete",
        "reason": "max_output_tokens",
    }
    usage = done["usage"]
    assert 0 < usage["output_tokens"] <= 40
    said = "".join(d["delta"] for d in h.of("response.output_audio_transcript.delta"))
    assert said and said != "One two three four five six seven eight nine ten."
    h.speak(rid, "Another sentence.")  # the model's late words are dropped
    assert "".join(d["delta"] for d in h.of("response.output_audio_transcript.delta")) == said


def test_cancel_stops_the_model_and_later_sentences_are_dropped() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, SENTENCES[0])
    start = len(h.events)
    h.send({"type": "response.cancel", "response_id": rid})
    assert h.stops() == [rid]
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    h.speak(rid, SENTENCES[1])
    h.end(rid)
    assert "response.output_audio_transcript.delta" not in h.types(start)
    assert len(h.of("response.done")) == 1


def test_cancel_before_the_first_sentence_costs_nothing() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.send({"type": "response.cancel", "response_id": rid})
    assert h.stops() == [rid]
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "cancelled" and done["usage"]["total_tokens"] == 0
    assert "response.output_item.added" not in h.types()


def test_output_buffer_clear_mid_generation_silences_the_sentences_still_to_come() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, SENTENCES[0])
    h.step()
    h.step()
    h.send({"type": "output_audio_buffer.clear"})
    assert h.of("output_audio_buffer.cleared")[0]["response_id"] == rid
    h.send({"type": "response.cancel", "response_id": rid})
    h.speak(rid, SENTENCES[1])  # arrived before the backend saw the stop
    h.quiet(0.1)
    assert all(not frame.any() for frame in h.heard[-4:])  # silent from the frame after the clear on
    assert not h.queue


def test_a_failed_reply_ends_the_response_failed_with_the_backends_line() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.end(rid, error="the local LLM endpoint http://127.0.0.1:9/v1 failed mid-stream: boom")
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "failed" and done["usage"]["total_tokens"] == 0
    assert done["status_details"]["error"]["message"].endswith("boom")

    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, SENTENCES[0])
    h.end(rid, error="stream broke")
    done = h.of("response.done")[-1]["response"]
    assert done["status"] == "failed" and done["output"][0]["status"] == "incomplete"
    assert h.types()[-2:] == ["response.done", "rate_limits.updated"]


def test_a_text_reply_streams_the_models_deltas() -> None:
    h = live()
    h.send(hint(modality="text"))
    rid = h.generate().response_id
    for delta in ("Ask ", "about ", "support."):
        h.apply(h.session.reply_text(rid, delta, h.now))
    h.end(rid)
    assert [d["delta"] for d in h.of("response.output_text.delta")] == ["Ask ", "about ", "support."]
    assert h.of("response.output_text.done")[0]["text"] == "Ask about support."
    assert not h.queue


def test_an_empty_reply_completes_with_an_empty_transcript() -> None:
    h = live()
    h.send(hint())
    rid = h.generate().response_id
    h.end(rid)
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == ""


def test_websocket_sends_each_sentences_voice_as_audio_deltas() -> None:
    h = LiveHarness(options=SessionOptions(transport="websocket"))
    h.send(MANUAL)
    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, *SENTENCES)
    h.end(rid)
    sent = b"".join(base64.b64decode(e["delta"]) for e in h.of("response.output_audio.delta"))
    fmt = {"type": "audio/pcm", "rate": 24000}
    assert len(sent) == sum(len(encode_output(synth_speech(s), fmt)[0]) for s in SENTENCES)
    assert not h.queue and "output_audio_buffer.started" not in h.types()


def speech_turn(text: str) -> Pcm:
    pcm = synth_speech(text)
    return np.concatenate([pcm, np.zeros(48_000, dtype=np.int16)])


def test_a_committed_turn_is_handed_to_the_backend_and_its_transcript_has_the_scripted_shapes() -> None:
    scripted = Harness(scenario=SCENARIO)
    scripted.send(TRANSCRIBED)
    scripted.feed(speech_turn(SCENARIO.utterances[0]))
    scripted.wait_for("conversation.item.input_audio_transcription.completed")

    h = LiveHarness()
    h.send(TRANSCRIBED)
    h.feed(speech_turn(SCENARIO.utterances[0]))
    jobs = [o for o in h.asked if isinstance(o, Transcribe)]
    assert len(jobs) == 1
    job = jobs[0]
    committed = h.of("input_audio_buffer.committed")[0]
    assert job.item_id == committed["item_id"] and job.language == "en" and job.prompt is None
    stopped, started = h.of("input_audio_buffer.speech_stopped")[0], h.of("input_audio_buffer.speech_started")[0]
    assert job.pcm.size == (stopped["audio_end_ms"] - started["audio_start_ms"]) * 48  # the whole turn, padding too
    assert "conversation.item.input_audio_transcription.delta" not in h.types()  # nothing invented meanwhile
    h.apply(h.session.transcription_result(job.item_id, SCENARIO.utterances[0], h.now))

    def shapes(harness: Harness) -> list[Any]:
        kinds = (
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
        )
        return [(e["type"], sorted(e)) for e in harness.events if e["type"] in kinds]

    assert shapes(h) == shapes(scripted)
    live_done = h.of("conversation.item.input_audio_transcription.completed")[0]
    scripted_done = scripted.of("conversation.item.input_audio_transcription.completed")[0]
    assert live_done["transcript"] == scripted_done["transcript"] and live_done["usage"] == scripted_done["usage"]
    item = h.session.conversation.get(job.item_id)
    assert item is not None and item.content[0]["transcript"] == SCENARIO.utterances[0]
    h.apply(h.session.transcription_result(job.item_id, "again", h.now))  # one answer per turn
    assert len(h.of("conversation.item.input_audio_transcription.completed")) == 1


def test_a_transcription_failure_is_the_protocols_failed_event() -> None:
    h = LiveHarness()
    h.send(TRANSCRIBED)
    h.feed(speech_turn("Hello there, everyone"))
    job = next(o for o in h.asked if isinstance(o, Transcribe))
    h.apply(h.session.transcription_failed(job.item_id, "speech model crashed", h.now))
    failed = h.of("conversation.item.input_audio_transcription.failed")[0]
    assert failed["item_id"] == job.item_id and failed["error"]["message"] == "speech model crashed"
    json.dumps(failed)


def test_no_transcription_configured_means_no_work_for_the_backend() -> None:
    h = LiveHarness()
    h.feed(speech_turn("Hello there, everyone"))
    assert h.of("input_audio_buffer.committed")
    assert not [o for o in h.asked if isinstance(o, Transcribe)]


@pytest.mark.parametrize(
    ("turn_detection", "expected"),
    [
        (
            {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 150, "silence_duration_ms": 800},
            (0.7, 150, 800),
        ),
        ({"type": "semantic_vad", "eagerness": "high"}, (0.5, 300, 300)),
    ],
)
def test_the_sessions_turn_detection_settings_reach_the_backends_detector(
    turn_detection: dict[str, Any], expected: tuple[float, int, int]
) -> None:
    h = LiveHarness()
    h.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": turn_detection}}},
        }
    )
    latest = h.detectors[-1]
    assert (latest.threshold, latest.prefix_padding_ms, latest.silence_duration_ms) == expected


def test_every_event_of_the_live_paths_conforms_to_the_sdks_types() -> None:
    h = LiveHarness()
    h.send(TRANSCRIBED)
    h.feed(speech_turn("Hello there, everyone"))
    job = next(o for o in h.asked if isinstance(o, Transcribe))
    h.apply(h.session.transcription_result(job.item_id, "Hello there, everyone.", h.now))
    h.send(hint())
    rid = h.generate().response_id
    h.speak(rid, *SENTENCES)
    h.end(rid, ReplyUsage(10, 5))
    h.wait_for("output_audio_buffer.stopped")
    h.send(hint(max_output_tokens=30))
    h.speak(h.generate().response_id, "One two three four five six seven eight nine ten.")
    h.send(hint())
    h.end(h.generate().response_id, error="the endpoint went away")
    h.feed(speech_turn("Another turn"))
    job = [o for o in h.asked if isinstance(o, Transcribe)][-1]
    h.apply(h.session.transcription_failed(job.item_id, "no model", h.now))
    adapter = server_event_adapter()
    for event in h.events:
        adapter.validate_python(event, strict=True)
    kinds = set(h.types())
    assert {"response.done", "conversation.item.input_audio_transcription.failed"} <= kinds
    # The in-band response the first turn created (create_response) is cancelled by the second turn's speech.
    statuses = {r["response"]["status"] for r in h.of("response.done")}
    assert statuses == {"completed", "incomplete", "failed", "cancelled"}

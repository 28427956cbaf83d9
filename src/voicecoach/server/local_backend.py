"""The local backend: real ears, a real mind and a real voice, all on this machine (issue 17).

* **Hears**: Silero VAD per session, honouring the session's ``server_vad`` threshold, prefix padding and silence
  (:class:`voicecoach.local.vad.SileroVad`); faster-whisper for each committed turn
  (:class:`voicecoach.local.stt.Transcriber`), in a worker thread, one turn at a time in commit order.
* **Says**: an OpenAI-compatible Chat Completions endpoint on loopback (:class:`voicecoach.local.llm.ChatClient`),
  streamed; the response's ``instructions``, ``input`` and ``max_output_tokens`` become the system message, the
  chat messages and ``max_tokens`` (:mod:`voicecoach.local.chat_mapping`).
* **Sounds**: Piper when installed with a voice, else espeak-ng (:func:`voicecoach.local.tts.choose_voice`),
  one sentence at a time as the model finishes it (:func:`voicecoach.local.tts.sentences`), while the model
  goes on writing the next one: the first audio never waits for the whole hint.

:meth:`LocalBackend.start` does every check a meeting would otherwise trip over later, cheapest first, each a
one-line error: the endpoint is on this machine (:func:`~.local_config.loopback_only`, unless
``allow_remote_llm``); it answers and serves the model (exit 3 / 2); the runtimes are installed and the speech
model is there (exit 2). Nothing is loaded lazily after that. A speech model named rather than bundled or given
as a folder must already be in the Hugging Face cache: this backend never downloads one (:func:`no_downloads`).

Cancelling a reply's task (``StopGenerating``) leaves the chat stream's ``async with`` at once, which closes the
HTTP response, so the model server sees the client go; a sentence being rendered finishes in its thread and is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING

from ..audio.frames import Pcm
from .backend import LiveLines, ReplySink, ReplyUsage, SessionLines
from .local_config import LocalConfig, loopback_only
from .outputs import ReplyRequest, Transcribe
from .vad import TurnDetector, VadSettings

if TYPE_CHECKING:
    from ..local.llm import ChatClient
    from ..local.stt import Transcriber
    from ..local.tts import Voice

log = logging.getLogger(__name__)


def no_downloads() -> None:
    """Make the Hugging Face hub library offline for this process, so that a speech model name that is not in the
    cache fails at start (one line: how to fetch it once) instead of going to huggingface.co mid-promise.

    Process-wide on purpose: a process that runs the local backend has promised to keep to this machine. The hub
    reads the variable when it is imported; if something imported it already, its constant is set too."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        vars(constants)["HF_HUB_OFFLINE"] = True


class LocalBackend:
    name = "local"

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self._chat: ChatClient | None = None
        self._stt: Transcriber | None = None
        self._voice: Voice | None = None
        # One turn at a time: the model serialises calls anyway, and a lock keeps commit order (asyncio's is FIFO).
        self._stt_lock = asyncio.Lock()
        self._tts_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        from ..local.llm import ChatClient
        from ..local.stt import Transcriber
        from ..local.tts import choose_voice
        from ..local.vad import load_silero

        config = self.config
        no_downloads()
        if not config.allow_remote_llm:
            await asyncio.to_thread(loopback_only, config.llm_url)  # a name is resolved: off the loop
        key = config.llm_api_key.get_secret_value() if config.llm_api_key is not None else None
        chat = ChatClient(config.llm_url, config.llm_model, key)
        try:
            await chat.check()
            self._stt = await asyncio.to_thread(Transcriber.load, config.stt_model, threads=config.stt_threads)
            await asyncio.to_thread(load_silero)  # loads the shared ONNX model now, not in the first session
            voice = str(config.tts_voice) if config.tts_voice is not None else None
            self._voice = await asyncio.to_thread(choose_voice, "auto", voice)
        except BaseException:
            await chat.aclose()
            raise
        self._chat = chat
        log.debug("local backend ready: %s", self.describe())

    async def close(self) -> None:
        if self._chat is not None:
            chat, self._chat = self._chat, None
            await chat.aclose()

    def describe(self) -> str:
        stt = self._stt.name if self._stt is not None else self.config.stt_model
        voice = self._voice.name if self._voice is not None else "espeak-ng or Piper"
        return (
            f"local: speech {stt} (faster-whisper), replies {self.config.llm_model} at {self.config.llm_url}, "
            f"voice {voice}"
        )

    # --- hears ----------------------------------------------------------------------------------------------

    def lines(self) -> SessionLines:
        return LiveLines(self._detector)

    def _detector(self, settings: VadSettings) -> TurnDetector:
        from ..local.vad import SileroVad

        return SileroVad(settings)

    async def transcribe(self, job: Transcribe) -> str:
        stt = self._stt
        assert stt is not None, "start() first"
        async with self._stt_lock:
            return await asyncio.to_thread(
                stt.transcribe, job.pcm, rate=48_000, language=job.language, prompt=job.prompt
            )

    # --- says -----------------------------------------------------------------------------------------------

    async def generate(self, request: ReplyRequest, sink: ReplySink) -> ReplyUsage | None:
        from ..local.llm import chat_messages, max_tokens_from

        chat = self._chat
        assert chat is not None, "start() first"
        messages = chat_messages(request.instructions, request.items)
        async with chat.stream(messages, max_tokens=max_tokens_from(request.max_output_tokens)) as reply:
            if request.modality == "text":
                async for delta in reply:
                    sink.text(delta)
            else:
                await self._speak_sentences(reply, request.voice, sink)
        usage = reply.usage
        if usage is None or not usage.reported:
            return None  # the server's estimate (the response's own) is as good as any other
        return ReplyUsage(usage.input_tokens, usage.output_tokens)

    async def _speak_sentences(self, deltas: AsyncIterable[str], voice: str, sink: ReplySink) -> None:
        """Read the model's sentences in a reader task and speak them here, so that the model writes sentence
        n+1 while sentence n is rendered. The reader's error (the endpoint failing mid-stream) is raised here."""
        from ..local.tts import sentences

        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()  # None: no more sentences

        async def read() -> None:
            try:
                async for sentence in sentences(deltas):
                    queue.put_nowait(sentence)
            except Exception as exc:  # handed to the speaking side, which raises it as itself
                queue.put_nowait(exc)
            queue.put_nowait(None)

        reader = asyncio.create_task(read(), name="reply-reader")
        try:
            while (sentence := await queue.get()) is not None:
                if isinstance(sentence, BaseException):
                    raise sentence
                if sentence.strip():
                    sink.sentence(sentence, await self.speak(sentence, voice))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # --- sounds ---------------------------------------------------------------------------------------------

    async def speak(self, text: str, voice: str) -> Pcm:
        """``text`` in the backend's voice (the session's voice name cannot pick a local one: it is ignored)."""
        engine = self._voice
        assert engine is not None, "start() first"
        async with self._tts_lock:
            return await asyncio.to_thread(engine.render, text)

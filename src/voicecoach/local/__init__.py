"""The local backend's parts: speech-to-text, voice activity detection, the LLM client and text-to-speech.

Each module is standalone and imports its runtime (faster-whisper, onnxruntime, piper) lazily, so that
``import voicecoach.local`` works without the ``[local]`` extra and a missing runtime is one clear
:class:`~voicecoach.local.errors.LocalRuntimeMissing` line at the moment it is needed:

* :mod:`.stt`: :class:`~.stt.Transcriber` (faster-whisper, CTranslate2), blocking, one utterance at a time;
* :mod:`.vad`: :class:`~.vad.SileroVad`, a streaming Silero VAD with the energy VAD's event semantics;
* :mod:`.llm`: :class:`~.llm.ChatClient`, a streaming OpenAI-compatible Chat Completions client (aiohttp);
* :mod:`.tts`: :func:`~.tts.sentences` and :func:`~.tts.speak` (Piper when installed, else espeak-ng).
"""

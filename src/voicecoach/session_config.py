"""The session configuration we ask for, built from the settings (pure)."""

from __future__ import annotations

from .config import Settings
from .protocol import client_events as ce


def build_session(settings: Settings, *, with_model: bool = False) -> ce.SessionConfig:
    """The GA ``session`` object for ``client_secrets`` (``with_model=True``) and ``session.update``.

    Silent listening: ``server_vad`` segments turns and drives input transcription, but
    ``create_response``/``interrupt_response`` are off, so the model never answers or cuts in on its own.
    ``model`` cannot be changed by ``session.update``, so it goes only in the client secret request.
    """
    transcription = ce.Transcription(model=settings.transcription_model)
    if settings.transcription_language:
        transcription = ce.Transcription(model=settings.transcription_model, language=settings.transcription_language)
    audio_input = ce.AudioInput(
        transcription=transcription,
        turn_detection=ce.ServerVad(
            threshold=settings.vad_threshold,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
            silence_duration_ms=settings.vad_silence_ms,
            create_response=False,
            interrupt_response=False,
        ),
    )
    if settings.noise_reduction != "off":
        # "off" leaves the field out: the server's default is no noise reduction (the SDK types forbid null).
        audio_input = audio_input.model_copy(
            update={"noise_reduction": ce.NoiseReduction(type=settings.noise_reduction)}
        )
    session = ce.SessionConfig(
        instructions=settings.instructions,
        output_modalities=["audio"],
        audio=ce.AudioConfig(input=audio_input, output=ce.AudioOutput(voice=settings.voice)),
    )
    if with_model:
        return session.model_copy(update={"model": settings.model})
    return session


def build_transcription_session(settings: Settings) -> ce.TranscriptionSessionConfig:
    """The ``session`` of the other side's transcription-only session (``type: "transcription"``).

    24 kHz PCM in (the only audio it takes: it never speaks), ``server_vad`` turns with the user's VAD settings,
    and ``them_transcription_model``. The ``create_response``/``interrupt_response`` switches are left out: a
    transcription session has no responses to create or interrupt.
    """
    transcription = ce.Transcription(model=settings.them_transcription_model)
    if settings.transcription_language:
        transcription = transcription.model_copy(update={"language": settings.transcription_language})
    audio_input = ce.AudioInput(
        format=ce.AudioFormat(type="audio/pcm", rate=24000),
        transcription=transcription,
        turn_detection=ce.ServerVad(
            threshold=settings.vad_threshold,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
            silence_duration_ms=settings.vad_silence_ms,
        ),
    )
    if settings.noise_reduction != "off":
        # The call's audio is a clean digital capture, but a far-end room is far-field: same setting as the mic.
        audio_input = audio_input.model_copy(
            update={"noise_reduction": ce.NoiseReduction(type=settings.noise_reduction)}
        )
    return ce.TranscriptionSessionConfig(audio=ce.TranscriptionAudio(input=audio_input))

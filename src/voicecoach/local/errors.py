"""Errors of the local backend, placed in the project's one tree (:mod:`voicecoach.errors`).

``LocalBackendError`` is a mixin base so that ``except LocalBackendError`` catches every local-backend failure,
while each concrete class also sits under the branch that gives its exit code::

    LocalBackendError (mixin)
    ├── LocalModelMissing      + ConfigError    exit 2: an STT model name/folder that cannot be used
    ├── LocalRuntimeMissing    + ConfigError    exit 2: faster-whisper, onnxruntime, espeak-ng or piper missing
    ├── LocalLlmModelUnknown   + ConfigError    exit 2: the endpoint does not serve ``local_llm_model``
    ├── LocalLlmRejected       + ConfigError    exit 2: the endpoint refused the API key (401/403)
    ├── LocalLlmUnreachable    + ConnectError   exit 3: no connection to the endpoint, or no answer in time
    └── LocalLlmFailed         + ConnectError   exit 3: the endpoint answered with an error

Every message is one line that names what failed, where it came from and how to fix it. API keys are never
part of a message.
"""

from __future__ import annotations

from ..errors import ConfigError, ConnectError, VoicecoachError

LOCAL_EXTRA_HINT = "pip install 'voicecoach[local]'"


class LocalBackendError(VoicecoachError):
    """Base of the local backend's errors (no exit code of its own: the second base decides)."""


class LocalModelMissing(LocalBackendError, ConfigError):
    """The speech-to-text model cannot be found or is not a CTranslate2 Whisper model."""


class LocalRuntimeMissing(LocalBackendError, ConfigError):
    """A runtime the local backend needs is not installed."""


class LocalLlmModelUnknown(LocalBackendError, ConfigError):
    """The LLM endpoint lists its models and ``local_llm_model`` is not one of them."""


class LocalLlmRejected(LocalBackendError, ConfigError):
    """The LLM endpoint refused the request's credentials."""


class LocalLlmUnreachable(LocalBackendError, ConnectError):
    """The LLM endpoint cannot be reached (connection refused, DNS, timeout)."""


class LocalLlmFailed(LocalBackendError, ConnectError):
    """The LLM endpoint answered with an HTTP error or an error inside the stream."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

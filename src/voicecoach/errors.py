"""The one error tree of voicecoach.

Every error a user can see is a :class:`VoicecoachError`. Its ``str()`` is a single line that says what went
wrong and how to fix it; the CLI prints exactly that line (never a traceback) and exits with ``exit_code``.
Foreign exceptions (aiohttp, aiortc, PortAudio, pydantic) are translated at the boundary with
``raise ... from exc`` so that the cause stays available under ``--debug`` logging.

Our side and the server's side are kept apart::

    VoicecoachError                      exit 1 unless noted
    ├── UsageError                       exit 2: the user asked for something we cannot do
    │   ├── ConfigError                  bad value in a flag, variable or config file
    │   │   └── ContextError             a context file cannot be used (missing, not text, too large)
    │   └── AudioError                   audio input/output cannot be opened
    │       ├── PortAudioMissing         libportaudio2 is not installed
    │       ├── DeviceNotFound           no such device / no devices at all
    │       └── DeviceUnavailable        busy device, unsupported rate
    ├── ConnectError                     the session could not be set up
    │   ├── SignalingError               an HTTP exchange failed (client secret, SDP offer)
    │   │   ├── AuthError                401/403: bad, missing or expired key       (fatal, no retry)
    │   │   ├── RateLimitError           429: rate limit or quota                     (fatal, no retry)
    │   │   ├── RequestRejected          other 4xx: the server's own message quoted
    │   │   ├── ServerUnavailable        5xx
    │   │   ├── Unreachable              DNS or TCP connection failure
    │   │   └── SignalingTimeout         no answer in time
    │   └── TransportError               ICE, DTLS or the data channel did not come up in time
    └── SessionError                     the server ended or refused the session (e.g. session_expired)

Malformed *events* from the server are not errors in this tree: the protocol layer keeps them as data and the
session goes on (see :mod:`voicecoach.protocol`).
"""

from __future__ import annotations


class VoicecoachError(Exception):
    """Base of every error a user can see. ``str(err)`` is one line, ready to print."""

    exit_code: int = 1


class UsageError(VoicecoachError):
    """The user asked for something we cannot do; fixing the input fixes it."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting has an invalid value. The message names its source, the field and what is allowed."""


class ContextError(ConfigError):
    """A context file (``--context``, ``coach.context_files``) cannot be used; the message names the file."""


class AudioError(UsageError):
    """An audio device or file cannot be used."""


class PortAudioMissing(AudioError):
    """The PortAudio shared library is not installed, so sounddevice cannot load."""


class DeviceNotFound(AudioError):
    """No device matches the request (or there are no devices at all)."""


class DeviceUnavailable(AudioError):
    """The device exists but cannot be opened: busy, or the rate is not supported."""


class ConnectError(VoicecoachError):
    """The session could not be set up. ``retryable`` tells a reconnect loop whether trying again can help."""

    exit_code = 3
    retryable: bool = True


class SignalingError(ConnectError):
    """An HTTP exchange with the Realtime API failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(SignalingError):
    retryable = False


class RateLimitError(SignalingError):
    retryable = False


class RequestRejected(SignalingError):
    retryable = False


class ServerUnavailable(SignalingError):
    pass


class Unreachable(SignalingError):
    pass


class SignalingTimeout(SignalingError):
    pass


class TransportError(ConnectError):
    """ICE, DTLS or the data channel failed or did not come up in time."""


class SessionError(VoicecoachError):
    """The server ended the session or refused to go on with it."""

    exit_code = 4

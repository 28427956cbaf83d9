"""ALSA's own messages: counted and kept for the debug log, never printed raw on the user's terminal.

libasound reports through a process-wide error handler whose default prints to stderr. PortAudio's ALSA host
API triggers it: ``ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred`` for every output underrun
(measured on PulseAudio through the ALSA pulse plugin: one line per underflow the stream's callback flags),
and a burst of ``cannot find card`` lines while it enumerates devices. Those lines would tear through the
plain view and the full-screen UI. :func:`install` replaces the handler (``snd_lib_error_set_handler``) with
one that counts underruns and keeps the last few other messages; nothing else in the process is silenced.

The handler runs on whatever thread libasound reports from (a stream's audio thread, for underruns), so it
only counts and appends to a bounded deque, like any audio callback here. It must be installed before
PortAudio initializes (before ``import sounddevice``), or the enumeration burst has already been printed.
Where there is no libasound (macOS, Windows) :func:`install` does nothing.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
from collections import deque

log = logging.getLogger(__name__)

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...). Only the
# first variadic argument is declared, as a pointer: on the ABIs Linux runs on (x86-64 and arm64 registers,
# i386 stack) it lands where a sixth fixed argument would. It is read only when the format begins with "%s",
# which promises a string there: the xrun message is SNDERR("%s occurred", "underrun" or "overrun").
_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
)

underruns = 0  # "underrun occurred" reports (output); read on the loop, a plain int store is atomic
overruns = 0  # "overrun occurred" reports (input)
messages: deque[str] = deque(maxlen=32)  # the latest other messages, for the debug log
_installed: object = None  # the C callback, kept alive for as long as libasound may call it


def _on_message(
    file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None, arg: int | None
) -> None:
    global underruns, overruns
    text = (fmt or b"").decode(errors="replace")
    if text.startswith("%s") and arg:
        text = ctypes.string_at(arg).decode(errors="replace") + text[2:]
    if text == "underrun occurred":
        underruns += 1
    elif text == "overrun occurred":
        overruns += 1
    else:
        where = f"{(file or b'').decode(errors='replace')}:{line}:({(function or b'').decode(errors='replace')})"
        messages.append(f"ALSA lib {where} {text}")


def install() -> bool:
    """Route libasound's messages to this module (once); True if libasound is there to route."""
    global _installed
    if _installed is not None:
        return True
    name = ctypes.util.find_library("asound")
    if name is None:
        return False
    try:
        lib = ctypes.CDLL(name)
        setter = lib.snd_lib_error_set_handler
    except (OSError, AttributeError):
        return False
    setter.argtypes = [_HANDLER]
    setter.restype = ctypes.c_int
    callback = _HANDLER(_on_message)
    if setter(callback) != 0:
        return False
    _installed = callback

    def restore() -> None:
        # After the interpreter is gone a Python callback must not be called: give libasound its default back.
        # (atexit runs this after sounddevice's own exit hook, registered later, has stopped PortAudio.)
        setter.argtypes = [ctypes.c_void_p]
        setter(None)

    atexit.register(restore)
    return True


def log_messages() -> None:
    """Log (at DEBUG, on the caller's thread, never an audio thread) and forget the messages kept so far."""
    while messages:
        log.debug("%s", messages.popleft())

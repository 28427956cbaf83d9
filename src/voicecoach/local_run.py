"""``voicecoach run --local``: coach with nothing leaving this machine.

The local Realtime server (:mod:`voicecoach.server`) starts in this process on 127.0.0.1 with the local backend
(:mod:`voicecoach.server.local_backend`: Silero VAD, faster-whisper, the user's own language model server, a
local voice), then the ordinary ``voicecoach run`` (:func:`voicecoach.app.run_app`: the same coach, UI and store)
connects to it. What would reach beyond the machine is refused or switched off, at start:

* the Realtime connection goes to the in-process server only: ``base_url`` is forced to it, no token server, no
  STUN/TURN servers, ICE on 127.0.0.1 only; ``--base-url``/``--token-url`` with ``--local`` is an error;
* the language model's URL must be loopback unless ``--allow-remote-llm`` (:func:`~voicecoach.server.local_config.
  loopback_only`);
* a missing runtime package, a missing speech model, an unreachable or wrong language model server: each one
  line, exit 2 or 3, before any device is opened or anything is recorded (the backend starts first).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from .config import Settings
from .errors import ConfigError
from .server import RealtimeServer, ServerConfig
from .server.local_config import LocalConfig

StopHook = Callable[[Callable[[str], None]], None]

# The in-process server accepts any standard key; this one never leaves the process (it is not OpenAI's).
LOCAL_KEY = "sk-local-in-process"
LOOPBACK = "127.0.0.1"


def local_config(settings: Settings, *, allow_remote_llm: bool) -> LocalConfig:
    """The local backend's settings from the user's (``local_*``)."""
    return LocalConfig(
        stt_model=settings.local_stt_model,
        llm_url=settings.local_llm_url,
        llm_model=settings.local_llm_model,
        llm_api_key=settings.local_llm_api_key,
        tts_voice=settings.local_tts_voice,
        allow_remote_llm=allow_remote_llm,
    )


def check_local_flags(settings: Settings, args: argparse.Namespace) -> None:
    """Refuse flags that contradict ``--local`` (a ConfigError, exit 2)."""
    if args.allow_remote_llm and not settings.local:
        raise ConfigError("--allow-remote-llm only applies with --local (local = true); add --local or drop it")
    for flag, value in (("--base-url", args.base_url), ("--token-url", args.token_url)):
        if value is not None:
            raise ConfigError(
                f"--local talks only to its own server on {LOOPBACK}, so {flag} cannot be used with it; drop {flag}"
            )


def check_serve_flags(backend: str, allow_remote_llm: bool) -> None:
    if allow_remote_llm and backend != "local":
        raise ConfigError("--allow-remote-llm only applies with --backend local; add --backend local or drop it")


def on_this_machine(settings: Settings, base_url: str) -> Settings:
    """``settings`` pointed at the in-process server, with everything that could reach elsewhere switched off."""
    return settings.model_copy(
        update={
            "base_url": base_url,
            "api_key": SecretStr(LOCAL_KEY),
            "token_url": None,
            "token_secret": None,
            "ice_servers": [],
            "ice_hosts": [LOOPBACK],
        }
    )


async def run_local(
    settings: Settings, on_stop: StopHook, config_path: Path | None = None, *, allow_remote_llm: bool = False
) -> int:
    """Start the local backend's server (raising its one-line error if a part is missing), then run as usual."""
    from .app import run_app, use_tui
    from .ui.plain import PlainView

    config = ServerConfig(
        host=LOOPBACK,
        port=0,
        backend="local",
        local=local_config(settings, allow_remote_llm=allow_remote_llm),
        session_max_seconds=settings.session_max_seconds,
    )
    async with RealtimeServer(config) as server:
        local = on_this_machine(settings, server.base_url)
        if not use_tui(local):
            remote = " (--allow-remote-llm: the transcript goes to that server)" if allow_remote_llm else ""
            PlainView().info(f"{server.backend.describe()}; nothing else leaves this machine{remote}")
        return await run_app(local, on_stop, config_path)

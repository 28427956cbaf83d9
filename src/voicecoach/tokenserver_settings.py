"""Settings of ``voicecoach token-server``: where it listens and how fast each client address may ask.

Plain pydantic (no settings sources), like :mod:`voicecoach.coach.settings`: :mod:`voicecoach.config` nests it as
``[token_server]`` in the TOML file, ``VOICECOACH_TOKEN_SERVER__RATE_PER_MINUTE=20`` in the environment, and the
``token-server`` subcommand's flags override both. It lives apart from :mod:`voicecoach.tokenserver` so that
loading settings never imports aiohttp.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(default=8766, ge=0, le=65535, description="TCP port (0 picks a free one)")
    # One token bucket per client address: ``burst`` requests at once, refilled at ``rate_per_minute``.
    # 10/min with a burst of 3 covers a client that reconnects a few times; guessing the secret stays slow.
    rate_per_minute: float = Field(default=10.0, gt=0, description="keys per minute per address")
    burst: int = Field(default=3, ge=1, description="keys an address may take at once")

"""Opens the links of one run: which transport, which key, and the session configuration they start with.

The runner asks for a link and gets one (or a ConnectError); the choices behind it live here: the transport
the settings ask for, the key each transport needs (a minted client secret, or the token server's), and the
``session.update`` every new link sends first. Tests inject a transport factory and a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
from pydantic import SecretStr

from .audio.base import FrameSource
from .config import Settings
from .link import Link
from .protocol import client_events as ce
from .session_config import build_session
from .transport.base import TransportFactory
from .transport.choice import credential, key_source_for, transport_factory
from .transport.credentials import KeySource

Credential = Callable[[], Awaitable[SecretStr]]


class Connector:
    def __init__(
        self,
        settings: Settings,
        *,
        on_sent: Callable[[dict[str, Any]], None],
        on_retry: Callable[[str], None],
        factory: TransportFactory | None = None,
        credential: Credential | None = None,
    ) -> None:
        """Raises a one-line ConfigError/AuthError for unusable credentials (no key, a token URL without its
        secret) at once, before anything is sent or saved."""
        self.settings = settings
        self._on_sent = on_sent
        self._on_retry = on_retry
        self._factory = factory
        self._credential = credential
        self._keys: KeySource | None = None if credential is not None else key_source_for(settings)

    async def open(self, http: aiohttp.ClientSession, source: FrameSource) -> Link:
        """One connected link whose ``session.update`` has been sent (``session.updated`` is the coach's)."""
        s = self.settings
        update = ce.SessionUpdate(session=build_session(s)).to_wire()
        link = await Link.open(
            credential=self._credential or partial(credential, http, s, self._keys_or_fail(), self._on_retry),
            factory=self._factory or transport_factory(http, s),
            source=source,
            session_update=update,
            timeout_s=s.connect_timeout,
        )
        self._on_sent(update)
        return link

    def _keys_or_fail(self) -> KeySource:
        assert self._keys is not None, "set in __init__ whenever no credential was injected"
        return self._keys

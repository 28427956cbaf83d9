"""HTTP signaling with the Realtime API (aiohttp): ephemeral key, then the SDP offer.

1. ``POST {base_url}/realtime/client_secrets`` with the standard API key → ``{"value": "ek_…", …}``.
2. ``POST {base_url}/realtime/calls`` with ``Authorization: Bearer ek_…`` and the raw SDP offer
   (``Content-Type: application/sdp``) → ``201 Created`` with the SDP answer and a ``Location`` header.

Every failure becomes one :class:`~voicecoach.errors.SignalingError` subclass with a one-line message that
names the step, quotes the server's own error message (scrubbed of secrets) and says what to do. A 404 on the
first step almost always means a base URL without its ``/v1``, so that message says so and names the URL tried.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from ..errors import (
    AuthError,
    RateLimitError,
    RequestRejected,
    ServerUnavailable,
    SignalingError,
    SignalingTimeout,
    Unreachable,
)
from ..protocol.client_events import ClientSecretRequest
from ..redact import redact_text

log = logging.getLogger(__name__)

# What a 429 from OpenAI means: a per-minute rate limit, or an exhausted quota (code insufficient_quota).
OPENAI_RATE_HINT = "wait and retry, or check your plan and billing"
# Named in messages: the setting that bounds every HTTP exchange (there is no flag for it).
TIMEOUT_SETTING = "http_timeout in the config file or VOICECOACH_HTTP_TIMEOUT"


@dataclass(frozen=True)
class ClientSecret:
    value: SecretStr
    expires_at: int | None


@dataclass(frozen=True)
class SdpAnswer:
    sdp: str
    call_id: str | None


@dataclass(frozen=True)
class Reply:
    """An HTTP reply as far as signaling needs it (headers by lower-case name)."""

    status: int
    body: str
    headers: Mapping[str, str]

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


async def create_client_secret(
    http: aiohttp.ClientSession,
    base_url: str,
    api_key: SecretStr,
    request: ClientSecretRequest,
    timeout_s: float,
) -> ClientSecret:
    """Mint an ephemeral key for one session. The standard key never leaves this call."""
    url = f"{base_url}/realtime/client_secrets"
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"}
    what = "client secret request"
    reply = await post(http, url, what, timeout_s, json=request.to_wire(), headers=headers)
    if reply.status == 404:
        raise RequestRejected(_not_found(url, base_url), status=404)
    raise_for_status(reply.status, reply.body, what, auth_hint="check OPENAI_API_KEY")
    return parse_client_secret(reply.body, reply.status, f"{_host(url)} (is --base-url a Realtime API?)")


async def post_offer(
    http: aiohttp.ClientSession, base_url: str, ephemeral_key: SecretStr, offer_sdp: str, timeout_s: float
) -> SdpAnswer:
    """Send the SDP offer, return the answer. Expects ``201 Created`` (any 2xx is accepted)."""
    url = f"{base_url}/realtime/calls"
    headers = {
        "Authorization": f"Bearer {ephemeral_key.get_secret_value()}",
        "Content-Type": "application/sdp",
        "Accept": "application/sdp",
    }
    reply = await post(http, url, "SDP offer", timeout_s, data=offer_sdp, headers=headers)
    raise_for_status(reply.status, reply.body, "SDP offer", auth_hint="the ephemeral key was refused or expired")
    if "v=0" not in reply.body:
        raise ServerUnavailable(
            f"the SDP answer from {_host(url)} is not SDP (HTTP {reply.status})", status=reply.status
        )
    location = reply.location
    call_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
    log.debug("SDP answer received (HTTP %s, call %s)", reply.status, call_id)
    return SdpAnswer(reply.body, call_id)


async def post(
    http: aiohttp.ClientSession, url: str, what: str, timeout_s: float, *, flag: str = "--base-url", **kwargs: Any
) -> Reply:
    """POST and read the reply. Network failures become one-line SignalingErrors naming ``what`` was sent and the
    setting (``flag``) that points at the server."""
    host = _host(url)
    try:
        async with asyncio.timeout(timeout_s):
            async with http.post(url, **kwargs) as resp:
                body = await resp.text(errors="replace")
                headers = {name.lower(): value for name, value in resp.headers.items()}
                return Reply(resp.status, body, headers)
    except TimeoutError as exc:
        raise SignalingTimeout(
            f"no answer to the {what} from {host} within {timeout_s:g} s; check that it is running and reachable, "
            f"or raise {TIMEOUT_SETTING}"
        ) from exc
    except aiohttp.ClientConnectorDNSError as exc:
        raise Unreachable(f"cannot resolve {host!r} ({exc.os_error}); check {flag} and your DNS") from exc
    except aiohttp.ClientConnectorError as exc:
        raise Unreachable(
            f"cannot connect to {host} ({exc.os_error.strerror or exc.os_error}); check {flag} and the network"
        ) from exc
    except aiohttp.ClientError as exc:
        # Kept as the cause: aiohttp's text names the URL and the failure, never the request's headers (the key).
        raise Unreachable(f"the {what} to {host} failed: {redact_text(str(exc)) or type(exc).__name__}") from exc


def parse_client_secret(body: str, status: int, source: str) -> ClientSecret:
    """The ephemeral key in a ``{"value": "ek_…", "expires_at": …}`` reply; ``source`` is named if it is not."""
    try:
        data = json.loads(body)
        value = data["value"]
        if not isinstance(value, str) or not value:
            raise TypeError("value is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        # The cause names a position or a type, never the body, so it can be kept.
        raise ServerUnavailable(
            f"the reply from {source} has no usable 'value' ({type(exc).__name__})", status=status
        ) from exc
    expires_at = data.get("expires_at")
    log.debug("got an ephemeral key expiring at %s", expires_at)
    return ClientSecret(SecretStr(value), expires_at if isinstance(expires_at, int) else None)


def raise_for_status(status: int, body: str, what: str, *, auth_hint: str) -> None:
    """Raise the :class:`SignalingError` subclass for a non-2xx ``status``; ``what`` names the step in the message.

    A 429 is read as OpenAI's (rate limit or quota); a token server's 429 has its own message (token_client).
    """
    if 200 <= status < 300:
        return
    said = server_said(body)
    error: SignalingError
    if status in (401, 403):
        error = AuthError(f"the {what} was refused (HTTP {status}){said}; {auth_hint}", status=status)
    elif status == 429:
        error = RateLimitError(f"rate limit or quota exceeded (HTTP 429){said}; {OPENAI_RATE_HINT}", status=status)
    elif 400 <= status < 500:
        error = RequestRejected(f"the {what} was rejected (HTTP {status}){said}", status=status)
    else:
        error = ServerUnavailable(
            f"the Realtime API failed the {what} (HTTP {status}){said}; try again shortly", status=status
        )
    raise error


def server_said(body: str) -> str:
    """``": <the server's message>"`` for a message, or ``""`` when the body says nothing."""
    message = _server_message(body)
    return f": {message}" if message else ""


def _server_message(body: str) -> str:
    """The ``error.message`` of an OpenAI-style JSON error body, else the body's first line; secrets scrubbed."""
    text = body.strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            text = str(data["error"].get("message") or data["error"].get("code") or "")
        elif isinstance(data, dict) and isinstance(data.get("error"), str):
            text = data["error"]
    except ValueError:
        pass
    line = " ".join(text.split())
    return redact_text(line[:300] + ("…" if len(line) > 300 else ""))


def _not_found(url: str, base_url: str) -> str:
    shown = redact_text(url)
    if not urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        return (
            f"{shown} does not exist (HTTP 404); check that --base-url (or OPENAI_BASE_URL, base_url in the config "
            "file) ends in /v1, e.g. https://api.openai.com/v1 or http://127.0.0.1:8765/v1"
        )
    return f"{shown} does not exist (HTTP 404); is --base-url (or OPENAI_BASE_URL) a Realtime API?"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url

"""HTTP signaling with the Realtime API (aiohttp): ephemeral key, then the SDP offer.

1. ``POST {base_url}/realtime/client_secrets`` with the standard API key → ``{"value": "ek_…", …}``.
2. ``POST {base_url}/realtime/calls`` with ``Authorization: Bearer ek_…`` and the raw SDP offer
   (``Content-Type: application/sdp``) → ``201 Created`` with the SDP answer and a ``Location`` header.

Every failure becomes one :class:`~voicecoach.errors.SignalingError` subclass with a one-line message that
names the step, quotes the server's own error message (scrubbed of secrets) and says what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
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


@dataclass(frozen=True)
class ClientSecret:
    value: SecretStr
    expires_at: int | None


@dataclass(frozen=True)
class SdpAnswer:
    sdp: str
    call_id: str | None


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
    status, body, _ = await post(http, url, "client secret request", timeout_s, json=request.to_wire(), headers=headers)
    raise_for_status(status, body, "client secret request", auth_hint="check OPENAI_API_KEY")
    return parse_client_secret(body, status, f"{_host(url)} (is --base-url a Realtime API?)")


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
    status, body, location = await post(http, url, "SDP offer", timeout_s, data=offer_sdp, headers=headers)
    raise_for_status(status, body, "SDP offer", auth_hint="the ephemeral key was refused or expired")
    if "v=0" not in body:
        raise ServerUnavailable(f"the SDP answer from {_host(url)} is not SDP (HTTP {status})", status=status)
    call_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
    log.debug("SDP answer received (HTTP %s, call %s)", status, call_id)
    return SdpAnswer(body, call_id)


async def post(
    http: aiohttp.ClientSession, url: str, what: str, timeout_s: float, *, flag: str = "--base-url", **kwargs: Any
) -> tuple[int, str, str | None]:
    """POST and read the reply: ``(status, body, Location)``. Network failures become one-line SignalingErrors
    naming ``what`` was sent and the setting (``flag``) that points at the server."""
    host = _host(url)
    try:
        async with asyncio.timeout(timeout_s):
            async with http.post(url, **kwargs) as resp:
                body = await resp.text(errors="replace")
                return resp.status, body, resp.headers.get("Location")
    except TimeoutError:
        raise SignalingTimeout(
            f"no answer to the {what} from {host} within {timeout_s:g} s; check that it is running and reachable, "
            "or raise --http-timeout"
        ) from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise Unreachable(f"cannot resolve {host!r} ({exc.os_error}); check {flag} and your DNS") from exc
    except aiohttp.ClientConnectorError as exc:
        raise Unreachable(
            f"cannot connect to {host} ({exc.os_error.strerror or exc.os_error}); check {flag} and the network"
        ) from exc
    except aiohttp.ClientError as exc:
        raise Unreachable(f"the {what} to {host} failed: {redact_text(str(exc)) or type(exc).__name__}") from exc


def parse_client_secret(body: str, status: int, source: str) -> ClientSecret:
    """The ephemeral key in a ``{"value": "ek_…", "expires_at": …}`` reply; ``source`` is named if it is not."""
    try:
        data = json.loads(body)
        value = data["value"]
        if not isinstance(value, str) or not value:
            raise TypeError("value is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerUnavailable(
            f"the reply from {source} has no usable 'value' ({type(exc).__name__})", status=status
        ) from None
    expires_at = data.get("expires_at")
    log.debug("got an ephemeral key expiring at %s", expires_at)
    return ClientSecret(SecretStr(value), expires_at if isinstance(expires_at, int) else None)


def raise_for_status(status: int, body: str, what: str, *, auth_hint: str) -> None:
    """Raise the :class:`SignalingError` subclass for a non-2xx ``status``; ``what`` names the step in the message."""
    if 200 <= status < 300:
        return
    message = _server_message(body)
    said = f": {message}" if message else ""
    error: SignalingError
    if status in (401, 403):
        error = AuthError(f"the {what} was refused (HTTP {status}){said}; {auth_hint}", status=status)
    elif status == 429:
        error = RateLimitError(
            f"rate limit or quota exceeded (HTTP 429){said}; wait and retry, or check your plan and billing",
            status=status,
        )
    elif 400 <= status < 500:
        error = RequestRejected(f"the {what} was rejected (HTTP {status}){said}", status=status)
    else:
        error = ServerUnavailable(
            f"the Realtime API failed the {what} (HTTP {status}){said}; try again shortly", status=status
        )
    raise error


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


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url

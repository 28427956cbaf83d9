"""A streaming client for any OpenAI-compatible Chat Completions endpoint (Ollama, llama.cpp, vLLM, LM Studio).

Hand-written on aiohttp (already a dependency) rather than the ``openai`` package: it needs one GET, one
streamed POST and the SSE ``data:`` lines, and the caller must be able to drop the HTTP response the moment a
hint is cancelled (``response.cancel``), which a plain ``async with`` over the aiohttp response gives directly.

Usage::

    async with ChatClient(url, model) as client:
        await client.check()                       # at start: one clear line if the endpoint cannot serve us
        async with client.stream(messages, max_tokens=80) as reply:
            async for delta in reply:              # text deltas as the server sends them
                ...
        reply.usage                                # tokens: the server's own counts, else an estimate

Leaving ``async with client.stream(...)`` in any way (the end, ``break``, an error, the task cancelled) closes
the response at once: aiohttp then drops the connection instead of reading the rest, and a server that watches
its client (llama.cpp, vLLM, Ollama do) stops generating.

The mapping of a Realtime ``response.create`` onto a chat request is in :mod:`.chat_mapping` (re-exported here).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from ..redact import redact_text
from ..server.usage import text_tokens
from .chat_mapping import chat_messages, max_tokens_from
from .errors import LocalLlmFailed, LocalLlmModelUnknown, LocalLlmRejected, LocalLlmUnreachable

__all__ = ["ChatClient", "ChatStream", "ChatUsage", "chat_messages", "max_tokens_from"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0  # a local server answers /models in milliseconds; a dead one should not hold the start up
CONNECT_TIMEOUT_S = 5.0
MODELS_SHOWN = 5  # how many of the server's models an "unknown model" error lists
_URL_SETTING = "local_llm_url"
_MODEL_SETTING = "local_llm_model"


@dataclass(frozen=True)
class ChatUsage:
    """Tokens of one completion. ``reported`` is False when the server sent no ``usage`` and these are estimates
    (one token per 4 characters, the rule of :func:`voicecoach.server.usage.text_tokens`)."""

    input_tokens: int
    output_tokens: int
    reported: bool


def _server_message(body: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else its first 200 characters; secrets scrubbed."""
    text = body.strip()
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("code") or "")
        elif isinstance(error, str):
            text = error
    except ValueError:
        pass
    line = " ".join(text.split())
    return redact_text(line[:200] + ("…" if len(line) > 200 else ""))


def _prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += text_tokens(content)
        elif isinstance(content, list):
            total += sum(text_tokens(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    return total


class ChatClient:
    """One endpoint and model. Use as an async context manager (it owns an ``aiohttp.ClientSession``)."""

    def __init__(
        self, url: str, model: str, api_key: str | None = None, *, connect_timeout: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No total timeout: a long hint streams for seconds. Connecting and each read are bounded instead.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=60.0)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._http

    def _unreachable(self, exc: BaseException) -> LocalLlmUnreachable:
        if isinstance(exc, TimeoutError):
            reason = "no answer in time"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            reason = str(exc.os_error.strerror or exc.os_error)
        else:
            reason = redact_text(str(exc)) or type(exc).__name__
        return LocalLlmUnreachable(
            f"cannot reach the local LLM endpoint {self.url} ({reason}): start the server (e.g. `ollama serve`, "
            f"`llama-server`) or fix {_URL_SETTING}"
        )

    def _http_error(self, status: int, body: str, what: str) -> LocalLlmFailed | LocalLlmRejected:
        said = _server_message(body)
        said = f": {said}" if said else ""
        if status in (401, 403):
            return LocalLlmRejected(
                f"the local LLM endpoint {self.url} refused the {what} (HTTP {status}){said}; check local_llm_api_key"
            )
        message = f"the local LLM endpoint {self.url} failed the {what} (HTTP {status}){said}"
        return LocalLlmFailed(message, status=status)

    async def check(self) -> None:
        """Fail early, with one line, when the endpoint is down or does not serve :attr:`model`.

        A server without ``GET /models`` (404/405, or a body that is not a model list) is accepted as it is:
        the model name is then only checked by the first request.
        """
        try:
            timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
            async with self._session().get(f"{self.url}/models", timeout=timeout) as resp:
                body = await resp.text(errors="replace")
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._unreachable(exc) from exc
        if status in (404, 405, 501):
            log.debug("llm: %s has no /models (HTTP %s); model %r not checked", self.url, status, self.model)
            return
        if status >= 400:
            raise self._http_error(status, body, "model list")
        models = _model_ids(body)
        if models is None:
            log.debug("llm: %s/models is not a model list; model %r not checked", self.url, self.model)
            return
        if self.model not in models:
            shown = ", ".join(models[:MODELS_SHOWN]) + (", …" if len(models) > MODELS_SHOWN else "")
            raise LocalLlmModelUnknown(
                f"the local LLM endpoint {self.url} has no model {self.model!r} (it has: {shown or 'none'}); "
                f"set {_MODEL_SETTING} to one of them"
            )

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """A streamed completion of ``messages``; nothing is sent until the stream is entered."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return ChatStream(self, body)


def _model_ids(body: str) -> list[str] | None:
    """The ids of an OpenAI ``{"data": [{"id": ...}]}`` list (Ollama also has ``{"models": [{"name": ...}]}``)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    entries = data.get("data", data.get("models"))
    if not isinstance(entries, list):
        return None
    ids = [str(e.get("id") or e.get("name") or e.get("model")) for e in entries if isinstance(e, dict)]
    return [i for i in ids if i and i != "None"]


class ChatStream:
    """One streamed completion: enter it, iterate its text deltas, read :attr:`usage` afterwards."""

    def __init__(self, client: ChatClient, body: dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._resp: aiohttp.ClientResponse | None = None
        self._parts: list[str] = []
        self._server_usage: dict[str, Any] | None = None
        self._finished = False
        self.usage: ChatUsage | None = None

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._parts)

    async def __aenter__(self) -> ChatStream:
        client = self._client
        try:
            resp = await client._session().post(f"{client.url}/chat/completions", json=self._body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise client._unreachable(exc) from exc
        if resp.status >= 400:
            try:
                body = await resp.text(errors="replace")
            except (TimeoutError, aiohttp.ClientError):
                body = ""
            finally:
                resp.release()
            raise client._http_error(resp.status, body, "chat request")
        self._resp = resp
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the response now (not read to its end: the connection is closed, so the server sees it go)."""
        if self._resp is not None:
            if self._finished:
                self._resp.release()  # read to [DONE]: the connection can go back to the pool
            else:
                log.debug("llm: stream closed early after %d characters", len(self.text))
                self._resp.close()
            self._resp = None
        if self.usage is None:
            self.usage = self._usage()

    def _usage(self) -> ChatUsage:
        reported = self._server_usage or {}
        prompt, completion = reported.get("prompt_tokens"), reported.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return ChatUsage(prompt, completion, reported=True)
        return ChatUsage(_prompt_tokens(self._body["messages"]), text_tokens(self.text), reported=False)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        # A plain __anext__, not an async generator: a consumer that stops early leaves no suspended
        # generator behind, and close() alone ends everything.
        while self._resp is not None and not self._finished:
            try:
                raw = await self._resp.content.readline()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise self._client._unreachable(exc) from exc
            if not raw:  # the server closed the stream without [DONE]
                self._finish()
                break
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                self._finish()
                break
            delta = self._chunk(data)
            if delta:
                self._parts.append(delta)
                return delta
        raise StopAsyncIteration

    def _finish(self) -> None:
        self._finished = True
        self.usage = self._usage()

    def _chunk(self, data: str) -> str:
        try:
            chunk = json.loads(data)
        except ValueError:
            log.debug("llm: ignoring a data line that is not JSON: %.80s", data)
            return ""
        if not isinstance(chunk, dict):
            return ""
        if "error" in chunk:
            said = _server_message(data)
            raise LocalLlmFailed(f"the local LLM endpoint {self._client.url} failed mid-stream: {said}")
        if isinstance(chunk.get("usage"), dict):
            self._server_usage = chunk["usage"]
        out = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str):
                out.append(content)
        return "".join(out)

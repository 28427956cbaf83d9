"""A STAND-IN for an OpenAI-compatible Chat Completions server, for tests of voicecoach.local.llm.

It is not a model: it streams a configured reply (cut at ``max_tokens``), token by token with a per-token
delay, in the SSE format that llama.cpp's server, vLLM, Ollama and the OpenAI API use (``data: {chunk}``
lines, a final usage chunk when ``stream_options.include_usage`` is asked for, then ``data: [DONE]``). It
records every request and the moment (``time.monotonic()``) a client dropped a stream before its end, so a
test can show that a cancelled hint stops the LLM stream. A real model server is exercised by the tests marked
``slow`` (test_llm_real.py) where one is available.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class StubConfig:
    reply: list[str] = field(default_factory=lambda: ["Try ", "asking ", "about ", "the ", "budget."])
    token_delay_s: float = 0.0
    models: list[str] | None = field(default_factory=lambda: ["stub-model"])  # None: no /models route (404)
    send_usage: bool = True
    status: int = 200  # an error status for /chat/completions, with an OpenAI-style error body
    error_message: str = "stub error"
    api_key: str | None = None  # when set, a request without "Bearer <api_key>" gets 401


@dataclass
class StubRecord:
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens_sent: int = 0
    disconnected_at: float | None = None  # monotonic time the client dropped a stream early
    finished: int = 0  # streams written to their [DONE]


class ChatStub:
    """``async with ChatStub(config) as stub:`` serves on 127.0.0.1 (a free port); ``stub.url`` ends in /v1."""

    def __init__(self, config: StubConfig | None = None) -> None:
        self.config = config or StubConfig()
        self.record = StubRecord()
        self.disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> ChatStub:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        # handler_cancellation: a client that goes away cancels its handler at once (aiohttp's default waits
        # for the next write to fail), which is what makes the disconnect time exact.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        key = self.config.api_key
        return key is None or request.headers.get("Authorization") == f"Bearer {key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        if self.config.models is None:
            raise web.HTTPNotFound()
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.config.models]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record.requests.append(body)
        if not self._authorised(request):
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        if self.config.status != 200:
            return web.json_response({"error": {"message": self.config.error_message}}, status=self.config.status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            await self._write(resp, {"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            limit = body.get("max_tokens")
            reply = self.config.reply if limit is None else self.config.reply[: int(limit)]  # as a model would
            for token in reply:
                if self.config.token_delay_s:
                    await asyncio.sleep(self.config.token_delay_s)
                await self._write(resp, {"choices": [{"index": 0, "delta": {"content": token}}]})
                self.record.tokens_sent += 1
            finish = "length" if len(reply) < len(self.config.reply) else "stop"
            await self._write(resp, {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if self.config.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 42, "completion_tokens": len(reply), "total_tokens": 0}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                await self._write(resp, {"choices": [], "usage": usage})
            await resp.write(b"data: [DONE]\n\n")
            self.record.finished += 1
        except (asyncio.CancelledError, ConnectionResetError):
            self.record.disconnected_at = time.monotonic()
            self.disconnected.set()
            raise
        return resp

    @staticmethod
    async def _write(resp: web.StreamResponse, chunk: dict[str, Any]) -> None:
        chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": "stub-model", **chunk}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

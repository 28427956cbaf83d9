"""The Chat Completions client against a local stand-in server (tests/local/chat_stub.py) on 127.0.0.1:
streaming, usage, the request it sends, every start-up error as one line, and a cancel that drops the stream."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from tests.local.chat_stub import ChatStub, StubConfig

from voicecoach.local.errors import (
    LocalLlmFailed,
    LocalLlmModelUnknown,
    LocalLlmRejected,
    LocalLlmUnreachable,
)
from voicecoach.local.llm import ChatClient, ChatUsage, chat_messages, max_tokens_from

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What should I ask?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def collect(
    client: ChatClient, max_tokens: int | None = None, temperature: float | None = None
) -> tuple[list[str], ChatUsage | None]:
    async with client.stream(MESSAGES, max_tokens=max_tokens, temperature=temperature) as reply:
        deltas = [delta async for delta in reply]
    return deltas, reply.usage


async def test_deltas_stream_in_order_with_the_servers_usage() -> None:
    async with ChatStub() as stub, ChatClient(stub.url, "stub-model") as client:
        await client.check()
        deltas, usage = await collect(client)
    assert deltas == ["Try ", "asking ", "about ", "the ", "budget."]
    assert usage == ChatUsage(input_tokens=42, output_tokens=5, reported=True)
    assert stub.record.finished == 1 and stub.record.disconnected_at is None


async def test_the_request_carries_model_messages_stream_options_and_max_tokens() -> None:
    async with ChatStub() as stub, ChatClient(stub.url, "stub-model", api_key="sk-local-test") as client:
        await collect(client, max_tokens=max_tokens_from(80), temperature=0.2)
        await collect(client, max_tokens=max_tokens_from("inf"))
    first, second = stub.record.requests
    assert first == {
        "model": "stub-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 80,
        "temperature": 0.2,
    }
    assert "max_tokens" not in second and "temperature" not in second


async def test_max_tokens_bounds_the_reply() -> None:
    async with ChatStub() as stub, ChatClient(stub.url, "stub-model") as client:
        deltas, usage = await collect(client, max_tokens=2)
    assert deltas == ["Try ", "asking "] and usage is not None and usage.output_tokens == 2


async def test_the_api_key_is_sent_as_a_bearer_token() -> None:
    async with ChatStub(StubConfig(api_key="sk-local-test")) as stub:
        async with ChatClient(stub.url, "stub-model", api_key="sk-local-test") as client:
            await client.check()
            assert (await collect(client))[0]
        async with ChatClient(stub.url, "stub-model", api_key="sk-wrong-key") as client:
            with pytest.raises(LocalLlmRejected) as caught:
                await client.check()
    text = str(caught.value)
    assert "HTTP 401" in text and "local_llm_api_key" in text and "sk-wrong" not in text
    assert caught.value.exit_code == 2


async def test_without_usage_from_the_server_tokens_are_estimated() -> None:
    async with ChatStub(StubConfig(send_usage=False)) as stub, ChatClient(stub.url, "stub-model") as client:
        deltas, usage = await collect(client)
    # one token per 4 characters: "Be brief." (9) -> 3, "What should I ask?" (18) -> 5; the reply (26) -> 7
    assert usage == ChatUsage(input_tokens=8, output_tokens=7, reported=False)
    assert "".join(deltas) == "Try asking about the budget."


async def test_an_unreachable_endpoint_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with ChatClient(url, "stub-model") as client:
        with pytest.raises(LocalLlmUnreachable) as caught:
            await client.check()
        with pytest.raises(LocalLlmUnreachable):
            await collect(client)
    text = str(caught.value)
    assert url in text and "local_llm_url" in text and "\n" not in text
    assert caught.value.exit_code == 3


async def test_a_model_the_server_does_not_list_is_named_with_what_it_has() -> None:
    models = ["llama3.2:1b", "qwen2.5:0.5b", "smollm2", "a", "b", "c", "d"]
    async with ChatStub(StubConfig(models=models)) as stub, ChatClient(stub.url, "llama3") as client:
        with pytest.raises(LocalLlmModelUnknown) as caught:
            await client.check()
    text = str(caught.value)
    assert "'llama3'" in text and "llama3.2:1b, qwen2.5:0.5b, smollm2, a, b, …" in text and "local_llm_model" in text
    assert caught.value.exit_code == 2


async def test_a_server_without_a_model_list_is_accepted() -> None:
    async with ChatStub(StubConfig(models=None)) as stub, ChatClient(stub.url, "anything") as client:
        await client.check()
        assert (await collect(client))[0]


async def test_an_http_error_quotes_the_servers_message() -> None:
    config = StubConfig(status=404, error_message="model 'x' not found, try pulling it first")
    async with ChatStub(config) as stub, ChatClient(stub.url, "x") as client:
        with pytest.raises(LocalLlmFailed) as caught:
            await collect(client)
    assert "HTTP 404" in str(caught.value) and "model 'x' not found" in str(caught.value)


async def test_cancelling_the_consumer_drops_the_stream_at_once() -> None:
    """The hint's task is cancelled mid-stream (response.cancel): the server sees the client go, and no more
    tokens are read. The latency is measured, and bounded generously (the figure is in the benchmarks)."""
    config = StubConfig(reply=[f"word{i} " for i in range(200)], token_delay_s=0.01)
    async with ChatStub(config) as stub, ChatClient(stub.url, "stub-model") as client:
        got: list[str] = []
        three = asyncio.Event()

        async def consume() -> None:
            async with client.stream(MESSAGES) as reply:
                async for delta in reply:
                    got.append(delta)
                    if len(got) == 3:
                        three.set()

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            await three.wait()
            cancelled_at = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await stub.disconnected.wait()
    assert stub.record.disconnected_at is not None
    latency = stub.record.disconnected_at - cancelled_at
    assert 0 <= latency < 1.0, latency
    assert stub.record.finished == 0 and stub.record.tokens_sent < 200
    assert len(got) <= 4


async def test_breaking_out_early_also_drops_the_stream() -> None:
    config = StubConfig(reply=[f"word{i} " for i in range(200)], token_delay_s=0.01)
    async with ChatStub(config) as stub, ChatClient(stub.url, "stub-model") as client:
        async with client.stream(MESSAGES) as reply:
            async for _ in reply:
                break
        async with asyncio.timeout(10):
            await stub.disconnected.wait()
        assert reply.usage is not None and not reply.usage.reported and reply.usage.output_tokens == 2
        assert stub.record.finished == 0


async def test_a_response_create_maps_onto_the_request() -> None:
    """End to end: a hint's response.create (as coach/hints.py sends it) becomes the chat request."""
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Transcript: You: hi"}]},
    ]
    async with ChatStub() as stub, ChatClient(stub.url, "stub-model") as client:
        messages = chat_messages("Give one short hint.", items)
        async with client.stream(messages, max_tokens=max_tokens_from(60)) as reply:
            assert "".join([d async for d in reply]) == "Try asking about the budget."
    sent = stub.record.requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "Give one short hint."},
        {"role": "user", "content": "Transcript: You: hi"},
    ]
    assert sent["max_tokens"] == 60

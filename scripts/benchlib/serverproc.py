"""The local Realtime server in a child process, with a way to push server events onto a live call.

The server runs in its own process so that its work (Opus, pacing, voice rendering) never shares an event
loop or a core's time slice with the client being measured, as with the real API.

Parent side: ``async with ServerProcess(tmp, responses=[...]) as server`` gives ``server.base_url`` and
``await server.send_event(event)``, which sends ``event`` (a transcription delta carrying a trigger phrase,
say) on the newest call's events channel (WebRTC's ``oai-events`` data channel, or the WebSocket) and
returns the child's ``time.monotonic()`` at the send.
CLOCK_MONOTONIC is system-wide on Linux, so that time compares with the parent's clock.

Child side (``python -m benchlib.serverproc CONFIG_JSON``): prints ``READY <base_url>``, then answers one
JSON command per stdin line with one JSON line on stdout, until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from benchlib.common import child_env, python

if TYPE_CHECKING:
    from voicecoach.server import Call
    from voicecoach.server.websocket import WebSocketCall

START_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 10.0


class ServerProcess:
    def __init__(self, tmp: Path, **config: Any) -> None:
        """``config``: :class:`voicecoach.server.ServerConfig` fields plus ``utterances``/``responses``."""
        self._tmp = tmp
        self._config = {"voice": "synth", **config}
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    async def __aenter__(self) -> ServerProcess:
        self._proc = await asyncio.create_subprocess_exec(
            python(),
            "-m",
            "benchlib.serverproc",
            json.dumps(self._config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=child_env(self._tmp),
        )
        try:
            line = await self._read_line(START_TIMEOUT_S)
        except BaseException:
            await self._stop()
            raise
        if not line.startswith("READY "):
            await self._stop()
            raise RuntimeError(f"the server process did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def send_event(self, event: dict[str, Any]) -> float:
        """Send ``event`` on the newest live call; returns the monotonic time the server sent it."""
        reply = await self._command({"op": "send", "event": event})
        return float(reply["sent_at"])

    async def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None, "not started"
        async with self._lock:  # one command in flight: replies carry no id
            proc.stdin.write((json.dumps(command) + "\n").encode())
            await proc.stdin.drain()
            reply: dict[str, Any] = json.loads(await self._read_line(REPLY_TIMEOUT_S))
        if "error" in reply:
            raise RuntimeError(f"server process: {reply['error']}")
        return reply

    async def _read_line(self, limit_s: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        async with asyncio.timeout(limit_s):
            raw = await self._proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"the server process exited (status {await self._proc.wait()})")
        return raw.decode().strip()

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the child stops its server and exits
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- the child ---------------------------------------------------------------------------------------------


def _send(call: Call | WebSocketCall, event: dict[str, Any]) -> dict[str, Any]:
    """Put ``event`` on the call's events channel (``send_raw``, the fault-injection hook of both transports)."""
    if not call.send_raw(json.dumps(event, separators=(",", ":"))):
        return {"error": "the events channel is not open"}
    return {"sent_at": time.monotonic()}


async def _serve(config: dict[str, Any]) -> None:
    from voicecoach.server import RealtimeServer, Scenario, ServerConfig

    scenario = Scenario(
        utterances=config.pop("utterances", []),
        responses=config.pop("responses", []),
        them_utterances=config.pop("them_utterances", []),
    )
    async with RealtimeServer(ServerConfig(scenario=scenario, **config)) as server:
        print(f"READY {server.base_url}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            reply: dict[str, Any]
            try:
                command = json.loads(line)
                live = [call for call in server.calls if not call.closed]
                if command.get("op") != "send":
                    reply = {"error": f"unknown command {command.get('op')!r}"}
                elif not live:
                    reply = {"error": "no live call"}
                else:
                    reply = _send(live[-1], command["event"])
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))

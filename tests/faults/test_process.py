"""The real program as a subprocess: ``kill -9`` mid-session, secrets in every output, and the token server."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from collections import Counter
from pathlib import Path
from typing import Any

from e2e_harness import meeting
from faults_harness import Cli, assert_one_line_error, figure, until, write_wav

from voicecoach.server import RealtimeServer
from voicecoach.store import SessionStore

KEY = "sk-faults-FAKEKEY-0123456789abcdef"
OTHER_KEY = "sk-the-right-one-9876543210fedcba"
TOKEN_SECRET = "tokensrv-FAKESECRET-0123456789ab"
EPHEMERAL = re.compile(rb"ek_[0-9A-Za-z]{6,}")


def client_args(server_url: str, tmp_path: Path, name: str, audio: Path, *extra: str) -> list[str]:
    return [
        "--debug",
        "run",
        "--plain",
        "--base-url",
        server_url,
        "--ice-host",
        "127.0.0.1",
        "--input-file",
        str(audio),
        "--output-file",
        str(tmp_path / f"{name}.wav"),
        "--events-file",
        str(tmp_path / f"{name}-events.jsonl"),
        *extra,
    ]


def printed_items(stdout: str) -> list[tuple[str, str]]:
    """The finished items a ``--plain`` run printed: ("utterance" | "hint", text)."""
    items = []
    for line in stdout.splitlines():
        if line.startswith("You: "):
            items.append(("utterance", line.removeprefix("You: ")))
        elif (hint := re.match(r"Coach \((quick|full)\): (.*)$", line)) is not None:
            items.append(("hint", hint.group(2).removesuffix(" [interrupted]")))
    return items


async def test_kill_9_mid_session_loses_nothing_that_was_printed(server_factory: Any, tmp_path: Path) -> None:
    lines = ["Point one.", "Good question.", "Point three.", "Point four.", "Point five."]
    server: RealtimeServer = await server_factory(utterances=lines, responses=["Say it is on track."])
    audio = write_wav(tmp_path / "meeting.wav", meeting([(line, 0.5) for line in lines]))
    cli = await Cli.start(*client_args(server.base_url, tmp_path, "run", audio, "--duration", "60"))
    try:
        await until(lambda: cli.count("You: ") >= 2, 20, "two utterances printed")
        code = await cli.kill()
    finally:
        await cli.close()
    assert code == -signal.SIGKILL

    [path] = (tmp_path / "data" / "sessions").glob("*.jsonl")
    records = SessionStore(path.parent).load(path.stem)[1:]
    kept = Counter((r["kind"], r["text"]) for r in records if r["kind"] in ("utterance", "hint"))
    printed = Counter(printed_items(cli.stdout))
    assert printed[("utterance", lines[1])] == 1
    lost = printed - kept
    assert not lost, f"printed but not in the session file: {lost}"
    keys = Counter(r["key"] for r in records)
    assert all(n == 1 for n in keys.values()), keys
    figure("kill -9", printed=sum(printed.values()), kept=sum(kept.values()), lost=sum(lost.values()), duplicated=0)


def scan(tmp_path: Path, outputs: dict[str, str]) -> list[str]:
    """Where a secret shows up: every file under tmp_path (events, sessions, logs) and every captured output."""
    found = []
    blobs = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    blobs |= {name: text.encode() for name, text in outputs.items()}
    for where, blob in blobs.items():
        for secret in (KEY, OTHER_KEY, TOKEN_SECRET, "FAKEKEY-0123456789", "FAKESECRET-0123456789"):
            if secret.encode() in blob:
                found.append(f"{secret} in {where}")
        found += [f"{m.group().decode()} in {where}" for m in EPHEMERAL.finditer(blob)]
    return found


async def test_no_secret_in_any_output(server_factory: Any, tmp_path: Path, transport: str) -> None:
    """Success, refused key (401), unreachable server, and a refused token-server bearer, all with --debug."""
    lines = ["Good question."]
    server: RealtimeServer = await server_factory(utterances=lines, responses=["On track."], api_key=KEY)
    strict: RealtimeServer = await server_factory(api_key=OTHER_KEY)
    audio = write_wav(tmp_path / "meeting.wav", meeting([(lines[0], 0.5)]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    token = await Cli.start(
        "--debug",
        "token-server",
        "--port",
        "0",
        env={
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": server.base_url,
            "VOICECOACH_TOKEN_SECRET": "a-different-secret-0000000000",
        },
    )
    runs: dict[str, Cli] = {}
    try:
        token_url = (await token.line("listening on", 15)).rsplit(" ", 1)[-1]
        key_env = {"OPENAI_API_KEY": KEY}
        runs["ok"] = await Cli.start(*client_args(server.base_url, tmp_path, "ok", audio), env=key_env)
        runs["401"] = await Cli.start(*client_args(strict.base_url, tmp_path, "401", audio), env=key_env)
        runs["unreachable"] = await Cli.start(*client_args(closed, tmp_path, "unreachable", audio), env=key_env)
        runs["token-401"] = await Cli.start(
            *client_args(server.base_url, tmp_path, "token-401", audio, "--token-url", token_url),
            env={"VOICECOACH_TOKEN_SECRET": TOKEN_SECRET},
        )
        await runs["ok"].line("Coach (quick): On track.", 20)
        await runs["ok"].send("q\n")
        codes = dict(zip(runs, await asyncio.gather(*(r.wait(20) for r in runs.values())), strict=True))
        token.proc.send_signal(signal.SIGTERM)
        assert await token.wait(10) == 0
    finally:
        await asyncio.gather(token.close(), *(r.close() for r in runs.values()))

    assert codes["ok"] == 0, runs["ok"].stderr
    # WebRTC's refusal is the client secret request's 401; the WebSocket's, an invalid_api_key and close 3000.
    refused = "HTTP 401" if transport == "webrtc" else "refused the key"
    assert_one_line_error(codes["401"], _last_line(runs["401"].stderr), 3, refused)
    assert_one_line_error(codes["unreachable"], _last_line(runs["unreachable"].stderr), 3, "cannot connect")
    assert_one_line_error(codes["token-401"], _last_line(runs["token-401"].stderr), 3, "HTTP 401", "token server")
    # --debug really logged: the places a secret could slip into were written.
    assert all("DEBUG" in r.stderr for r in runs.values()) and "DEBUG" in token.stderr
    assert (tmp_path / "ok-events.jsonl").stat().st_size > 0 and list((tmp_path / "data").rglob("*.jsonl"))
    outputs = {f"{name} {stream}": getattr(r, stream) for name, r in runs.items() for stream in ("stdout", "stderr")}
    outputs |= {"token-server stdout": token.stdout, "token-server stderr": token.stderr}
    assert scan(tmp_path, outputs) == []


def _last_line(stderr: str) -> str:
    """With --debug, stderr holds the log too; the user-facing error is its last line."""
    return stderr.strip().splitlines()[-1]


async def test_token_server_end_to_end(server_factory: Any, tmp_path: Path, transport: str) -> None:
    """``voicecoach run --token-url`` with no API key in its environment, against ``voicecoach token-server``
    pointed at the local Realtime server (which only accepts the real key): a whole session."""
    lines = ["Good question."]
    server: RealtimeServer = await server_factory(utterances=lines, responses=["On track."], api_key=KEY)
    audio = write_wav(tmp_path / "meeting.wav", meeting([(lines[0], 0.5)]))
    token = await Cli.start(
        "--debug",
        "token-server",
        "--port",
        "0",
        env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url, "VOICECOACH_TOKEN_SECRET": TOKEN_SECRET},
    )
    client: Cli | None = None
    try:
        token_url = (await token.line("listening on", 15)).rsplit(" ", 1)[-1]
        client = await Cli.start(
            *client_args(server.base_url, tmp_path, "client", audio, "--token-url", token_url),
            env={"VOICECOACH_TOKEN_SECRET": TOKEN_SECRET},
        )
        await client.line(f"You: {lines[0]}", 20)
        await client.line("Coach (quick): On track.", 10)
        await client.send("q\n")
        assert await client.wait(15) == 0, client.stderr
        token.proc.send_signal(signal.SIGTERM)
        assert await token.wait(10) == 0
    finally:
        await asyncio.gather(token.close(), *([client.close()] if client else []))
    assert "session ended: quit" in client.stdout
    # The key was minted by the token server (the client had none), and used for exactly one call.
    connect = "calls" if transport == "webrtc" else "realtime"  # the SDP offer, or the WebSocket upgrade
    assert server.faults.requests == Counter({"client_secrets": 1, connect: 1})
    assert len(server.calls) == 1 and server.calls[0].events_received[0]["type"] == "session.update"
    outputs = {"client stdout": client.stdout, "client stderr": client.stderr, "token-server stderr": token.stderr}
    assert scan(tmp_path, outputs) == []

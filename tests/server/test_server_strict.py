"""The local server is as strict as OpenAI's: required keys, unknown models and voices, and CORS.

All over real HTTP on 127.0.0.1 (``voicecoach serve`` in a subprocess for the flags); the data-channel checks
use a real aiortc peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.server.peer import TestPeer
from tests.server.test_server_http import AUTH, mint, post

from voicecoach.cli import main
from voicecoach.errors import ConfigError
from voicecoach.server import RealtimeServer, load_keys_file

KEY_ON_FLAG = "sk-flag-key-0123456789abcdef"
KEY_IN_FILE = "sk-file-key-0123456789abcdef"
WRONG_KEY = "sk-wrong-key-0123456789abcdef"
ORIGIN = "http://localhost:5173"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


@pytest.fixture
def strict_serve(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``voicecoach serve --require-key K1 --keys-file F`` (F holds K2 and comments) on a free port."""
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# accepted keys\n\n  {KEY_IN_FILE}  \n# {WRONG_KEY} is commented out\n", encoding="utf-8")
    argv = [sys.executable, "-m", "voicecoach", "serve", "--port", "0", "--require-key", KEY_ON_FLAG]
    proc = subprocess.Popen(
        [*argv, "--keys-file", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)  # bounded wait for the "listening" line
        assert ready, "voicecoach serve printed nothing within 30 s"
        base_url = proc.stdout.readline().decode().rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1"), base_url
        yield base_url, proc
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        for key in (KEY_ON_FLAG, KEY_IN_FILE, WRONG_KEY):
            assert key.encode() not in err  # keys never reach the logs


async def test_require_key_and_keys_file(
    strict_serve: tuple[str, subprocess.Popen[bytes]], http: aiohttp.ClientSession, offer: str
) -> None:
    base_url, _ = strict_serve
    url = f"{base_url}/realtime/client_secrets"
    body = {"session": {"type": "realtime", "model": "gpt-realtime-1.5"}}

    status, reply, _ = await post(http, url, json=body, headers={"Authorization": f"Bearer {WRONG_KEY}"})
    assert status == 401
    assert reply == {
        "error": {
            "message": f"Incorrect API key provided: sk-{'*' * (len(WRONG_KEY) - 7)}cdef. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    status, reply, headers = await post(http, url, json=body)
    assert status == 401 and headers["Content-Type"].startswith("application/json")
    assert isinstance(reply, dict) and reply["error"]["code"] is None
    assert reply["error"]["message"].startswith("You didn't provide an API key.")

    for key in (KEY_ON_FLAG, KEY_IN_FILE):
        status, reply, _ = await post(http, url, json=body, headers={"Authorization": f"Bearer {key}"})
        assert status == 200, reply
    assert isinstance(reply, dict)
    # The ephemeral key the server minted works on /calls; a standard key that is not accepted does not.
    calls = f"{base_url}/realtime/calls"
    sdp = {"Content-Type": "application/sdp"}
    status, _, _ = await post(http, calls, data=offer, headers={**sdp, "Authorization": f"Bearer {WRONG_KEY}"})
    assert status == 401
    status, answer, _ = await post(
        http, calls, data=offer, headers={**sdp, "Authorization": f"Bearer {reply['value']}"}
    )
    assert status == 201 and isinstance(answer, str) and answer.startswith("v=0")


def test_an_unreadable_keys_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.txt"
    done = subprocess.run(
        [sys.executable, "-m", "voicecoach", "serve", "--keys-file", str(missing)],
        capture_output=True,
        env=_env(),
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--keys-file" in lines[0] and str(missing) in lines[0], lines
    # The same path in-process, for the other ways a file can be unusable (main() sets up logging: undo it after).
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00sk-")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    for path in (bad, empty, tmp_path):
        assert main(["serve", "--keys-file", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--keys-file" in err[0] and str(path) in err[0], err


def test_keys_file_format(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team keys\nsk-a-000000000000\n\n   # indented comment\n sk-b-000000000000 \n", encoding="utf-8")
    assert load_keys_file(path) == ("sk-a-000000000000", "sk-b-000000000000")
    path.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no key in it"):
        load_keys_file(path)


# --- models and voices ---------------------------------------------------------------------------------------

INVALID_MODEL = 'Model "gpt-nope" is not supported in realtime mode.'


@pytest.mark.parametrize(
    ("session", "code", "param", "message_start"),
    [
        ({"model": "gpt-nope"}, "invalid_model", "session.model", INVALID_MODEL),
        ({"model": ""}, "missing_model", "session.model", "You must provide a model parameter"),
        (
            {"audio": {"output": {"voice": "nova"}}},
            "invalid_value",
            "session.audio.output.voice",
            "Invalid value: 'nova'. Supported values are: 'alloy', 'ash',",
        ),
    ],
)
async def test_client_secrets_unknown_model_or_voice(
    server: RealtimeServer,
    http: aiohttp.ClientSession,
    offer: str,
    session: dict[str, Any],
    code: str,
    param: str,
    message_start: str,
) -> None:
    payload = {"session": {"type": "realtime", **session}}
    status, body, _ = await post(http, f"{server.base_url}/realtime/client_secrets", json=payload, headers=AUTH)
    assert status == 400
    assert isinstance(body, dict) and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (
        "invalid_request_error",
        code,
        param,
    )
    assert body["error"]["message"].startswith(message_start)
    # The same session as the multipart part of /calls.
    form = aiohttp.FormData()
    form.add_field("sdp", offer, content_type="application/sdp")
    form.add_field("session", json.dumps(payload["session"]), content_type="application/json")
    status, body, _ = await post(http, f"{server.base_url}/realtime/calls", data=form, headers=AUTH)
    assert status == 400 and isinstance(body, dict) and (body["error"]["code"], body["error"]["param"]) == (code, param)
    assert server.calls == []


async def test_known_models_snapshots_and_custom_voices_are_accepted(
    server: RealtimeServer, http: aiohttp.ClientSession
) -> None:
    for session in (
        {"model": "gpt-realtime-2.1-mini"},
        {"model": "gpt-realtime-2-2026-01-15"},
        {"audio": {"output": {"voice": "marin"}}},
        {"audio": {"output": {"voice": {"id": "voice_1234"}}}},
    ):
        await mint(server, http, session={"type": "realtime", **session})


async def test_session_update_and_response_create_check_model_and_voice(server: RealtimeServer) -> None:
    peer = TestPeer()
    try:
        key = (await _mint(server.base_url))["value"]
        await peer.connect(server.base_url, key)
        await peer.wait_for("session.created")
        cases = [
            ({"type": "session.update", "event_id": "e1", "session": {"type": "realtime", "model": "gpt-nope"}}),
            ({"type": "session.update", "event_id": "e2", "session": {"type": "realtime", "model": ""}}),
            (
                {
                    "type": "session.update",
                    "event_id": "e3",
                    "session": {"type": "realtime", "audio": {"output": {"voice": "nova"}}},
                }
            ),
            ({"type": "response.create", "event_id": "e4", "response": {"audio": {"output": {"voice": "nova"}}}}),
        ]
        expected = [
            ("invalid_model", "session.model"),
            ("missing_model", "session.model"),
            ("invalid_value", "session.audio.output.voice"),
            ("invalid_value", "response.audio.output.voice"),
        ]
        for event, (code, param) in zip(cases, expected, strict=True):
            start = len(peer.events)
            peer.send(event)
            error = (await peer.wait_for("error", after=start))["error"]
            assert (error["type"], error["code"], error["param"], error["event_id"]) == (
                "invalid_request_error",
                code,
                param,
                event["event_id"],
            )
        assert "session.updated" not in peer.types() and "response.created" not in peer.types()
        assert server.calls[0].session.session["model"] == "gpt-realtime"  # the rejected updates changed nothing
    finally:
        await peer.close()


async def _mint(base_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        body = {"session": {"type": "realtime", "model": "gpt-realtime"}}
        status, reply, _ = await post(http, f"{base_url}/realtime/client_secrets", json=body, headers=AUTH)
        assert status == 200 and isinstance(reply, dict)
        return reply


# --- CORS -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/realtime/calls", "/realtime/client_secrets", "/realtime/calls/rtc_x/hangup"])
async def test_cors_preflight(server: RealtimeServer, http: aiohttp.ClientSession, path: str) -> None:
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-openai-agents-sdk",
    }
    async with asyncio.timeout(10), http.options(f"{server.base_url}{path}", headers=headers) as resp:
        assert resp.status in (200, 204)
        assert resp.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "x-openai-agents-sdk"} <= allowed


async def test_cors_headers_on_posts_and_location_exposed_on_the_201(
    server: RealtimeServer, http: aiohttp.ClientSession, offer: str
) -> None:
    origin = {"Origin": ORIGIN}
    status, body, headers = await post(
        http, f"{server.base_url}/realtime/client_secrets", json={"session": {"type": "realtime"}}, headers=origin
    )
    assert status == 401 and headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)  # a page can read the error
    status, body, headers = await post(
        http,
        f"{server.base_url}/realtime/client_secrets",
        json={"session": {"type": "realtime"}},
        headers={**origin, **AUTH},
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert isinstance(body, dict)
    call_headers = {**origin, "Authorization": f"Bearer {body['value']}", "Content-Type": "application/sdp"}
    status, _, headers = await post(http, f"{server.base_url}/realtime/calls", data=offer, headers=call_headers)
    assert status == 201
    assert headers["Location"].startswith("/v1/realtime/calls/rtc_")
    assert headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    exposed = {h.strip().lower() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert "location" in exposed
    status, _, headers = await post(http, f"{server.base_url}/realtime/calls", data="hello", headers=call_headers)
    assert status == 400 and headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)

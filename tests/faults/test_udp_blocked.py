"""A network that blocks UDP, for real: the client and the local server run in a network namespace the test
makes (``unshare -n``: loopback only) with every UDP packet dropped by nftables. WebRTC cannot connect there;
``--transport auto`` must fall back to the WebSocket by itself and coach the meeting.

Needs root (CI runs as root), ``unshare`` and ``nft`` (``.ci/run`` installs nftables).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_harness import meeting
from faults_harness import figure, write_wav

NEEDS = [shutil.which("unshare"), shutil.which("nft"), shutil.which("ip")]
pytestmark = [
    pytest.mark.transports("auto"),  # the fallback is auto's: each test sets up its own network
    pytest.mark.skipif(
        os.geteuid() != 0 or None in NEEDS, reason="needs root, unshare, nft and ip (apt-get install nftables iproute2)"
    ),
]

PORT = 8765  # inside the namespace: nothing else listens there
BLOCK_UDP = (
    "nft add table inet vc && "
    "nft add chain inet vc out '{ type filter hook output priority 0; }' && "
    "nft add rule inet vc out meta l4proto udp drop"
)


def in_namespace(script: str, tmp_path: Path, timeout: float) -> tuple[int, list[tuple[float, str]], str]:
    """Run ``script`` (bash) in a new network namespace; (exit code, stdout lines with arrival times, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))}
    env["VOICECOACH_DATA_DIR"] = str(tmp_path / "data")
    env["VOICECOACH_THEM_DEVICE"] = "none"  # one link: the one the namespace's network decides about
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        ["unshare", "-n", "bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            # Bounded: the script's own `timeout 60` ends the client, and the trap ends the server.
            for line in proc.stdout:
                lines.append((time.monotonic() - started, line.rstrip("\n")))
            code = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        return code, lines, proc.stderr.read()


def script_for(tmp_path: Path, audio: Path, *client_args: str, block_udp: bool = True) -> str:
    py = shlex.quote(sys.executable)
    scenario = shlex.quote(str(tmp_path / "scenario.toml"))
    server_log = shlex.quote(str(tmp_path / "server.log"))
    return f"""
set -e
ip link set lo up
{BLOCK_UDP if block_udp else "true"}
{py} -m voicecoach serve --port {PORT} --scenario {scenario} > {server_log} 2>&1 &
trap "kill $! 2>/dev/null" EXIT  # the namespace lives as long as a process in it: take the server down too
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/{PORT}) 2>/dev/null && break; sleep 0.05; done
echo client-start
timeout 60 {py} -m voicecoach run --plain --base-url http://127.0.0.1:{PORT}/v1 --ice-host 127.0.0.1 \\
    --input-file {shlex.quote(str(audio))} --output-file {shlex.quote(str(tmp_path / "hints.wav"))} \\
    {" ".join(shlex.quote(a) for a in client_args)}
"""


def write_scenario(tmp_path: Path, utterances: list[str], responses: list[str]) -> None:
    lines = ", ".join(f'"{u}"' for u in utterances)
    replies = ", ".join(f'"{r}"' for r in responses)
    (tmp_path / "scenario.toml").write_text(f"utterances = [{lines}]\nresponses = [{replies}]\n")


def first(lines: list[tuple[float, str]], fragment: str) -> tuple[float, str]:
    return next((t, line) for t, line in lines if fragment in line)


def test_auto_falls_back_to_the_websocket_and_coaches_the_meeting(tmp_path: Path) -> None:
    said = ["Thanks for joining.", "What about the budget? Good question."]
    hint = "Say the budget is on track."
    write_scenario(tmp_path, said, [hint])
    audio = write_wav(tmp_path / "meeting.wav", meeting([(said[0], 0.6), (said[1], 0.3)]))
    code, lines, stderr = in_namespace(script_for(tmp_path, audio), tmp_path, timeout=75)
    text = "\n".join(line for _, line in lines)
    assert code == 0, text + stderr
    started, _ = first(lines, "client-start")
    up_at, up = first(lines, "connected over WebSocket")
    assert "WebRTC" in up, up  # the line says why: WebRTC did not come up
    # Process start → session.updated over the WebSocket, on a network where WebRTC can never connect.
    assert up_at - started <= 5.0, f"fell back after {up_at - started:.1f} s"
    figure("UDP blocked", client_start_to_websocket_up_ms=round((up_at - started) * 1000))
    assert f"You: {said[1]}" in text
    assert f"Coach (quick): {hint}" in text
    assert "session ended: the input file ended" in text


def test_the_same_namespace_without_the_block_stays_on_webrtc(tmp_path: Path) -> None:
    """The control case: it is the UDP block, not the namespace, that makes the client fall back."""
    said = ["Thanks for joining."]
    write_scenario(tmp_path, said, [])
    audio = write_wav(tmp_path / "meeting.wav", meeting([(said[0], 0.5)]))
    code, lines, stderr = in_namespace(script_for(tmp_path, audio, block_udp=False), tmp_path, timeout=60)
    text = "\n".join(line for _, line in lines)
    assert code == 0, text + stderr
    assert "connected over WebRTC" in text and "WebSocket" not in text
    assert f"You: {said[0]}" in text

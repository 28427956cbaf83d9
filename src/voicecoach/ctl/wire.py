"""The control protocol: one JSON line from the client, one JSON line back, then the connection closes.

::

    request  {"v": 1, "command": "hint"}                 (over TCP, on Windows: and "token": "<64 hex>")
    reply    {"ok": true, "line": "quick hint #2 requested", "status": {...}}     ("status" only for status)

Requests are parsed strictly (these two keys and the optional "token", version 1, a known command, at most
``MAX_LINE_BYTES`` with its newline, UTF-8): whatever reaches the socket is untrusted until it has passed. Each
refusal is a :class:`WireError` whose message is the one line the client prints. Replies are parsed a little more
leniently (unknown keys are ignored) so that an older ``voicecoach ctl`` still reads a newer run's replies.

Stdlib only, and nothing of voicecoach: the client imports this module and must start fast (hence plain
values rather than a dataclass here: ``dataclasses`` alone costs the client about 7 ms of imports; the
in-process form of a reply is :class:`voicecoach.control.Reply`).
"""

from __future__ import annotations

import json

VERSION = 1
# Far above any real request (about 30 bytes) or reply (a status of a few hundred): a bound, not a budget.
MAX_LINE_BYTES = 4096
COMMANDS = ("hint", "guide", "stop", "mute", "unmute", "status")


class WireError(ValueError):
    """A request or reply that is not one this protocol allows; the message says what, in one line."""


Status = dict[str, object]  # the figures of ``status``, as JSON values


MAX_TOKEN_CHARS = 128  # the run's are 64; a longer one is not worth comparing


def encode_request(command: str, token: str | None = None) -> bytes:
    data: dict[str, object] = {"v": VERSION, "command": command}
    if token is not None:  # the loopback TCP channel's secret (the Unix socket needs none: its directory is the lock)
        data["token"] = token
    return _line(data)


def parse_request(raw: bytes) -> str:
    """The command of one request line (its newline optional). Raises :class:`WireError`."""
    return parse_request_token(raw)[0]


def parse_request_token(raw: bytes) -> tuple[str, str | None]:
    """(command, token or None) of one request line (its newline optional). Raises :class:`WireError`."""
    data = _object(raw, "request")
    if not {"v", "command"} <= set(data) <= {"v", "command", "token"}:
        keys = ", ".join(sorted(map(repr, data))) or "none"
        raise WireError(f'bad request: expected the keys "v" and "command" (and optionally "token"), got {keys}')
    token = data.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS):
        raise WireError(f'bad request: "token" must be text of at most {MAX_TOKEN_CHARS} characters')
    version, command = data["v"], data["command"]
    if type(version) is not int:  # not isinstance: True is an int, and not a version
        raise WireError(f"bad request: the version must be a number, got {version!r}")
    if version != VERSION:
        raise WireError(
            f"unsupported ctl protocol version {version} (this voicecoach speaks {VERSION}): "
            "use the voicecoach ctl of the voicecoach that is running"
        )
    if not isinstance(command, str) or command not in COMMANDS:
        shown = repr(command)[:40]
        raise WireError(f"unknown command {shown}: choose one of {', '.join(COMMANDS)}")
    return command, token


def encode_reply(ok: bool, line: str, status: Status | None = None) -> bytes:
    """One reply line: ``ok`` (the command acted, or there was nothing to do), a line for the person, and for
    ``status`` the figures as data."""
    data: dict[str, object] = {"ok": ok, "line": line}
    if status is not None:
        data["status"] = status
    encoded = _line(data)
    if len(encoded) > MAX_LINE_BYTES:  # a status grown past the bound must not make the reply unreadable
        return _line({"ok": ok, "line": line[:200]})
    return encoded


def parse_reply(raw: bytes) -> tuple[bool, str, Status | None]:
    """One reply line as (ok, line, status). Raises :class:`WireError`."""
    data = _object(raw, "reply")
    ok, line, status = data.get("ok"), data.get("line"), data.get("status")
    if not isinstance(ok, bool) or not isinstance(line, str):
        raise WireError('bad reply: expected "ok" (true or false) and "line" (text)')
    if status is not None and not isinstance(status, dict):
        raise WireError('bad reply: "status" must be an object')
    return ok, line, status


def _line(data: dict[str, object]) -> bytes:
    # ensure_ascii: the line stays 7-bit whatever the hint text holds, so it can never be split mid-character.
    return (json.dumps(data, separators=(",", ":")) + "\n").encode("ascii")


def _object(raw: bytes, what: str) -> dict[str, object]:
    if len(raw) > MAX_LINE_BYTES:
        raise WireError(f"bad {what}: longer than {MAX_LINE_BYTES} bytes")
    body = raw.removesuffix(b"\n")
    if b"\n" in body:
        raise WireError(f"bad {what}: more than one line")
    if not body.strip():
        raise WireError(f"bad {what}: empty")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise WireError(f"bad {what}: not UTF-8") from None
    except ValueError as exc:  # json.JSONDecodeError; its message has the position, which helps a script writer
        raise WireError(f"bad {what}: not JSON ({exc})") from None
    except RecursionError:  # "[[[[…" nested deeper than the decoder goes: 4 KiB is enough for that
        raise WireError(f"bad {what}: nested too deeply") from None
    if not isinstance(data, dict):
        raise WireError(f"bad {what}: expected a JSON object, got {type(data).__name__}")
    return data

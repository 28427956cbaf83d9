"""The command line's grammar: every subcommand, option, default and help text, and one-line usage errors.

Kept apart from :mod:`voicecoach.cli` (which runs the commands) so that either stays small; importing this
costs only argparse, so ``voicecoach --help`` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .ctl.wire import COMMANDS as CTL_COMMANDS

DEBUG_HELP = "log details (secrets redacted) to stderr; also accepted after the command (default: off)"


# The `run` flags that override a setting; each flag's dest is the setting's name. The defaults written in
# their help are Settings' (tests/test_cli_help.py keeps them equal): importing pydantic to read them would slow
# every `voicecoach --help`.
RUN_SETTINGS = (
    "base_url",
    "model",
    "voice",
    "input_file",
    "loop",
    "output_file",
    "input_device",
    "output_device",
    "them_device",
    "them_file",
    "echo_cancellation",
    "noise_suppression",
    "high_pass_filter",
    "events_file",
    "duration",
    "ice_hosts",
    "plain",
    "token_url",
    "transport",
    "profile",
    "local",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) that suggest the closest option for a typo."""

    def parse_known_args(  # type: ignore[override]  # (typeshed's overloads; same behaviour for our calls)
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Each (sub)command rejects what it does not know itself, so that the error names that command and
        # suggests one of its own options (argparse would leave it to the top parser, which knows neither).
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments:"):
            words = message.split(":", 1)[1].split()
            typo = words[0].split("=", 1)[0] if words else ""
            known = sorted({o for a in self._actions for o in a.option_strings} - {typo})
            close = difflib.get_close_matches(typo, known, n=1, cutoff=0.6) if typo.startswith("-") else []
            hint = f"; did you mean {close[0]}?" if close else ""
        self.exit(2, f"voicecoach: error: {self.prog}: {one_line(message)}{hint} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """``text`` as one printable line: whitespace runs become a space, other control characters are escaped
    (a value echoed from argv or a server reply must not break the line or drive the terminal)."""
    joined = " ".join(text.split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in joined)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser once
                yield from _parsers(child)


def _finish(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What every subcommand gets: ``--debug`` after the command too (``voicecoach run --debug``)."""
    for child in _parsers(parser):
        if child is not parser and "--debug" not in child._option_string_actions:
            # SUPPRESS: not given after the command, it does not overwrite a --debug given before it.
            child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="voicecoach",
        description="A real-time voice coach: listens silently over the OpenAI Realtime API and whispers a hint "
        "when you say a trigger phrase.",
    )
    parser.add_argument("--version", action="version", version=f"voicecoach {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="coach a live conversation",
        description="Coach a live conversation. Every flag overrides the setting of the same name in the config "
        "file and the environment (VOICECOACH_<NAME>); see the README for all settings.",
    )
    run.add_argument(
        "--config", type=Path, metavar="PATH", help="TOML settings file (default: ~/.config/voicecoach/config.toml)"
    )
    run.add_argument(
        "--base-url",
        metavar="URL",
        help="Realtime API base ending in /v1, e.g. http://127.0.0.1:8765/v1 for voicecoach serve "
        "(default: https://api.openai.com/v1)",
    )
    run.add_argument(
        "--profile",
        metavar="NAME",
        help="coach for this situation: interview, meeting, study, or a [profiles.NAME] table of the config file; "
        "'' for none (default: profile in the config file, else none; list them with voicecoach profiles)",
    )
    run.add_argument(
        "--context",
        action="append",
        type=Path,
        metavar="FILE",
        help="a text or Markdown file the hints draw on (a CV, a job description, an agenda); repeat for more; "
        "replaces coach.context_files of the config file and the profile (default: none)",
    )
    run.add_argument("--model", metavar="M", help="Realtime model (default: gpt-realtime-1.5)")
    run.add_argument("--voice", metavar="V", help="the coach's voice (default: alloy)")
    run.add_argument(
        "--input-file",
        type=Path,
        metavar="FILE",
        help="read the microphone from an audio file (WAV, FLAC, MP3, Ogg…); the run ends after its last words "
        "are handled (default: the microphone)",
    )
    run.add_argument(
        "--loop",
        action="store_true",
        default=None,
        help="play --input-file again from the start instead of ending the run (default: off)",
    )
    run.add_argument(
        "--output-file",
        type=Path,
        metavar="WAV",
        help="write the coach's voice to a WAV file (default: the output device)",
    )
    run.add_argument(
        "--input-device", metavar="DEV", help="input device index or name part (default: the system default)"
    )
    run.add_argument(
        "--output-device", metavar="DEV", help="output device index or name part (default: the system default)"
    )
    run.add_argument(
        "--them-device",
        metavar="DEV",
        help="where the other side of the call is heard: auto (the monitor of the default output), none, or a "
        "loopback source's name from `voicecoach devices` (default: auto)",
    )
    run.add_argument(
        "--them-file",
        type=Path,
        metavar="WAV",
        help="read the other side of the call from an audio file, in real time (default: none)",
    )
    run.add_argument(
        "--echo-cancellation",
        choices=("auto", "on", "off"),
        help="remove the speakers' sound from the microphone (WebRTC AEC3): auto is on unless the output is a "
        "headset or a file, and always when the input and output are one sound card (default: auto)",
    )
    # On by default, so the flag turns them off (as --loop and --plain turn on what is off by default).
    run.add_argument(
        "--no-noise-suppression",
        action="store_false",
        dest="noise_suppression",
        default=None,
        help="leave out the echo canceller's noise suppression (default: on while echo cancellation runs)",
    )
    run.add_argument(
        "--no-high-pass-filter",
        action="store_false",
        dest="high_pass_filter",
        default=None,
        help="leave out the echo canceller's high-pass filter against hum below about 80 Hz "
        "(default: on while echo cancellation runs)",
    )
    run.add_argument(
        "--events-file", type=Path, metavar="JSONL", help="log every event sent and received (default: none)"
    )
    run.add_argument(
        "--duration", type=float, metavar="SECONDS", help="end the session after this long (default: no limit)"
    )
    run.add_argument(
        "--ice-host",
        action="append",
        dest="ice_hosts",
        metavar="ADDR",
        help="only offer this local IP address to WebRTC; repeat for more (default: every interface)",
    )
    run.add_argument(
        "--plain",
        action="store_true",
        default=None,
        help="line output instead of the full screen UI (default: off; on when output is not a terminal)",
    )
    run.add_argument(
        "--transport",
        choices=("auto", "webrtc", "websocket"),
        help="how to reach the Realtime API: WebRTC, the WebSocket, or auto: WebRTC and the WebSocket when "
        "WebRTC is not up within 3 s, e.g. where UDP is blocked (default: auto)",
    )
    run.add_argument(
        "--token-url",
        metavar="URL",
        help="get ephemeral keys from a voicecoach token-server, e.g. http://127.0.0.1:8766/v1/token "
        "(default: none, use the API key)",
    )
    run.add_argument(
        "--local",
        action="store_true",
        default=None,
        help="coach with nothing leaving this machine: a local server in this process with speech recognition, "
        "your own language model server (local_llm_url) and a local voice; needs voicecoach[local] (default: off)",
    )
    run.add_argument(
        "--allow-remote-llm",
        action="store_true",
        help="with --local, let local_llm_url be on another machine: the transcript of the meeting then goes "
        "there (default: refuse any language model server that is not on this machine)",
    )

    serve = sub.add_parser("serve", help="run the local Realtime-compatible server (for tests and offline use)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: %(default)s)")
    serve.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="scripted transcripts and replies, TOML or JSON (default: the built-in scenario)",
    )
    serve.add_argument(
        "--session-max-seconds",
        type=float,
        default=3600.0,
        metavar="S",
        help="end each call with session_expired after this long, as OpenAI does at 60 minutes (default: %(default)s)",
    )
    serve.add_argument(
        "--require-key",
        action="append",
        dest="require_keys",
        metavar="KEY",
        help="accept only this standard API key and answer any other with OpenAI's 401; repeat for more keys; "
        "other users can see it in the process list, so prefer --keys-file (default: any key is accepted)",
    )
    serve.add_argument(
        "--keys-file",
        type=Path,
        metavar="FILE",
        help="accept only the standard API keys in FILE, one per line, '#' starts a comment; adds to "
        "--require-key (default: none, any key is accepted)",
    )
    serve.add_argument(
        "--transport",
        choices=("webrtc", "websocket", "both"),
        default="both",
        help="which transports to serve: WebRTC (POST /v1/realtime/calls), WebSocket (GET /v1/realtime), or both; "
        "the one left out answers 404 (default: %(default)s)",
    )

    serve.add_argument(
        "--backend",
        choices=("scripted", "local"),
        default="scripted",
        help="what the server hears and says: the scenario's scripted lines, or local speech recognition, a "
        "language model server on this machine (local_llm_url) and a local voice (default: %(default)s)",
    )
    serve.add_argument(
        "--allow-remote-llm",
        action="store_true",
        help="with --backend local, let local_llm_url be on another machine (default: refuse one that is not on "
        "this machine)",
    )

    demo = sub.add_parser("demo", help="a scripted meeting against the built-in local server (no key, no sound card)")
    demo.add_argument(
        "--output-file",
        type=Path,
        metavar="WAV",
        help="keep the coach's voice in this WAV file (default: play it on the output device, if any)",
    )
    demo.add_argument(
        "--events-file", type=Path, metavar="JSONL", help="log every event sent and received (default: none)"
    )
    demo.add_argument(
        "--plain",
        action="store_true",
        default=None,
        help="line output instead of the full screen UI (default: off; on when output is not a terminal)",
    )

    _add_ctl_parser(sub)

    sub.add_parser("devices", help="list audio input and output devices")

    profiles = sub.add_parser(
        "profiles",
        help="list the profiles (built-in and from the config file) and which one is active",
        description="List the profiles `voicecoach run --profile NAME` can use: the built-in ones and the "
        "[profiles.NAME] tables of the config file, with where each comes from; * marks the active one "
        "(--profile, VOICECOACH_PROFILE, or profile = NAME in the config file).",
    )
    profiles.add_argument(
        "--config", type=Path, metavar="PATH", help="TOML settings file (default: ~/.config/voicecoach/config.toml)"
    )
    profiles.add_argument(
        "--profile", metavar="NAME", help="mark this profile as the active one (default: as voicecoach run would)"
    )
    profiles.add_argument(
        "--json",
        action="store_true",
        help="print JSON, with the settings each profile sets (default: a table)",
    )

    _add_sessions_parser(sub)

    tokens = sub.add_parser(
        "token-server",
        help="mint ephemeral keys for clients that hold no API key",
        description="Serve POST /v1/token: a client that sends the shared secret gets an ephemeral Realtime key,\n"
        "minted with this machine's API key. Flags override [token_server] in the config file and the environment.",
        epilog=TOKEN_SERVER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tokens.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML settings file (default: user config dir); its model, voice and listening settings shape the keys",
    )
    tokens.add_argument("--base-url", metavar="URL", help="upstream Realtime API (default: https://api.openai.com/v1)")
    tokens.add_argument("--host", type=_nonempty, help="address to listen on (default: 127.0.0.1)")
    tokens.add_argument("--port", type=_port, help="TCP port, 0 picks a free one (default: 8766)")
    tokens.add_argument(
        "--rate-per-minute", type=_positive_float, metavar="N", help="keys per minute per client address (default: 10)"
    )
    tokens.add_argument(
        "--burst", type=_positive_int, metavar="N", help="keys a client address may take at once (default: 3)"
    )
    return _finish(parser)


def flag_names_of(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Setting (dotted key) → the long flag of ``command`` that sets it, e.g. ``ice_hosts`` → ``--ice-host``."""
    sub = next(p for p in _parsers(parser) if p.prog == f"{parser.prog} {command}")
    return {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings}


def _add_ctl_parser(sub: Any) -> None:  # the subparsers action (its parser class is set by build_parser)
    ctl = sub.add_parser(
        "ctl",
        help="drive the running voicecoach from a desktop shortcut: hint, guide, stop, mute, unmute, status",
        description="Send one command to the running voicecoach run or demo, over its control socket in "
        "$XDG_RUNTIME_DIR/voicecoach (else /tmp/voicecoach-UID), and print its answer in one line. Exit 0 when "
        "it was done, 1 when no voicecoach runs (or several do and --pid is missing) or it could not be done. "
        "Bind it to a key in your desktop's shortcut settings (see the README).",
    )
    ctl.add_argument(
        "ctl_command",
        choices=CTL_COMMANDS,
        metavar="COMMAND",
        help="hint (a quick hint), guide (full guidance), stop (the coach stops talking), mute or unmute (the "
        "microphone), status (state, transport, profile, last hint and cost)",
    )
    ctl.add_argument(
        "--json", action="store_true", help="print the reply as JSON, with every figure of status (default: a line)"
    )
    ctl.add_argument(
        "--pid",
        type=_positive_int,
        metavar="PID",
        help="the voicecoach with this process id, when several run (default: the only one running)",
    )


def _add_sessions_parser(sub: Any) -> None:  # the subparsers action (its parser class is set by build_parser)
    sessions = sub.add_parser(
        "sessions",
        help="saved session transcripts: list, show, export, delete",
        description="Each run's transcript is kept in $VOICECOACH_DATA_DIR/sessions (default: the user data "
        "directory); keep_sessions = false turns that off. ID is a session id, a unique prefix of one, or `last`.",
    )
    which = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    ref = "session id, a unique prefix of one, or `last` (the newest)"
    which.add_parser("list", help="list saved sessions, newest first, with duration, cost and model")
    show = which.add_parser("show", help="print one session's transcript")
    show.add_argument("id", metavar="ID", help=ref)
    export = which.add_parser("export", help="export one session (start, end, duration, cost, model, transcript)")
    export.add_argument("id", metavar="ID", help=ref)
    export.add_argument(
        "--format", choices=("md", "json"), default="md", help="Markdown or JSON (default: %(default)s)"
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE, '-' for stdout (default: stdout)"
    )
    export.add_argument(
        "--force", action="store_true", help="overwrite FILE if it exists (default: refuse to overwrite)"
    )
    delete = which.add_parser("delete", help="delete one session's file, or every file in which nothing was said")
    target = delete.add_mutually_exclusive_group(required=True)
    target.add_argument("id", metavar="ID", nargs="?", help=ref)
    target.add_argument(
        "--empty", action="store_true", help="delete every session with no utterance and no hint (default: off)"
    )


# Defaults here are TokenServerSettings' and token_client's (tests/test_tokenserver.py keeps them equal):
# importing pydantic to read them would slow every `voicecoach --help`.
TOKEN_SERVER_EPILOG = """\
needs, in the environment (or the config file):
  OPENAI_API_KEY           the real API key (api_key); it never leaves this server
  VOICECOACH_TOKEN_SECRET  shared secret of at least 16 characters (token_secret); clients send it as a bearer
optional settings ([token_server] in the config file, or the environment):
  OPENAI_BASE_URL                      the upstream, as --base-url
  VOICECOACH_TOKEN_SERVER__HOST        as --host
  VOICECOACH_TOKEN_SERVER__PORT        as --port
  VOICECOACH_TOKEN_SERVER__RATE_PER_MINUTE, VOICECOACH_TOKEN_SERVER__BURST
                                       as --rate-per-minute and --burst; over the limit a client gets HTTP 429
                                       with Retry-After, and voicecoach run waits it out (up to 10 s, 3 tries)
clients: VOICECOACH_TOKEN_SECRET=... voicecoach run --token-url http://HOST:PORT/v1/token
"""


TOKEN_SERVER_FLAGS = {"host": "--host", "port": "--port", "rate_per_minute": "--rate-per-minute", "burst": "--burst"}


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text!r}") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from exc
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value

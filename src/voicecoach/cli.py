"""Command line: ``voicecoach run | serve | demo | devices``. Parses, wires, maps errors to exit codes; no logic.

Heavy imports (aiortc, av, numpy, textual) happen inside the subcommands so that ``voicecoach --help`` is fast.
Every :class:`~voicecoach.errors.VoicecoachError` ends the program with its one-line message on stderr and its
exit code, never a traceback (``--debug`` logs the cause).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import VoicecoachError
from .redact import redact_text

log = logging.getLogger("voicecoach")
INTERNAL_ERROR = 70  # EX_SOFTWARE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicecoach",
        description="A real-time voice coach: listens silently over the OpenAI Realtime API and whispers a hint "
        "when you say a trigger phrase.",
    )
    parser.add_argument("--version", action="version", version=f"voicecoach {__version__}")
    parser.add_argument("--debug", action="store_true", help="log details (secrets redacted) to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="coach a live conversation")
    run.add_argument("--config", type=Path, metavar="PATH", help="TOML settings file (default: user config dir)")
    run.add_argument("--base-url", metavar="URL", help="Realtime API base, e.g. http://127.0.0.1:8765/v1")
    run.add_argument("--model", metavar="M")
    run.add_argument("--voice", metavar="V")
    run.add_argument("--input-file", type=Path, metavar="WAV", help="read the microphone from a WAV file")
    run.add_argument("--output-file", type=Path, metavar="WAV", help="write the coach's voice to a WAV file")
    run.add_argument("--input-device", metavar="DEV", help="input device index or name part")
    run.add_argument("--output-device", metavar="DEV", help="output device index or name part")
    run.add_argument("--events-file", type=Path, metavar="JSONL", help="log every event sent and received")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="end the session after this long")
    run.add_argument(
        "--ice-host", action="append", dest="ice_hosts", metavar="ADDR", help="only offer this local address (repeat)"
    )
    run.add_argument("--plain", action="store_true", default=None, help="line output instead of the full screen UI")
    run.add_argument("--token-url", metavar="URL", help="get ephemeral keys from a voicecoach token-server")

    serve = sub.add_parser("serve", help="run the local Realtime-compatible server (for tests and offline use)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--scenario", type=Path, metavar="FILE", help="scripted transcripts and replies (TOML/JSON)")
    serve.add_argument("--session-max-seconds", type=float, default=3600.0, metavar="S")

    demo = sub.add_parser("demo", help="a scripted meeting against the built-in local server (no key, no sound card)")
    demo.add_argument("--output-file", type=Path, metavar="WAV", help="keep the coach's voice in this WAV file")
    demo.add_argument("--events-file", type=Path, metavar="JSONL")
    demo.add_argument("--plain", action="store_true", default=None)

    sub.add_parser("devices", help="list audio input and output devices")

    sessions = sub.add_parser("sessions", help="saved session transcripts")
    which = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    which.add_parser("list", help="list saved sessions, newest first")
    show = which.add_parser("show", help="print one session's transcript")
    show.add_argument("id")
    export = which.add_parser("export", help="export one session")
    export.add_argument("id")
    export.add_argument("--format", choices=("md", "json"), default="md")

    tokens = sub.add_parser("token-server", help="mint ephemeral keys for clients that hold no API key")
    tokens.add_argument("--config", type=Path, metavar="PATH")
    tokens.add_argument("--host", default="127.0.0.1")
    tokens.add_argument("--port", type=int, default=8766)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "serve": _cmd_serve,
        "demo": _cmd_demo,
        "devices": _cmd_devices,
        "sessions": _cmd_sessions,
        "token-server": _cmd_token_server,
    }
    try:
        return commands[args.command](args)
    except VoicecoachError as exc:
        log.debug("exiting on error", exc_info=True)
        print(f"voicecoach: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours: still one line, the traceback only under --debug
        log.debug("internal error", exc_info=True)
        detail = redact_text(str(exc)) or type(exc).__name__
        print(
            f"voicecoach: internal error ({type(exc).__name__}): {detail}; rerun with --debug and report it",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_settings

    flags = {
        k: getattr(args, k)
        for k in (
            "base_url",
            "model",
            "voice",
            "input_file",
            "output_file",
            "input_device",
            "output_device",
            "events_file",
            "duration",
            "ice_hosts",
            "plain",
            "token_url",
        )
    }
    settings = load_settings(args.config, flags)
    from .app import run_app

    return _run_async(lambda stop: run_app(settings, stop, args.config))


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import ServerConfig, run_serve

    config = ServerConfig(
        host=args.host, port=args.port, scenario_path=args.scenario, session_max_seconds=args.session_max_seconds
    )
    return run_serve(config)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return _run_async(
        lambda stop: run_demo(stop, output_file=args.output_file, events_file=args.events_file, plain=args.plain)
    )


def _cmd_devices(args: argparse.Namespace) -> int:
    from .audio.devices import format_device_table, list_devices

    print(format_device_table(list_devices()))
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    from .store import SessionStore, cmd_sessions_export, cmd_sessions_list, cmd_sessions_show

    store = SessionStore()
    if args.sessions_command == "list":
        print(cmd_sessions_list(store))
    elif args.sessions_command == "show":
        print(cmd_sessions_show(store, args.id))
    else:
        print(cmd_sessions_export(store, args.id, args.format))
    return 0


def _cmd_token_server(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .tokenserver import run_token_server

    return run_token_server(load_settings(args.config, {}), args.host, args.port)


StopHook = Callable[[Callable[[str], None]], None]


def _run_async(start: Callable[[StopHook], Coroutine[Any, Any, int]]) -> int:
    """Run a session coroutine; Ctrl-C and SIGTERM ask it to stop cleanly instead of killing it mid-write."""
    import asyncio  # here, not at the top: `voicecoach --help` should not pay for it
    import signal

    async def body() -> int:
        loop = asyncio.get_running_loop()
        stoppers: list[Callable[[str], None]] = []

        def on_signal(name: str) -> None:
            for stop in stoppers:
                stop(f"{name} received")

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        return await start(stoppers.append)

    return asyncio.run(body())


def _setup_logging(debug: bool) -> None:
    from .redact import redact_text

    class Redacting(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg = redact_text(record.getMessage())
            record.args = None
            return True

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redacting())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        # aiortc/aioice log connection noise at INFO/WARNING that is not actionable for a user.
        for noisy in ("aioice", "aiortc", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.ERROR)

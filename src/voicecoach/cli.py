"""Command line: ``voicecoach run | serve | demo | devices | profiles | sessions | token-server``.

Parses, wires, maps errors to exit codes; no logic.

Heavy imports (aiortc, av, numpy, textual) happen inside the subcommands so that ``voicecoach --help`` is fast.
Every :class:`~voicecoach.errors.VoicecoachError` ends the program with its one-line message on stderr and its
exit code, never a traceback (``--debug`` logs the cause).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .cli_parser import RUN_SETTINGS, TOKEN_SERVER_FLAGS, build_parser, flag_names_of, one_line
from .errors import VoicecoachError
from .redact import redact_text

log = logging.getLogger("voicecoach")
INTERNAL_ERROR = 70  # EX_SOFTWARE
SIGNAL_EXIT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C; also used for SIGTERM (see README)


def main(argv: Sequence[str] | None = None) -> int:
    previous = _terminate_like_interrupt()
    try:
        code = _main(argv)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside a run's own handlers (parsing, imports, the summary)
        code = SIGNAL_EXIT
    if previous is not None:  # main() called in-process (tests): leave the caller's handler as it was
        try:
            signal.signal(signal.SIGTERM, previous)  # runs a signal still pending, with our handler
        except KeyboardInterrupt:
            code = SIGNAL_EXIT
    return code


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has already printed on one line
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _setup_logging(args.debug)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "serve": _cmd_serve,
        "demo": _cmd_demo,
        "devices": _cmd_devices,
        "profiles": _cmd_profiles,
        "sessions": _cmd_sessions,
        "token-server": _cmd_token_server,
    }
    try:
        return commands[args.command](args)
    except VoicecoachError as exc:
        log.debug("exiting on error", exc_info=True)
        # One line whatever the message holds (a quoted server reply, a path with a newline in it).
        print(f"voicecoach: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `voicecoach sessions export last | head`: the reader had enough; not an error
        from .ui.plain import silence_stdout

        silence_stdout()
        return 0
    except KeyboardInterrupt:
        return SIGNAL_EXIT
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

    flags: dict[str, Any] = {name: getattr(args, name) for name in RUN_SETTINGS}
    flags["coach"] = {"context_files": args.context}  # --context FILE, repeated: the whole list
    flag_names = {**flag_names_of(build_parser(), "run"), "coach.context_files": "--context"}
    settings = load_settings(args.config, flags, flag_names=flag_names)
    if settings.local or args.allow_remote_llm:
        from .local_run import check_local_flags, run_local

        check_local_flags(settings, args)
        return _run_async(lambda stop: run_local(settings, stop, args.config, allow_remote_llm=args.allow_remote_llm))
    from .app import run_app

    return _run_async(lambda stop: run_app(settings, stop, args.config))


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import run_serve, serve_config

    local = None
    if args.backend == "local" or args.allow_remote_llm:
        from .config import load_settings
        from .local_run import check_serve_flags, local_config

        check_serve_flags(args.backend, args.allow_remote_llm)
        local = local_config(load_settings(None, {}), allow_remote_llm=args.allow_remote_llm)
    config = serve_config(
        host=args.host,
        port=args.port,
        scenario_path=args.scenario,
        session_max_seconds=args.session_max_seconds,
        require_keys=args.require_keys,
        keys_file=args.keys_file,
        transport=args.transport,
        backend=args.backend,
        local=local,
    )
    return run_serve(config)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .demo import run_demo

    # Fail before the local server starts: the demo reads the config file and the environment too.
    load_settings(None, {"output_file": args.output_file, "events_file": args.events_file, "plain": args.plain})
    return _run_async(
        lambda stop: run_demo(stop, output_file=args.output_file, events_file=args.events_file, plain=args.plain)
    )


def _cmd_devices(args: argparse.Namespace) -> int:
    from .audio.devices import format_device_table, list_devices
    from .audio.loopback import format_loopback_table

    print(format_device_table(list_devices()))
    print(format_loopback_table())
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from .config import load_settings, profile_sources, setting_origin
    from .profiles import available_profiles, format_profiles

    # The whole configuration is loaded (and so checked), as `run` would load it.
    settings = load_settings(args.config, {"profile": args.profile})
    active_from = setting_origin(settings, "profile")
    print(
        format_profiles(
            available_profiles(settings), profile_sources(settings), settings.profile, active_from, as_json=args.json
        )
    )
    return 0


def _cmd_sessions(args: argparse.Namespace) -> int:
    from . import store as sessions

    store = sessions.SessionStore()
    if args.sessions_command == "list":
        print(sessions.cmd_sessions_list(store))
    elif args.sessions_command == "show":
        print(sessions.cmd_sessions_show(store, args.id))
    elif args.sessions_command == "export":
        print(sessions.cmd_sessions_export(store, args.id, args.format, args.output, force=args.force))
    else:
        print(sessions.cmd_sessions_delete(store, args.id, empty=args.empty))
    return 0


def _cmd_token_server(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .tokenserver import run_token_server

    given = {key: getattr(args, key) for key in TOKEN_SERVER_FLAGS if getattr(args, key) is not None}
    flag_names = {f"token_server.{key}": flag for key, flag in TOKEN_SERVER_FLAGS.items()}
    flags = {"base_url": args.base_url, "token_server": given or None}
    return run_token_server(load_settings(args.config, flags, flag_names=flag_names))


StopHook = Callable[[Callable[[str], None]], None]


def _run_async(start: Callable[[StopHook], Coroutine[Any, Any, int]]) -> int:
    """Run a session coroutine; Ctrl-C and SIGTERM ask it to stop cleanly instead of killing it mid-write."""
    import asyncio  # here, not at the top: `voicecoach --help` should not pay for it

    async def body() -> int:
        loop = asyncio.get_running_loop()
        stoppers: list[Callable[[str], None]] = []
        signalled: list[str] = []
        main = asyncio.current_task()

        def on_stop(stop: Callable[[str], None]) -> None:
            stoppers.append(stop)
            if signalled:  # the signal came while the session was still being built (devices, local server)
                stop(f"{signalled[0]} received")

        def on_signal(name: str) -> None:
            signalled.append(name)
            if len(signalled) > 1 and main is not None:
                main.cancel()  # a second signal: the clean stop is taking too long, so stop now
                return
            for stop in stoppers:
                stop(f"{name} received")

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            code = await start(on_stop)
        except asyncio.CancelledError:
            if not signalled:
                raise
            return SIGNAL_EXIT
        # The run ended cleanly (transcript saved, cost priced) because of a signal: say so in the exit code,
        # as a shell does for Ctrl-C, unless the run itself failed with a code of its own.
        return SIGNAL_EXIT if signalled and code == 0 else code

    try:
        return asyncio.run(body())
    finally:
        # Closing the loop put SIGTERM back to the default (143, mid-summary); from here on it is 130 again.
        _terminate_like_interrupt()


def _terminate_like_interrupt() -> signal.Handlers | Callable[[int, Any], Any] | int | None:
    """Until a run installs its own handlers, SIGTERM ends the program as Ctrl-C does: exit 130, one way.

    Without this, a SIGTERM during start-up (imports, opening devices) would kill the process with 143 before
    the run's own handler, which stops it cleanly, is in place. Returns the handler it replaced (None when it
    could not replace one: handlers can only be set on the main thread).
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, interrupt)


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

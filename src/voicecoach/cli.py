"""Command line: ``voicecoach run | serve | demo | ctl | devices | profiles | sessions | token-server``.

Parses, wires, maps errors to exit codes; no logic.

Heavy imports (aiortc, av, numpy, textual) happen inside the subcommands so that ``voicecoach --help`` is fast.
``voicecoach ctl`` is faster still: a desktop shortcut runs it, so :func:`main` hands a plain ``ctl`` command
line to :mod:`voicecoach.ctl.client` before anything else is imported, argparse included (this module's own
imports are therefore all inside its functions). Every :class:`~voicecoach.errors.VoicecoachError` ends the
program with its one-line message on stderr and its exit code, never a traceback (``--debug`` logs the cause).
"""

from __future__ import annotations

import sys

# typing.TYPE_CHECKING without importing typing on the ctl path (mypy reads any flag of that name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import signal
    from collections.abc import Callable, Coroutine, Sequence
    from typing import Any

    StopHook = Callable[[Callable[[str], None]], None]
    Handler = Callable[[int, Any], Any] | int | signal.Handlers | None

INTERNAL_ERROR = 70  # EX_SOFTWARE
SIGNAL_EXIT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C; also used for SIGTERM (see README)
# The grammar's names, for callers (and tests) that used to find them here; loaded on first use (PEP 562).
_FROM_PARSER = ("RUN_SETTINGS", "TOKEN_SERVER_FLAGS", "build_parser", "flag_names_of", "one_line")


def __getattr__(name: str) -> object:
    if name in _FROM_PARSER:
        from . import cli_parser

        return getattr(cli_parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ctl"]:
        from .ctl import client

        plain = client.parse_args(args[1:])
        if plain is not None:  # else --help or a mistake: the full parser below says it, as for any command
            return client.run(*plain)
    import signal

    previous = _end_at_once_on_signals()
    try:
        return _main(args)
    except KeyboardInterrupt:  # raised by code of ours or a library after a signal: still the signal's exit
        return SIGNAL_EXIT
    finally:
        for sig, handler in previous.items():  # main() called in-process (tests): the caller's handlers again
            signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
    import logging

    from .cli_parser import build_parser, one_line
    from .errors import VoicecoachError
    from .redact import redact_text

    log = logging.getLogger("voicecoach")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has already printed on one line
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _setup_logging(args.debug)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "serve": _cmd_serve,
        "demo": _cmd_demo,
        "ctl": _cmd_ctl,
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
    from .cli_parser import RUN_SETTINGS, build_parser, flag_names_of
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


def _cmd_ctl(args: argparse.Namespace) -> int:
    from .ctl import client

    return client.run(args.ctl_command, args.json, args.pid)


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
    from .cli_parser import TOKEN_SERVER_FLAGS
    from .config import load_settings
    from .tokenserver import run_token_server

    given = {key: getattr(args, key) for key in TOKEN_SERVER_FLAGS if getattr(args, key) is not None}
    flag_names = {f"token_server.{key}": flag for key, flag in TOKEN_SERVER_FLAGS.items()}
    flags = {"base_url": args.base_url, "token_server": given or None}
    return run_token_server(load_settings(args.config, flags, flag_names=flag_names))


def _run_async(start: Callable[[StopHook], Coroutine[Any, Any, int]]) -> int:
    """Run a session coroutine; Ctrl-C and SIGTERM ask it to stop cleanly instead of killing it mid-write."""
    import asyncio  # here, not at the top: `voicecoach --help` should not pay for it
    import signal

    from .tasks import quiet_aiortc_orphans

    async def body() -> int:
        loop = asyncio.get_running_loop()
        quiet_aiortc_orphans(loop)
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
        # Closing the loop put SIGINT and SIGTERM back to Python's defaults: ours again for the summary.
        _end_at_once_on_signals()


def _end_at_once_on_signals() -> dict[signal.Signals, Handler]:
    """Outside a run's own handlers (start-up, the summary after it), SIGINT and SIGTERM end the program at once
    with 130: nothing is half-written then that a clean stop would save (a run registers its stop first).

    Not by raising KeyboardInterrupt: raised in the middle of an import, a library's bare ``except:`` can
    swallow it (seen: a SIGTERM 0.16 s into the demo ignored, the demo ran to its end), or turn it into another
    error. And not the default action either, which would be 143 for SIGTERM. Returns the handlers replaced
    (none off the main thread, where handlers cannot be set).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _exit_130) for sig in (signal.SIGINT, signal.SIGTERM)}


def _exit_130(signum: int, frame: object) -> None:
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # what was printed before the signal still reaches the reader
        except Exception:  # a closed pipe, or a write the signal interrupted: nothing more can be done
            pass
    os._exit(SIGNAL_EXIT)


def _setup_logging(debug: bool) -> None:
    import logging

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

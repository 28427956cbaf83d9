"""The control socket inside a run: accept, read one request line, act, answer in one line, close.

:func:`serving` owns everything it starts: the listening socket, one task per connection (cancelled and awaited
when the body ends), the socket file and the ``ctl.sock`` alias (removed on the way out, whichever way the run
ends short of SIGKILL; a socket left by a killed run is recognised by its dead pid and removed by the next run).

On Windows (or with ``VOICECOACH_CTL_CHANNEL=tcp``) the channel is a TCP listener on 127.0.0.1 instead, its port
and a fresh 32-byte token in ``ctl-<pid>.json`` (see :mod:`.paths` for why that file is private); a request
without that token is refused before anything is done. The file is removed on the way out like the socket.

A connection is answered in one event loop turn once its line has arrived: ``controls.run`` carries the
command out synchronously, on the loop thread, between reading the request and writing the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ..redact import redact_text
from ..tasks import cancel_all
from . import paths
from .wire import MAX_LINE_BYTES, WireError, encode_reply, parse_request_token

if TYPE_CHECKING:
    from ..control import Reply

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 2.0  # a client sends its line at once; one that does not is not waited for longer
WRITE_TIMEOUT_S = 2.0
TOKEN_BYTES = 32
TOKEN_REFUSED = "refused: no token or a wrong one (voicecoach ctl sends the one in the run's ctl-PID.json)"

Say = Callable[[str], None]
PeerUid = Callable[[Any], int | None]  # a connection's socket → the uid at its other end (None: unknown)


class Answers(Protocol):
    """What the socket asks of :class:`voicecoach.control.Controls`."""

    def run(self, command: str, source: str = "ctl") -> Reply: ...


def peer_uid(sock: Any) -> int | None:
    """The uid of the process at the other end of a connected Unix socket; None where it cannot be known.

    Linux has SO_PEERCRED. macOS has getpeereid()/LOCAL_PEERCRED, which the stdlib does not expose; there the
    0700 directory alone keeps other users out (a peer check is the second lock, not the first).
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock is None:
        return None
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, size))
    return int(uid)


def no_peer(sock: Any) -> int | None:
    """A TCP connection's uid cannot be known (SO_PEERCRED is for Unix sockets): the token is the check there."""
    return None


@asynccontextmanager
async def serving(controls: Answers, say: Say, *, peer: PeerUid = peer_uid) -> AsyncIterator[str | None]:
    """Serve the control channel while the body runs; yields where (the socket's path, or over TCP
    ``127.0.0.1:PORT, token in FILE``), or None when there is none (and then says why, in one line: the run goes
    on without it). ``peer``: how a Unix connection's uid is learnt (tests)."""
    channel, why_not = paths.channel()
    if why_not is not None:
        say(f"control: no voicecoach ctl channel: {why_not}")
        yield None
        return
    if channel == paths.TCP:
        async with _serving_tcp(controls, say) as where:
            yield where
        return
    where = paths.control_dir()
    path = paths.socket_path(where, os.getpid())
    problem = paths.make_dir(where) or paths.too_long(path)
    bound: tuple[socket.socket, int] | None = None
    if problem is None:
        _sweep(where)
        try:
            bound = _bind(path)
        except OSError as exc:
            problem = f"cannot listen on {path}: {exc.strerror or exc}"
    if bound is None:
        say(f"control: no voicecoach ctl socket: {problem}")
        yield None
        return
    sock, inode = bound
    answerer = _Answerer(controls, say, peer)
    try:
        server = await asyncio.start_unix_server(answerer.accept, sock=sock, limit=MAX_LINE_BYTES)
    except BaseException:
        sock.close()
        _remove(path, inode)
        raise
    _point_alias(where, path)
    log.debug("control socket listening on %s", path)
    try:
        yield path
    finally:
        # The files first, before any await: a second Ctrl-C that cancels the awaits must not leave them behind.
        server.close()
        _remove(path, inode)
        _repoint_alias(where, path)
        await cancel_all(list(answerer.tasks))
        await server.wait_closed()


@asynccontextmanager
async def _serving_tcp(controls: Answers, say: Say) -> AsyncIterator[str | None]:
    where = paths.control_dir()
    path = paths.endpoint_path(where, os.getpid())
    problem = paths.make_dir(where)
    sock: socket.socket | None = None
    if problem is None:
        _sweep_endpoints(where)
        try:
            sock = _bind_loopback()
        except OSError as exc:
            problem = f"cannot listen on {paths.LOOPBACK}: {exc.strerror or exc}"
    if sock is None:
        say(f"control: no voicecoach ctl port: {problem}")
        yield None
        return
    token = secrets.token_hex(TOKEN_BYTES)
    answerer = _Answerer(controls, say, no_peer, token)
    try:
        server = await asyncio.start_server(answerer.accept, sock=sock, limit=MAX_LINE_BYTES)
    except BaseException:
        sock.close()
        raise
    port = int(sock.getsockname()[1])
    try:
        try:
            _publish(path, port, token)
        except OSError as exc:
            say(f"control: no voicecoach ctl port: cannot write {path}: {exc.strerror or exc}")
            yield None
            return
        log.debug("control port %s:%d listening, its token in %s", paths.LOOPBACK, port, path)
        yield f"{paths.LOOPBACK}:{port}, token in {path}"
    finally:
        # The file first, before any await: a second Ctrl-C that cancels the awaits must not leave it behind.
        server.close()
        _remove_endpoint(path, token)
        await cancel_all(list(answerer.tasks))
        await server.wait_closed()


class _Answerer:
    def __init__(self, controls: Answers, say: Say, peer: PeerUid, token: str | None = None) -> None:
        self.controls = controls
        self.say = say
        self.peer = peer
        self.token = token  # over TCP: what every request must carry
        self.tasks: set[asyncio.Task[None]] = set()  # one per open connection; owned by serving()

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: asyncio would otherwise own the connection's task, unseen by us.
        task = asyncio.create_task(self._answer(reader, writer), name="ctl-connection")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._reply(reader, writer)
            if reply is not None:
                writer.write(reply)
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await writer.drain()
        except (OSError, TimeoutError):
            pass  # the client went away (or stopped reading): there is no one to tell
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await writer.wait_closed()

    async def _reply(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The reply line to write, or None when the client sent nothing (it was looking for live sockets)."""
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                raw = await reader.readline()
        except TimeoutError:
            return encode_reply(False, f"bad request: no line within {READ_TIMEOUT_S:g} s")
        except ValueError:  # StreamReader's limit: the line is longer than MAX_LINE_BYTES
            return encode_reply(False, f"bad request: longer than {MAX_LINE_BYTES} bytes")
        # Checked once the line is read, not before: closing on unread data resets the connection, and the
        # client would lose the refusal with it. The command itself is not looked at.
        uid = self.peer(writer.get_extra_info("socket"))
        if uid is not None and uid != os.getuid():
            self.say(f"control: refused a command from uid {uid} (only uid {os.getuid()} may drive this run)")
            return encode_reply(False, f"refused: this voicecoach belongs to uid {os.getuid()}, not to uid {uid}")
        if not raw:
            return None
        try:
            command, token = parse_request_token(raw)
        except WireError as exc:
            return encode_reply(False, str(exc))
        if self.token is not None and not _same(token, self.token):
            self.say("control: refused a command without this run's token (someone who cannot read ctl-PID.json)")
            return encode_reply(False, TOKEN_REFUSED)
        try:
            reply = self.controls.run(command, "ctl")
        except Exception as exc:  # a bug of ours: one line to the client, and the run goes on
            log.debug("ctl %s failed", command, exc_info=True)
            detail = redact_text(str(exc)) or type(exc).__name__
            why = f"internal error ({type(exc).__name__}): {detail}; rerun with --debug and report it"
            return encode_reply(False, why)
        return encode_reply(reply.ok, reply.line, reply.status)


def _same(given: str | None, token: str) -> bool:
    # compare_digest on bytes: on str it raises for non-ASCII text, which a client chooses.
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("ascii"))


def _bind_loopback() -> socket.socket:
    """A listening TCP socket on 127.0.0.1, a port the system chooses."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Windows lets another process bind the same address with SO_REUSEADDR and take our connections (and the
        # tokens in them) unless the port is ours exclusively.
        exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)
        if exclusive is not None:
            sock.setsockopt(socket.SOL_SOCKET, exclusive, 1)
        sock.bind((paths.LOOPBACK, 0))
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


def _publish(path: str, port: int, token: str) -> None:
    """Write the endpoint file, mode 0600 (POSIX; Windows: the directory's ACLs), whole or not at all."""
    staging = f"{path}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staging)  # an earlier process with our pid, killed mid-write
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(json.dumps({"port": port, "token": token, "pid": os.getpid()}).encode("ascii"))
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise


def _remove_endpoint(path: str, token: str) -> None:
    """Remove the endpoint file if it is still ours (holds our token)."""
    endpoint = paths.read_endpoint(path, os.getpid())
    if endpoint is not None and hmac.compare_digest(endpoint[1], token):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _sweep_endpoints(directory: str) -> None:
    """Remove the endpoint files of runs that are gone (killed, so they could not remove their own)."""
    for pid, path in paths.endpoints(directory):
        if pid == os.getpid() or not paths.pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            log.debug("removed the stale control endpoint %s", path)


def _bind(path: str) -> tuple[socket.socket, int]:
    """A Unix socket bound at ``path``, mode 0600; returns it and the file's inode (to remove only our own)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Bound with the process umask (changing the umask would race with files other threads create); the
        # 0700 directory already keeps others out until the mode is tightened here.
        os.chmod(path, 0o600)
        inode = os.stat(path).st_ino
    except BaseException:
        sock.close()
        raise
    return sock, inode


def _sweep(directory: str) -> None:
    """Remove the sockets of runs that are gone (killed, so they could not remove their own)."""
    for pid, path in paths.sockets(directory):
        if pid == os.getpid() or not paths.pid_alive(pid):  # our own pid: an earlier process that had it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            log.debug("removed the stale control socket %s", path)


def _remove(path: str, inode: int) -> None:
    with contextlib.suppress(OSError):
        if os.lstat(path).st_ino == inode:
            os.unlink(path)


def _point_alias(directory: str, path: str) -> None:
    """``ctl.sock`` → ``path`` (relative), replaced atomically so that a reader never finds it missing."""
    alias = os.path.join(directory, paths.ALIAS)
    staging = f"{alias}.{os.getpid()}"
    with contextlib.suppress(OSError):  # the alias is a convenience: the client never needs it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        os.symlink(os.path.basename(path), staging)
        os.replace(staging, alias)


def _repoint_alias(directory: str, path: str) -> None:
    """Our socket is gone: the alias, if it named it, names the newest run still there, or goes."""
    alias = os.path.join(directory, paths.ALIAS)
    try:
        if os.readlink(alias) != os.path.basename(path):
            return
    except OSError:
        return
    alive = [p for pid, p in paths.sockets(directory) if pid != os.getpid() and _listening(p)]
    if alive:
        _point_alias(directory, max(alive, key=_mtime))
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(alias)


def _listening(path: str) -> bool:
    """A run answers on ``path`` (a connection to a Unix socket is made or refused at once: no wait)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.1)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0

"""Where the control sockets (or, on Windows, the loopback endpoints) live, and which directory is safe to use.

::

    $XDG_RUNTIME_DIR/voicecoach/        (without XDG_RUNTIME_DIR: /tmp/voicecoach-<uid>/), mode 0700, ours
        ctl-<pid>.sock                  one per running voicecoach, mode 0600
        ctl.sock -> ctl-<pid>.sock      the newest, for scripts that talk to the socket themselves

The directory is what keeps other users out: a Unix socket is reached through the file system, so a 0700
directory of ours lets nobody else connect whatever the socket's own mode. A directory that is not ours, is a
symbolic link, or lets group or others in is refused, by the run and by the client alike (someone else could
have made it, to read the commands or to answer them). One socket per process, named by pid, so that two runs
never take each other's socket, and a socket whose process is gone is recognised as stale by its name alone.

On Windows (CPython exposes no AF_UNIX there, and asyncio no public named-pipe server) the channel is a TCP
listener on 127.0.0.1, port 0, and a per-run secret, published in ``ctl-<pid>.json`` (``{"port": ..., "token":
..., "pid": ...}``) in ``%LOCALAPPDATA%\\voicecoach``. Any local user can connect to a loopback port, so the
token is the lock: only who can read the file can drive the run, and a user's profile directories
(``%LOCALAPPDATA%`` among them) are readable by that user only (and SYSTEM, administrators) under Windows'
default ACLs. Not platformdirs' ``user_runtime_dir`` (``%LOCALAPPDATA%\\Temp\\voicecoach``): the client, which
must not import it, and the run must agree on the directory, and a shared Temp is one more place cleaners empty.

``VOICECOACH_CTL_CHANNEL=tcp|unix`` forces the channel, for tests and unusual systems (a POSIX system whose
Unix sockets do not work, say); ``tcp`` on POSIX uses the same 0700 directory, its file mode 0600.

Stdlib only, and nothing of voicecoach: the client imports this module and must start fast.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the ctl client's path
if TYPE_CHECKING:
    from collections.abc import Callable

ALIAS = "ctl.sock"
_SOCKET = re.compile(r"ctl-([1-9][0-9]{0,9})\.sock")
_ENDPOINT = re.compile(r"ctl-([1-9][0-9]{0,9})\.json")
_TOKEN = re.compile(r"[0-9a-f]{64}")
CHANNEL_ENV = "VOICECOACH_CTL_CHANNEL"
TCP, UNIX = "tcp", "unix"
LOOPBACK = "127.0.0.1"
MAX_ENDPOINT_BYTES = 512  # {"port":65535,"token":"<64 hex>","pid":...} is about 110 bytes
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_PATH_BYTES = 103 if sys.platform == "darwin" else 107


def channel() -> tuple[str, str | None]:
    """(``tcp`` or ``unix``, None), or (``""``, why not) when VOICECOACH_CTL_CHANNEL asks for what cannot be."""
    forced = os.environ.get(CHANNEL_ENV, "")
    if not forced:
        return (TCP if sys.platform == "win32" else UNIX), None
    if forced not in (TCP, UNIX):
        return "", f"{CHANNEL_ENV} must be tcp or unix, got {forced[:20]!r} (unset it to choose by the system)"
    if forced == UNIX and sys.platform == "win32":
        return "", f"{CHANNEL_ENV}=unix: Python has no Unix sockets on Windows (unset it)"
    return forced, None


def control_dir() -> str:
    """The directory of the control sockets, from the environment (the run and the client must agree)."""
    if sys.platform == "win32":  # see the module's docstring: private to the user by the profile's default ACLs
        local = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        return os.path.join(local, "voicecoach")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "voicecoach")
    # Not tempfile.gettempdir(): TMPDIR may differ between a terminal and a desktop's shortcut runner.
    return f"/tmp/voicecoach-{os.getuid()}"


def socket_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"ctl-{pid}.sock")


def endpoint_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"ctl-{pid}.json")


def make_dir(directory: str) -> str | None:
    """Create ``directory`` (0700) if it is missing; None when it is safe to use, else why not (one line)."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create {directory}: {exc.strerror or exc}"
    return unsafe(directory)


def unsafe(directory: str) -> str | None:
    """None when ``directory`` is a real directory of ours that only we can enter, else why not (one line)."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return f"{directory} does not exist"
    except OSError as exc:
        return f"cannot read {directory}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return f"{directory} is a symbolic link, not a directory of yours (remove it)"
    if not stat.S_ISDIR(st.st_mode):
        return f"{directory} is not a directory (remove it)"
    if sys.platform == "win32":  # no uid or mode bits: the profile's ACLs keep other users out (module docstring)
        return None
    if st.st_uid != os.getuid():
        return f"{directory} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): remove it"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return f"{directory} has mode {mode:04o}: other users could reach its sockets (chmod 700 {directory})"
    return None


def sockets(directory: str) -> list[tuple[int, str]]:
    """The control sockets in ``directory`` as (pid, path), by pid; anything else there is left alone."""
    return _named(directory, _SOCKET, _is_socket)


def endpoints(directory: str) -> list[tuple[int, str]]:
    """The endpoint files (``ctl-<pid>.json``) in ``directory`` as (pid, path), by pid."""
    return _named(directory, _ENDPOINT, _is_file)


def _named(directory: str, name: re.Pattern[str], is_kind: Callable[[str], bool]) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    for entry in names:
        match = name.fullmatch(entry)
        path = os.path.join(directory, entry)
        if match is not None and is_kind(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_endpoint(path: str, pid: int) -> tuple[int, str] | None:
    """(port, token) of an endpoint file written by the run with ``pid``; None for anything else (a file cut
    short by a crash, or not ours): such a file is passed over, like a socket nothing listens on."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_ENDPOINT_BYTES + 1)
        data = json.loads(raw) if len(raw) <= MAX_ENDPOINT_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    port, token = data.get("port"), data.get("token")
    if type(port) is not int or not 0 < port < 65536 or data.get("pid") != pid:
        return None
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        return None
    return port, token


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there: it calls TerminateProcess
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user (not a socket of ours, then: the dir is ours)
        return True
    return True


def too_long(path: str) -> str | None:
    """Why ``path`` cannot be a Unix socket's address (it is too long), or None."""
    size = len(os.fsencode(path))
    if size <= MAX_PATH_BYTES:
        return None
    return f"the socket path {path} is {size} bytes, over the {MAX_PATH_BYTES} a Unix socket allows"


def _windows_pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (untested here: no Windows). When unsure, True: the connection then decides."""
    import ctypes  # only here: a few ms the POSIX client does not pay

    # getattr: mypy knows these on Windows only
    loader, last_error = getattr(ctypes, "WinDLL", None), getattr(ctypes, "get_last_error", None)
    if loader is None or last_error is None:
        return True
    kernel32 = loader("kernel32", use_last_error=True)  # our own handle on it: restype set here stays here
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.OpenProcess.argtypes = (ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return bool(last_error() == access_denied)  # it exists, another user's
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False

"""Where the control sockets live, and which directory is safe to use.

::

    $XDG_RUNTIME_DIR/voicecoach/        (without XDG_RUNTIME_DIR: /tmp/voicecoach-<uid>/), mode 0700, ours
        ctl-<pid>.sock                  one per running voicecoach, mode 0600
        ctl.sock -> ctl-<pid>.sock      the newest, for scripts that talk to the socket themselves

The directory is what keeps other users out: a Unix socket is reached through the file system, so a 0700
directory of ours lets nobody else connect whatever the socket's own mode. A directory that is not ours, is a
symbolic link, or lets group or others in is refused, by the run and by the client alike (someone else could
have made it, to read the commands or to answer them). One socket per process, named by pid, so that two runs
never take each other's socket, and a socket whose process is gone is recognised as stale by its name alone.

Stdlib only, and nothing of voicecoach: the client imports this module and must start fast.
"""

from __future__ import annotations

import os
import re
import stat
import sys

ALIAS = "ctl.sock"
_SOCKET = re.compile(r"ctl-([1-9][0-9]{0,9})\.sock")
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_PATH_BYTES = 103 if sys.platform == "darwin" else 107


def control_dir() -> str:
    """The directory of the control sockets, from the environment (the run and the client must agree)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "voicecoach")
    # Not tempfile.gettempdir(): TMPDIR may differ between a terminal and a desktop's shortcut runner.
    return f"/tmp/voicecoach-{os.getuid()}"


def socket_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"ctl-{pid}.sock")


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
    if st.st_uid != os.getuid():
        return f"{directory} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): remove it"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return f"{directory} has mode {mode:04o}: other users could reach its sockets (chmod 700 {directory})"
    return None


def sockets(directory: str) -> list[tuple[int, str]]:
    """The control sockets in ``directory`` as (pid, path), by pid; anything else there is left alone."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found: list[tuple[int, str]] = []
    for name in names:
        match = _SOCKET.fullmatch(name)
        path = os.path.join(directory, name)
        if match is not None and _is_socket(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def pid_alive(pid: int) -> bool:
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


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False

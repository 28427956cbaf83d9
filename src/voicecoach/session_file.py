"""One run's session file as it is written: created at the first record, one fsynced ``O_APPEND`` line per record.

:class:`SessionFile` is made by :meth:`voicecoach.store.SessionStore.create` (which also documents the layout and
the record kinds); this module owns the writing side only.

- **Lazy.** Creating the object picks the id and the start time; the file, and the sessions directory, are made
  by the first :meth:`SessionFile.append`, which writes the header line before the record. A run that never
  connected therefore leaves no file.
- **Crash safe.** Each line is written with one ``os.write`` on an ``O_APPEND`` descriptor and fsynced before
  ``append`` returns, so a ``kill -9`` (or a power cut after the return) loses nothing that was appended; at
  worst the line being written when the process died is torn, and the reader skips it.
- **Private.** The file is 0600 whatever the umask (set explicitly with ``fchmod``): transcripts are speech.
- **Locked while open.** The writer holds an exclusive ``flock`` on its file until :meth:`SessionFile.close`, so
  ``sessions delete`` can tell a running session's file from a finished one. The kernel drops the lock when
  the process dies, so a killed run's file is deletable at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UsageError
from .redact import redact

log = logging.getLogger(__name__)

DATA_DIR_ENV = "VOICECOACH_DATA_DIR"


def iso_utc(moment: datetime) -> str:
    """``2026-11-24T06:37:29.123Z``: sortable as text, milliseconds so items in one second keep their order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


class SessionFile:
    """One run's session file, created at its first append. Append finished items only; each is durable on return.

    ``append`` is idempotent on ``record["key"]`` (the reconnect logic replays items and relies on "no
    duplicates"), thread-safe (a journal calls it from its writer thread), and a no-op after :meth:`close`.
    Every record goes through :func:`voicecoach.redact.redact` first. ``path`` is where the file is (or will
    be); ``exists`` says whether it has been created.
    """

    def __init__(
        self,
        root: Path,
        meta: Mapping[str, Any],
        started: datetime,
        *,
        clock: Callable[[], datetime],
        ensure_root: Callable[[], None],
    ) -> None:
        self._root = root
        self._clock = clock
        self._ensure_root = ensure_root
        self._stamp = f"{started.astimezone(UTC):%Y%m%d-%H%M%S}"
        self.id = f"{self._stamp}-{secrets.token_hex(2)}"
        self.path = root / f"{self.id}.jsonl"
        # Our own fields win: meta must not be able to rename the session or make the header look like an item.
        self._meta = {k: v for k, v in meta.items() if k not in ("kind", "id", "started_at", "t")}
        self.started = started
        self.started_at = iso_utc(started)
        self._fd: int | None = None
        self._made = False
        self._closed = False
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @property
    def clock(self) -> Callable[[], datetime]:
        """The wall clock that stamps this file's records (the store's)."""
        return self._clock

    @property
    def exists(self) -> bool:
        """The file has been created (and its header written); stays true after :meth:`close`."""
        return self._made

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one JSON line, then fsync. Adds ``"t"`` (ISO UTC) if missing.

        The first append creates the file and writes the header first. Raises :class:`ValueError` if ``record``
        has no string ``"kind"`` (a programming error), and :class:`~voicecoach.errors.UsageError` if the disk
        refuses (the record is then not kept, and a later append tries again).
        """
        if not isinstance(record.get("kind"), str):
            raise ValueError(f"a session record needs a string 'kind', got {record.get('kind')!r}")
        clean: dict[str, Any] = redact(dict(record))
        if "t" not in clean:  # not setdefault: that would read the clock even when the caller stamped it
            clean["t"] = iso_utc(self._clock())
        key = clean.get("key")
        with self._lock:
            if self._closed:
                log.debug("session %s is closed; dropped a %s record", self.id, clean["kind"])
                return
            if isinstance(key, str) and key in self._keys:
                log.debug("session %s already has %s %s; not written again", self.id, clean["kind"], key)
                return
            fd = self._fd if self._fd is not None else self._create()
            write_line(fd, self.path, clean)
            if isinstance(key, str):
                # Only after the write succeeded: a failed write must not make a retry look like a duplicate.
                self._keys.add(key)

    def close(self) -> None:
        """Close the file (idempotent; releases the lock). Everything appended is already on disk."""
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                log.debug("session %s closed", self.id)

    def __enter__(self) -> SessionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> int:
        root = self._root
        self._ensure_root()
        for _ in range(50):
            path = root / f"{self.id}.jsonl"
            try:
                # O_EXCL makes the id unique even against another process starting in the same second.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                self.id = f"{self._stamp}-{secrets.token_hex(2)}"
                continue
            except OSError as exc:
                raise UsageError(
                    f"cannot create a session file in {root}: {exc.strerror}; set {DATA_DIR_ENV} to a "
                    "writable directory"
                ) from exc
            os.fchmod(fd, 0o600)  # the mode given to os.open is filtered by the umask; this is not
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a `sessions delete` looks at this new empty file
            if os.fstat(fd).st_nlink == 0:  # ... and it did delete it: make it again
                os.close(fd)
                continue
            break
        else:
            raise UsageError(f"cannot find a free session id in {root}; is the directory full of sessions?")
        self.path = path
        header = {"kind": "session", "id": self.id, **self._meta, "started_at": self.started_at}
        try:
            write_line(fd, path, redact(header))
            fsync_dir(root)  # the new directory entry must survive a power cut too
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)  # a file without its header is not worth keeping; the next append retries
            raise
        self._fd = fd
        self._made = True
        log.debug("session %s created at %s", self.id, path)
        return fd


def write_line(fd: int, path: Path, record: Mapping[str, Any]) -> None:
    # default=str: a stray non-JSON value (a Path, a datetime) must not cost the user a finished item.
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
    try:
        view = memoryview(line)
        while view:  # os.write may write less than asked (signals, huge lines); finish the line.
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise UsageError(f"cannot write the session file {path}: {exc.strerror}") from exc


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

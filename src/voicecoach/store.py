"""Session files: one crash-safe JSONL transcript per session, plus list/show/export.

Layout: ``<root>/<id>.jsonl`` where ``root`` is the constructor argument, else ``$VOICECOACH_DATA_DIR/sessions``,
else ``platformdirs.user_data_path("voicecoach") / "sessions"``. The directory is created 0700 and each file
0600 (set explicitly, whatever the umask): transcripts are private speech.

The first line is the header ``{"kind": "session", "id", **meta, "started_at"}``; every later line is one finished
item (``utterance``, ``hint``, ``interrupt``). :meth:`SessionFile.append` writes the whole line with one
``os.write`` on an ``O_APPEND`` descriptor and fsyncs it before returning, so a ``kill -9`` (or a power cut after
the return) loses nothing that was appended; at worst a line being written when the process died is torn, and
:meth:`SessionStore.load` skips torn or garbled lines instead of failing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import platformdirs

from .errors import UsageError
from .redact import redact

log = logging.getLogger(__name__)

DATA_DIR_ENV = "VOICECOACH_DATA_DIR"
_ID_RE = re.compile(r"^(\d{8})-(\d{6})-[0-9a-f]{4}$")
_TIERS = {"quick": "quick hint", "full": "full guidance"}

# A module-level alias: inside SessionStore, the name ``list`` is the method, not the builtin.
Records = list[dict[str, Any]]


def default_root() -> Path:
    """Where sessions live when no root is given: ``$VOICECOACH_DATA_DIR/sessions`` or the user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    base = Path(override).expanduser() if override else platformdirs.user_data_path("voicecoach")
    return base / "sessions"


def iso_utc(moment: datetime) -> str:
    """``2026-11-24T06:37:29.123Z``: sortable as text, milliseconds so items in one second keep their order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SessionSummary:
    id: str
    started_at: str
    items: int
    path: Path
    title: str


class SessionFile:
    """An open session file. Append finished items only; each append is durable when it returns.

    ``append`` is idempotent on ``record["key"]`` (the reconnect logic replays items and relies on "no
    duplicates"), thread-safe (so a runner may call it through ``asyncio.to_thread``), and a no-op after
    :meth:`close`. Every record goes through :func:`voicecoach.redact.redact` first.
    """

    def __init__(self, path: Path, session_id: str, fd: int, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.id = session_id
        self._fd: int | None = fd
        self._clock = clock
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one JSON line, then flush and fsync. Adds ``"t"`` (ISO UTC) if missing.

        Raises :class:`ValueError` if ``record`` has no string ``"kind"`` (a programming error), and
        :class:`~voicecoach.errors.UsageError` if the disk refuses the write.
        """
        if not isinstance(record.get("kind"), str):
            raise ValueError(f"a session record needs a string 'kind', got {record.get('kind')!r}")
        clean: dict[str, Any] = redact(dict(record))
        clean.setdefault("t", iso_utc(self._clock()))
        key = clean.get("key")
        with self._lock:
            if self._fd is None:
                log.debug("session %s is closed; dropped a %s record", self.id, clean["kind"])
                return
            if isinstance(key, str):
                if key in self._keys:
                    log.debug("session %s already has %s %s; not written again", self.id, clean["kind"], key)
                    return
            self._write_line(clean)
            if isinstance(key, str):
                # Only after the write succeeded: a failed write must not make a retry look like a duplicate.
                self._keys.add(key)

    def close(self) -> None:
        """Close the file (idempotent). Everything appended is already on disk."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                log.debug("session %s closed", self.id)

    def __enter__(self) -> SessionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_line(self, record: Mapping[str, Any]) -> None:
        assert self._fd is not None
        # default=str: a stray non-JSON value (a Path, a datetime) must not cost the user a finished item.
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        try:
            view = memoryview(line)
            while view:  # os.write may write less than asked (signals, huge lines); finish the line.
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise UsageError(f"cannot write the session file {self.path}: {exc.strerror}") from exc


class SessionStore:
    """The directory of session files. Reading (list, load, export) never creates anything."""

    def __init__(self, root: Path | None = None, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.root = root if root is not None else default_root()
        self._clock = clock

    def create(self, meta: Mapping[str, Any]) -> SessionFile:
        """Start a new session file and durably write its header. The id is ``YYYYmmdd-HHMMSS-xxxx`` (UTC)."""
        self._ensure_root()
        now = self._clock()
        for _ in range(50):
            session_id = f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
            path = self.root / f"{session_id}.jsonl"
            try:
                # O_EXCL makes the id unique even against another process starting in the same second.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise UsageError(
                    f"cannot create a session file in {self.root}: {exc.strerror}; set {DATA_DIR_ENV} to a "
                    "writable directory"
                ) from exc
            break
        else:
            raise UsageError(f"cannot find a free session id in {self.root}; is the directory full of sessions?")
        os.fchmod(fd, 0o600)  # the mode given to os.open is filtered by the umask; this is not
        session = SessionFile(path, session_id, fd, self._clock)
        # Our own fields win: meta must not be able to rename the session or make the header look like an item.
        extra = {k: v for k, v in meta.items() if k not in ("kind", "id", "started_at", "t")}
        header = {"kind": "session", "id": session_id, **extra, "started_at": iso_utc(now)}
        try:
            session._write_line(redact(header))
            _fsync_dir(self.root)  # the new directory entry must survive a power cut too
        except BaseException:
            session.close()
            raise
        log.debug("session %s created at %s", session_id, path)
        return session

    def list(self) -> list[SessionSummary]:
        """Every session, newest first. An unreadable file is skipped, not fatal."""
        if not self.root.is_dir():
            return []
        summaries = []
        for path in self.root.glob("*.jsonl"):
            if not _ID_RE.match(path.stem):
                continue
            try:
                records = _read_records(path)
            except OSError as exc:
                log.debug("skipping unreadable session %s: %s", path, exc.strerror)
                continue
            summaries.append(_summarize(path, records))
        summaries.sort(key=lambda s: (s.started_at, s.id), reverse=True)
        return summaries

    def load(self, session_id: str) -> Records:
        """Every intact record of a session in file order, the header (``kind == "session"``) first.

        Torn or garbled lines (e.g. the last line of a killed process) are skipped. An unknown or malformed id
        raises :class:`~voicecoach.errors.UsageError`.
        """
        path = self._path_of(session_id)
        try:
            return _read_records(path)
        except FileNotFoundError:
            raise _unknown(session_id) from None
        except OSError as exc:
            raise UsageError(f"cannot read the session file {path}: {exc.strerror}") from exc

    def export(self, session_id: str, fmt: Literal["md", "json"]) -> str:
        """The session as Markdown or as pretty JSON ``{"id", "started_at", "meta", "items"}``."""
        records = self.load(session_id)
        header, items = _split(records)
        if fmt == "json":
            meta = {k: v for k, v in header.items() if k not in ("kind", "id", "started_at")}
            doc = {"id": session_id, "started_at": header.get("started_at"), "meta": meta, "items": items}
            return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
        if fmt == "md":
            lines = [f"# voicecoach session {session_id} ({_day_time(header.get('started_at'))})", ""]
            lines += [f"- {_clock_of(item)} {_describe(item, markdown=True)}" for item in items]
            return "\n".join(lines) + "\n"
        raise UsageError(f"unknown export format {fmt!r}; use md or json")

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.root, 0o700)
            os.chmod(self.root, 0o700)  # only a directory we created; never loosen or tighten a user's own dir
        except FileExistsError:
            pass  # another process won the race; it created it with the same mode
        except OSError as exc:
            raise UsageError(
                f"cannot create the sessions directory {self.root}: {exc.strerror}; set {DATA_DIR_ENV}"
            ) from exc

    def _path_of(self, session_id: str) -> Path:
        # The id becomes a file name: accept only our own format, so "../x" can never escape the directory.
        if not _ID_RE.match(session_id):
            raise _unknown(session_id)
        return self.root / f"{session_id}.jsonl"


# --- CLI handlers (the CLI wires these into argparse and prints what they return) --------------------------


def cmd_sessions_list(store: SessionStore) -> str:
    sessions = store.list()
    if not sessions:
        return f"no sessions yet in {store.root}"
    rows = [f"{'ID':<20}  {'STARTED':<23}  {'ITEMS':>5}  TITLE"]
    rows += [f"{s.id:<20}  {_day_time(s.started_at):<23}  {s.items:>5}  {s.title}" for s in sessions]
    return "\n".join(rows)


def cmd_sessions_show(store: SessionStore, session_id: str) -> str:
    header, items = _split(store.load(session_id))
    lines = [f"session {session_id}, started {_day_time(header.get('started_at'))}, {len(items)} items"]
    lines += [f"{_clock_of(item)}  {_describe(item, markdown=False)}" for item in items]
    return "\n".join(lines)


def cmd_sessions_export(store: SessionStore, session_id: str, fmt: Literal["md", "json"]) -> str:
    return store.export(session_id, fmt)


# --- reading helpers --------------------------------------------------------------------------------------


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError: a torn or garbled line
            log.debug("skipping a garbled line in %s", path)
            continue
        if isinstance(record, dict) and isinstance(record.get("kind"), str):
            records.append(record)
    return records


def _split(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    header = records[0] if records and records[0]["kind"] == "session" else {}
    return header, [r for r in records if r["kind"] != "session"]


def _summarize(path: Path, records: list[dict[str, Any]]) -> SessionSummary:
    header, items = _split(records)
    started = header.get("started_at")
    if not isinstance(started, str):
        # A lost header still leaves the start time in the id (YYYYmmdd-HHMMSS-xxxx).
        day, hms = path.stem.split("-")[:2]
        started = f"{day[:4]}-{day[4:6]}-{day[6:]}T{hms[:2]}:{hms[2:4]}:{hms[4:]}.000Z"
    title = header.get("title")
    if not isinstance(title, str) or not title.strip():
        said = next((i.get("text") for i in items if i["kind"] == "utterance" and i.get("text")), None)
        title = _one_line(str(said))[:60] if said else "(no speech)"
    return SessionSummary(id=path.stem, started_at=started, items=len(items), path=path, title=title)


def _describe(item: Mapping[str, Any], *, markdown: bool) -> str:
    kind = item["kind"]
    text = _one_line(str(item.get("text", "")))
    if kind == "utterance":
        who = "You"
    elif kind == "hint":
        who = f"Coach ({_TIERS.get(str(item.get('tier')), str(item.get('tier', 'hint')))})"
        if item.get("interrupted"):
            text += " _(interrupted)_" if markdown else " [interrupted]"
    elif kind == "interrupt":
        why = _one_line(str(item.get("why", "")))
        return f"_Interrupted ({why})_" if markdown else f"-- interrupted ({why})"
    else:
        who = kind
    return f"**{who}:** {text}" if markdown else f"{who}: {text}"


def _clock_of(item: Mapping[str, Any]) -> str:
    moment = _parse_time(item.get("t"))
    return f"{moment:%H:%M:%S}" if moment else "--:--:--"


def _day_time(value: Any) -> str:
    moment = _parse_time(value)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "unknown time"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unknown(session_id: str) -> UsageError:
    return UsageError(f"no session {session_id!r}; see `voicecoach sessions list` for the ids")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

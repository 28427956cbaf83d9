"""Session files: one crash-safe JSONL transcript per run; find, list, load, export and delete them.

Layout: ``<root>/<id>.jsonl`` where ``root`` is the constructor argument, else ``$VOICECOACH_DATA_DIR/sessions``,
else ``platformdirs.user_data_path("voicecoach") / "sessions"``. The directory is created 0700 and each file
0600 (set explicitly, whatever the umask): transcripts are private speech.

Records, one JSON object a line: the header ``{"kind": "session", "id", **meta, "started_at"}`` first, then the
finished items (``utterance``, ``hint``, ``interrupt``), and, at a clean close, a ``summary`` (``ended_at``,
``duration_s``, ``cost_usd``, ``reason``). :mod:`voicecoach.session_file` writes them (lazily, crash-safe, locked
while open); :mod:`voicecoach.transcript` renders them; this module finds, reads and deletes files.

An id given by a user may be the whole id, a unique prefix of one, or ``last`` (the newest session). Reading
skips torn or garbled lines (the last line of a killed process) instead of failing.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import platformdirs

from .errors import UsageError
from .session_file import DATA_DIR_ENV, SessionFile, iso_utc, utcnow
from .transcript import (
    RunFacts,
    facts_of,
    header_of,
    is_empty,
    items_of,
    list_row,
    render_json,
    render_markdown,
    render_show,
    title_of,
)

log = logging.getLogger(__name__)

LAST = "last"  # the id that names the newest session
_ID_RE = re.compile(r"^(\d{8})-(\d{6})-[0-9a-f]{4}$")
_MAX_LISTED = 8  # candidates named in an "ambiguous prefix" message

# Module-level aliases: inside SessionStore, the name ``list`` is the method, not the builtin.
Records = list[dict[str, Any]]
_Ids = list[str]
_Paths = list[Path]

__all__ = ["DATA_DIR_ENV", "LAST", "SessionFile", "SessionStore", "SessionSummary", "default_root", "iso_utc"]


def default_root() -> Path:
    """Where sessions live when no root is given: ``$VOICECOACH_DATA_DIR/sessions`` or the user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    base = Path(override).expanduser() if override else platformdirs.user_data_path("voicecoach")
    return base / "sessions"


@dataclass(frozen=True)
class SessionSummary:
    id: str
    started_at: str
    items: int
    path: Path
    title: str
    facts: RunFacts  # start, end, duration, cost and model, where the file says


class SessionStore:
    """The directory of session files. Reading (list, load, export) never creates anything."""

    def __init__(self, root: Path | None = None, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.root = root if root is not None else default_root()
        self.clock = clock

    def create(self, meta: Mapping[str, Any]) -> SessionFile:
        """A new run's file: the id (``YYYYmmdd-HHMMSS-xxxx``, UTC) and start time are fixed now; nothing is
        written until the first append."""
        return SessionFile(self.root, meta, self.clock(), clock=self.clock, ensure_root=self.ensure_root)

    def ids(self) -> _Ids:
        """The id of every session file, oldest first (ids sort by their start second)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.jsonl") if _ID_RE.match(p.stem))

    def resolve(self, ref: str) -> str:
        """The session id that ``ref`` names: an id, a unique prefix of one, or ``last`` (the newest).

        Raises :class:`~voicecoach.errors.UsageError` (one line) for no match, an ambiguous prefix (listing the
        candidates) or an empty store.
        """
        if _ID_RE.match(ref) and (self.root / f"{ref}.jsonl").is_file():
            return ref
        ids = self.ids()
        if ref == LAST:
            if not ids:
                raise UsageError(f"no sessions yet in {self.root}, so there is no `last` one")
            return self._newest(ids)
        matches = [i for i in ids if ref and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise _unknown(ref, self.root)
        named = ", ".join(matches[:_MAX_LISTED])
        if len(matches) > _MAX_LISTED:
            named += f" and {len(matches) - _MAX_LISTED} more"
        raise UsageError(f"session id {ref!r} is ambiguous: {len(matches)} sessions start with it ({named}); give more")

    def list(self) -> list[SessionSummary]:
        """Every session, newest first. An unreadable file is skipped, not fatal."""
        summaries = []
        for session_id in self.ids():
            path = self.root / f"{session_id}.jsonl"
            try:
                records = _read_records(path)
            except OSError as exc:
                log.debug("skipping unreadable session %s: %s", path, exc.strerror)
                continue
            summaries.append(_summarize(path, records))
        summaries.sort(key=lambda s: (s.started_at, s.id), reverse=True)
        return summaries

    def load(self, ref: str) -> Records:
        """Every intact record of a session in file order, the header (``kind == "session"``) first.

        ``ref`` is anything :meth:`resolve` takes. Torn or garbled lines (e.g. the last line of a killed process)
        are skipped. An unknown, ambiguous or malformed id raises :class:`~voicecoach.errors.UsageError`.
        """
        path = self.path_of(ref)
        try:
            return _read_records(path)
        except FileNotFoundError as exc:
            raise _unknown(ref, self.root) from exc
        except OSError as exc:
            raise UsageError(f"cannot read the session file {path}: {exc.strerror}") from exc

    def path_of(self, ref: str) -> Path:
        return self.root / f"{self.resolve(ref)}.jsonl"

    def delete(self, ref: str) -> Path:
        """Remove one session's file and return its path. A file a running voicecoach holds is refused."""
        path = self.path_of(ref)
        if self._unlink_unless_held(path, only_if_empty=False) == "held":
            raise UsageError(f"session {path.stem} is still being written by a running voicecoach; stop it first")
        return path

    def delete_empty(self) -> tuple[_Paths, _Paths]:
        """Remove every file in which nothing was said or hinted. Returns (deleted, skipped because in use)."""
        deleted: _Paths = []
        held: _Paths = []
        for session_id in self.ids():
            path = self.root / f"{session_id}.jsonl"
            try:
                if not is_empty(_read_records(path)):
                    continue
            except OSError:
                continue
            outcome = self._unlink_unless_held(path, only_if_empty=True)
            if outcome != "kept":
                (deleted if outcome == "deleted" else held).append(path)
        return deleted, held

    def export(self, ref: str, fmt: str) -> str:
        """The session as Markdown (``md``) or as pretty JSON (``json``); see :mod:`voicecoach.transcript`."""
        session_id = self.resolve(ref)
        records = self.load(session_id)
        if fmt == "md":
            return render_markdown(session_id, records)
        if fmt == "json":
            return render_json(session_id, records)
        raise UsageError(f"unknown export format {fmt!r}; use md or json")

    def ensure_root(self) -> None:
        if self.root.is_dir():
            return
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(self.root, 0o700)
                os.chmod(self.root, 0o700)  # only a directory we created; never loosen or tighten a user's own dir
            except FileExistsError as exc:
                if not self.root.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "a file of that name is in the way") from exc
                # else another process won the race; it created it with the same mode
        except OSError as exc:
            raise UsageError(
                f"cannot create the sessions directory {self.root}: {exc.strerror}; set {DATA_DIR_ENV}"
            ) from exc

    def _newest(self, ids: _Ids) -> str:
        # Ids order runs by their start second; within one second only the header's milliseconds tell.
        second = ids[-1][:15]
        same = [i for i in ids if i.startswith(second)]
        return max(same, key=lambda i: (_started_of(self.root / f"{i}.jsonl"), i))

    def _unlink_unless_held(self, path: Path, *, only_if_empty: bool) -> Literal["deleted", "held", "kept"]:
        """Unlink ``path`` unless a writer holds its lock ("held"), or it is no longer empty when asked ("kept")."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return "deleted"  # someone else was quicker; it is gone either way
        except OSError as exc:
            raise UsageError(f"cannot open the session file {path}: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return "held"
            # Checked again under the lock: a run may have written its first item since we looked.
            if only_if_empty and not is_empty(_read_records(path)):
                return "kept"
            path.unlink(missing_ok=True)
            log.debug("deleted session file %s", path)
            return "deleted"
        except OSError as exc:
            raise UsageError(f"cannot delete the session file {path}: {exc.strerror}") from exc
        finally:
            os.close(fd)


# --- CLI handlers (the CLI wires these into argparse and prints what they return) --------------------------


def cmd_sessions_list(store: SessionStore) -> str:
    sessions = store.list()
    if not sessions:
        return f"no sessions yet in {store.root}"
    rows: list[tuple[str, ...]] = [("ID", "STARTED (UTC)", "DURATION", "COST", "ITEMS", "MODEL", "TITLE")]
    rows += [list_row(s.id, s.facts, s.items, s.title) for s in sessions]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    right = (2, 3, 4)  # numbers line up on the right
    lines = [
        "  ".join(
            cell.rjust(w) if col in right else cell.ljust(w)
            for col, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if any(s.facts.abrupt for s in sessions):
        lines.append("? ended abruptly (killed or crashed): duration up to its last record, cost unknown")
    return "\n".join(lines)


def _cells(row: tuple[str, ...], widths: list[int], right: tuple[int, ...]) -> list[str]:
    return [
        cell.rjust(w) if col in right else cell.ljust(w) for col, (cell, w) in enumerate(zip(row, widths, strict=True))
    ]


def cmd_sessions_show(store: SessionStore, ref: str) -> str:
    session_id = store.resolve(ref)
    return render_show(session_id, store.load(session_id))


def cmd_sessions_export(
    store: SessionStore, ref: str, fmt: str, output: Path | None = None, *, force: bool = False
) -> str:
    """The export as text (``output`` None or ``-``), or written to ``output`` with a line saying so."""
    session_id = store.resolve(ref)
    text = store.export(session_id, fmt)
    if output is None or str(output) == "-":
        return text.removesuffix("\n")
    _write_export(output, text, force=force)
    return f"exported session {session_id} ({fmt}) to {output}"


def cmd_sessions_delete(store: SessionStore, ref: str | None, *, empty: bool) -> str:
    if empty:
        deleted, held = store.delete_empty()
        lines = [f"deleted {p.stem} ({p})" for p in deleted] or [f"no empty sessions in {store.root}"]
        lines += [f"kept {p.stem}: a running voicecoach is writing it" for p in held]
        return "\n".join(lines)
    if ref is None:
        raise UsageError("say which session to delete: an id, a unique prefix, `last`, or --empty")
    path = store.delete(ref)
    return f"deleted {path.stem} ({path})"


def _write_export(output: Path, text: str, *, force: bool) -> None:
    # O_EXCL: the "already exists" check and the creation are one step, so nothing is overwritten by a race.
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(output, flags, 0o600)  # a new export is as private as the session it came from
    except FileExistsError as exc:
        raise UsageError(f"{output} already exists; pass --force to overwrite it, or choose another -o FILE") from exc
    except OSError as exc:
        raise UsageError(f"cannot write the export to {output}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write the export to {output}: {exc.strerror}") from exc


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


def _started_of(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline(65536).decode("utf-8"))
    except (OSError, ValueError):
        return ""
    started = first.get("started_at") if isinstance(first, dict) else None
    return started if isinstance(started, str) else ""


def _summarize(path: Path, records: list[dict[str, Any]]) -> SessionSummary:
    started = header_of(records).get("started_at")
    if not isinstance(started, str):
        # A lost header still leaves the start time in the id (YYYYmmdd-HHMMSS-xxxx).
        day, hms = path.stem.split("-")[:2]
        started = f"{day[:4]}-{day[4:6]}-{day[6:]}T{hms[:2]}:{hms[2:4]}:{hms[4:]}.000Z"
    return SessionSummary(
        id=path.stem,
        started_at=started,
        items=len(items_of(records)),
        path=path,
        title=title_of(records),
        facts=facts_of(records, started_fallback=started),
    )


def _unknown(ref: str, root: Path) -> UsageError:
    return UsageError(f"no session {ref!r} in {root}; `voicecoach sessions list` shows the ids")

"""The events file: every event sent and received, one JSON object per line, secrets redacted.

``{"t": <seconds since start>, "dir": "sent" | "received", "event": {...}}``; an event of a link other than
the main one also has ``"channel"`` (``"them"``: the other side's transcription session). Figures the client measures
(hint latencies, cost) go in the same file as ``"dir": "local"`` with an event of type ``voicecoach.metric``.
Each line is flushed as it is written so a crash loses at most the line being written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, TextIO

from .errors import UsageError
from .redact import redact

Direction = Literal["sent", "received", "local"]


class EventsLog:
    def __init__(self, path: Path, started_at: float) -> None:
        self.path = path
        self.started_at = started_at
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot write the events file {path}: {exc.strerror}") from exc
        self._fh: TextIO | None = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, direction: Direction, event: Any, now: float, channel: str | None = None) -> None:
        if self._fh is None:
            return
        record: dict[str, Any] = {"t": round(now - self.started_at, 6), "dir": direction}
        if channel is not None:
            record["channel"] = channel
        record["event"] = redact(event)
        self._fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

"""Write coach settings back to the TOML config file, touching only its ``[coach]`` table.

The file may hold an ``api_key``, so it is always written with mode 0600, and atomically (a temporary file in
the same directory, then ``os.replace``) so that a crash mid-write never leaves half a config behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from .coach.settings import CoachSettings
from .errors import ConfigError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def save_coach_settings(path: Path, coach: CoachSettings) -> None:
    """Replace the ``[coach]`` table of the TOML file at ``path`` with ``coach``; keep every other key.

    Only the values that differ from :class:`CoachSettings`' defaults are written, so a later release's better
    defaults (e.g. hint instructions) still reach people who once saved a phrase. The file and its parent
    directory are created if missing. Comments and formatting of the existing file are not preserved (tomllib
    does not keep them). A symlinked file is updated where it points. Raises :class:`ConfigError` (one line)
    when the existing file is not valid TOML or cannot be read or written.
    """
    target = Path(os.path.realpath(path))
    document = _read(target)
    table = coach.model_dump(mode="json", exclude_defaults=True)
    if table:
        document["coach"] = table
    else:
        document.pop("coach", None)
    try:
        payload = tomli_w.dumps(document)
    except (TypeError, ValueError) as exc:  # cannot happen for tomllib output; kept as a clear message
        raise ConfigError(f"cannot write config file {path}: {exc}") from exc
    _write_atomically(target, payload, shown=path)
    log.debug("saved [coach] settings to %s (%d keys)", target, len(table))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # Refuse to overwrite a file we could not parse: that would silently drop the user's other settings.
        what = "UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"valid TOML ({exc})"
        # from None: a decode error quotes the file's bytes, and the file may hold api_key.
        raise ConfigError(f"config file {path} is not {what}; fix it before saving settings") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc


def _write_atomically(path: Path, payload: str, *, shown: Path) -> None:
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 already, so the secret is never readable by others.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {shown}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write config file {shown}: {exc.strerror}") from exc

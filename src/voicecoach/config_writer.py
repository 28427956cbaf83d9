"""Write coach settings back to the TOML config file, changing only the values that changed.

The file is the user's: it is edited in place with ``tomlkit`` (a round-trip parser), so its comments, key order,
blank lines and every table the settings screen does not know survive a save; only the changed values' lines
differ. Coach values go to ``[coach]``, or to ``[profiles.NAME]`` when a profile is being edited.

The file may hold an ``api_key``, so it is always written with mode 0600, and atomically (a temporary file in
the same directory, then ``os.replace``) so that a crash mid-write never leaves half a config behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import tomllib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from .coach.settings import CoachSettings
from .errors import ConfigError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
_DEFAULTS = CoachSettings().model_dump(mode="json")


def save_coach_settings(
    path: Path, coach: CoachSettings, *, before: CoachSettings | None = None, profile: str | None = None
) -> dict[str, list[str]]:
    """Write ``coach`` into the file at ``path``: ``[coach]``, or ``[profiles.<profile>]`` when ``profile`` is given.

    With ``before`` (what the values were when the user began editing), only the keys whose value changed since
    are touched: a value set elsewhere (another table, the environment, a flag) and left alone is not copied into
    the file. Without it, every key is compared with the file. A changed key is replaced where it stands (its
    comment kept) or appended to the table. In ``[coach]`` a value equal to :class:`CoachSettings`' default is
    removed rather than written, so a later release's better defaults (e.g. hint instructions) still reach people
    who once saved a phrase; an emptied ``[coach]`` with no comment goes too. Saving for a profile keeps defaults,
    in its table and in ``[coach]`` alike: there they override the profile's own values. Saving for a profile, a
    key that ``[coach]`` also sets is changed in ``[coach]``: the file's ``[coach]`` beats every profile
    (config.load_settings), so in the profile's table the new value would never take effect.

    Returns the keys changed by table (``{"coach": [...], "profiles.interview": [...]}``; nothing is written when
    no key changed). The file and its parent directory are created if missing; a symlinked file is updated where
    it points. Raises :class:`ConfigError` (one line) when the existing file is not valid TOML or cannot be read
    or written.
    """
    target = Path(os.path.realpath(path))
    document = _parse(_read(target), shown=path)
    new = coach.model_dump(mode="json")
    old = before.model_dump(mode="json") if before is not None else None
    base = _table(document, None)
    own = _table(document, profile) if profile is not None else base
    changed: dict[str, list[str]] = {}
    for key, value in new.items():
        if old is not None and old[key] == value:
            continue  # not edited: leave the file as it is, whatever it says
        in_base = profile is None or key in base
        table = base if in_base else own
        # With a profile active a default is written out even in [coach]: removing it would let the profile's
        # own value through instead.
        if _set(table, key, value, keep_defaults=profile is not None):
            changed.setdefault("coach" if in_base else f"profiles.{profile}", []).append(key)
    if not changed:
        return {}
    if "coach" in changed:
        _attach(document, base, None)
    if profile is not None and f"profiles.{profile}" in changed:
        _attach(document, own, profile)
    _write_atomically(target, tomlkit.dumps(document), shown=path)
    log.debug("saved to %s: %s", target, changed)
    return changed


def _set(table: MutableMapping[str, Any], key: str, value: Any, *, keep_defaults: bool) -> bool:
    """Make ``table[key]`` say ``value`` (or drop it, for a default where defaults are not kept); True if changed."""
    present = key in table
    if present and _plain(table[key]) == value:
        return False
    if not keep_defaults and value == _DEFAULTS[key]:
        if present:
            del table[key]
        return present
    table[key] = value
    return True


def _table(document: tomlkit.TOMLDocument, profile: str | None) -> MutableMapping[str, Any]:
    """The table to edit; a new, detached one when the file has none yet (:func:`_attach` adds it if used)."""
    parent: MutableMapping[str, Any] = document
    if profile is not None:
        profiles = document.get("profiles")
        if not isinstance(profiles, MutableMapping):
            return tomlkit.table()
        parent, name = profiles, profile
    else:
        name = "coach"
    found = parent.get(name)
    return found if isinstance(found, MutableMapping) else tomlkit.table()


def _attach(document: tomlkit.TOMLDocument, table: MutableMapping[str, Any], profile: str | None) -> None:
    """Put a new ``table`` into the document if it has keys; drop an emptied ``[coach]``."""
    if profile is None:
        if "coach" not in document:
            if table:
                document["coach"] = table
        elif not table and "#" not in _text(document["coach"]):
            del document["coach"]  # every value is back to its default: no empty [coach] header left behind
        return
    if not table:
        return
    profiles = document.get("profiles")
    if not isinstance(profiles, MutableMapping):
        # A super-table: written as [profiles.NAME] alone, without an empty [profiles] header above it.
        profiles = tomlkit.table(is_super_table=True)
        document["profiles"] = profiles
    if profile not in profiles:
        profiles[profile] = table


def _plain(item: Any) -> Any:
    """A tomlkit value as plain Python (lists, strings, numbers), for comparing with a model dump."""
    return item.unwrap() if hasattr(item, "unwrap") else item


def _text(item: Any) -> str:
    """The item as it is written in the file (tables and values alike)."""
    return str(item.as_string()) if hasattr(item, "as_string") else ""


def _read(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
        # tomllib decides what is valid, as it does when the settings are loaded; tomlkit then keeps the layout.
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # Refuse to overwrite a file we could not parse: that would silently drop the user's other settings.
        what = "UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"valid TOML ({exc})"
        # from None: a decode error quotes the file's bytes, and the file may hold api_key.
        raise ConfigError(f"config file {path} is not {what}; fix it before saving settings") from None
    return text


def _parse(text: str, *, shown: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError:  # valid for tomllib yet not for tomlkit: refuse rather than guess
        raise ConfigError(f"config file {shown} cannot be edited in place; fix it before saving settings") from None


def _write_atomically(path: Path, payload: str, *, shown: Path) -> None:
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 already, so the secret is never readable by others.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {shown}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        # newline="": tomlkit keeps the file's own line endings (CRLF stays CRLF); no translation on the way out.
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write config file {shown}: {exc.strerror}") from exc

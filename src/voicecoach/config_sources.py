"""Where each setting came from: the TOML file, the environment and the flags, as layers with provenance.

:mod:`voicecoach.config` validates the merged layers with pydantic; this module reads them and, when a value is
rejected, says which source gave it. pydantic-settings' own environment source is not used because it cannot do
that: it does not report which variable a value came from, raises an untyped ``SettingsError`` (no variable
name) on a malformed JSON value, accepts comma lists only at the top level, and silently ignores a misspelt
variable. Here every leaf of every layer keeps its origin ("config file PATH", "environment variable NAME",
the flag's name), so an error names the exact source and the full dotted key (``coach.quick_seconds``).

Environment names: ``VOICECOACH_<FIELD>`` for a top-level setting, ``VOICECOACH_<TABLE>__<KEY>`` for a key of a
nested table (``VOICECOACH_COACH__QUICK_SECONDS``), ``VOICECOACH_<TABLE>`` for a whole table as a JSON object, plus
the aliases in :data:`ENV_ALIASES`. Lists take ``a,b,c`` or a JSON list (``["thanks, got it", "stop"]``). An empty
variable counts as unset. Names are matched case-insensitively.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import ConfigError

ENV_PREFIX = "VOICECOACH_"
NESTED = "__"
# Other names a setting is read from, in order of precedence after VOICECOACH_<FIELD>.
ENV_ALIASES: dict[str, tuple[str, ...]] = {"api_key": ("OPENAI_API_KEY",), "base_url": ("OPENAI_BASE_URL",)}
# VOICECOACH_* variables that are not settings (read elsewhere); anything else with the prefix is a mistake.
OTHER_ENV_VARS: dict[str, str] = {
    "VOICECOACH_DATA_DIR": "where saved sessions live (default: the user data dir)",
    "VOICECOACH_WRITE_DOCS": "tests only: also write docs/screenshot.svg",
    "VOICECOACH_CTL_CHANNEL": "tests and unusual systems: voicecoach ctl over tcp (loopback) or unix (socket)",
}

Path_ = tuple[str | int, ...]


@dataclass
class Layer:
    """Values (nested dicts) and, for every node path in them, the source that gave it."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)

    def set(self, path: tuple[str, ...], value: Any, origin: str) -> None:
        node = self.values
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
                self.origins.setdefault(path[: i + 1], origin)
            node = child
        node[path[-1]] = value
        _stamp(self.origins, path, value, origin)


def _stamp(origins: dict[Path_, str], path: Path_, value: Any, origin: str) -> None:
    origins[path] = origin
    if isinstance(value, dict):
        for key, child in value.items():
            _stamp(origins, (*path, str(key)), child, origin)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _stamp(origins, (*path, i), child, origin)


def layer_of(values: Mapping[str, Any], origin: str) -> Layer:
    """A layer whose every value has the same origin (the config file)."""
    layer = Layer(dict(values))
    for key, value in values.items():
        _stamp(layer.origins, (key,), value, origin)
    return layer


def merge(*layers: Layer) -> Layer:
    """Later layers win; tables merge key by key, and a replaced value takes its origins with it."""
    out = Layer()
    for layer in layers:
        _merge_into(out, out.values, layer.values, layer.origins, ())
    return out


def _merge_into(
    out: Layer, target: dict[str, Any], top: Mapping[str, Any], origins: Mapping[Path_, str], prefix: Path_
) -> None:
    for key, value in top.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            out.origins[path] = origins.get(path, out.origins.get(path, ""))
            _merge_into(out, target[key], value, origins, path)
            continue
        for old in [p for p in out.origins if p[: len(path)] == path]:
            del out.origins[old]
        target[key] = value
        for p, origin in origins.items():
            if p[: len(path)] == path:
                out.origins[p] = origin


def origin_of(origins: Mapping[Path_, str], loc: Iterable[str | int]) -> str:
    """The source of the value at ``loc`` (the longest known prefix), else the default."""
    parts = tuple(loc)
    for n in range(len(parts), 0, -1):
        if parts[:n] in origins:
            return origins[parts[:n]]
    return "the default"


def dotted(loc: Iterable[str | int]) -> str:
    """``("coach", "quick_phrases", 0)`` → ``coach.quick_phrases[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, str) and not part.isprintable():  # a key may hold anything, a newline included:
            part = repr(part)  # quoted, so that the error stays one line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name a typo most likely meant (case-insensitive), or None."""
    by_lower = {k.lower(): k for k in known}
    # A truncated name (token_server.rate) means its longer form, whatever difflib's ratio says.
    longer = sorted(k for k in by_lower if k.startswith(name.lower()) and k != name.lower())
    close = longer or difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


# --- the TOML file ----------------------------------------------------------------------------------------


def read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    """The file's table, ``{}`` when it is missing and not ``required``; every failure is one ConfigError line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        if required:
            raise ConfigError(f"config file {path} does not exist; create it or drop --config") from exc
        return {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None  # the decode error quotes the file's bytes, and the file may hold api_key
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}; see https://toml.io") from exc


# --- the environment --------------------------------------------------------------------------------------


def env_names(model: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    """Every environment variable that sets a value → its path, e.g. ``VOICECOACH_COACH__QUICK_SECONDS``."""
    names: dict[str, tuple[str, ...]] = {}
    for name, info in model.model_fields.items():
        names[ENV_PREFIX + name.upper()] = (name,)
        nested = nested_model(info.annotation)
        if nested is not None:
            for sub in nested.model_fields:
                names[f"{ENV_PREFIX}{name.upper()}{NESTED}{sub.upper()}"] = (name, sub)
        for alias in ENV_ALIASES.get(name, ()):
            names[alias] = (name,)
    return names


def read_env(model: type[BaseModel], environ: Mapping[str, str] | None = None) -> Layer:
    """The settings given in the environment; an unknown ``VOICECOACH_*`` name or a malformed list is an error."""
    environ = os.environ if environ is None else environ
    names = env_names(model)
    given = {name.upper(): (name, value) for name, value in environ.items()}
    layer = Layer()
    # Aliases first, so that VOICECOACH_<FIELD> (set afterwards) wins over e.g. OPENAI_API_KEY.
    order = sorted(names, key=lambda n: not any(n in a for a in ENV_ALIASES.values()))
    for upper in order:
        if upper not in given:
            continue
        shown, raw = given[upper]
        if raw == "":
            continue
        path = names[upper]
        origin = f"environment variable {shown}"
        check_text(raw, origin, path)
        layer.set(path, _decode_env(model, path, raw, origin), origin)
    for upper, (shown, _) in sorted(given.items()):
        if upper.startswith(ENV_PREFIX) and upper not in names and upper not in OTHER_ENV_VARS:
            # Compare without the shared prefix, which would make every name look close.
            known = {n.removeprefix(ENV_PREFIX): n for n in [*names, *OTHER_ENV_VARS] if n.startswith(ENV_PREFIX)}
            match = closest(upper.removeprefix(ENV_PREFIX), known)
            hint = f"; did you mean {known[match]}?" if match else ""
            raise ConfigError(
                f"unknown environment variable {shown}{hint} "
                f"(settings are {ENV_PREFIX}<KEY> or {ENV_PREFIX}<TABLE>{NESTED}<KEY>; unset it or fix the name)"
            )
    return layer


def _decode_env(model: type[BaseModel], path: tuple[str, ...], raw: str, origin: str) -> Any:
    annotation: Any = model.model_fields[path[0]].annotation
    if len(path) == 2:
        nested = nested_model(annotation)
        assert nested is not None  # env_names only makes two-part paths for nested tables
        annotation = nested.model_fields[path[1]].annotation
    key = dotted(path)
    if nested_model(annotation) is not None or _is_dict(annotation):
        # A table of tables (profiles) is a JSON object too, one level deeper.
        example = '{"interview": {"quick_window": 4}}' if _is_dict(annotation) else '{"quick_window": 4}'
        value = _json(raw, origin, key, f"a JSON object like {example}")
        if not isinstance(value, dict):
            raise ConfigError(f"invalid {key} from {origin}: must be a JSON object like {example}")
        return value
    if _is_list(annotation):
        if raw.lstrip().startswith("["):
            return _json(raw, origin, key, 'a comma-separated list (a,b) or a JSON list (["a", "b"])')
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _json(raw: str, origin: str, key: str, allowed: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        # from None: the decode error carries the whole value (the document), which may hold a secret.
        raise ConfigError(f"invalid {key} from {origin}: not valid JSON ({reason}); give {allowed}") from None


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a nested table field, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_dict(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_dict(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin is dict


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin in (list, tuple, set, frozenset)


# --- flags ------------------------------------------------------------------------------------------------


def flag_layer(overrides: Mapping[str, Any], flag_names: Mapping[str, str]) -> Layer:
    """Command-line values (``None`` = not given); nested tables as dicts. Origins: the flag's name."""
    layer = Layer()

    def add(values: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in values.items():
            path = (*prefix, key)
            if value is None:
                continue
            if isinstance(value, dict):
                add(value, path)
                continue
            dotted_key = dotted(path)
            origin = flag_names.get(dotted_key) or "--" + key.replace("_", "-")
            check_text(value, origin, path)
            layer.set(path, value, origin)

    add(overrides, ())
    return layer


# --- text that cannot be used anywhere ------------------------------------------------------------------


def check_text(value: Any, origin: str, path: Path_) -> None:
    """Refuse NUL characters and undecodable bytes (surrogate escapes from a non-UTF-8 argv or environment):
    they would fail much later, in a file name or a JSON payload, far from their source."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(f"invalid {dotted(path)} from {origin}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"invalid {dotted(path)} from {origin}: not valid UTF-8 text; check the terminal's encoding"
            ) from None  # the encode error quotes the value, which may be the API key
    elif isinstance(value, dict):
        for key, child in value.items():
            check_text(key, origin, path)
            check_text(child, origin, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for i, child in enumerate(value):
            check_text(child, origin, (*path, i))

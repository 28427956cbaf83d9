"""One line for a settings error: which key, where its value came from, what is allowed (config.load_settings).

pydantic's own message quotes the input, which may be the API key, so the line is built from the error's
location and message alone, and the origin each value was stamped with (:mod:`voicecoach.config_sources`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .config_sources import Layer, closest, dotted, env_names, nested_model, origin_of
from .profiles import PROFILE_NAME, Profile, settings_key

PROFILE_NAME_RULE = "profile name {name} must be 1-40 letters, digits, '-' or '_' (a bare [profiles.NAME] key)"


def describe(exc: ValidationError, merged: Layer, model: type[BaseModel]) -> str:
    """One line for the first error: which key, where its value came from, what is allowed."""
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    detail = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a rule across fields (model validator): its message names them; say where each came from
        named = [f for f in model.model_fields if re.search(rf"\b{f}\b", detail)]
        sources = "; ".join(f"{f} from {origin_of(merged.origins, (f,))}" for f in named)
        return f"invalid settings: {detail}" + (f" ({sources})" if sources else "")
    if loc[0] == "profiles":
        return _describe_profiles(error["type"], loc, detail, merged)
    key = dotted(loc)
    origin = origin_of(merged.origins, loc)
    if origin.startswith("profile "):  # a value of the active profile: "... in profile 'interview' (config file X)"
        return f"invalid {key} in {origin}: {detail}"
    if error["type"] == "extra_forbidden":
        parent = loc[:-1]
        known = _keys_at(model, parent)
        # A key put in the wrong table (quick_seconds at the top) finds its place (coach.quick_seconds);
        # else the nearest key of the same table; else of any table.
        leaf = str(loc[-1])
        tables = {name for name, info in model.model_fields.items() if nested_model(info.annotation) is not None}
        elsewhere = {k.rsplit(".", 1)[-1]: k for k in _dotted_keys(model) if k not in tables}
        near = closest(leaf, known)
        match = elsewhere.get(leaf) or (dotted((*parent, near)) if near else None)
        match = match or elsewhere.get(closest(leaf, elsewhere) or "")
        hint = (
            f"; did you mean {match}?"
            if match
            else (f"; known keys{' of [' + dotted(parent) + ']' if parent else ''}: {', '.join(sorted(known))}")
        )
        return f"unknown setting {key} in {origin}{hint}"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        detail = "must be a table of settings (a [section] in the file, a JSON object in a variable)"
    return f"invalid {key} from {origin}: {detail}"


def _describe_profiles(kind: str, loc: tuple[str | int, ...], detail: str, merged: Layer) -> str:
    """One line for an error in the user's ``profiles`` tables, naming the profile and where it came from."""
    origin = origin_of(merged.origins, loc)
    not_a_table = ("model_type", "model_attributes_type", "dict_type")
    if len(loc) == 1:
        if kind in not_a_table:
            detail = "must be a table of profiles ([profiles.NAME] tables in the file, a JSON object in a variable)"
        return f"invalid profiles from {origin}: {detail}"
    name = str(loc[1])
    if not PROFILE_NAME.fullmatch(name):  # (pydantic checks a table's values before the names' validator)
        return f"invalid profiles from {origin}: {PROFILE_NAME_RULE.format(name=repr(name))}"
    if len(loc) == 2:
        if kind in not_a_table:
            detail = f"must be a table of settings ([profiles.{name}] in the file)"
        return f"invalid profile {name!r} from {origin}: {detail}"
    leaf = str(loc[2])
    if kind == "extra_forbidden":
        known = [k for k in Profile.model_fields if k != "description"]
        near = closest(leaf, known)
        hint = f"did you mean {near}?" if near else f"a profile sets: {', '.join(known)}"
        shown = leaf if leaf.isidentifier() else repr(leaf)  # a key may hold anything, a newline included
        return f"unknown setting {shown} in profile {name!r} ({origin}); {hint}"
    key = settings_key(leaf) + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[3:])
    return f"invalid {key} in profile {name!r} ({origin}): {detail}"


def _keys_at(root: type[BaseModel], parent: tuple[str | int, ...]) -> list[str]:
    model: Any = root
    for part in parent:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        model = nested_model(info.annotation) if info is not None else None
        if model is None:
            return []
    return list(model.model_fields)


def _dotted_keys(model: type[BaseModel]) -> list[str]:
    return [dotted(path) for path in env_names(model).values()]

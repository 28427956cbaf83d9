"""Profiles: named sets of coach settings for a situation (an interview, a meeting, a study session).

A profile may set any coach setting (``[coach]``) plus ``voice`` and the top-level ``instructions``. Three are
built in (:data:`BUILTIN_PROFILES`); a ``[profiles.NAME]`` table in the config file adds one, or overrides a
built-in field by field. Where a profile sits among the other sources (defaults < profile < config file <
environment < flags) is :func:`voicecoach.config.load_settings`' business; this module says what a profile is,
turns the active one into a layer of values with their origins, and lists them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .coach.settings import (
    ContextFiles,
    ContextLimit,
    Cooldown,
    HintSeconds,
    Label,
    Phrases,
    Window,
    WindowMode,
)
from .config_sources import Layer, Path_

# Bare TOML keys, so that `[profiles.NAME]` needs no quotes and the name is one short word on the command line.
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CONFIG_FILE = re.compile(r"config file (.+)$")
# Keys of a profile that are top-level settings; every other key (but the description) is a coach setting.
TOP_LEVEL_KEYS = ("voice", "instructions")


class Profile(BaseModel):
    """One profile: every field None (not set) unless the profile sets it. Bounds are CoachSettings' own."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""  # one line for `voicecoach profiles`
    voice: Annotated[str, Field(min_length=1)] | None = None
    instructions: str | None = None
    quick_phrases: Phrases | None = None
    full_phrases: Phrases | None = None
    interrupt_phrases: Phrases | None = None
    quick_window: Window | None = None
    full_window: Window | None = None
    quick_seconds: HintSeconds | None = None
    full_seconds: HintSeconds | None = None
    quick_instructions: str | None = None
    full_instructions: str | None = None
    cooldown_seconds: Cooldown | None = None
    mute_mic_while_speaking: bool | None = None
    window_mode: WindowMode | None = None
    them_label: Label | None = None
    context_files: ContextFiles | None = None
    context_limit_tokens: ContextLimit | None = None

    def overrides(self) -> dict[str, Any]:
        """The settings this profile sets, shaped like the settings (``{"voice": ..., "coach": {...}}``)."""
        out: dict[str, Any] = {}
        for key, value in self.model_dump(exclude_none=True, exclude={"description"}).items():
            path = settings_path(key)
            if len(path) == 1:
                out[key] = value
            else:
                out.setdefault("coach", {})[key] = value
        return out


def settings_path(key: str) -> tuple[str, ...]:
    """Where a profile's key lives in the settings: ``voice`` → ``("voice",)``, ``quick_window`` →
    ``("coach", "quick_window")``."""
    return (key,) if key in TOP_LEVEL_KEYS else ("coach", key)


def settings_key(key: str) -> str:
    """A profile key as the settings name it (``coach.quick_window``), for messages."""
    return ".".join(settings_path(key))


# --- the built-in profiles --------------------------------------------------------------------------------
# Written for the transcript the hint request carries: "You: ..." lines are the person coached, lines under
# another label (them_label, "Them" unless set) are the other side of the call, "Coach: ..." lines earlier hints.
# Context files (a CV, an agenda, course notes) come before the transcript. Hints are spoken into one ear, so
# every instruction asks for speech: short, no lists, no headings.

_WHO = (
    'Lines marked "You" are the person you coach; lines under another name are the other side of the call; '
    '"Coach" lines are your earlier hints. '
)
_SPOKEN = "Answer in the language of the conversation. Speak naturally: no lists, no headings, no preamble."

BUILTIN_PROFILES: dict[str, Profile] = {
    "interview": Profile(
        description="job interviews: STAR answers from your CV and the job description, never invented facts",
        quick_instructions=(
            "You coach a job candidate during an interview. "
            + _WHO
            + "Give the candidate ONE short answer to the interviewer's last question, in the first person, ready "
            "to say aloud: the situation in a few words, what the candidate did, and the result. Use only facts "
            "from the candidate's context files (CV, job description, notes) and the transcript; never invent an "
            "employer, a title, a date, a number or a result. If a needed fact is not there, give a cue instead, "
            'such as "check the CV: your last project\'s results". At most two sentences. ' + _SPOKEN
        ),
        full_instructions=(
            "You coach a job candidate during an interview. "
            + _WHO
            + "Walk the candidate through an answer to the interviewer's last question in the STAR shape: the "
            "Situation, the Task, the Action the candidate took and the Result, one or two sentences each, in the "
            "first person, ready to say aloud; then one sentence that ties the result to what the role needs (from "
            "the job description, if there is one). Take the example from the candidate's context files (CV, job "
            "description, notes) or from the transcript; never invent an employer, a title, a date, a number or a "
            "result. Where a fact is missing, say which part of the CV to check rather than making it up. " + _SPOKEN
        ),
    ),
    "meeting": Profile(
        description="work meetings: decisions, numbers and next steps",
        quick_instructions=(
            "You coach a person in a work meeting. "
            + _WHO
            + "Give ONE short, concrete thing the person can say right now that moves the meeting on: answer the "
            "last question put to them, state a decision, pin down a number or a date, or name the next step and "
            "who owns it. Quote numbers, names and dates exactly as the transcript or the context files (agenda, "
            "notes) give them; never invent one, nor a decision or a commitment. At most two sentences. " + _SPOKEN
        ),
        full_instructions=(
            "You coach a person in a work meeting. "
            + _WHO
            + "Say where the discussion stands: what has been decided, the numbers and dates that matter (exactly "
            "as the transcript or the context files give them), what is still open, and the next steps with who "
            "owns each. Then suggest the one thing the person should say next. Never invent a number, a name, a "
            "decision or a commitment; where something is unclear, suggest the question to ask. " + _SPOKEN
        ),
    ),
    "study": Profile(
        description="studying: a plain explanation, then one check question",
        quick_instructions=(
            "You are a tutor for a person who is studying (a lecture, a class, a study group, a video). "
            + _WHO
            + "Explain the point being discussed in one or two plain sentences, with a small example if it helps, "
            "then ask ONE short check question the person can answer in their head; do not answer it. Stay true to "
            "the context files (course notes) and the transcript; if they disagree, say so. " + _SPOKEN
        ),
        full_instructions=(
            "You are a tutor for a person who is studying (a lecture, a class, a study group, a video). "
            + _WHO
            + "Explain the current topic step by step: the idea in plain words, why it holds, one worked example, "
            "and the mistake people most often make. End with ONE check question that tests understanding rather "
            "than memory, and do not answer it. Stay true to the context files (course notes) and the transcript; "
            "if they disagree, or you are not sure, say so. " + _SPOKEN
        ),
    ),
}


class HasProfiles(Protocol):
    @property
    def profiles(self) -> Mapping[str, Profile]: ...


def available_profiles(settings: HasProfiles) -> dict[str, Profile]:
    """Every profile by name: the built-ins, then the user's tables (a built-in's name overrides its fields)."""
    out = dict(BUILTIN_PROFILES)
    for name, user in settings.profiles.items():
        base = out.get(name)
        out[name] = base.model_copy(update=user.model_dump(exclude_unset=True)) if base else user
    return out


def profile_names(user: Mapping[str, Any] | None) -> list[str]:
    """The known profile names, built-ins first, given the user's (raw) ``profiles`` table."""
    names = list(BUILTIN_PROFILES)
    # A name that breaks the rule is reported by the validation of the table; it is no profile to choose.
    names += sorted(n for n in (user or {}) if isinstance(n, str) and PROFILE_NAME.fullmatch(n))
    return list(dict.fromkeys(names))


# --- the active profile as a layer --------------------------------------------------------------------------


def profile_origin(name: str, source: str) -> str:
    """How a profile's value is named in a message: ``profile 'interview' (config file /x/config.toml)``."""
    return f"profile {name!r} ({source})"


def profile_layer(name: str, user: Any, user_origins: Mapping[Path_, str]) -> Layer:
    """The values profile ``name`` sets: the built-in's, then the user's table over them, key by key.

    ``user`` is the raw ``profiles`` table (unvalidated: anything a file or variable held) and ``user_origins``
    where each of its values came from. What is not a table, and unknown keys, are left out here: the
    validation of the ``profiles`` setting reports them, naming the profile.
    """
    layer = Layer()
    builtin = BUILTIN_PROFILES.get(name)
    if builtin is not None:
        for key, value in builtin.model_dump(exclude_none=True, exclude={"description"}).items():
            layer.set(settings_path(key), value, profile_origin(name, "built-in"))
    table = user.get(name) if isinstance(user, Mapping) else None
    if isinstance(table, Mapping):
        for key, value in table.items():
            if isinstance(key, str) and key in Profile.model_fields and key != "description":
                source = user_origins.get(("profiles", name, key), "the settings")
                layer.set(settings_path(key), value, profile_origin(name, source))
    return layer


# --- paths in a config file are relative to it ----------------------------------------------------------------


def resolve_config_paths(document: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``document`` with the relative ``context_files`` of ``[coach]`` and of every ``[profiles.NAME]`` made
    relative to ``base`` (the config file's directory). Anything that is not a list of strings is left for the
    validation to reject."""
    out = dict(document)

    def resolved(table: Any) -> Any:
        if not isinstance(table, Mapping) or not isinstance(table.get("context_files"), list):
            return table
        files = [_relative_to(f, base) if isinstance(f, str) else f for f in table["context_files"]]
        return {**table, "context_files": files}

    if "coach" in out:
        out["coach"] = resolved(out["coach"])
    if isinstance(out.get("profiles"), Mapping):
        out["profiles"] = {name: resolved(table) for name, table in out["profiles"].items()}
    return out


def _relative_to(name: str, base: Path) -> str:
    if not name.strip() or "\x00" in name:
        return name  # the validation says what is wrong with it, naming the file it came from
    # os.path.expanduser leaves an unknown ~user as it is (Path.expanduser would raise).
    path = Path(os.path.expanduser(name))
    return str(path if path.is_absolute() else base / path)


# --- voicecoach profiles ---------------------------------------------------------------------------------------


def format_profiles(
    profiles: Mapping[str, Profile],
    sources: Mapping[str, str],
    active: str | None,
    active_origin: str,
    *,
    as_json: bool = False,
) -> str:
    """The listing of ``voicecoach profiles``: one row per profile (name, source, description), ``*`` marking
    the active one, and a last line saying where that choice came from. ``as_json``: the same as a JSON object,
    each profile with the settings it sets."""
    if as_json:
        rows = [
            {
                "name": name,
                "source": sources.get(name, "built-in"),
                "active": name == active,
                "description": profile.description,
                "settings": profile.model_dump(mode="json", exclude_none=True, exclude={"description"}),
            }
            for name, profile in profiles.items()
        ]
        return json.dumps({"active": active, "active_from": active_origin, "profiles": rows}, indent=2)
    # The table says "config file"; its path, which would make the column as wide as the screen, comes after.
    short = {n: _CONFIG_FILE.sub("config file", sources.get(n, "built-in")) for n in profiles}
    files = sorted({m.group(1) for n in profiles if (m := _CONFIG_FILE.search(sources.get(n, "")))})
    width = max(len(n) for n in [*profiles, "NAME"])
    source_width = max(len(s) for s in [*short.values(), "SOURCE"])
    lines = [f"  {'NAME':<{width}}  {'SOURCE':<{source_width}}  DESCRIPTION"]
    for name, profile in profiles.items():
        mark = "*" if name == active else " "
        lines.append(f"{mark} {name:<{width}}  {short[name]:<{source_width}}  {profile.description or '-'}".rstrip())
    lines += [f"config file: {path}" for path in files]
    if active is None:
        lines.append(
            "no profile is active: the [coach] settings apply as they are; choose one with --profile NAME, "
            'VOICECOACH_PROFILE or profile = "NAME" in the config file'
        )
    else:
        lines.append(f"* active: {active} (from {active_origin})")
    return "\n".join(lines)

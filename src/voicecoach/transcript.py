"""A session file's records as text for people: the run's facts, ``sessions show``, Markdown and JSON export.

Pure: records in (as :meth:`voicecoach.store.SessionStore.load` returns them), strings out; no I/O, no clock.

The facts of a run (start, end, duration, cost, model) come from two records: the header (``kind ==
"session"``: ``started_at`` and ``model``) and the summary that a clean close writes last (``kind ==
"summary"``: ``ended_at``, ``duration_s``, ``cost_usd``, ``reason``). A file without a summary (the process was
killed, or crashed) still renders: its end is the time of its last record and it is marked "ended abruptly";
its cost is unknown, because it was only known to the process that died.

Two speakers: an utterance names its speaker (``"speaker": "them"``, absent for the user) and, where it is a
setting, the label a reader knows them by (``"label": "Interviewer"``). The records are written as transcripts
finish, which for two channels is not the order things were said, so every rendering lists the items by when
they began (``started_at``, else the time they were written; ties keep file order).

A hint cut short is shown as the words that were played, then ``[interrupted]``; its record keeps everything
that was generated as ``generated_text`` (with ``played_ms`` and ``trim``, how the two were matched). When the
hint had already been written whole, the cut comes as a second ``hint`` record that ``amends`` the first (by its
key): :func:`items_of` applies it there. Files from before either field read as they always did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Record = Mapping[str, Any]

TIER_LABELS = {"quick": "quick hint", "full": "full guidance"}
SPEAKERS = {"you": "You", "them": "Them"}  # as coach.labels names them; a record's own "label" wins
SPOKEN = ("utterance", "hint")  # the kinds that make a session worth keeping (see `sessions delete --empty`)
_NOT_ITEMS = ("session", "summary")


@dataclass(frozen=True)
class RunFacts:
    """What is known about one run; ``None`` where the file does not say."""

    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    cost_usd: float | None
    model: str | None
    reason: str | None  # why it ended, from the summary
    abrupt: bool  # no summary record: ended_at is the last record's time


def header_of(records: Sequence[Record]) -> Record:
    return records[0] if records and records[0].get("kind") == "session" else {}


def items_of(records: Sequence[Record]) -> list[Record]:
    """The transcript items (utterances, hints, interrupts, unknown kinds) without the header and the summary,
    in the order they were spoken (see the module docstring)."""
    items = _amended([r for r in records if r.get("kind") not in _NOT_ITEMS])
    moments = [parse_time(r.get("started_at")) or parse_time(r.get("t")) for r in items]
    if any(m is None for m in moments):
        return items  # a hand-edited file without times: file order is all there is
    order = sorted(range(len(items)), key=lambda i: (moments[i], i))
    return [items[i] for i in order]


def _amended(items: list[Record]) -> list[Record]:
    """Each amendment (a record with ``amends``: a key) folded into the record it names, which keeps its place;
    an amendment whose record is missing (a torn line) stands in for it."""
    if not any("amends" in r for r in items):  # the usual file: nothing to do
        return items
    at = {r["key"]: i for i, r in enumerate(items) if isinstance(r.get("key"), str) and "amends" not in r}
    out: list[Record | None] = list(items)
    for i, record in enumerate(items):
        target = record.get("amends")
        if not isinstance(target, str) or target not in at:
            continue
        j = at[target]
        base = out[j]
        assert base is not None
        changes = {k: v for k, v in record.items() if k not in ("key", "amends", "t", "started_at")}
        out[j], out[i] = {**base, **changes}, None
    return [r for r in out if r is not None]


def is_empty(records: Sequence[Record]) -> bool:
    """Nothing was said or hinted (a header, interrupts or a summary alone do not count)."""
    return not any(r.get("kind") in SPOKEN for r in records)


def facts_of(records: Sequence[Record], *, started_fallback: str | None = None) -> RunFacts:
    header = header_of(records)
    summary = next((r for r in reversed(records) if r.get("kind") == "summary"), None)
    started = _text(header.get("started_at")) or started_fallback
    if summary is not None:
        ended = _text(summary.get("ended_at")) or _text(summary.get("t"))
        duration = _number(summary.get("duration_s"))
        cost = _number(summary.get("cost_usd"))
        reason = _text(summary.get("reason"))
    else:
        last = records[-1] if records else {}
        ended = _text(last.get("t")) or _text(last.get("started_at"))
        duration, cost, reason = None, None, None
    if duration is None:
        start, end = parse_time(started), parse_time(ended)
        duration = max(0.0, (end - start).total_seconds()) if start and end else None
    return RunFacts(started, ended, duration, cost, _text(header.get("model")), reason, abrupt=summary is None)


def title_of(records: Sequence[Record]) -> str:
    title = header_of(records).get("title")
    if isinstance(title, str) and title.strip():
        return one_line(title)
    said = next((r.get("text") for r in items_of(records) if r.get("kind") == "utterance" and r.get("text")), None)
    return one_line(str(said))[:60] if said else "(no speech)"


# --- renderings -------------------------------------------------------------------------------------------


def render_show(session_id: str, records: Sequence[Record]) -> str:
    items = items_of(records)
    count = f"{len(items)} item" + ("" if len(items) == 1 else "s")
    lines = [f"session {session_id}, started {day_time(header_of(records).get('started_at'))}, {count}"]
    lines.append(_facts_line(facts_of(records)))
    lines += [f"{clock_of(item)}  {describe(item, markdown=False)}" for item in items]
    return "\n".join(lines)


def render_markdown(session_id: str, records: Sequence[Record]) -> str:
    facts = facts_of(records)
    lines = [f"# voicecoach session {session_id} ({day_time(facts.started_at)})", ""]
    lines.append(f"- Model: {facts.model or 'unknown'}")
    lines.append(f"- Started: {day_time(facts.started_at)}")
    lines.append(f"- Ended: {_ended(facts)}")
    lines.append(f"- Duration: {format_duration(facts.duration_s)}")
    lines.append(f"- Cost: {format_cost(facts.cost_usd)}")
    lines.append("")
    lines += [f"- {clock_of(item)} {describe(item, markdown=True)}" for item in items_of(records)]
    return "\n".join(lines) + "\n"


def render_json(session_id: str, records: Sequence[Record]) -> str:
    header = header_of(records)
    facts = facts_of(records)
    summary = next((r for r in reversed(records) if r.get("kind") == "summary"), None)
    doc = {
        "id": session_id,
        "model": facts.model,
        "started_at": facts.started_at,
        "ended_at": facts.ended_at,
        "duration_s": facts.duration_s,
        "cost_usd": facts.cost_usd,
        "ended_abruptly": facts.abrupt,
        "end_reason": facts.reason,
        "meta": {k: v for k, v in header.items() if k not in ("kind", "id", "started_at")},
        "summary": {k: v for k, v in summary.items() if k != "kind"} if summary is not None else None,
        "items": items_of(records),
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def list_row(session_id: str, facts: RunFacts, items: int, title: str) -> tuple[str, ...]:
    """One row of ``sessions list``: id, start, duration (``?`` marks an abrupt end), cost, items, model, title."""
    duration = format_duration(facts.duration_s, short=True) + ("?" if facts.abrupt else "")
    cost = f"${facts.cost_usd:.4f}" if facts.cost_usd is not None else "-"
    started = day_time(facts.started_at).removesuffix(" UTC")
    return (session_id, started, duration, cost, str(items), facts.model or "-", title)


def describe(item: Record, *, markdown: bool) -> str:
    kind = item.get("kind")
    text = one_line(str(item.get("text", "")))
    if kind == "utterance":
        who = speaker_of(item)
    elif kind == "hint":
        who = f"Coach ({TIER_LABELS.get(str(item.get('tier')), str(item.get('tier', 'hint')))})"
        if item.get("interrupted"):  # the text is what was played, up to where it was cut
            text = (text + (" _(interrupted)_" if markdown else " [interrupted]")).lstrip()
    elif kind == "interrupt":
        why = one_line(str(item.get("why", "")))
        return f"_Interrupted ({why})_" if markdown else f"-- interrupted ({why})"
    else:
        who = str(kind)
    return f"**{who}:** {text}" if markdown else f"{who}: {text}"


def speaker_of(item: Record) -> str:
    """Who said an utterance: its label, else the speaker's name ("You", "Them"), else the speaker capitalized."""
    label = item.get("label")
    if isinstance(label, str) and label.strip():
        return one_line(label)
    speaker = str(item.get("speaker", "you"))
    return SPEAKERS.get(speaker, speaker.capitalize())


# --- small formatting helpers -----------------------------------------------------------------------------


def format_duration(seconds: float | None, *, short: bool = False) -> str:
    if seconds is None:
        return "-" if short else "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if short else f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes}m{secs:02d}s" if short else f"{minutes} min {secs:02d} s"
    return f"{secs}s" if short else f"{secs} s"


def format_cost(cost: float | None) -> str:
    return f"${cost:.4f} (estimated)" if cost is not None else "unknown (the run ended abruptly)"


def clock_of(item: Record) -> str:
    # When the words were said, if the journal knew it; else when the item was finished.
    moment = parse_time(item.get("started_at")) or parse_time(item.get("t"))
    return f"{moment:%H:%M:%S}" if moment else "--:--:--"


def day_time(value: Any) -> str:
    moment = parse_time(value)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "unknown time"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A naive time in a hand-edited file is taken as UTC (what we write), not as the reader's local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def one_line(text: str) -> str:
    return " ".join(text.split())


def _ended(facts: RunFacts) -> str:
    if facts.abrupt:
        return f"{day_time(facts.ended_at)}, ended abruptly (killed or crashed; the time of its last record)"
    return day_time(facts.ended_at) + (f" ({one_line(facts.reason)})" if facts.reason else "")


def _facts_line(facts: RunFacts) -> str:
    cost = f"${facts.cost_usd:.4f}" if facts.cost_usd is not None else "cost unknown"
    return f"model {facts.model or 'unknown'}; ended {_ended(facts)}; {format_duration(facts.duration_s)}; {cost}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    # bool is an int subclass (a "true" cost is not a cost); NaN and infinities are not costs either.
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None

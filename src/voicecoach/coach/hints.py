"""The whole hint prompt in one place: the hint record, the request, the window it carries, claiming the response
that answers it, and the history carried over to a fresh session.

Pure: no I/O and no clock. A hint is an out-of-band ``response.create`` (``conversation: "none"``) whose
``input`` is the last N transcript messages (N = ``quick_window`` or ``full_window``), so its cost is bounded by
N and not by the meeting's length. The request names itself in ``metadata`` (tier and number); the server
echoes that on ``response.created``, which is how :func:`claim` tells our responses from anyone else's.

The prompt cache (realtime-protocol.md §9: cached input costs a tenth) serves the longest *prefix* a request
shares with an earlier one, so the request is laid out stable part first: the instructions (the tier's text,
plus a fixed who-is-who suffix when the call's audio is captured), then the context message (the person's
documents, :class:`Prompt`), then the window, the only part that changes from hint to hint. Nothing variable
(a time, a count, a hint number) may ever go into the first two: it would make every hint pay for the context.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ..protocol import client_events as ce
from ..protocol import server_events as se
from .actions import Action, Notice
from .conversation import Conversation, Message
from .labels import message_label, speaker_label
from .settings import CoachSettings, Tier
from .timing import PENDING_TIMEOUT_S

METADATA_KEY = "voicecoach_tier"
HINT_KEY = "voicecoach_hint"
NOTHING_SAID = "(nothing has been said yet)"
# The context message's fixed first line. Changing it changes every request's cached prefix: keep it fixed.
CONTEXT_PREFACE = "Background the person gave you (their documents); use it, never invent beyond it:"


@dataclass(frozen=True)
class Prompt:
    """What every hint carries besides its window, the same for hint after hint so the server caches it.

    ``context_text``: the person's documents (``Context.text``, rendered once at start), "" for none.
    ``them_captured``: the other side of the call is transcribed (a "them" channel exists), so the
    instructions say who is who (:func:`who_is_who`).
    """

    context_text: str = ""
    them_captured: bool = False


@dataclass
class Hint:
    """One hint, from the request until it has finished playing (or was dropped)."""

    tier: Tier
    number: int
    asked_at: float
    sent_at: float
    response_id: str | None = None
    generating: bool = False  # between response.created and response.done: response.cancel is legal
    audio_started_at: float | None = None  # the first sign of its audio, from the server or the player
    server_audio_at: float | None = None  # output_audio_buffer.started
    audible_at: float | None = None  # the player's first audible sample
    interrupted: bool = False
    last_heard_at: float = 0.0  # the last sign of life from the server for this hint (created, delta, audio)
    # The "requested" line, held back until the transcript line of the utterance that fired it is shown
    # (``heard_in``), so a reader sees the words before the request they caused. The request itself is not held.
    held: Notice | None = None
    heard_in: str | None = None
    prompt: Prompt = field(default_factory=Prompt)  # the context and labels it is asked with (Hints.prompt)

    @property
    def silent_until(self) -> float | None:
        """When this hint counts as lost if the server stays silent on it; never once its audio has started."""
        if self.audio_started_at is not None:
            return None
        return max(self.sent_at, self.last_heard_at) + PENDING_TIMEOUT_S


class Hints:
    """The hints asked for and not finished playing, oldest first. Numbers count up over the whole run."""

    def __init__(self, prompt: Prompt | None = None) -> None:
        self._hints: list[Hint] = []
        self._count = 0
        self.prompt = prompt or Prompt()  # what each new hint is asked with (the coach keeps it current)

    def new(self, tier: Tier, now: float, heard_in: str | None = None) -> Hint:
        self._count += 1
        hint = Hint(tier=tier, number=self._count, asked_at=now, sent_at=now, heard_in=heard_in, prompt=self.prompt)
        self._hints.append(hint)
        return hint

    def __iter__(self) -> Iterator[Hint]:
        return iter(list(self._hints))  # a copy: callers remove while they walk

    def __bool__(self) -> bool:
        return bool(self._hints)

    def __contains__(self, hint: object) -> bool:
        return hint in self._hints

    def remove(self, hint: Hint) -> None:
        self._hints.remove(hint)

    def clear(self) -> None:
        self._hints.clear()

    def keep_unanswered(self) -> None:
        """Forget every hint the server has created; the others are cancelled when response.created comes."""
        self._hints = [h for h in self._hints if h.response_id is None]

    def for_response(self, response_id: str | None) -> Hint | None:
        return next((h for h in self._hints if response_id is not None and h.response_id == response_id), None)

    @property
    def speaking(self) -> Hint | None:
        """The oldest hint asked for and not finished playing (it may not exist on the server yet)."""
        return self._hints[0] if self._hints else None

    @property
    def audible(self) -> Hint | None:
        """A hint the server has created: it is generating or playing, so the mic may hear the coach."""
        return next((h for h in self._hints if h.response_id is not None), None)

    def claim(self, response: se.Response) -> Hint | None:
        return claim(self._hints, response)

    def deadline(self) -> float | None:
        """The first moment a hint may be dropped as lost (:meth:`drop_silent`)."""
        return min((t for h in self._hints if (t := h.silent_until) is not None), default=None)

    def drop_silent(self, now: float) -> list[Hint]:
        """Forget hints the server went silent on (never created, or created and then nothing: no delta, no
        audio), so a lost request or a stray response.created cannot block the coach forever."""
        silent = [h for h in self._hints if (t := h.silent_until) is not None and now >= t]
        self._hints = [h for h in self._hints if h not in silent]
        return silent


def release(hints: Iterable[Hint]) -> list[Action]:
    """The held "requested" lines of ``hints``, once each: shown before anything else about them."""
    released: list[Action] = []
    for hint in hints:
        if hint.held is not None:
            released.append(hint.held)
            hint.held = None
    return released


def hint_request(
    hint: Hint, conversation: Conversation, settings: CoachSettings, server_items: Collection[str]
) -> ce.ResponseCreate:
    """The ``response.create`` for ``hint``: instructions, then its context and window, and its output budget.

    ``input`` is [the context message (when there is a context), the window]: context first, so that the
    instructions and the context are the same leading bytes in every hint of a tier (see the module docstring).
    """
    window = conversation.window(settings.quick_window if hint.tier == "quick" else settings.full_window)
    return ce.ResponseCreate(
        event_id=f"vc_hint_{hint.number}",
        response=ce.ResponseParams(
            conversation="none",
            input=[*context_input(hint.prompt.context_text), *window_input(window, settings, server_items)],
            instructions=hint_instructions(settings, hint.tier, hint.prompt.them_captured),
            max_output_tokens=settings.max_output_tokens(hint.tier),
            metadata={METADATA_KEY: hint.tier, HINT_KEY: str(hint.number)},
            output_modalities=["audio"],
        ),
    )


def hint_instructions(settings: CoachSettings, tier: Tier, them_captured: bool) -> str:
    """The tier's instructions; with the call's audio captured, followed by the fixed :func:`who_is_who`."""
    instructions = settings.quick_instructions if tier == "quick" else settings.full_instructions
    if not them_captured:
        return instructions
    return f"{instructions}\n\n{who_is_who(tier, settings.them_label)}"


def who_is_who(tier: Tier, them_label: str) -> str:
    """Who the conversation's speakers are, and that a question from the other side is answered for the person,
    in their own voice. Conditional ("if ... asks"), so that it adds to any tier's or profile's instructions
    (a tutor's check question, a meeting's next step) without overriding them.

    A fixed text per tier and label (no variable part), so that it stays in the cached prefix."""
    you, them = speaker_label("user"), f'"{them_label}"'
    names = f'In the conversation, "{you}" is the person you are coaching and {them} is the other side of the call.'
    if tier == "quick":
        task = (
            f"If the last thing {them} said asks the person something, answer it for them: in the person's own "
            "voice (first person), as words they can say as they are, short enough to say aloud."
        )
    else:
        task = (
            f"If the last thing {them} said asks the person something, include the answer they can give, in their "
            "own voice (first person), in sentences short enough to say aloud."
        )
    return f"{names} {task}"


def context_input(context_text: str) -> list[ce.ResponseInput]:
    """The context as ``response.input``'s first message, [] for none. A user message, not a system one:
    the documents are the person's material to draw on, and text inside them must not outrank the instructions.
    Byte-stable for the same text: a fixed preface, a blank line, the text as it is."""
    if not context_text.strip():
        return []
    return [ce.user_text(f"{CONTEXT_PREFACE}\n\n{context_text}")]


def window_input(
    window: Sequence[Message], settings: CoachSettings, server_items: Collection[str]
) -> list[ce.ResponseInput]:
    """The window as ``response.input``: one text message (``window_mode = "text"``), or item references."""
    if settings.window_mode == "references":
        # User turns by reference (the model hears their audio: ~8x the price of text); coach turns, and
        # turns from an earlier session that the server no longer has (not in ``server_items``), as text.
        # The other side's turns live on another session, so they are always text, named by their label.
        items: list[ce.ResponseInput] = []
        for m in window:
            if m.role == "user" and m.item_id in server_items:
                items.append(ce.ItemReference(id=m.item_id))
            elif m.role == "user":
                items.append(ce.user_text(m.text))
            elif m.role == "them":
                items.append(ce.user_text(f"{message_label(m)}: {m.text}"))
            else:
                items.append(ce.assistant_text(m.text))
        return items or [ce.user_text(NOTHING_SAID)]
    text = render_window(window) or NOTHING_SAID
    return [ce.user_text(f"Transcript of the conversation so far, most recent last:\n{text}")]


def render_window(messages: Iterable[Message]) -> str:
    """A compact transcript for a hint request: one ``You: …`` / ``Them: …`` / ``Coach: …`` line per non-blank
    message, the other side named by its label (``them_label``: ``Interviewer: …``).

    Newlines inside a message are folded into spaces so that each message stays on one line. A hint that was
    cut off says so, so that the model knows the person stopped listening there.
    """
    lines = []
    for message in messages:
        text = " ".join(message.text.split())
        if text:
            who = message_label(message)
            if message.role == "coach" and message.interrupted:
                who += " (interrupted)"
            lines.append(f"{who}: {text}")
    return "\n".join(lines)


def claim(hints: Iterable[Hint], response: se.Response) -> Hint | None:
    """The pending request (no response yet) that ``response`` answers, or None when it is not ours.

    Ours carry ``voicecoach_hint`` metadata; a server that does not echo metadata gets its response matched to
    the oldest pending request. A response with metadata of someone else's is never claimed.
    """
    pending = [h for h in hints if h.response_id is None]
    metadata = response.metadata or {}
    number, tier = metadata.get(HINT_KEY), metadata.get(METADATA_KEY)
    if number is not None:
        return next((h for h in pending if str(h.number) == number), None)
    if tier is not None:
        return next((h for h in pending if h.tier == tier), None)
    if metadata:
        return None
    return pending[0] if pending else None


def carry_over(conversation: Conversation, settings: CoachSettings, session: int) -> ce.ConversationItemCreate | None:
    """For session number ``session`` (> 1), a compact text history so the new session keeps the context.

    The hints themselves are built from the local transcript and need no replay; this gives the server's
    conversation the same context (for ``window_mode = "references"`` and any in-band use).
    """
    if session <= 1:
        return None
    history = render_window(conversation.window(settings.full_window))
    if not history:
        return None
    text = f"Conversation so far (carried over from the previous session), most recent last:\n{history}"
    item = ce.SystemMessage(content=[ce.InputText(text=text)])
    return ce.ConversationItemCreate(event_id=f"vc_history_{session}", item=item)

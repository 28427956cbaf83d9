"""Scenario files: what the local server "hears" and what it "says".

```toml
# each detected utterance gets the next text, in order; when exhausted, "(inaudible)"
utterances = ["Thanks for joining. Let's look at the roadmap."]
# text of each response, cycled; when empty a default hint text is used
responses = ["Start with the numbers: revenue grew twelve percent."]
# what transcription-only sessions (?intent=transcription: the other side of the call) hear, in order;
# when exhausted, "(inaudible)"
them_utterances = ["So, tell me about a project you are proud of."]
```

The server cannot understand speech, so transcripts are scripted: the n-th committed user turn of a realtime
call is transcribed as ``utterances[n]``, and the n-th turn of a transcription session as
``them_utterances[n]``. A ``.json`` file with the same keys works too.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError

PLACEHOLDER_UTTERANCE = "(inaudible)"
DEFAULT_RESPONSE = "Try restating the main point in one sentence, then ask one clarifying question."


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    utterances: list[str] = []
    responses: list[str] = []
    them_utterances: list[str] = []


def load_scenario(path: Path) -> Scenario:
    """Read a TOML (or ``.json``) scenario. Raises ConfigError naming the file and the problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the scenario file {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the scenario file {path} is not valid {_kind(path)}: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"the scenario file {path} has a bad '{where}': {first['msg']}; "
            "expected utterances = [..], responses = [..] and them_utterances = [..] lists of strings"
        ) from exc


def default_scenario() -> Scenario:
    """The built-in scenario (``serve`` without ``--scenario``, and the demo)."""
    text = resources.files(__package__).joinpath("default_scenario.toml").read_text(encoding="utf-8")
    return Scenario.model_validate(tomllib.loads(text))


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "TOML"


class ScenarioCursor:
    """Hands out a call's transcripts (in order, then the placeholder) and responses (cycled).

    Realtime sessions take ``utterances``, transcription sessions ``them_utterances``, each with its own count."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._utterance = 0
        self._them_utterance = 0
        self._response = 0

    def next_utterance(self) -> str:
        texts = self.scenario.utterances
        self._utterance += 1
        return texts[self._utterance - 1] if self._utterance <= len(texts) else PLACEHOLDER_UTTERANCE

    def next_them_utterance(self) -> str:
        texts = self.scenario.them_utterances
        self._them_utterance += 1
        return texts[self._them_utterance - 1] if self._them_utterance <= len(texts) else PLACEHOLDER_UTTERANCE

    def next_response(self) -> str:
        texts = self.scenario.responses
        if not texts:
            return DEFAULT_RESPONSE
        text = texts[self._response % len(texts)]
        self._response += 1
        return text

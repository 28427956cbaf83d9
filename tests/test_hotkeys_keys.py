"""Parsing and normalising a hotkey binding: the forms people write, the normal form pynput takes, the portal's
trigger, and a one-line error that says what to write for each mistake."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecoach.hotkeys.keys import Binding, parse_binding


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("<ctrl>+<alt>+h", "<ctrl>+<alt>+h"),
        ("Ctrl+Alt+H", "<ctrl>+<alt>+h"),
        ("<alt>+<ctrl>+h", "<ctrl>+<alt>+h"),  # modifiers in one fixed order
        ("control+option+h", "<ctrl>+<alt>+h"),
        ("<super>+<shift>+g", "<shift>+<cmd>+g"),
        ("win+F9", "<cmd>+<f9>"),
        ("<f9>", "<f9>"),  # an F-key alone does not collide with typing
        ("<ctrl>+<alt>+<Page Up>", "<ctrl>+<alt>+<page_up>"),
        ("ctrl+alt+return", "<ctrl>+<alt>+<enter>"),
        ("<ctrl>++", "<ctrl>++"),  # a '+' right after a separator is the key '+', as in pynput
        (" <ctrl> + <alt> + s ", "<ctrl>+<alt>+s"),
        ("<ctrl>+<alt>+<media_play_pause>", "<ctrl>+<alt>+<media_play_pause>"),
    ],
)
def test_bindings_are_normalised(text: str, normal: str) -> None:
    assert str(parse_binding(text)) == normal
    assert str(parse_binding(normal)) == normal  # the normal form is a fixed point


def test_the_portal_trigger_uses_xdg_names_and_keysyms() -> None:
    assert parse_binding("<ctrl>+<alt>+h").portal_trigger() == "CTRL+ALT+h"
    assert parse_binding("<cmd>+<shift>+<f9>").portal_trigger() == "SHIFT+LOGO+F9"
    assert parse_binding("<ctrl>+<alt>+<enter>").portal_trigger() == "CTRL+ALT+Return"
    assert parse_binding("<ctrl>+<alt>+<page_down>").portal_trigger() == "CTRL+ALT+Page_Down"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["is empty", "<ctrl>+<alt>+h", "leave the key out"]),
        ("   ", ["is empty"]),
        ("<ctlr>+<alt>+h", ["<ctlr> is not a key name", "did you mean <ctrl>?"]),
        ("<ctrl>+<alt>+<hyper_space>", ["<hyper_space> is not a key name", "names:"]),
        ("<ctrl>+<ctrl>+h", ["<ctrl> is given twice"]),
        ("ctrl+control+h", ["<ctrl> is given twice"]),  # an alias of the same modifier
        ("<ctrl>+<alt>", ["has only modifiers", "end it with a key"]),
        ("<ctrl>+g+h", ["has two keys (g and h)"]),
        ("<ctrl>+h+h", ["h is given twice"]),
        ("h", ["would fire on ordinary typing", "<f9>"]),
        ("<shift>+h", ["would fire on ordinary typing"]),
        ("<ctrl>+", ["ends with '+'"]),
        ("<ctrl>+\x07", ["is not a key"]),
        ("<ctrl>+<a\nb>", ["is not a key name"]),
    ],
)
def test_bad_bindings_say_what_is_wrong_in_one_line(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_binding(text)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_a_binding_is_a_value() -> None:
    assert parse_binding("Ctrl+Alt+H") == parse_binding("<alt>+<ctrl>+h") == Binding(("ctrl", "alt"), "h")


PARTS = st.sampled_from(["<ctrl>", "ctrl", "<alt>", "<shift>", "<cmd>", "h", "H", "<f9>", "+", "<", ">", " ", "<x>"])


@given(st.one_of(st.text(max_size=20), st.lists(PARTS, max_size=5).map("+".join)))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_to_a_fixed_point_or_fails_in_one_line(text: str) -> None:
    try:
        binding = parse_binding(text)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert parse_binding(str(binding)) == binding

"""The command line documents itself: every option has help and shows its default, ``--debug`` goes anywhere,
every flag a message names exists, and the README lists every setting, variable and exit code."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from voicecoach import cli, cli_parser, errors
from voicecoach.config import Settings, settings_keys
from voicecoach.config_sources import ENV_ALIASES, OTHER_ENV_VARS

SRC = Path(cli.__file__).parent
README = SRC.parents[1] / "README.md"
# Flags of other programs that the source quotes on purpose.
FOREIGN_FLAGS = {"--stdout"}  # espeak-ng's, in server/voice.py
NO_DEFAULT_ACTIONS = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def all_parsers() -> list[argparse.ArgumentParser]:
    return list(cli_parser._parsers(cli_parser.build_parser()))


def documented_actions() -> list[tuple[str, argparse.Action]]:
    return [
        (parser.prog, action)
        for parser in all_parsers()
        for action in parser._actions
        if not isinstance(action, NO_DEFAULT_ACTIONS)
    ]


def rendered_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())


def shown(default: object) -> list[str]:
    """The ways a default may be written: ``3600.0`` as ``3600`` too."""
    text = str(default)
    return [text, text.removesuffix(".0")]


@pytest.mark.parametrize(("prog", "action"), documented_actions(), ids=lambda v: getattr(v, "dest", v))
def test_every_option_has_help_that_shows_its_default(prog: str, action: argparse.Action) -> None:
    parser = next(p for p in all_parsers() if p.prog == prog)
    assert action.help and action.help != argparse.SUPPRESS, f"{prog} {action.option_strings or action.dest}"
    text = rendered_help(parser, action)
    if not action.option_strings:
        return  # a positional: it has no default, it must be given
    assert "default" in text, f"{prog} {action.option_strings[0]}: say what happens when it is not given: {text}"
    if action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool):
        # (an on/off flag may say what "off" means in words: "default: refuse to overwrite")
        assert any(s in text for s in shown(action.default)), f"{prog} {action.option_strings[0]}: {text}"


def test_run_help_shows_the_settings_defaults() -> None:
    """`run` flags override settings; the default their help names is the setting's real default."""
    run = next(p for p in all_parsers() if p.prog == "voicecoach run")
    for name in cli.RUN_SETTINGS:
        action = next(a for a in run._actions if a.dest == name)
        default = Settings.model_fields[name].default
        if default is True:  # a --no-X flag says its default in words
            assert "default: on" in rendered_help(run, action), name
        elif default not in (None, [], False):
            assert str(default) in rendered_help(run, action), name


def test_every_subcommand_has_help_and_takes_debug_after_it() -> None:
    parser = cli.build_parser()
    for sub in all_parsers()[1:]:
        assert "--debug" in sub._option_string_actions, sub.prog
    for argv in (["run", "--debug"], ["--debug", "run"], ["sessions", "list", "--debug"], ["serve", "--debug"]):
        assert parser.parse_args(argv).debug is True, argv
    assert parser.parse_args(["run"]).debug is False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, choice.dest


def test_usage_errors_are_one_line_and_suggest_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--modle", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "voicecoach run" in err and "did you mean --model?" in err
    assert cli.main(["serve", "--port", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err and "usage:" not in err


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in the module (f-string parts included), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_every_flag_named_in_the_source_exists() -> None:
    """A message (or docstring) that tells the user to pass --something names a real option of some command."""
    real = {o for p in all_parsers() for a in p._actions for o in a.option_strings}
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        for line, text in string_literals(path):
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text):
                if flag not in real and flag not in FOREIGN_FLAGS:
                    wrong.append(f"{path.relative_to(SRC)}:{line}: {flag}")
    assert not wrong, "flags that no command has:\n" + "\n".join(wrong)


# --- the README (the lead merges /tmp/readme/config.md into it) ------------------------------------------


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_lists_every_setting_and_its_variable() -> None:
    text = readme()
    missing = [f"{key} ({env})" for key, env in settings_keys().items() if f"`{key}`" not in text or env not in text]
    assert not missing, f"README.md does not list: {', '.join(missing)}"
    for name in [*OTHER_ENV_VARS, *(a for aliases in ENV_ALIASES.values() for a in aliases)]:
        if name != "VOICECOACH_WRITE_DOCS":  # a developer's switch, documented in the test that reads it
            assert name in text, name


def test_readme_lists_every_exit_code() -> None:
    codes = {0, cli.INTERNAL_ERROR, 130}
    codes |= {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and hasattr(cls, "exit_code")}
    text = readme()
    missing = sorted(code for code in codes if not re.search(rf"\|\s*`?{code}`?\s*\|", text))
    assert not missing, f"README.md has no exit-code table row for {missing}"

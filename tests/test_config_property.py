"""No input reaches "internal error": random keys, values, types and bytes from every source (hypothesis).

Each source (the TOML file, the environment, the flags of every subcommand) is driven through
``voicecoach.cli.main(argv)`` in-process. The outcome must be success or exit 2 with exactly one line on stderr:
never 70, never a traceback. The command must not connect or run a session, so what comes after loading the
settings is replaced: ``_run_async`` (run, demo), ``run_serve``, ``run_token_server`` and the device list.
Sessions commands run for real, on a data dir and a working directory of their own.

Hypothesis and function-scoped fixtures do not mix (one fixture value for many examples), so every example
builds its own temporary directory, environment, redirected streams and patches with context managers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoach import cli, cli_parser
from voicecoach.config import Settings, load_settings, settings_keys
from voicecoach.config_sources import ENV_ALIASES, OTHER_ENV_VARS
from voicecoach.errors import ConfigError

EXAMPLES = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
KEYS = sorted(settings_keys())  # dotted: model, coach.quick_seconds, token_server.port, ...
ENV_VARS = sorted({*settings_keys().values(), *(a for aliases in ENV_ALIASES.values() for a in aliases)})
NOT_A_SESSION = ("run", "demo", "serve", "token-server", "devices")


# --- values --------------------------------------------------------------------------------------------


def typo(word: str) -> st.SearchStrategy[str]:
    """A near miss of ``word``: a letter dropped, doubled or changed."""
    return st.integers(0, max(0, len(word) - 1)).flatmap(
        lambda i: st.sampled_from([word[:i] + word[i + 1 :], word[:i] + word[i] * 2 + word[i + 1 :], word + "x"])
    )


numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 65535, 65536, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "abc", "near_field", "true", "no", "1e400", "nan", "-inf", "a,b", "http://"]),
    st.sampled_from(["http://127.0.0.1:9/v1", "https://x/v1", "ftp://x", "http://h:99999/v1", "stun:h:1"]),
    st.sampled_from(["127.0.0.1", "::1", "localhost", "\x00", "a\x00b", "\U0001f600", "[1", '["a", 2]', "{"]),
)
scalars = st.one_of(numbers, texts, st.booleans(), st.datetimes(), st.dates())
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


def key_paths() -> st.SearchStrategy[list[str]]:
    known = st.sampled_from(KEYS).map(lambda k: k.split("."))
    typos = st.sampled_from(KEYS).flatmap(typo).map(lambda k: k.split("."))
    random = st.lists(st.text(string.ascii_letters + "_", min_size=1, max_size=10), min_size=1, max_size=3)
    return st.one_of(known, known, typos, random)


@st.composite
def toml_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for path in draw(st.lists(key_paths(), max_size=5)):
        node = doc
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = draw(toml_values)
    return doc


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    """A TOML document, raw bytes, or a document with bytes spliced in (non-UTF-8 included)."""
    doc = draw(toml_documents())
    try:
        text = tomli_w.dumps(doc).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):  # tomli_w cannot write every mix (e.g. a key of invalid text)
        text = b""
    kind = draw(st.sampled_from(["doc", "doc", "bytes", "splice"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "splice":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]
    return text


env_names = st.one_of(
    st.sampled_from(ENV_VARS),
    st.sampled_from(ENV_VARS).flatmap(typo),
    st.text(string.ascii_uppercase + "_", min_size=1, max_size=12).map(lambda s: "VOICECOACH_" + s),
)
# Real environments hold no NUL; undecodable bytes arrive as surrogate escapes (os.environ's surrogateescape).
env_values = st.one_of(texts, numbers.map(str), st.sampled_from(["\udcff", "a,\udce9"])).filter(
    lambda v: "\x00" not in v
)


# --- running main() in a sandbox -------------------------------------------------------------------------


@contextlib.contextmanager
def sandbox(env: dict[str, str]) -> Iterator[Path]:
    """A fresh directory as cwd, config and data home; only ``env`` among VOICECOACH_*/OPENAI_* variables."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("VOICECOACH_", "OPENAI_"))}
        clean.update(XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "data-home"))
        clean["VOICECOACH_DATA_DIR"] = str(root / "data")
        clean.update(env)
        with mock.patch.dict(os.environ, clean, clear=True), contextlib.chdir(root):
            yield root


def run_main(argv: list[str]) -> tuple[int, str]:
    """``cli.main(argv)`` with everything after the settings stubbed; (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(cli, "_run_async", lambda start: 0))
        stack.enter_context(mock.patch("voicecoach.server.run_serve", lambda config: 0))
        stack.enter_context(mock.patch("voicecoach.tokenserver.run_token_server", lambda *a, **k: 0))
        stack.enter_context(mock.patch("voicecoach.audio.devices.list_devices", lambda *a, **k: []))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(out))
        try:
            code = cli.main(argv)
        finally:
            root.handlers[:], _ = saved
            root.setLevel(saved[1])
    return code, err.getvalue()


def assert_clean(code: int, err: str, argv: list[str]) -> None:
    assert "Traceback" not in err, err
    assert code != cli.INTERNAL_ERROR, f"{argv}: {err}"
    if code == 0:
        return
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicecoach: error: "), f"{argv}: {err!r}"
    assert code == 2 or argv[0] == "sessions", f"{argv}: exit {code}: {err}"


# --- the sources ------------------------------------------------------------------------------------------


@EXAMPLES
@given(data=config_bytes(), command=st.sampled_from(["run", "token-server"]))
def test_any_config_file(data: bytes, command: str) -> None:
    with sandbox({}) as root:
        path = root / "config.toml"
        path.write_bytes(data)
        code, err = run_main([command, "--config", str(path)])
        assert_clean(code, err, [command, "--config", repr(data)])
        if code == 2 and "config file" in err:
            assert str(path) in err  # the source is named exactly


@EXAMPLES
@given(data=config_bytes())
def test_any_default_config_file_for_demo(data: bytes) -> None:
    with sandbox({}) as root:
        path = root / "config" / "voicecoach" / "config.toml"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        code, err = run_main(["demo"])
        assert_clean(code, err, ["demo", repr(data)])


@EXAMPLES
@given(env=st.dictionaries(env_names, env_values, max_size=4), command=st.sampled_from(["run", "token-server", "demo"]))
def test_any_environment(env: dict[str, str], command: str) -> None:
    with sandbox(env):
        code, err = run_main([command])
    assert_clean(code, err, [command, repr(env)])
    if code == 2 and "environment variable" in err:
        assert any(name in err for name in env), err  # the variable is named exactly


def parser_of(command: str) -> argparse.ArgumentParser:
    return next(p for p in cli_parser._parsers(cli_parser.build_parser()) if p.prog == f"voicecoach {command}")


def options_of(command: str) -> list[argparse.Action]:
    return [a for a in parser_of(command)._actions if a.option_strings and a.dest not in ("help", "debug")]


COMMANDS = [*NOT_A_SESSION, "sessions list", "sessions show", "sessions export", "sessions delete"]
flag_values = st.one_of(
    texts.filter(lambda v: "\x00" not in v),
    numbers.map(str),
    st.sampled_from(["out.wav", "sub/x.jsonl", "missing/dir/f", ".", "-", "last"]),
)


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    actions = options_of(command)
    argv = command.split()
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["known", "known", "known", "typo", "positional"]))
        if kind == "positional":
            argv.append(draw(flag_values))
            continue
        option = draw(st.sampled_from([o for a in actions for o in a.option_strings] or ["--x"]))
        if kind == "typo":
            option = draw(typo(option))
        argv.append(option)
        if draw(st.booleans()):
            argv.append(draw(flag_values))
    return argv


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=argvs())
def test_any_flags_of_every_subcommand(argv: list[str]) -> None:
    with sandbox({}):
        code, err = run_main(argv)
    assert_clean(code, err, argv)


# --- load_settings itself, with every layer at once -------------------------------------------------------


@EXAMPLES
@given(data=config_bytes(), env=st.dictionaries(env_names, env_values, max_size=3))
def test_load_settings_returns_settings_or_one_config_error(data: bytes, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_bytes(data)
        try:
            result = load_settings(path, environ=env)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc), repr(str(exc))
        else:
            assert isinstance(result, Settings)


def test_every_known_source_kind_is_exercised() -> None:
    """The strategies reach nested keys, aliases and list-valued variables (else the property tests prove less)."""
    assert "coach.quick_seconds" in KEYS and "token_server.port" in KEYS
    assert {"OPENAI_API_KEY", "VOICECOACH_COACH__QUICK_PHRASES", "VOICECOACH_ICE_HOSTS"} <= set(ENV_VARS)
    assert "VOICECOACH_DATA_DIR" in OTHER_ENV_VARS
    assert {"--port", "--duration", "--format"} <= {
        o for c in COMMANDS for a in options_of(c) for o in a.option_strings
    }

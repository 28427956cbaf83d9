"""The layering rules of design.md §3, checked over the source with ``ast``: dependencies point inward.

A rule names a package of ours and the modules it must never import (ours or foreign). Imports inside
functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "voicecoach"

# package → what it must not import (prefixes of absolute module names)
RULES: dict[str, tuple[str, ...]] = {
    "voicecoach.coach": (
        "asyncio",
        "aiortc",
        "aiohttp",
        "sounddevice",
        "textual",
        "voicecoach.transport",
        "voicecoach.audio",
        "voicecoach.ui",
        "voicecoach.runner",
        "voicecoach.link",
        "voicecoach.executor",
        "voicecoach.server",
    ),
    "voicecoach.protocol": (
        "asyncio",
        "aiortc",
        "aiohttp",
        "sounddevice",
        "textual",
        "voicecoach.transport",
        "voicecoach.audio",
        "voicecoach.ui",
        "voicecoach.runner",
        "voicecoach.coach",
        "voicecoach.server",
    ),
    "voicecoach.ui": ("voicecoach.transport", "voicecoach.store", "voicecoach.journal", "aiortc", "aiohttp"),
    "voicecoach.server": (
        "voicecoach.coach",
        "voicecoach.runner",
        "voicecoach.ui",
        "voicecoach.link",
        "voicecoach.executor",
        "voicecoach.app",
    ),
    "voicecoach.audio": ("voicecoach.transport", "voicecoach.runner", "voicecoach.link", "voicecoach.ui"),
    "voicecoach.link": ("voicecoach.runner", "voicecoach.executor", "voicecoach.ui", "voicecoach.coach"),
    "voicecoach.transport": ("voicecoach.runner", "voicecoach.link", "voicecoach.ui", "voicecoach.coach"),
    # The local backend's parts serve the local server: nothing of the client.
    "voicecoach.local": (
        "voicecoach.coach",
        "voicecoach.runner",
        "voicecoach.ui",
        "voicecoach.link",
        "voicecoach.executor",
        "voicecoach.app",
        "voicecoach.transport",
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Absolute names of every module ``path`` imports, with line numbers (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from . import x` imports the submodule x
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if not node.module]
    return found


def violations(rules: dict[str, tuple[str, ...]] = RULES) -> list[str]:
    bad: list[str] = []
    for path in sorted((SRC / PKG).rglob("*.py")):
        name = module_name(path)
        for package, forbidden in rules.items():
            if name != package and not name.startswith(package + "."):
                continue
            for line, target in imports_of(path):
                if any(target == f or target.startswith(f + ".") for f in forbidden):
                    bad.append(f"{path.relative_to(SRC)}:{line}: {name} imports {target} (forbidden for {package})")
    return bad


def test_no_forbidden_imports() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"voicecoach.coach": ("voicecoach.protocol",)}, "voicecoach.coach.coach imports voicecoach.protocol"),
        ({"voicecoach.runner": ("aiohttp",)}, "voicecoach.runner imports aiohttp"),
    ],
)
def test_the_checker_sees_real_imports(rules: dict[str, tuple[str, ...]], expected: str) -> None:
    # The coach really imports the protocol and the runner really imports aiohttp: a rule against either
    # must be reported, or the checker above would pass for the wrong reason.
    assert any(expected in v for v in violations(rules))

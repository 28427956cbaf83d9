"""Fixtures for every test.

Every test is hermetic and stays on loopback: no user config file, no user data dir, no inherited
``VOICECOACH_*`` / ``OPENAI_*`` settings, and aiortc's ICE host candidates pinned to 127.0.0.1 (aioice
otherwise offers every other interface of the machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicecoach.transport.ice import pin_host_addresses


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("VOICECOACH_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.setenv("VOICECOACH_DATA_DIR", str(tmp_path / "data"))
    pin_host_addresses(["127.0.0.1"])

"""Fixtures for the local parts: the bundled tiny.en model, loaded once per test session (0.4 s)."""

from __future__ import annotations

import pytest

from voicecoach.local.stt import BUNDLED_MODEL, Transcriber


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    return Transcriber.load(BUNDLED_MODEL)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs a real local model server (see tests/local/test_llm_real.py)")

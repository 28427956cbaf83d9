"""Context files (a CV, a job description, an agenda, course notes): read once at start, sent with every hint.

:func:`load_context` reads plain text and Markdown as UTF-8 and renders them into one block, in the order given,
byte-identical for the same files: the hint request puts it before the transcript window so that the Realtime
API's prompt cache serves it from the second hint on. Every problem is found here, before anything is opened or
sent, and is one :class:`~voicecoach.errors.ContextError` line naming the file: missing, a directory, not a
regular file, unreadable, not UTF-8, binary, empty, a PDF or a Word document (no converter is a dependency:
the message says how to make a text file), or a context larger than ``coach.context_limit_tokens``.
"""

from __future__ import annotations

import math
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ContextError

# The local server's estimate (server/usage.py), which is also about right for English text on OpenAI's models.
CHARS_PER_TOKEN = 4
# A file this large is refused without reading it: even at 4 bytes a character it is far over any limit.
MAX_FILE_BYTES = 16 * 1024 * 1024
RAISE_LIMIT = (
    "shorten the files, or raise coach.context_limit_tokens (up to 24000) in the [coach] table or a profile, "
    "or with VOICECOACH_COACH__CONTEXT_LIMIT_TOKENS"
)
# What a binary document starts with, and how to turn it into text.
_PDF = b"%PDF-"
_ZIP = b"PK\x03\x04"  # .docx, .odt, .pages… are zip files
_OLE = b"\xd0\xcf\x11\xe0"  # .doc (Word 97-2003)


@dataclass(frozen=True)
class ContextFile:
    path: Path  # as given (a config file's relative paths are already relative to that file)
    tokens: int


@dataclass(frozen=True)
class Context:
    """The rendered context: ``text`` goes into every hint request before the transcript ("" for none)."""

    text: str
    tokens: int  # estimated, of ``text`` (headers included)
    files: tuple[ContextFile, ...]

    def describe(self, limit_tokens: int | None = None) -> str:
        """One line for the event log: ``context: cv.md (1,200 tokens), job.md (800 tokens): 2,010 of 4,000``."""
        if not self.files:
            return "context: none"
        parts = ", ".join(f"{f.path.name} ({f.tokens:,} tokens)" for f in self.files)
        total = f"{self.tokens:,}" + (f" of {limit_tokens:,}" if limit_tokens is not None else "")
        return f"context: {parts}: {total} tokens"


EMPTY_CONTEXT = Context("", 0, ())


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def render(name: str, text: str) -> str:
    """One file's part of the block: its name, then its text, delimited so that a file's own Markdown
    headings cannot be taken for the start of the next file."""
    return f'<context_file name="{name}">\n{text}\n</context_file>'


def load_context(paths: Sequence[Path], limit_tokens: int) -> Context:
    """Read ``paths`` (the same file twice counts once) into one block; refuse anything unusable or too large."""
    seen: set[Path] = set()
    texts: list[tuple[Path, str]] = []
    for path in paths:
        key = _identity(path)
        if key in seen:
            continue
        seen.add(key)
        texts.append((path, read_text(path)))
    if not texts:
        return EMPTY_CONTEXT
    parts = [render(path.name, text) for path, text in texts]
    block = (
        "Context files the person provided (reference for your hints: use them, do not recite them):\n\n"
        + "\n\n".join(parts)
    )
    files = tuple(ContextFile(path, estimate_tokens(text)) for path, text in texts)
    context = Context(block, estimate_tokens(block), files)
    if context.tokens > limit_tokens:
        sizes = ", ".join(f"{f.path} {f.tokens:,} tokens" for f in files)
        raise ContextError(
            f"context is too large: {context.tokens:,} tokens ({sizes}), over the limit of {limit_tokens} "
            f"(coach.context_limit_tokens); {RAISE_LIMIT}"
        )
    return context


def read_text(path: Path) -> str:
    """One context file's text: UTF-8 (a BOM dropped), line ends made ``\\n``, trailing blank lines dropped."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ContextError(
            f"context file {path} does not exist; check the path (--context, coach.context_files)"
        ) from None
    except OSError as exc:
        raise ContextError(f"context file {path} cannot be read: {exc.strerror or exc}") from exc
    except ValueError:  # a NUL in the name (the settings refuse it; a caller might not)
        raise ContextError(f"context file {str(path)!r} is not a valid file name") from None
    if stat.S_ISDIR(info.st_mode):
        raise ContextError(f"context file {path} is a directory; give a text or Markdown file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise ContextError(f"context file {path} is not a regular file; give a text or Markdown file")
    if info.st_size > MAX_FILE_BYTES:
        raise ContextError(
            f"context file {path} is {info.st_size / 2**20:.0f} MB, about {info.st_size // CHARS_PER_TOKEN:,} "
            f"tokens: far over any context limit; give a shorter text file"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContextError(f"context file {path} cannot be read: {exc.strerror or exc}") from exc
    _refuse_documents(path, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContextError(
            f"context file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None  # the decode error quotes the file's bytes
    if "\x00" in text:
        raise ContextError(f"context file {path} is not a text file (it holds NUL bytes); give a text file")
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    if not text.strip():
        raise ContextError(f"context file {path} is empty; put some text in it or leave it out")
    return text


def _refuse_documents(path: Path, data: bytes) -> None:
    """PDF and word-processor files, by content or by name: no converter is a dependency, so say how to convert."""
    suffix = path.suffix.lower()
    text_name = f"{path.stem}.txt"
    if data.startswith(_PDF) or suffix == ".pdf":
        raise ContextError(
            f"context file {path}: PDF is not supported: save it as text (pdftotext {path.name} {text_name})"
        )
    if data.startswith((_ZIP, _OLE)) or suffix in (".docx", ".doc", ".odt", ".rtf", ".pages"):
        raise ContextError(
            f"context file {path}: word-processor documents are not supported: save it as plain text "
            f"(pandoc {path.name} -t plain -o {text_name}, or Save As > Plain Text)"
        )


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL: read_text reports it
        return path

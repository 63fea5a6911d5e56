"""What every reader shares: the result type, the skip error, text assembly with provenance."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError


class FileSkipped(InputError):
    """One file that cannot be used; the corpus loader records it and goes on."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class Extracted:
    """A reader's result: clean text and where each stretch of it came from."""

    text: str
    title: str = ""
    # {"start", "end", and one of "page" | "heading" | "slide"}; offsets index into `text`
    sections: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0  # PDF pages or slides; 0 for formats without pages
    meta: dict[str, Any] = field(default_factory=dict)


class TextBuilder:
    """Joins blocks with blank lines and records the char span of each section as it goes."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.sections: list[dict[str, Any]] = []

    def section(self, **key: Any) -> None:
        """Start a section (page=3, heading="Results") at the next block."""
        self._close()
        self.sections.append({"start": self.length + (2 if self.parts else 0), "end": -1, **key})

    def add(self, block: str) -> None:
        block = block.strip()
        if not block:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        self.parts.append(block)
        self.length += len(block)

    def _close(self) -> None:
        if self.sections and self.sections[-1]["end"] < 0:
            self.sections[-1]["end"] = self.length

    def build(self) -> tuple[str, list[dict[str, Any]]]:
        self._close()
        # a section opened before an empty stretch starts past the text; keep only non-empty ones
        sections = [s for s in self.sections if s["end"] > s["start"]]
        return "".join(self.parts), sections


_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st",
                            "\u00ad": None, "\ufffe": None, "\u200b": None, "\x0c": "\n"})
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Ligatures spelled out, soft hyphens and zero-width spaces dropped, blank runs squeezed."""
    text = text.translate(_LIGATURES)
    return _BLANK_RUN.sub("\n\n", _TRAILING_SPACE.sub("\n", text)).strip()


def unreadable_reason(e: OSError, folder: bool = False) -> str:
    """The skip reason for a file or folder the OS refused to read ("cannot read folder: Permission denied")."""
    return f"cannot read {'folder' if folder else 'file'}: {e.strerror or type(e).__name__}"


_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1f\x7f]")
MAX_CONTROL_SHARE = 0.01  # text in any 8-bit encoding or UTF-8 has almost none; random bytes ~11 %


def binary_reason(raw: bytes) -> str | None:
    """Why `raw` is not text, or None: NUL bytes or too many ASCII control bytes (tab, newline,
    carriage return and form feed are text). UTF-16 text has NULs: decode it before asking."""
    if b"\x00" in raw:
        return "binary content, not text (NUL bytes)"
    share = len(_CONTROL_BYTES.findall(raw)) / max(1, len(raw))
    if share > MAX_CONTROL_SHARE:
        return f"binary content, not text ({share:.0%} control bytes)"
    return None


def first_line(text: str, limit: int = 120) -> str:
    """The first non-blank line, whitespace collapsed: the title of last resort."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line.lstrip("# ").strip()[:limit]
    return ""

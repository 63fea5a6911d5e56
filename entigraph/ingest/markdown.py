"""Markdown sections: ATX (# Title) and setext (Title / =====) headings outside fenced code."""

from __future__ import annotations

import re
from typing import Any

_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT_RULE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"---\r?\n.*?\n---[ \t]*(\r?\n|$)", re.S)


def markdown_sections(text: str) -> list[dict[str, Any]]:
    """One section per heading, from the heading line to the next heading; text before the first
    heading has none. The text itself is left as written."""
    starts: list[tuple[int, str]] = []
    offset, fence, previous = 0, "", None  # previous: (offset, line) of the last non-blank text line
    front = _FRONT_MATTER.match(text)  # YAML front matter: its closing --- is no setext rule
    if front:
        offset = front.end()
    for line in text[offset:].splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if m := _FENCE.match(bare):
            fence = "" if fence and m.group(1)[0] == fence[0] else (fence or m.group(1))
        elif not fence:
            if m := _ATX.match(bare):
                starts.append((offset, m.group(1).strip()))
            elif previous and _SETEXT_RULE.match(bare):
                starts.append((previous[0], previous[1].strip()))
            previous = (offset, bare) if bare.strip() and not _SETEXT_RULE.match(bare) else None
        offset += len(line)
    ends = [s for s, _ in starts[1:]] + [len(text.rstrip())]
    return [{"start": s, "end": e, "heading": h} for (s, h), e in zip(starts, ends) if e > s]

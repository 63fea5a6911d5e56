"""Markdown as text: parsed by markdown-it-py (CommonMark plus tables), YAML front matter read by
python-frontmatter as the document's metadata (its `title` is the document's title).

The text keeps what a reader reads: headings, paragraphs, list items, block quotes, code, table
rows. Markup goes: emphasis marks, link targets (the link text stays), image syntax (its alt text
stays), HTML tags, table pipes (each body row reads "header: cell; header: cell"). Each heading
opens a section (`heading`) that runs to the next one; text before the first heading has none.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from .base import Extracted, TextBuilder

_TAG = re.compile(r"<[^>]+>")
_FRONT = re.compile(r"\A(?:\ufeff)?---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def _plain(value: Any) -> Any:
    """Front-matter values as JSON can hold them (YAML gives dates and datetimes)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    return value


def front_matter(text: str) -> tuple[dict[str, Any], str, str]:
    """(metadata, body, error): the YAML block at the top read as metadata. A block that is not
    valid YAML is still no body text: it is dropped, and `error` says why."""
    import frontmatter

    if not _FRONT.match(text):
        return {}, text, ""
    try:
        post = frontmatter.loads(text)
    except Exception as e:  # yaml's errors, or a block that is not a mapping
        return {}, _FRONT.sub("", text, count=1), f"front matter not read: {type(e).__name__}"
    return _plain(dict(post.metadata)), post.content, ""


def _inline(token) -> str:
    """An inline token's text without markup: link and image targets, emphasis and HTML go."""
    out = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "image":
            out.append(child.content)  # the alt text
        elif child.type == "softbreak":
            out.append(" ")
        elif child.type == "hardbreak":
            out.append("\n")
        elif child.type == "html_inline":
            continue
    return "".join(out).strip()


def _table(tokens: list, i: int) -> tuple[list[str], int]:
    """Rows of the table starting at tokens[i]; returns the lines and the index after it."""
    header: list[str] = []
    rows: list[list[str]] = []
    row: list[str] | None = None
    in_head = False
    while tokens[i].type != "table_close":
        t = tokens[i]
        if t.type == "thead_open":
            in_head = True
        elif t.type == "thead_close":
            in_head = False
        elif t.type == "tr_open":
            row = []
        elif t.type == "tr_close" and row is not None:
            (header.extend if in_head else rows.append)(row)
            row = None
        elif t.type == "inline" and row is not None:
            row.append(_inline(t))
        i += 1
    lines = []
    if header and not rows:
        lines.append("; ".join(h for h in header if h))
    for r in rows:
        cells = [f"{h}: {c}" if h else c for h, c in zip(header + [""] * len(r), r) if c]
        lines.append("; ".join(cells))
    return lines, i + 1


def read_markdown(text: str) -> Extracted:
    """Plain text, sections by heading, and the front matter (meta["front_matter"]); the title is
    the front matter's, else the first heading's."""
    from markdown_it import MarkdownIt

    meta, body, error = front_matter(text)
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    b = TextBuilder()
    first_heading = ""
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            heading = _inline(tokens[i + 1])
            first_heading = first_heading or heading
            b.section(heading=heading)
            b.add(heading)
            i += 3
            continue
        if t.type == "table_open":
            lines, i = _table(tokens, i)
            b.add("\n".join(lines))
            continue
        if t.type == "inline":
            b.add(_inline(t))
        elif t.type in ("fence", "code_block"):
            b.add(t.content)
        elif t.type == "html_block":
            b.add(_TAG.sub("", t.content))
        i += 1
    plain, sections = b.build()
    title = meta.get("title")
    extra: dict[str, Any] = {}
    if meta:
        extra["front_matter"] = meta
    if error:
        extra["front_matter_error"] = error
    return Extracted(plain, str(title).strip() if title else first_heading, sections, 0, extra)


def markdown_sections(text: str) -> list[dict[str, Any]]:
    """The sections of read_markdown(text): offsets into its plain text, not into `text`."""
    return read_markdown(text).sections

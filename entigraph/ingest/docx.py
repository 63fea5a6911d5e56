"""Word (.docx) text through python-docx: paragraphs and tables in body order, sections by heading.

Page headers and footers live outside the body in a .docx, so they never reach the text.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Extracted, FileSkipped, TextBuilder, first_line, tidy

_HEADING_STYLE = re.compile(r"^(heading \d|title)$", re.I)


def _table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or text != cells[-1]:  # a merged cell repeats across the columns it spans
                cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def read_docx(path: Path) -> Extracted:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except PackageNotFoundError:  # python-docx's word for "not a zip package"
        raise FileSkipped(path, "corrupt or truncated Word file (not a readable .docx package)") from None
    builder = TextBuilder()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            builder.add(_table_text(block))
            continue
        text = tidy(block.text)
        style = block.style.name if block.style is not None else ""
        if text and _HEADING_STYLE.match(style or ""):
            builder.section(heading=" ".join(text.split()))
        builder.add(text)
    text, sections = builder.build()
    if not text:
        raise FileSkipped(path, "Word file holds no text")
    title = " ".join((document.core_properties.title or "").split())
    return Extracted(text, title or first_line(text), sections)

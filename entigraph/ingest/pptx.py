"""PowerPoint (.pptx) text through python-pptx: each slide's text boxes top to bottom, provenance by slide."""

from __future__ import annotations

from pathlib import Path

from .base import Extracted, FileSkipped, TextBuilder, first_line, tidy


def _shape_texts(shapes) -> list[str]:
    out = []
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):  # reading order on the slide
        if shape.shape_type == 6:  # a group: its own shapes
            out += _shape_texts(shape.shapes)
        elif shape.has_text_frame:
            out.append(shape.text_frame.text)
        elif getattr(shape, "has_table", False) and shape.has_table:
            out.append("\n".join(" | ".join(c.text for c in row.cells) for row in shape.table.rows))
    return out


def read_pptx(path: Path) -> Extracted:
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(str(path))
    except PackageNotFoundError:
        raise FileSkipped(path, "corrupt or truncated PowerPoint file (not a readable .pptx package)") from None
    builder = TextBuilder()
    for number, slide in enumerate(deck.slides, 1):
        builder.section(slide=number)
        for text in _shape_texts(slide.shapes):
            builder.add(tidy(text))
    text, sections = builder.build()
    if not text:
        raise FileSkipped(path, "PowerPoint file holds no text")
    title = " ".join((deck.core_properties.title or "").split())
    return Extracted(text, title or first_line(text), sections, pages=len(deck.slides))

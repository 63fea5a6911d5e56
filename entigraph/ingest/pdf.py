"""PDF text through pdfminer.six's layout analysis: columns in reading order, provenance by page.

pdfminer.six (MIT, pure Python) was chosen over pypdf and pypdfium2 because its layout analysis
reads a two-column page column by column even when the file writes it line by line across the
columns (bench/extract_ingest.py; the README's Documents section has the comparison).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import Extracted, FileSkipped, TextBuilder, first_line, tidy
from .clean import carry_broken_words, dehyphenate, line_key, running_lines

EDGE_BAND = 0.12  # top and bottom share of the page where running headers and footers live


def _check_envelope(path: Path, raw: bytes) -> None:
    if not raw.strip():
        raise FileSkipped(path, "empty file")
    if b"%PDF-" not in raw[:1024]:
        raise FileSkipped(path, "not a PDF (no %PDF- header)")
    if b"%%EOF" not in raw[-2048:]:  # a cut download or copy: the cross-reference table is lost
        raise FileSkipped(path, "truncated PDF (no %%EOF marker at the end)")


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes)):
        for child in obj:
            yield from _walk(child)


def _page_lines(layout: Any) -> tuple[list[list[tuple[str, bool]]], bool]:
    """Blocks of (line, in_edge_band) in reading order, and whether the page holds an image."""
    from pdfminer.layout import LTImage, LTTextContainer, LTTextLine

    low, high = layout.height * EDGE_BAND, layout.height * (1 - EDGE_BAND)
    blocks = []
    for element in layout:
        if isinstance(element, LTTextContainer):
            lines = [l for l in element if isinstance(l, LTTextLine)] or [element]
            blocks.append([(l.get_text().rstrip("\n"), l.y1 > high or l.y0 < low) for l in lines])
    has_image = any(isinstance(o, LTImage) for o in _walk(layout))
    return blocks, has_image


def _title(doc: Any) -> str:
    for info in doc.info or []:
        title = info.get("Title")
        try:
            title = title.resolve() if hasattr(title, "resolve") else title
            if isinstance(title, bytes):
                from pdfminer.utils import decode_text

                title = decode_text(title)
        except Exception:  # a damaged info dictionary costs the title, not the file
            title = None
        if isinstance(title, str) and len(title.split()) >= 2:  # one-word titles are often "untitled"/a file name
            return " ".join(title.split())[:120]
    return ""


def _open(path: Path, fp: Any) -> Any:
    from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFParser

    try:
        return PDFDocument(PDFParser(fp), password="")
    except PDFPasswordIncorrect:
        raise FileSkipped(path, "encrypted PDF (needs a password; save an unprotected copy)") from None
    except PDFEncryptionError as e:
        raise FileSkipped(path, f"encrypted PDF ({e})") from None


def read_pdf(path: Path) -> Extracted:
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage

    _check_envelope(path, path.read_bytes())
    pages: list[list[list[tuple[str, bool]]]] = []
    images = 0
    with path.open("rb") as fp:
        doc = _open(path, fp)
        title = _title(doc)
        manager = PDFResourceManager(caching=True)
        device = PDFPageAggregator(manager, laparams=LAParams(all_texts=True))  # text in figures too
        interpreter = PDFPageInterpreter(manager, device)
        for page in PDFPage.create_pages(doc):
            interpreter.process_page(page)
            blocks, has_image = _page_lines(device.get_result())
            pages.append(blocks)
            images += has_image
    if not pages:
        raise FileSkipped(path, "PDF has no pages")
    return assemble(path, pages, images, title)


def assemble(path: Path, pages: list[list[list[tuple[str, bool]]]], images: int, title: str = "") -> Extracted:
    """Page blocks -> clean text with one section per page; running headers/footers removed."""
    running = running_lines([[text for block in page for text, edge in block if edge] for page in pages])
    texts = []
    for page in pages:
        blocks = ["\n".join(t for t, edge in block if not (edge and line_key(t) in running)) for block in page]
        texts.append(tidy("\n\n".join(b for b in blocks if b.strip())))
    if not any(texts):
        if images:
            raise FileSkipped(path, f"no text layer ({len(pages)} pages of images: a scan? run OCR first)")
        raise FileSkipped(path, "PDF holds no extractable text")
    builder = TextBuilder()
    for number, text in enumerate(carry_broken_words(texts), 1):
        builder.section(page=number)
        builder.add(dehyphenate(text))
    text, sections = builder.build()
    meta: dict[str, Any] = {"removed_running_lines": sorted(running)[:10]}
    empty = [n for n, t in enumerate(texts, 1) if not t]
    if empty:
        meta["pages_without_text"] = empty
    return Extracted(text, title or first_line(text), sections, len(pages), meta)

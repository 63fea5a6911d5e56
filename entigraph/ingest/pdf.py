"""PDF text through pdfminer.six: columns in reading order, running lines removed, provenance by page.

pdfminer.six (MIT, pure Python) gives every line with its position, so a page written line by
line across two columns can still be read column by column; pypdf, pypdfium2 and pdfplumber give
the file's own order (bench/extract_ingest.py compares them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Extracted, FileSkipped, TextBuilder, first_line, tidy
from .clean import carry_broken_words, dehyphenate, line_key, running_lines

EDGE_BAND = 0.12  # top and bottom share of the page where running headers and footers live
MIN_GUTTER = 6.0  # points of empty width between two columns
SIDE_SHARE = 0.15  # each side of a gutter holds at least this share of the text's height


def _gutter(boxes: list[Any], left: float, right: float) -> float | None:
    """The x of the empty vertical strip that separates columns of `boxes`, or None.

    A strip qualifies when the boxes crossing it hold at most a fifth of the text's height (titles
    and captions may span the columns) and each side has whole boxes of its own: a single column of
    ragged lines has no boxes that start right of the middle, so it never splits."""
    lo, hi = int(left + 0.15 * (right - left)), int(right - 0.15 * (right - left))
    total = sum(b.y1 - b.y0 for b in boxes)
    if hi - lo < MIN_GUTTER or total <= 0:
        return None
    cover = [0.0] * (hi - lo)
    for b in boxes:
        for x in range(max(lo, int(b.x0)), min(hi, int(b.x1) + 1)):
            cover[x - lo] += b.y1 - b.y0
    best, run_start = None, None  # (crossing height, -width, centre) of the emptiest wide run
    floor = min(cover)
    for i, c in enumerate(cover + [float("inf")]):
        if c <= floor and run_start is None:
            run_start = i
        elif c > floor and run_start is not None:
            if i - run_start >= MIN_GUTTER:
                cand = (floor, -(i - run_start), lo + (run_start + i) / 2)
                best = min(best, cand) if best else cand
            run_start = None
    if best is None or best[0] > 0.2 * total:
        return None
    x = best[2]
    sides = (sum(b.y1 - b.y0 for b in boxes if b.x1 <= x), sum(b.y1 - b.y0 for b in boxes if b.x0 >= x))
    return x if min(sides) >= SIDE_SHARE * total else None


def reading_order(boxes: list[Any], left: float, right: float) -> list[Any]:
    """Text boxes (anything with x0, x1, y0, y1; PDF y grows upwards) in reading order: columns
    left to right, each top to bottom, with boxes that span the columns (a title above them, a
    figure across them) cutting the page into stretches read one after another. Recursive, so
    three columns are two splits."""
    x = _gutter(boxes, left, right)
    if x is None:
        return sorted(boxes, key=lambda b: (-b.y1, b.x0))
    out: list[Any] = []
    stretch: list[Any] = []

    def flush() -> None:
        out.extend(reading_order([b for b in stretch if b.x1 <= x], left, x))
        out.extend(reading_order([b for b in stretch if b.x0 >= x], x, right))
        stretch.clear()

    for b in sorted(boxes, key=lambda b: -b.y1):
        if b.x0 < x < b.x1:
            flush()
            out.append(b)
        else:
            stretch.append(b)
    flush()
    return out


def _check_envelope(path: Path, raw: bytes) -> None:
    if not raw.strip():
        raise FileSkipped(path, "empty file")
    if b"%PDF-" not in raw[:1024]:
        raise FileSkipped(path, "not a PDF (no %PDF- header)")
    if b"%%EOF" not in raw[-2048:]:  # a cut download or copy: the cross-reference table is lost
        raise FileSkipped(path, "truncated PDF (no %%EOF marker at the end)")


def _has_image(container: Any) -> bool:
    """Whether a page (or a figure on it) holds a picture: the mark of a scan without text."""
    from pdfminer.layout import LTFigure, LTImage

    return any(isinstance(o, LTImage) or (isinstance(o, LTFigure) and _has_image(o)) for o in container)


def _page_lines(layout: Any) -> tuple[list[list[tuple[str, bool]]], bool]:
    """Blocks of (line, in_edge_band) in reading order, and whether the page holds an image."""
    from pdfminer.layout import LTTextContainer, LTTextLine

    low, high = layout.height * EDGE_BAND, layout.height * (1 - EDGE_BAND)
    boxes = [e for e in layout if isinstance(e, LTTextContainer) and e.get_text().strip()]
    blocks = []
    for element in reading_order(boxes, layout.x0, layout.x1):
        lines = [l for l in element if isinstance(l, LTTextLine)] or [element]
        blocks.append([(l.get_text().rstrip("\n"), l.y1 > high or l.y0 < low) for l in lines])
    return blocks, _has_image(layout)


def _title(doc: Any) -> str:
    from pdfminer.pdftypes import resolve1
    from pdfminer.utils import decode_text

    for info in doc.info or []:
        try:
            title = resolve1(info.get("Title"))
            title = decode_text(title) if isinstance(title, bytes) else title
        except Exception:  # a damaged info dictionary costs the title, not the file
            continue
        if isinstance(title, str) and len(title.split()) >= 2:  # one word is often "untitled" or a file name
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
        # boxes_flow=None: pdfminer groups lines into boxes; reading_order orders them (its own
        # ordering put short paragraphs of one column among the other's: bench/extract_ingest.py)
        device = PDFPageAggregator(manager, laparams=LAParams(all_texts=True, boxes_flow=None))
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

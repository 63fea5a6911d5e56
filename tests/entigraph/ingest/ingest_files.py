"""Builders for real documents, written by the tests (and bench/extract_ingest.py) rather than shipped.

The PDF is the hard kind: two columns written line by line ACROSS the columns (so the file's own
order is wrong), a running header and footer, a word hyphenated at a line end, one hyphenated
across a page break, and a compound ("well-known") broken at its own hyphen.
"""

from __future__ import annotations

import random
from pathlib import Path

HEADER = "Harbour Review, Vol. 3 (1998)"
FOOTER = "Page {n} of {total}"
TITLE = "The Quarrow Tide Station: a history"

# (left column lines, right column lines) for each page
PDF_PAGES = [
    (["The Quarrow Tide Station was founded in",
      "1884 by Ottoline Brask, a schoolmistress",
      "who kept the hourly infor-",
      "mation ledger for eleven years."],
     ["The right column starts here: the pilots",
      "voted a grant of 412 pounds in 1883 and",
      "the float gauge arrived in 1891."]),
    (["Brask House was rebuilt in granite from",
      "Cairn Oss after the storm of 1903. Its",
      "spring tides were well-",
      "known along the coast."],
     ["Page two's right column: the well-known",
      "keepers wrote a long-term sum-"]),
    (["mary of every tide in the ledgers.",
      "The Merrin Harbour Board took over in 1912."],
     ["The last column closes the history of",
      "the station on the third page."]),
]

FURNITURE_TOP = """<header><nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
<li><a href="/shop">Gift shop</a></li></ul></nav></header>
<div id="cookie-consent" class="banner">We use cookies to improve your experience.
<button>Accept all cookies</button> <a href="/privacy">Privacy policy</a></div>"""
FURNITURE_BOTTOM = """<aside><h3>Related articles</h3><ul><li><a href="/a">Ten facts about tides</a></li></ul></aside>
<footer><p>&copy; 2024 Saltmere Heritage Trust. All rights reserved.</p><a href="/terms">Terms</a></footer>"""


def article_html(title: str, sections: list[tuple[str, list[str]]], site: str = "Saltmere Heritage Trust") -> str:
    """A web page as sites serve them: navigation, a cookie banner, the article, a sidebar, a footer."""
    from html import escape

    body = "".join(f"<h2>{escape(h)}</h2>" * bool(h) + "".join(f"<p>{escape(p)}</p>" for p in ps) for h, ps in sections)
    title = escape(title)
    return (f"<!DOCTYPE html><html><head><title>{title} | {site}</title></head><body class='cookie-consent-pending'>{FURNITURE_TOP}"
            f"<main><article><h1>{title}</h1>{body}</article></main>{FURNITURE_BOTTOM}</body></html>")


HTML_PAGE = article_html("Lumen Bay Lighthouse", [
    ("", ["The Lumen Bay lighthouse was first lit on 3 March 1871 by the keeper Hamish Odell, who tended "
          "its paraffin lamp for thirty-one years and logged every ship that passed the headland."]),
    ("Construction", ["The tower was built from grey granite quarried at Cairn Oss and carried across the bay "
                      "on flat barges; it stands twenty-six metres high and its lantern was made by a Glasgow "
                      "foundry."]),
    ("Automation", ["The light was automated in 1983, and the last resident keeper, Rosa Dunmore, moved to "
                    "Saltmere where she wrote a short memoir of life on the headland."]),
])

MINUTES = (
    "Minutes of the Saltmere Pilots' Society, spring meeting. The chairman opened the meeting at "
    "seven o'clock and read the letter from the Harbour Board about the new channel buoys. Mr Pell "
    "reported that the red buoy at the western bar had dragged its mooring twice during the winter "
    "gales and asked that a heavier sinker be laid before the autumn. The treasurer said the society "
    "held 212 pounds and could pay for the sinker without a new levy. Mrs Coombe proposed that the "
    "tide tables for the coming year be printed in Saltmere rather than Dunhallow, since the Dunhallow "
    "printer had twice set the wrong year on the cover. The proposal was carried by nine votes to two. "
    "The meeting closed at half past eight with thanks to the chairman and the landlord of the Anchor."
)


def _canvas(path: Path, **kw):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    return canvas.Canvas(str(path), pagesize=A4, **kw), A4


def two_column_pdf(path: Path, pages=PDF_PAGES, title: str = TITLE) -> Path:
    """Two columns drawn line by line across both (left line k, right line k, ...)."""
    c, (width, height) = _canvas(path)
    c.setTitle(title)
    for n, (left, right) in enumerate(pages, 1):
        c.setFont("Helvetica", 8)
        c.drawString(72, height - 40, HEADER)
        c.drawCentredString(width / 2, 30, FOOTER.format(n=n, total=len(pages)))
        c.setFont("Times-Roman", 10)
        for k in range(max(len(left), len(right))):
            for x, column in ((60, left), (320, right)):
                if k < len(column):
                    c.drawString(x, height - 130 - 14 * k, column[k])
        c.showPage()
    c.save()
    return path


def text_pdf(path: Path, paragraphs: list[str], **canvas_kw) -> Path:
    """One column of text, a paragraph per page (used for the encrypted PDF and the benchmark)."""
    import textwrap

    c, (_, height) = _canvas(path, **canvas_kw)
    for paragraph in paragraphs:
        c.setFont("Times-Roman", 10)
        for k, line in enumerate(textwrap.wrap(paragraph, 90)):
            c.drawString(60, height - 80 - 13 * k, line)
        c.showPage()
    c.save()
    return path


def encrypted_pdf(path: Path) -> Path:
    from reportlab.lib.pdfencrypt import StandardEncryption

    return text_pdf(path, [MINUTES], encrypt=StandardEncryption("secret", "owner-secret"))


def image_only_pdf(path: Path, pages: int = 2) -> Path:
    """A 'scan': each page one picture of noise and no text layer."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    rng = random.Random(0)
    c, (_, height) = _canvas(path)
    for _ in range(pages):
        image = Image.frombytes("L", (120, 160), bytes(rng.randrange(256) for _ in range(120 * 160)))
        c.drawImage(ImageReader(image), 60, height - 400, width=240, height=320)
        c.showPage()
    c.save()
    return path


def word_document(title: str, sections: list[tuple[str, list[str]]], table: list[tuple[str, ...]] = ()):
    """A python-docx Document: a Heading 1 title, Heading 2 sections of paragraphs, then a table."""
    import docx

    d = docx.Document()
    d.core_properties.title = title
    d.add_heading(title, level=1)
    for heading, paragraphs in sections:
        if heading:
            d.add_heading(heading, level=2)
        for paragraph in paragraphs:
            d.add_paragraph(paragraph)
    if table:
        grid = d.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for k, value in enumerate(row):
                grid.cell(r, k).text = value
    return d


def report_docx(path: Path) -> Path:
    """Headings, body text, a table with a merged cell, and a page header that must not be read."""
    d = word_document("Gauge survey 1931", [
        ("", ["Ellery Vane surveyed the tide gauges of the Merrin Sound in the autumn of 1931."]),
        ("Results", ["The Quarrow gauge read four centimetres high against the Saltmere benchmark."])],
        table=[("Gauge", "Error (cm)", "Fixed"), ("Quarrow", "4", "1932"), ("Dunhallow", "-1", "")])
    d.sections[0].header.paragraphs[0].text = "CONFIDENTIAL DRAFT HEADER"
    table = d.tables[0]
    table.cell(2, 1).merge(table.cell(2, 2)).text = "within tolerance"
    d.add_heading("Recommendations", level=2)
    d.add_paragraph("Relevel the Quarrow staff every spring.")
    d.save(str(path))
    return path


def slides_pptx(path: Path, slides=(("Quarrow in numbers", "Founded 1884; automated 1983."),
                                    ("Keepers", "Ottoline Brask, Hamish Odell, Ellery Vane."))) -> Path:
    """A deck of title-and-content slides: (title, body) each."""
    from pptx import Presentation

    deck = Presentation()
    for title, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


def markdown_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "station.md").write_text(
        "# Station notes\n\nIntroductory words about the station.\n\n## Instruments\n\n"
        "The float gauge was made by Kelvin & Co.\n\n```\n# a comment in code, not a heading\n```\n\n"
        "## Staff\n\nNell and Agatha Coombe took readings.\n", encoding="utf-8")
    (folder / "storms.md").write_text(
        "Storms of the Sound\n===================\n\nThe great storm of 1903 broke the tide staff.\n",
        encoding="utf-8")
    return folder


def truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_bytes(path: Path, n: int = 4096) -> Path:
    path.write_bytes(random.Random(1).randbytes(n))
    return path


def build_corpus(root: Path) -> Path:
    """The issue's test corpus: every kind of good file, every kind of bad one, two duplicates."""
    root.mkdir(parents=True, exist_ok=True)
    two_column_pdf(root / "history.pdf")
    encrypted_pdf(root / "locked.pdf")
    image_only_pdf(root / "scan.pdf")
    truncated(root / "history.pdf", root / "cut.pdf")
    (root / "lighthouse.html").write_text(HTML_PAGE, encoding="utf-8")
    report_docx(root / "survey.docx")
    truncated(root / "survey.docx", root / "broken.docx")
    slides_pptx(root / "talk.pptx")
    markdown_folder(root / "notes")
    (root / "notes" / "copy-of-station.md").write_text((root / "notes" / "station.md").read_text())  # exact dup
    (root / "minutes.txt").write_text(MINUTES, encoding="utf-8")
    (root / "minutes-v2.txt").write_text(MINUTES.replace("nine votes to two", "nine votes to three"))  # near dup
    (root / "utf16.txt").write_text("Quarrow ledger kept in UTF-16 by an old editor.", encoding="utf-16")
    random_bytes(root / "noise.txt")
    (root / "empty.md").write_text("")
    (root / "sheet.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root

"""HTML main text through trafilatura: navigation, cookie banners, sidebars and footers left out.

trafilatura (Apache-2.0) returns the main content as XML with its headings marked, which gives the
section provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Extracted, FileSkipped, TextBuilder, binary_reason, first_line, tidy

# Page furniture rather than content, dropped before extraction: trafilatura leaves it out of
# long pages by itself, but keeps everything on pages too short for its heuristics.
FURNITURE = ("script", "style", "noscript", "nav", "footer", "aside", "form", "button", "template")
_BANNER = " or ".join(f"contains(translate(@{a}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '{w}')"
                      for a in ("id", "class") for w in ("cookie", "consent", "gdpr"))
# (sites mark <body> "cookie-consent-pending" too: containers of the page itself are never banners)
FURNITURE_XPATH = " | ".join([f"//{tag}" for tag in FURNITURE] + [
    f"//*[not(self::html or self::body or self::main or self::article)][{_BANNER}]",
    "//header[not(ancestor::article or ancestor::main)]"])


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


def _blocks(main: Any) -> list[tuple[str, str]]:
    """(kind, text) in document order: kind is "heading" or "text"."""
    out = []
    for el in main:
        if el.tag == "head":
            out.append(("heading", _text(el).rstrip("¶").strip()))  # Sphinx permalink marks
        elif el.tag == "list":
            out.append(("text", "\n".join(f"- {_text(item)}" for item in el.iter("item") if _text(item))))
        elif el.tag == "table":
            rows = [" | ".join(_text(c) for c in row.iter("cell")) for row in el.iter("row")]
            out.append(("text", "\n".join(r for r in rows if r.strip(" |"))))
        else:  # p, quote, code, ...
            out.append(("text", "".join(el.itertext()).strip()))
    return out


def _title(root: Any) -> str:
    for xpath in ("//meta[@property='og:title']/@content", "//title//text()", "//h1//text()"):
        found = " ".join(" ".join(root.xpath(xpath)).split())
        if found:
            return found.rstrip("¶").strip()[:120]
    return ""


def read_html(path: Path) -> Extracted:
    import trafilatura
    from lxml import etree
    from lxml import html as lxml_html

    raw = path.read_bytes()
    if not raw.strip():
        raise FileSkipped(path, "empty file")
    if reason := binary_reason(raw[:65536]):
        raise FileSkipped(path, reason)
    try:
        root = lxml_html.document_fromstring(raw)
    except (etree.ParserError, ValueError) as e:
        raise FileSkipped(path, f"cannot parse HTML ({e})") from None
    title = _title(root)
    for el in root.xpath(FURNITURE_XPATH):
        if el.getparent() is not None:
            el.drop_tree()
    xml = trafilatura.extract(root, output_format="xml", include_tables=True, include_comments=False)
    if xml:
        doc = etree.fromstring(xml.encode())
        for br in doc.iter("lb"):  # line breaks inside a paragraph
            br.tail = "\n" + (br.tail or "")
        blocks = _blocks(doc.find("main"))
    else:  # nothing trafilatura calls main text: the cleaned body as one block
        body = root.find("body")
        blocks = [("text", (body if body is not None else root).text_content())]
    builder = TextBuilder()
    for kind, text in blocks:
        if kind == "heading" and text:
            builder.section(heading=text)
        builder.add(tidy(text))
    text, sections = builder.build()
    if not text:
        raise FileSkipped(path, "no main text found in the HTML")
    return Extracted(text, title or first_line(text), sections, meta={"extractor": "trafilatura" if xml else "lxml"})

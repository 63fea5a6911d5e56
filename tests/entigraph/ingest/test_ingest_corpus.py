"""A corpus of real files built here (PDF, HTML, DOCX, PPTX, Markdown; encrypted, scanned, truncated,
binary, empty, unknown, duplicated) loads with the expected text, provenance and skip reasons."""

import logging
from pathlib import Path

import pytest
from ingest_files import build_corpus, two_column_pdf

from entigraph.corpus import load_corpus, load_corpus_report, locate
from entigraph.errors import InputError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = build_corpus(tmp_path_factory.mktemp("corpus"))
    docs, report = load_corpus_report([str(root)])
    return root, {Path(d.source).name: d for d in docs}, report


def at(doc, phrase: str) -> str:
    return locate(doc, doc.text.index(phrase))


def test_every_bad_file_is_skipped_with_one_reason_naming_it(corpus):
    root, _, report = corpus
    reasons = {Path(s["file"]).name: s["reason"] for s in report.skipped}
    assert reasons == {
        "locked.pdf": "encrypted PDF (needs a password; save an unprotected copy)",
        "scan.pdf": "no text layer (2 pages of images: a scan? run OCR first)",
        "cut.pdf": "truncated PDF (no %%EOF marker at the end)",
        "broken.docx": "corrupt or truncated Word file (not a readable .docx package)",
        "noise.txt": "binary content, not text (NUL bytes)",
        "empty.md": "empty file",
        "sheet.xlsx": reasons["sheet.xlsx"],
    }
    assert reasons["sheet.xlsx"].startswith("unknown file type .xlsx (readable: .docx .htm .html")
    assert all(Path(s["file"]).parent.is_relative_to(root) for s in report.skipped)


def test_two_column_pdf_reads_in_column_order_without_running_lines(corpus):
    _, docs, _ = corpus
    pdf = docs["history.pdf"]
    text = pdf.text
    assert pdf.title == "The Quarrow Tide Station: a history"  # from the PDF's metadata
    assert pdf.meta["pages"] == 3
    # the file draws left line 1, right line 1, left line 2, ...: the text must not interleave them
    assert "founded in\n1884 by Ottoline Brask, a schoolmistress\nwho kept" in text
    assert text.index("eleven years.") < text.index("The right column starts here")
    assert text.index("in 1891.") < text.index("Brask House")  # page 1's right column before page 2
    assert "Harbour Review" not in text and "Page 2 of 3" not in text and "1998" not in text
    assert pdf.meta["removed_running_lines"] == ["harbour review, vol. # (#)", "page # of #"]


def test_pdf_hyphenation_is_joined_but_real_compounds_keep_their_hyphen(corpus):
    _, docs, _ = corpus
    text = docs["history.pdf"].text
    assert "hourly information ledger" in text and "infor-" not in text
    assert "a long-term summary\n\nof every tide" in text  # broken across the page break
    assert "spring tides were well-known along" in text  # written "well-known" elsewhere in the file
    assert "long-term" in text


def test_pdf_provenance_is_the_page(corpus):
    _, docs, _ = corpus
    pdf = docs["history.pdf"]
    assert at(pdf, "412 pounds") == "p. 1"
    assert at(pdf, "Brask House") == "p. 2"
    assert at(pdf, "summary") == "p. 2"  # the joined word stays where it started
    assert at(pdf, "The Merrin Harbour Board") == "p. 3"
    start, end = pdf.text.index("Cairn Oss"), pdf.text.index("in 1912.")
    assert locate(pdf, start, end) == "pp. 2-3"
    assert [s["page"] for s in pdf.meta["sections"]] == [1, 2, 3]


def test_html_keeps_the_article_and_drops_the_furniture(corpus):
    _, docs, _ = corpus
    html = docs["lighthouse.html"]
    assert html.title == "Lumen Bay Lighthouse | Saltmere Heritage Trust"
    assert html.text.startswith("Lumen Bay Lighthouse\n\nThe Lumen Bay lighthouse was first lit on 3 March 1871")
    for furniture in ("cookies", "Gift shop", "About us", "All rights reserved", "Ten facts about tides", "Terms"):
        assert furniture not in html.text
    assert at(html, "twenty-six metres") == "§ Construction"
    assert at(html, "Rosa Dunmore") == "§ Automation"
    assert at(html, "paraffin lamp") == "§ Lumen Bay Lighthouse"


def test_docx_headings_table_and_no_page_header(corpus):
    _, docs, _ = corpus
    word = docs["survey.docx"]
    assert word.title == "Gauge survey 1931"
    assert "CONFIDENTIAL" not in word.text
    assert "Gauge | Error (cm) | Fixed\nQuarrow | 4 | 1932\nDunhallow | within tolerance" in word.text
    assert at(word, "four centimetres") == "§ Results"
    assert at(word, "Dunhallow |") == "§ Results"
    assert at(word, "Relevel") == "§ Recommendations"
    assert at(word, "Ellery Vane") == "§ Gauge survey 1931"


def test_markdown_folder_sections_and_pptx_slides(corpus):
    _, docs, _ = corpus
    notes = docs.get("station.md") or docs["copy-of-station.md"]
    assert at(notes, "Kelvin & Co.") == "§ Instruments"
    assert at(notes, "# a comment in code") == "§ Instruments"  # fenced code is no heading
    assert at(notes, "Agatha Coombe") == "§ Staff"
    assert at(docs["storms.md"], "great storm of 1903") == "§ Storms of the Sound"
    slides = docs["talk.pptx"]
    assert slides.text == ("Quarrow in numbers\n\nFounded 1884; automated 1983.\n\n"
                           "Keepers\n\nOttoline Brask, Hamish Odell, Ellery Vane.")
    assert at(slides, "automated 1983") == "slide 1" and at(slides, "Hamish Odell") == "slide 2"
    assert docs["utf16.txt"].text == "Quarrow ledger kept in UTF-16 by an old editor."


def test_duplicates_are_reported_and_loaded_once(corpus):
    _, docs, report = corpus
    by_kind = {d["kind"]: d for d in report.duplicates}
    assert len(report.duplicates) == 2
    exact, near = by_kind["exact"], by_kind["near"]
    assert {Path(exact["file"]).name, Path(exact["duplicate_of_file"]).name} == {"station.md", "copy-of-station.md"}
    assert {Path(near["file"]).name, Path(near["duplicate_of_file"]).name} == {"minutes.txt", "minutes-v2.txt"}
    assert 0.8 <= near["similarity"] < 1.0
    assert ("station.md" in docs) != ("copy-of-station.md" in docs)
    assert ("minutes.txt" in docs) != ("minutes-v2.txt" in docs)


def test_report_counts_what_was_loaded(corpus):
    _, docs, report = corpus
    assert report.documents == len(docs) == 8
    assert report.pages == 3 + 2  # the PDF's pages and the deck's slides
    assert report.words == sum(len(d.text.split()) for d in docs.values())
    assert len(report.read) == 10  # both copies of each duplicate were read
    assert "10 files read, 7 skipped, 2 duplicate documents merged: 8 documents, 5 pages" in report.summary()


def test_load_corpus_logs_each_skip_and_returns_the_same_documents(corpus, caplog):
    root, docs, _ = corpus
    with caplog.at_level(logging.WARNING, logger="entigraph.corpus"):
        loaded = load_corpus([str(root)])
    assert sorted(Path(d.source).name for d in loaded) == sorted(docs)
    assert any(m.startswith("skipped ") and m.endswith("locked.pdf: encrypted PDF (needs a password; save an "
                                                       "unprotected copy)") for m in caplog.messages)
    assert sum("loaded once:" in m for m in caplog.messages) == 2


def test_a_named_bad_file_is_skipped_while_something_usable_is_left(corpus):
    root, _, _ = corpus
    docs, report = load_corpus_report([str(root / "history.pdf"), str(root / "locked.pdf")])
    assert [Path(d.source).name for d in docs] == ["history.pdf"]
    assert [Path(s["file"]).name for s in report.skipped] == ["locked.pdf"]


def test_nothing_usable_is_an_input_error_with_the_reasons(corpus):
    root, _, _ = corpus
    with pytest.raises(InputError, match=r"no usable documents in the corpus: .*locked.pdf: encrypted PDF.*"
                                         r"scan.pdf: no text layer"):
        load_corpus([str(root / "locked.pdf"), str(root / "scan.pdf")])


def test_glob_patterns_name_files(corpus):
    root, _, _ = corpus
    docs = load_corpus([str(root / "notes" / "s*.md")])
    assert sorted(Path(d.source).name for d in docs) == ["station.md", "storms.md"]
    with pytest.raises(InputError, match="no corpus files match"):
        load_corpus([str(root / "notes" / "*.pdf")])


def test_a_single_page_pdf_keeps_its_edge_lines(tmp_path):
    # one page gives nothing to compare against: the header is text like any other
    two_column_pdf(tmp_path / "one.pdf", pages=[(["Only page, left column."], ["Right column."])])
    (doc,) = load_corpus([str(tmp_path / "one.pdf")])
    assert doc.text.startswith("Harbour Review, Vol. 3 (1998)")
    assert "Only page, left column." in doc.text and "Page 1 of 1" in doc.text

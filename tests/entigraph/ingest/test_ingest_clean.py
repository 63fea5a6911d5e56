"""The pure pieces: hyphenation, running lines, Markdown headings, binary sniffing, duplicates, locate."""

import random

import pytest

from entigraph.corpus import load_corpus, locate, read_text
from entigraph.errors import InputError
from entigraph.ingest.base import TextBuilder, binary_reason, tidy
from entigraph.ingest.clean import carry_broken_words, dehyphenate, line_key, running_lines
from entigraph.ingest.dedup import find_duplicates
from entigraph.ingest.markdown import markdown_sections, read_markdown
from entigraph.records import Document


@pytest.mark.parametrize("text,expected", [
    ("the infor-\nmation ledger", "the information ledger"),
    ("the infor- \n  mation", "the information"),
    ("a well-\nknown tide; the well-known keeper", "a well-known tide; the well-known keeper"),
    ("a state-of-the-\nart gauge", "a state-of-the-art gauge"),
    ("Saltmere-\nHarbour", "Saltmere-\nHarbour"),  # a capital after the break: a name, left alone
    ("pages 12-\n14", "pages 12-\n14"),
    ("a dash -\nthen text", "a dash -\nthen text"),
])
def test_dehyphenate(text, expected):
    assert dehyphenate(text) == expected


def test_words_broken_across_a_page_break_move_to_the_earlier_page():
    pages = carry_broken_words(["end of a long sen-", "tence. Next page.", "Fine."])
    assert pages == ["end of a long sen-\ntence.", "Next page.", "Fine."]
    assert dehyphenate(pages[0]) == "end of a long sentence."
    assert carry_broken_words(["Well-", "Known"]) == ["Well-", "Known"]


def test_running_lines_repeat_on_most_pages_with_numbers_masked():
    pages = [[f"Annual report {2000 + n}", f"- {n} -"] for n in range(10)]
    pages[4].append("Chapter 3: Storms")  # a one-off edge line is body text
    for n in (6, 7, 8):
        pages[n].append(f"Chapter 4: Gauges {n}")  # a chapter header on three pages goes
    assert line_key("Page 12 of 40") == "page # of #"
    assert line_key("  xiv ") == "#"
    assert running_lines(pages) == {"annual report #", "- # -", "chapter #: gauges #"}
    assert running_lines([["Only one page"]]) == set()
    assert running_lines([["Header"], ["Header"]]) == {"header"}


def test_markdown_sections():
    text = ("---\ntitle: notes\n---\nPreamble.\n\n# One\nbody\n```\n# code\n```\n"
            "Two\n---\nmore\n\n## Three ##\nend\n")
    got = read_markdown(text)
    assert [s["heading"] for s in got.sections] == ["One", "Two", "Three"]
    assert [got.text[s["start"]:s["end"]] for s in got.sections] == [
        "One\n\nbody\n\n# code", "Two\n\nmore", "Three\n\nend"]
    assert got.text.startswith("Preamble.") and markdown_sections(text) == got.sections
    assert markdown_sections("no headings at all\n") == []


def test_markdown_front_matter_is_metadata_and_markup_leaves_the_text():
    text = ("---\ntitle: The Quarrow Ledger\ndate: 2024-05-01\nauthors: [Marit Ellery]\n---\n"
            "# Keepers\n\nMarit **Ellery** kept the [station](https://example.org/q) from *1946*; "
            "see ![the drum gauge](gauge.png) and `gauge.read()` <span>here</span>.\n\n"
            "| Keeper | From |\n| --- | --- |\n| Marit Ellery | 1946 |\n| Jonas \\| Pell | 1977 |\n\n"
            "- first item\n- second item\n")
    got = read_markdown(text)
    assert got.title == "The Quarrow Ledger"  # the front matter's title, not '---' or the heading
    assert got.meta["front_matter"] == {"title": "The Quarrow Ledger", "date": "2024-05-01",
                                        "authors": ["Marit Ellery"]}
    assert "---" not in got.text and "title:" not in got.text
    assert ("Marit Ellery kept the station from 1946; see the drum gauge and gauge.read() here."
            in got.text)
    for markup in ("**", "](", "https://", "![", "`", "<span>", "| ---", "- first"):
        assert markup not in got.text, markup
    assert "Keeper: Marit Ellery; From: 1946" in got.text and "Keeper: Jonas | Pell; From: 1977" in got.text
    assert "first item\n\nsecond item" in got.text
    # no front matter: the first heading is the title; broken YAML is dropped from the text, said in meta
    assert read_markdown("Intro.\n\n## Tides\n\ntext").title == "Tides"
    bad = read_markdown("---\n: : x\n - [\n---\nBody text.")
    assert bad.text == "Body text." and "front_matter_error" in bad.meta and bad.title == ""


def test_a_markdown_file_loads_with_its_front_matter_title(tmp_path):
    from entigraph.corpus import load_file

    (tmp_path / "n.md").write_text("---\ntitle: Ledger\n---\n**Bold** words [here](x).\n", encoding="utf-8")
    doc = load_file(tmp_path / "n.md")[0]
    assert doc.title == "Ledger" and doc.text == "Bold words here." and doc.meta["front_matter"] == {"title": "Ledger"}
    (tmp_path / "only.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    import pytest

    from entigraph.ingest import FileSkipped

    with pytest.raises(FileSkipped, match="no text besides"):
        load_file(tmp_path / "only.md")


def test_text_builder_offsets_point_at_their_blocks():
    b = TextBuilder()
    b.add("before any section")
    b.section(page=1)
    b.add("  first page  ")
    b.section(page=2)
    b.add("")  # an empty page
    b.section(page=3)
    b.add("third page")
    text, sections = b.build()
    assert text == "before any section\n\nfirst page\n\nthird page"
    assert [(s["page"], text[s["start"]:s["end"]]) for s in sections] == [(1, "first page"), (3, "third page")]


def test_tidy():
    assert tidy("ﬁnal ﬂow\u00ad \n\n\n\nnext\x0cpage  ") == "final flow\n\nnext\npage"


def test_binary_sniffing():
    rng = random.Random(0)
    assert binary_reason(bytes(rng.randrange(1, 256) for _ in range(2000))).startswith(
        "binary content, not text (")  # no NUL byte at all: the control bytes give it away
    assert binary_reason(b"abc\x00def") == "binary content, not text (NUL bytes)"
    assert binary_reason("Curly “quotes” and café, tabs\tand\r\nlines\x0c".encode()) is None
    assert binary_reason("Café Lumère".encode("cp1252")) is None


def test_binary_txt_is_refused_not_decoded_as_latin1(tmp_path):
    rng = random.Random(0)
    (tmp_path / "fake.txt").write_bytes(bytes(rng.randrange(1, 256) for _ in range(2000)))
    (tmp_path / "real.txt").write_text("A real note.")
    docs = load_corpus([str(tmp_path)])
    assert [d.text for d in docs] == ["A real note."]
    with pytest.raises(InputError, match=r"fake.txt: binary content, not text \(\d+% control bytes\)"):
        read_text(tmp_path / "fake.txt")


def test_find_duplicates():
    base = " ".join(f"word{i}" for i in range(200))
    texts = [base, "  " + base.upper().replace(" ", "\n"), base.replace("word100", "changed"),
             "something else entirely " * 20, "", ""]
    hits = find_duplicates(texts)
    assert hits[0] is None and hits[3] is None
    assert hits[1] == (0, "exact", 1.0)  # case and layout do not matter
    assert hits[2][:2] == (0, "near") and 0.9 < hits[2][2] < 1
    assert hits[4] is None and hits[5] is None  # empty texts are not duplicates of each other
    half = " ".join(f"word{i}" for i in range(100)) + " " + " ".join(f"other{i}" for i in range(100))
    assert find_duplicates([base, half]) == [None, None]  # Jaccard ~0.3: related, not a duplicate


def test_locate():
    text = "Intro. " + "x" * 40
    doc = Document("d", "t", text, meta={"sections": [
        {"start": 7, "end": 20, "page": 1}, {"start": 22, "end": 30, "page": 2}, {"start": 32, "end": 47, "page": 3}]})
    assert locate(doc, 0) == ""  # before the first section
    assert locate(doc, 7) == "p. 1" and locate(doc, 19) == "p. 1"
    assert locate(doc, 21) == "p. 1"  # the separator between pages belongs to the page before
    assert locate(doc, 25) == "p. 2"
    assert locate(doc, 10, 25) == "pp. 1-2" and locate(doc, 10, 45) == "pp. 1-3" and locate(doc, 23, 29) == "p. 2"
    headed = Document("h", "t", text, meta={"sections": [{"start": 0, "end": 47, "heading": "Results"}]})
    assert locate(headed, 30, 40) == "§ Results"
    assert locate(Document("p", "t", text), 5) == ""


class Box:
    def __init__(self, name, x0, x1, y1, lines=1):
        self.name, self.x0, self.x1, self.y1, self.y0 = name, x0, x1, y1, y1 - 12 * lines


def test_reading_order_reads_columns_then_crosses_spanning_boxes():
    from entigraph.ingest.pdf import reading_order

    boxes = [Box("title", 60, 530, 800), Box("R1", 310, 530, 760, 10), Box("L1", 60, 280, 760, 10),
             Box("figure caption", 60, 530, 600), Box("L2", 60, 280, 560, 8), Box("R2", 310, 530, 560, 8),
             Box("L1b", 60, 200, 630)]  # a short last line of the left column, lower than R1's start
    order = [b.name for b in reading_order(boxes, 0, 595)]
    assert order == ["title", "L1", "L1b", "R1", "figure caption", "L2", "R2"]


def test_reading_order_three_columns_and_single_column():
    from entigraph.ingest.pdf import reading_order

    three = [Box(f"c{c}r{r}", 40 + 180 * c, 200 + 180 * c, 800 - 100 * r, 7) for r in range(3) for c in range(3)]
    assert [b.name for b in reading_order(three, 0, 595)] == [f"c{c}r{r}" for c in range(3) for r in range(3)]
    ragged = [Box(f"p{i}", 60, 60 + (470 if i % 2 else 200), 800 - 40 * i, 2) for i in range(8)]
    assert [b.name for b in reading_order(ragged, 0, 595)] == [f"p{i}" for i in range(8)]

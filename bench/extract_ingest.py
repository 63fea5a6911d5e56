"""Document ingestion: pages (or files) per second per format, peak memory, and the PDF and HTML
library comparison behind the choice of readers.

Real files where this machine has them (PDF manuals under /usr/share/doc, the HTML help page that
ships with Python, this repository's Markdown), generated ones otherwise: the QuALITY dev articles
(../shared/data, else the demo corpus) written as two-column PDFs, web pages with navigation,
Word files and slide decks by the same builders the tests use. Each format runs in a fresh
subprocess so its peak RSS is its own.

    .venv/bin/python bench/extract_ingest.py
    .venv/bin/python bench/extract_ingest.py --compare-python /tmp/ev/bin/python   # also the candidates

--compare-python names a Python that has the candidate libraries (pypdf, pypdfium2, pdfplumber,
pdfminer.six, trafilatura, justext); they are not project dependencies. Writes
bench/results/extract-ingest.json.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import platform
import re
import resource
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ROOT.parent / "shared" / "data" / "quality-leval" / "dev.jsonl"
BUILDERS = ROOT / "tests" / "entigraph" / "ingest" / "ingest_files.py"  # the tests' file builders

LINES_PER_COLUMN = 48
LIBRARIES = ("pdfminer.six", "trafilatura", "lxml", "python-docx", "python-pptx", "datasketch", "reportlab")
LICENCES = {"pdfminer.six": "MIT", "pypdf": "BSD-3-Clause", "pypdfium2": "Apache-2.0 or BSD-3-Clause (binary PDFium)",
            "pdfplumber": "MIT (on pdfminer.six)", "trafilatura": "Apache-2.0", "justext": "BSD-2-Clause",
            "lxml": "BSD-3-Clause"}
EXCLUDED = {
    "pymupdf": "AGPL-3.0: not acceptable as a default dependency",
    "docling": "downloads layout models from a hub at run time: unusable offline",
    "markitdown": "pulls magika (onnxruntime); reads PDFs through pdfminer.six without page provenance and "
                  "HTML through markdownify without boilerplate removal",
}
BOILERPLATE = ["Accept all cookies", "All rights reserved", "About us", "Ten facts about tides", "Gift shop"]


def articles() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of real prose: QuALITY dev articles, else the demo corpus. Articles that
    come as one long line are cut into paragraphs of about 150 words."""
    source = QUALITY if QUALITY.is_file() else ROOT / "entigraph" / "data" / "demo" / "demo.jsonl"
    out = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = json.loads(line)["input"]
            paragraphs = []
            for block in re.split(r"\n\s*\n", text):
                words = block.split()
                paragraphs += [" ".join(words[i:i + 150]) for i in range(0, len(words), 150)]
            out.append((" ".join(paragraphs[0].split()[:8]), paragraphs[1:]))
    return out


def column_pages(paragraphs: list[str]) -> list[tuple[list[str], list[str]]]:
    lines = [line for p in paragraphs for line in textwrap.wrap(p, 45, break_on_hyphens=False) + [""]]
    per_page = 2 * LINES_PER_COLUMN
    return [(lines[i:i + LINES_PER_COLUMN], lines[i + LINES_PER_COLUMN:i + per_page])
            for i in range(0, len(lines), per_page)]


def sections_of(paragraphs: list[str], every: int = 5) -> list[tuple[str, list[str]]]:
    return [(f"Part {i // every + 1}", paragraphs[i:i + every]) for i in range(0, len(paragraphs), every)]


def build(tmp: Path) -> dict[str, list[str]]:
    """Files for each measured set, and the truth the comparison scores against."""
    spec = importlib.util.spec_from_file_location("ingest_files", BUILDERS)
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)

    sets: dict[str, list[str]] = {name: [] for name in ("pdf-two-column", "html-articles", "docx", "pptx")}
    truth, html_words = [], []
    for i, (title, paragraphs) in enumerate(articles()):
        pages, sections = column_pages(paragraphs), sections_of(paragraphs)
        sets["pdf-two-column"].append(str(make.two_column_pdf(tmp / f"a{i}.pdf", pages, title)))
        truth.append([" ".join(left + right).split() for left, right in pages])
        (tmp / f"a{i}.html").write_text(make.article_html(title, sections), encoding="utf-8")
        sets["html-articles"].append(str(tmp / f"a{i}.html"))
        html_words.append(len(title.split()) + sum(len(h.split()) + len(" ".join(ps).split()) for h, ps in sections))
        make.word_document(title, sections).save(str(tmp / f"a{i}.docx"))
        sets["docx"].append(str(tmp / f"a{i}.docx"))
        slides = [(f"Slide {k + 1}", p) for k, p in enumerate(paragraphs[:40])]
        sets["pptx"].append(str(make.slides_pptx(tmp / f"a{i}.pptx", slides)))
    (tmp / "truth.json").write_text(json.dumps(truth), encoding="utf-8")
    (tmp / "html_words.json").write_text(json.dumps(html_words), encoding="utf-8")
    found = {
        "pdf-manuals": sorted(str(p) for p in Path("/usr/share/doc").rglob("*.pdf"))[:10],
        "html-python-docs": sorted(str(p) for p in Path(sysconfig.get_paths()["stdlib"]).rglob("*.html")
                                   if "site-packages" not in p.parts)[:10],
        "md": [str(ROOT / "README.md")] + sorted(str(p) for p in (ROOT / "docs").glob("*.md")),
    }
    return {**sets, **{name: files for name, files in found.items() if files}}


def one(files: list[str], truth: Path | None = None) -> dict:
    """Load one set through the corpus loader (after one warm-up file pays the imports); with the
    true page texts, also score the reading order."""
    from entigraph.corpus import load_corpus_report

    start = time.perf_counter()
    load_corpus_report(files[:1])
    import_s = time.perf_counter() - start
    start = time.perf_counter()
    docs, report = load_corpus_report(files)
    seconds = time.perf_counter() - start
    return {
        "files": len(files), "documents": report.documents, "skipped": report.skipped, "pages": report.pages,
        "words": report.words, "seconds": round(seconds, 3), "first_file_with_imports_s": round(import_s, 3),
        "files_per_s": round(len(files) / seconds, 1), "words_per_s": round(report.words / seconds),
        **({"pages_per_s": round(report.pages / seconds, 1)} if report.pages else {}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **({"two_column_order": _order_score([d.text[s["start"]:s["end"]] for d in docs for s in d.meta["sections"]],
                                             [p for doc in json.loads(truth.read_text()) for p in doc])}
           if truth else {}),
    }


def _order_score(pages: list[str], truth: list[list[str]]) -> float:
    """Word-sequence similarity to the true reading order (1.0: same words in the same order)."""
    scores = []
    for text, want in zip(pages, truth):
        text = re.sub(r"Page \d+ of \d+|Harbour Review, Vol. 3 \(1998\)", " ", text)
        got = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text).split()
        scores.append(difflib.SequenceMatcher(None, got, want, autojunk=False).ratio())
    return round(sum(scores) / len(scores), 3)


def compare(tmp: Path, sets: dict[str, list[str]]) -> dict:
    """Candidate libraries on the same files: column order on the two-column PDFs, speed on the real
    manuals, boilerplate left and content lost on the web pages. Runs in the --compare-python env."""
    def pypdf_pages(path):
        from pypdf import PdfReader
        return [p.extract_text() for p in PdfReader(path).pages]

    def pdfium_pages(path):
        import pypdfium2
        doc = pypdfium2.PdfDocument(path)
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]

    def plumber_pages(path):
        import pdfplumber
        with pdfplumber.open(path) as pdf:
            return [p.extract_text() or "" for p in pdf.pages]

    def pdfminer_pages(path):
        from pdfminer.high_level import extract_pages
        from pdfminer.layout import LTTextContainer
        return ["".join(e.get_text() for e in page if isinstance(e, LTTextContainer)) for page in extract_pages(path)]

    truth = json.loads((tmp / "truth.json").read_text(encoding="utf-8"))
    out: dict = {"pdf": {}, "html": {}}
    for name, pages_of in (("pypdf", pypdf_pages), ("pypdfium2", pdfium_pages), ("pdfplumber", plumber_pages),
                           ("pdfminer.six", pdfminer_pages)):
        try:
            row = {"version": version(name), "licence": LICENCES[name]}
        except PackageNotFoundError:
            out["pdf"][name] = "not installed"
            continue
        row["two_column_order"] = _order_score([t for f in sets["pdf-two-column"] for t in pages_of(f)],
                                               [p for doc in truth for p in doc])
        pages, start = 0, time.perf_counter()
        for f in sets.get("pdf-manuals", []):
            pages += len(pages_of(f))
        if pages:
            row["manuals_pages_per_s"] = round(pages / (time.perf_counter() - start), 1)
        out["pdf"][name] = row

    def trafilatura_text(html):
        import trafilatura
        return trafilatura.extract(html, include_tables=True) or ""

    def justext_text(html):
        import justext
        paragraphs = justext.justext(html.encode(), justext.get_stoplist("English"))
        return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)

    def lxml_text(html):  # the floor: drop the obvious tags, keep the rest
        from lxml import html as lh
        root = lh.fromstring(html)
        for el in root.xpath("//script|//style|//nav|//header|//footer|//aside"):
            el.drop_tree()
        return root.text_content()

    pages = [Path(f).read_text(encoding="utf-8") for f in sets["html-articles"]]
    article_words = json.loads((tmp / "html_words.json").read_text(encoding="utf-8"))
    for name, extract in (("trafilatura", trafilatura_text), ("justext", justext_text), ("lxml", lxml_text)):
        try:
            row = {"version": version(name), "licence": LICENCES[name]}
        except PackageNotFoundError:
            out["html"][name] = "not installed"
            continue
        start = time.perf_counter()
        texts = [extract(p) for p in pages]
        row["pages_per_s"] = round(len(pages) / (time.perf_counter() - start), 1)
        row["boilerplate_kept"] = sorted({b for t in texts for b in BOILERPLATE if b in t})
        # extracted words / the article's words: 1.0 is all of the article and nothing else
        row["words_vs_article"] = round(sum(len(t.split()) for t in texts) / sum(article_words), 3)
        out["html"][name] = row
    return out


def _child(cmd: list[str], env: dict) -> dict:
    """Run a measuring subprocess; its last stdout line is its JSON result."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare-python", help="a Python with the candidate libraries; compare them too")
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--truth", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--compare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.truth)))
        return
    if args.compare:
        tmp = Path(args.compare)
        print(json.dumps(compare(tmp, json.loads((tmp / "sets.json").read_text()))))
        return

    load_start = os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results, candidates = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        sets = build(Path(tmp))
        for name, files in sets.items():
            truth = ["--truth", str(Path(tmp) / "truth.json")] if name == "pdf-two-column" else []
            r = results[name] = _child([sys.executable, __file__, *truth, "--one", *files], env)
            print(f"{name:18} {r['files']:3} files {r['pages']:4} pages {r['words']:7,} words  {r['seconds']:6.2f} s"
                  f" {r.get('pages_per_s', '-'):>6} pages/s {r['files_per_s']:6} files/s  peak {r['peak_rss_mb']:.0f} MB",
                  flush=True)
        if args.compare_python:
            (Path(tmp) / "sets.json").write_text(json.dumps(sets))
            candidates = _child([args.compare_python, __file__, "--compare", tmp], env)
            print(json.dumps(candidates, indent=1))
    report = {
        "benchmark": "extract-ingest",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": {p: version(p) for p in LIBRARIES},
        "corpus": {"generated": "QuALITY dev articles (L-Eval packaging) as two-column PDFs with running header "
                                "and footer, web pages with navigation/cookie banner/sidebar/footer, Word files "
                                "with headings, 40-slide decks",
                   "real": {name: [Path(f).name for f in files] for name, files in sets.items()
                            if name in ("pdf-manuals", "html-python-docs", "md")}},
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "formats": results, "candidates": candidates, "not_measured": EXCLUDED,
    }
    out_path = ROOT / "bench" / "results" / "extract-ingest.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

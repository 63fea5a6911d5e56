"""Load documents (txt, md, jsonl, QuALITY/L-Eval jsonl, Fictional Knowledge json, PDF, HTML, Word,
PowerPoint) and cut passages.

Bad files never stop a corpus: each one (encrypted, scanned, truncated, binary, empty, of an unknown
type) is skipped with one reason that names it, and exact and near-duplicate documents are loaded
once. `load_corpus_report` returns what was read, skipped and merged; `load_corpus` logs it. Only
a corpus with nothing usable left raises ``InputError``. A text file that is not UTF-8 is decoded
with a recorded fallback (cp1252, then latin-1). Documents from PDF, HTML, Word, PowerPoint and
Markdown carry ``meta["sections"]`` (char spans with a page, heading or slide): `locate` cites them.
"""

from __future__ import annotations

import bisect
import codecs
import glob
import hashlib
import json
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import InputError
from .ingest import FORMATS, FileSkipped, read_document
from .ingest.base import binary_reason, unreadable_reason
from .ingest.dedup import NEAR_DUP_THRESHOLD, find_duplicates
from .ingest.markdown import read_markdown
from .records import Document, Passage

log = logging.getLogger(__name__)

DEMO_CORPUS = Path(__file__).parent / "data" / "demo" / "demo.jsonl"
SUFFIX_FORMATS = {".txt": "txt", ".rst": "txt", ".md": "md", ".markdown": "md", ".json": "fictional",
                  ".jsonl": "jsonl", ".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html",
                  ".docx": "docx", ".pptx": "pptx"}
# Named files may be .json (Fictional Knowledge); in a folder a .json file is more likely something else.
FOLDER_SUFFIXES = set(SUFFIX_FORMATS) - {".json"}
_UTF16 = ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(path: Path) -> tuple[str, str]:
    """Return (text, encoding). Falls back from UTF-8 so one bad byte never loses a corpus; refuses
    empty files and binary content (FileSkipped, an InputError)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FileSkipped(path, unreadable_reason(e)) from None
    if not raw.strip():
        raise FileSkipped(path, "empty file")
    for bom, encoding in _UTF16:  # before the binary check: UTF-16 text is full of NUL bytes
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError:
                raise FileSkipped(path, "broken UTF-16 text") from None
    if reason := binary_reason(raw):
        raise FileSkipped(path, reason)
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise FileSkipped(path, "cannot decode text")  # unreachable: latin-1 decodes any bytes


def _doc_id(source: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(source).stem).strip("-").lower() or "doc"
    return f"{stem}-{index:04d}"


def _title_of(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("<"):  # skip markup such as <!-- $Id ... -->
            return line.lstrip("# ").strip()[:120]
    return ""


def _unknown_type(path: Path) -> str:
    suffix = path.suffix.lower() or "without a suffix"
    return f"unknown file type {suffix} (readable: {' '.join(sorted(SUFFIX_FORMATS))})"


# Benchmark files are corpora too; their layout is told by the keys of a row (evaluation/tasks.py
# reads their questions with the same readers).
ROW_LAYOUTS = (("quality", ("input", "instructions")), ("quality_release", ("article", "questions")),
               ("simple", ("question",)))


def row_layout(path: Path) -> str | None:
    """quality | quality_release | simple by the keys of a JSONL file's first row; None for plain rows."""
    text, _ = read_text(path)
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        raise FileSkipped(path, "line 1 is not valid JSON") from None
    if not isinstance(row, dict):
        return None
    return next((name for name, keys in ROW_LAYOUTS if all(k in row for k in keys)), None)


def detect_format(path: Path) -> str:
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FileSkipped(path, _unknown_type(path))
    if fmt == "jsonl" and row_layout(path) == "quality":
        return "quality"
    return fmt


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-empty line; FileSkipped names the first bad line."""
    text, _ = read_text(path)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FileSkipped(path, f"line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise FileSkipped(path, f"line {lineno}: expected a JSON object")
        yield lineno, row


def fictional_rows(path: Path) -> list[dict]:
    """A Fictional Knowledge file: a JSON list of objects with 'train_context'."""
    try:
        rows = json.loads(read_text(path)[0])
    except json.JSONDecodeError as e:
        raise FileSkipped(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "train_context" in r for r in rows):
        raise FileSkipped(path, "expected a list of objects with 'train_context'")
    return rows


def load_file(path: Path, fmt: str = "auto", text_field: str = "text") -> list[Document]:
    """The documents in one file; raises FileSkipped (an InputError) with the reason it is unusable."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    source = str(path)
    if fmt in FORMATS:
        got = read_document(path, fmt)
        meta: dict[str, Any] = {"format": fmt, **({"pages": got.pages} if got.pages else {}), **got.meta}
        if got.sections:
            meta["sections"] = got.sections
        return [Document(_doc_id(source, 0), got.title or path.stem, got.text, source, meta)]
    if fmt in ("txt", "md"):
        text, encoding = read_text(path)
        meta = {"encoding": encoding} if encoding != "utf-8-sig" else {}
        title = _title_of(text)
        if fmt == "md":  # parsed: markup out of the text, front matter into meta (ingest/markdown.py)
            got = read_markdown(text)
            if not got.text.strip():
                raise FileSkipped(path, "no text besides markup and front matter")
            meta.update(got.meta, **({"sections": got.sections} if got.sections else {}))
            text, title = got.text, got.title or _title_of(got.text)
        return [Document(_doc_id(source, 0), title or path.stem, text, source, meta)]
    if fmt == "quality":
        docs = []
        for i, (lineno, row) in enumerate(jsonl_rows(path)):
            if not isinstance(row.get("input"), str):
                raise FileSkipped(path, f"line {lineno}: QuALITY rows need a text field 'input'")
            docs.append(Document(_doc_id(source, i), _title_of(row["input"]), row["input"], source))
        return docs
    if fmt == "jsonl":
        docs = []
        for i, (lineno, row) in enumerate(jsonl_rows(path)):
            text = row.get(text_field)
            if not isinstance(text, str):
                raise FileSkipped(path, f"line {lineno}: no text field {text_field!r} (set corpus.text_field)")
            doc_id = str(row.get("doc_id") or row.get("id") or _doc_id(source, i))
            title = str(row.get("title") or _title_of(text))
            docs.append(Document(doc_id, title, text, source))
        return docs
    if fmt == "fictional":
        return [Document(_doc_id(source, i), _title_of(r["train_context"]), r["train_context"], source)
                for i, r in enumerate(fictional_rows(path))]
    raise FileSkipped(path, f"unknown format {fmt!r}")


def _walk(root: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """The visible files under `root`, sorted, and a skip entry for each folder that cannot be
    listed (Path.rglob passes over those in silence). Links to folders are not followed."""
    found: list[Path] = []
    unreadable: list[dict[str, str]] = []

    def refused(e: OSError) -> None:
        unreadable.append({"file": str(e.filename or root), "reason": unreadable_reason(e, folder=True)})

    for folder, dirs, names in os.walk(root, onerror=refused):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            f = Path(folder) / name
            try:
                if not name.startswith(".") and stat.S_ISREG(f.stat().st_mode):  # not devices, pipes, sockets
                    found.append(f)
            except OSError as e:  # a link to nothing, a link loop, a name we may not look at
                reason = "a link to a missing file" if isinstance(e, FileNotFoundError) else unreadable_reason(e)
                unreadable.append({"file": str(f), "reason": reason})
    return sorted(found), sorted(unreadable, key=lambda s: s["file"])


def list_files(paths: Iterable[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """The files that `paths` (files, folders, glob patterns, "demo") name, and the files in
    folders skipped for their type. Hidden files and folders (.git, .DS_Store) are passed over."""
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    for p in paths:
        if p == "demo":
            files.append(DEMO_CORPUS)
            continue
        path = Path(p)
        if not path.exists() and glob.has_magic(p):
            matches = [Path(m) for m in sorted(glob.glob(p, recursive=True))]
            if not matches:
                raise InputError(f"no corpus files match {p}")
            more, skip = list_files([str(m) for m in matches])
            files += more
            skipped += skip
        elif path.is_dir():
            found, unreadable = _walk(path)
            files += [f for f in found if f.suffix.lower() in FOLDER_SUFFIXES]
            skipped += [{"file": str(f), "reason": _unknown_type(f)} for f in found
                        if f.suffix.lower() not in FOLDER_SUFFIXES]
            skipped += unreadable
            if not found and not unreadable:
                skipped.append({"file": str(path), "reason": "empty folder"})
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"corpus file not found: {path}")
    return files, skipped


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """The readable-looking files that `paths` name (see list_files)."""
    return list_files(paths)[0]


@dataclass
class CorpusReport:
    """What loading a corpus read, skipped and merged; figures count the documents returned."""

    read: list[str] = field(default_factory=list)  # files that gave documents
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}
    # {"doc_id", "file", "duplicate_of" (doc id), "duplicate_of_file", "kind": exact | near, "similarity"}
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    documents: int = 0
    pages: int = 0  # PDF pages and slides
    words: int = 0
    near_dup_threshold: float = NEAR_DUP_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def notes(self) -> list[str]:
        """One line for each skipped file and each duplicate."""
        lines = [f"skipped {s['file']}: {s['reason']}" for s in self.skipped]
        lines += [f"loaded once: {d['file']} is {'an exact' if d['kind'] == 'exact' else 'a near'} duplicate of "
                  f"{d['duplicate_of_file']} (Jaccard {d['similarity']:.2f})" for d in self.duplicates]
        return lines

    def summary(self) -> str:
        return (f"{len(self.read)} files read, {len(self.skipped)} skipped, {len(self.duplicates)} duplicate "
                f"documents merged: {self.documents} documents, {self.pages} pages, {self.words:,} words")


def _nothing_usable(skipped: list[dict[str, str]]) -> InputError:
    shown = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    return InputError(f"no usable documents in the corpus: {shown}{more}" if skipped else "the corpus is empty")


def _dedupe(docs: list[Document]) -> tuple[list[Document], list[dict[str, Any]]]:
    kept, duplicates = [], []
    for doc, hit in zip(docs, find_duplicates([d.text for d in docs])):
        if hit is None:
            kept.append(doc)
            continue
        first = docs[hit[0]]
        duplicates.append({"doc_id": doc.doc_id, "file": doc.source, "duplicate_of": first.doc_id,
                           "duplicate_of_file": first.source, "kind": hit[1], "similarity": hit[2]})
    return kept, duplicates


def load_corpus_report(paths: Iterable[str], fmt: str = "auto", text_field: str = "text",
                       limit_docs: int | None = None, skip_docs: int = 0,
                       dedup: bool = True) -> tuple[list[Document], CorpusReport]:
    """Every usable document once, and the report of what was read, skipped and merged."""
    files, skipped = list_files(paths)
    if not files and not skipped:
        raise InputError("no corpus given (set corpus.paths)")
    report = CorpusReport(skipped=skipped)
    docs: list[Document] = []
    seen: set[str] = set()
    for f in files:
        try:
            loaded = load_file(f, fmt, text_field)
        except FileSkipped as e:
            skipped.append({"file": e.path, "reason": e.reason})
            continue
        report.read.append(str(f))
        for doc in loaded:
            if doc.doc_id in seen:  # two files with the same stem
                doc.doc_id = f"{doc.doc_id}-{hashlib.sha1(doc.source.encode()).hexdigest()[:6]}"
            seen.add(doc.doc_id)
            docs.append(doc)
    if dedup:
        docs, report.duplicates = _dedupe(docs)
    skipped.sort(key=lambda s: s["file"])
    if not docs:
        raise _nothing_usable(skipped)
    docs = docs[skip_docs:]
    docs = docs[:limit_docs] if limit_docs else docs
    report.documents = len(docs)
    report.pages = sum(int(d.meta.get("pages", 0)) for d in docs)
    report.words = sum(len(d.text.split()) for d in docs)
    return docs, report


def load_corpus(paths: Iterable[str], fmt: str = "auto", text_field: str = "text",
                limit_docs: int | None = None, skip_docs: int = 0) -> list[Document]:
    """Every usable document once; skipped files and duplicates are logged (load_corpus_report
    returns them)."""
    docs, report = load_corpus_report(paths, fmt, text_field, limit_docs, skip_docs)
    for line in report.notes():
        log.warning(line)
    return docs


def _cite(section: dict[str, Any]) -> str:
    if "page" in section:
        return f"p. {section['page']}"
    if "slide" in section:
        return f"slide {section['slide']}"
    return f"§ {section['heading']}" if section.get("heading") else ""


def locate(doc: Document, start: int, end: int | None = None) -> str:
    """Where in the original file the text at char offset `start` (to `end`) of `doc.text` comes
    from: "p. 3", "pp. 3-4", "§ Results", "slide 2"; "" when the document has no sections or the
    offset lies before the first one (text above a document's first heading)."""
    sections = doc.meta.get("sections") or []
    starts = [s["start"] for s in sections]
    i = bisect.bisect_right(starts, start) - 1
    if i < 0:
        return ""
    where = _cite(sections[i])
    if end is not None and "page" in sections[i]:
        j = bisect.bisect_right(starts, max(start, end - 1)) - 1
        if sections[j]["page"] != sections[i]["page"]:
            where = f"pp. {sections[i]['page']}-{sections[j]['page']}"
    return where


_WORD = re.compile(r"\S+")


def split_passages(doc: Document, words: int = 180, overlap: int = 30) -> list[Passage]:
    """Windows of `words` words with `overlap`, ending at a sentence boundary where one is near.

    Offsets index into ``doc.text`` so mentions and provenance point at the original text.
    """
    spans = [(m.start(), m.end()) for m in _WORD.finditer(doc.text)]
    if not spans:
        return []
    passages: list[Passage] = []
    start_w = 0
    step = max(1, words - overlap)
    while start_w < len(spans):
        end_w = min(len(spans), start_w + words)
        if end_w < len(spans):
            # prefer to end on a sentence end within the last quarter of the window
            for j in range(end_w, start_w + (3 * words) // 4, -1):
                if doc.text[spans[j - 1][1] - 1] in ".!?\"'”":
                    end_w = j
                    break
        start, end = spans[start_w][0], spans[end_w - 1][1]
        idx = len(passages)
        passages.append(Passage(f"{doc.doc_id}:p{idx:04d}", doc.doc_id, idx, start, end, doc.text[start:end]))
        if end_w >= len(spans):
            break
        start_w = max(start_w + 1, end_w - overlap) if end_w - start_w > overlap else start_w + step
    return passages

"""Load documents (txt, md, jsonl, QuALITY/L-Eval jsonl, Fictional Knowledge json) and cut passages.

A file that cannot be decoded as UTF-8 is decoded with a recorded fallback (cp1252, then latin-1)
rather than crashing mid-corpus; a file that cannot be parsed raises ``InputError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable, Iterator

from .errors import InputError
from .records import Document, Passage

DEMO_CORPUS = Path(__file__).parent / "data" / "demo" / "demo.jsonl"
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}


def read_text(path: Path) -> tuple[str, str]:
    """Return (text, encoding). Falls back from UTF-8 so one bad byte never loses a corpus."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: cannot decode text")  # unreachable: latin-1 decodes any bytes


def _doc_id(source: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(source).stem).strip("-").lower() or "doc"
    return f"{stem}-{index:04d}"


def _title_of(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("<"):  # skip markup such as <!-- $Id ... -->
            return line.lstrip("# ").strip()[:120]
    return ""


def detect_format(path: Path) -> str:
    if path.suffix.lower() in (".md", ".markdown"):
        return "md"
    if path.suffix.lower() in (".txt", ".rst"):
        return "txt"
    if path.suffix.lower() == ".json":
        return "fictional"
    if path.suffix.lower() == ".jsonl":
        text, _ = read_text(path)
        first = next((l for l in text.splitlines() if l.strip()), "")
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            raise InputError(f"{path}: line 1 is not valid JSON") from None
        if isinstance(row, dict) and "input" in row and "instructions" in row:
            return "quality"
        return "jsonl"
    raise InputError(f"{path}: unknown file type (expected .txt, .md, .jsonl or .json)")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    text, _ = read_text(path)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


def load_file(path: Path, fmt: str = "auto", text_field: str = "text") -> list[Document]:
    fmt = detect_format(path) if fmt == "auto" else fmt
    source = str(path)
    if fmt in ("txt", "md"):
        text, encoding = read_text(path)
        meta = {"encoding": encoding} if encoding != "utf-8-sig" else {}
        return [Document(_doc_id(source, 0), _title_of(text) or path.stem, text, source, meta)]
    if fmt == "quality":
        docs = []
        for i, (lineno, row) in enumerate(_jsonl_rows(path)):
            if not isinstance(row.get("input"), str):
                raise InputError(f"{path}:{lineno}: QuALITY rows need a text field 'input'")
            docs.append(Document(_doc_id(source, i), _title_of(row["input"]), row["input"], source))
        return docs
    if fmt == "jsonl":
        docs = []
        for i, (lineno, row) in enumerate(_jsonl_rows(path)):
            text = row.get(text_field)
            if not isinstance(text, str):
                raise InputError(f"{path}:{lineno}: no text field {text_field!r} (set corpus.text_field)")
            doc_id = str(row.get("doc_id") or row.get("id") or _doc_id(source, i))
            title = str(row.get("title") or _title_of(text))
            docs.append(Document(doc_id, title, text, source))
        return docs
    if fmt == "fictional":
        try:
            rows = json.loads(read_text(path)[0])
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "train_context" in r for r in rows):
            raise InputError(f"{path}: expected a list of objects with 'train_context'")
        return [
            Document(_doc_id(source, i), _title_of(r["train_context"]), r["train_context"], source)
            for i, r in enumerate(rows)
        ]
    raise InputError(f"{path}: unknown format {fmt!r}")


def expand_paths(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p == "demo":
            out.append(DEMO_CORPUS)
            continue
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES | {".jsonl"})
            if not files:
                raise InputError(f"{path}: folder holds no .txt, .md or .jsonl files")
            out.extend(files)
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(f"corpus file not found: {path}")
    return out


def load_corpus(paths: Iterable[str], fmt: str = "auto", text_field: str = "text",
                limit_docs: int | None = None, skip_docs: int = 0) -> list[Document]:
    files = expand_paths(paths)
    if not files:
        raise InputError("no corpus given (set corpus.paths)")
    docs: list[Document] = []
    seen: set[str] = set()
    for f in files:
        for doc in load_file(f, fmt, text_field):
            if doc.doc_id in seen:  # two files with the same stem
                doc.doc_id = f"{doc.doc_id}-{hashlib.sha1(doc.source.encode()).hexdigest()[:6]}"
            seen.add(doc.doc_id)
            docs.append(doc)
    docs = docs[skip_docs:]
    return docs[:limit_docs] if limit_docs else docs


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

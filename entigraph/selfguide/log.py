"""Append-only JSONL keyed by a deterministic id: the resume log of generation and annotation.

Each batch is appended and fsynced, so a kill loses at most the batch in flight; a torn last
line (killed mid-write) is ignored on read and the example is simply redone.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from the parts (Python's hash() is salted per process; crc32 is not)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def read_log(path: str | Path) -> dict[str, dict]:
    """Rows by id; a later row with the same id wins; unparsable lines (a torn tail) are skipped."""
    rows: dict[str, dict] = {}
    path = Path(path)
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "id" in row:
                rows[row["id"]] = row
    return rows


def append_log(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A torn tail has no newline: start on a fresh line so the new rows stay parsable.
    needs_newline = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
    with open(path, "a", encoding="utf-8") as f:
        if needs_newline:
            f.write("\n")
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"

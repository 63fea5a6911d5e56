"""Small, crash-safe file helpers shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

# Outputs are readable by the group and others (a shared runs/ across nodes, cards read by tools);
# mkstemp makes 0600 files, so every writer sets this. A file that holds a secret passes 0o600.
FILE_MODE = 0o644


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", mode: int = FILE_MODE) -> Iterator[Path]:
    """A unique temporary path beside `path` (two writers never share one); it replaces `path` when
    the block succeeds, with permissions `mode`, and is removed when it fails. A kill leaves only a
    `*.tmp` file, which the stage that owns the folder removes when it starts again."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def share_folder(folder: str | Path, mode: int = FILE_MODE) -> None:
    """Every file under `folder` gets `mode`: libraries that write through mkstemp leave 0600
    files (transformers 5.2x's model.safetensors), which a shared runs/ cannot read."""
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def write_json(path: str | Path, obj: Any, mode: int = FILE_MODE) -> None:
    """Write JSON atomically (temp file + rename), so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), mode)
    os.replace(tmp, path)


def file_sha256(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB pieces (model weights do not fit a single read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_jsonl(path: str | Path, rows: Iterable[dict], mode: int = FILE_MODE) -> int:
    """Write rows atomically; returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), mode)
    os.replace(tmp, path)
    return n


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

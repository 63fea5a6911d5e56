"""What a stage depends on, as one hash: its settings, the files it reads (the corpus, question and
replay files, every earlier stage's outputs, all by content) and the fingerprint of the stage
before it. A stage is complete when its marker (``.done.json``) holds the fingerprint it has now."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterable

from .artifacts import stage_dir
from .config import RunConfig
from .errors import EntigraphError
from .io import file_sha256, read_json, write_json
from .stages import BY_NAME, STAGES


def _section(cfg: RunConfig, dotted: str):
    node = cfg.to_dict()
    for part in dotted.split("."):
        node = node[part]
    return node


HASH_CACHE = ".input-hashes.json"  # under run_dir: content hashes of the files outside the runs
RACY_NS = 2_000_000_000  # a file changed this recently may change again within the same timestamp tick


def _hasher():
    try:
        import xxhash

        return "xxh3", xxhash.xxh3_128
    except ImportError:  # xxhash comes with `datasets`; sha256 keeps fingerprints working without it
        return "sha256", hashlib.sha256


def content_hash(path: Path) -> str:
    """A fast hash of the file's bytes, named by its algorithm ("xxh3:...")."""
    name, new = _hasher()
    h = new()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{name}:{h.hexdigest()}"


def _hash_files(files: Iterable[Path], cache_path: Path | None) -> list[tuple[str, str]]:
    """(path, content hash) of each file; (path, why not) for one that cannot be read. Hashes are
    remembered in `cache_path`, keyed by path, size, mtime, ctime and inode: ctime changes on every
    write and `touch` cannot set it back, so an edit that keeps size and mtime is still seen. A file
    changed within RACY_NS of now is not remembered (a second edit could share its timestamps)."""
    try:
        memo = read_json(cache_path) if cache_path and cache_path.is_file() else {}
    except (OSError, ValueError):
        memo = {}
    out, changed, now = [], False, time.time_ns()
    for f in files:
        try:
            st = f.stat()
            key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            known = memo.get(str(f))
            if known and known[:4] == key:
                out.append((str(f), known[4]))
                continue
            digest = content_hash(f)
        except OSError as e:  # unreadable: the stage itself reports it; a change of state still reruns it
            out.append((str(f), f"unreadable: {e.strerror or type(e).__name__}"))
            continue
        out.append((str(f), digest))
        if now - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
            memo[str(f)], changed = key + [digest], True
    if changed and cache_path is not None and cache_path.parent.is_dir():
        try:
            write_json(cache_path, memo)
        except OSError:  # only a cache: the next run hashes again
            pass
    return out


def _outputs(cfg: RunConfig, stage: str) -> list[Path]:
    """A stage's files (not its marker, locks, temporary files or training checkpoints)."""
    root = stage_dir(cfg.out, stage)
    return sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith(".")
                  and not f.name.endswith(".tmp") and "checkpoints" not in f.relative_to(root).parts
                  and f.name != "README.md")  # cards (entigraph/export.py) document, they are not data


def _identity(st: os.stat_result) -> list[int]:
    """What a file's hash is remembered by: size, mtime, ctime (moved by every write; `touch`
    cannot set it back) and inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def output_hashes(cfg: RunConfig, stage: str) -> dict[str, list]:
    """{relative path: [size, mtime_ns, sha256, ctime_ns, inode]} of a stage's files. Contents, not
    places, so two run folders with the same inputs share fingerprints (the stage cache relies on
    it); a file whose size, mtime, ctime and inode match the stage's marker reuses the hash recorded
    there instead of reading it (an edit that puts size and mtime back is still read)."""
    root = stage_dir(cfg.out, stage)
    try:
        memo = read_json(marker(cfg, stage)).get("outputs", {})
    except (OSError, ValueError):
        memo = {}
    out = {}
    for f in _outputs(cfg, stage):
        rel, st = f.relative_to(root).as_posix(), f.stat()
        known, now = memo.get(rel) or [], _identity(st)
        same = len(known) == 5 and known[:2] + known[3:] == now
        out[rel] = now[:2] + [known[2] if same else file_sha256(f)] + now[2:]
    return out


def refresh_marker(cfg: RunConfig, stage: str) -> None:
    """After the stage's files were copied or chmod-ed (same bytes, same size and mtime, new ctime or
    inode): record their new identity in the marker, so they are not read again to be hashed."""
    path, root = marker(cfg, stage), stage_dir(cfg.out, stage)
    done = read_json(path)
    for rel, known in done.get("outputs", {}).items():
        try:
            now = _identity((root / rel).stat())
        except OSError:
            continue
        if len(known) >= 3 and known[:2] == now[:2]:
            done["outputs"][rel] = now[:2] + [known[2]] + now[2:]
    write_json(path, done)


def input_digest(cfg: RunConfig, stage: str) -> list:
    """What a stage reads: every earlier stage's files and the files outside the run folder
    (corpus, questions, replay), all by content. Any change of input reruns it."""
    from .corpus import list_files

    index = STAGES.index(stage)
    earlier = {s: {rel: h[2] for rel, h in output_hashes(cfg, s).items()} for s in STAGES[:index]}
    external = [p for p in BY_NAME[stage].external_inputs(cfg) if p]
    try:
        listed, skipped = list_files(external)
    except EntigraphError as e:  # a missing input: the stage itself reports it when it runs
        return [earlier, str(e)]
    # files skipped for their type are never read: their names and reasons reach the report, not
    # their bytes (a video beside the documents, /proc/kcore) -- they are not hashed
    passed_over = sorted(f"{s['file']}: {s['reason']}" for s in skipped)
    return [earlier, _hash_files(listed, Path(cfg.run_dir) / HASH_CACHE), passed_over]


def fingerprint(cfg: RunConfig, stage: str) -> str:
    """Hash of this stage's settings and inputs, chained with the fingerprint of the stage before it."""
    index = STAGES.index(stage)
    prev = fingerprint(cfg, STAGES[index - 1]) if index else ""
    data = {s: _section(cfg, s) for s in BY_NAME[stage].inputs(cfg)}
    blob = json.dumps([prev, data, input_digest(cfg, stage)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def marker(cfg: RunConfig, stage: str) -> Path:
    return stage_dir(cfg.out, stage) / ".done.json"


def is_complete(cfg: RunConfig, stage: str) -> bool:
    path = marker(cfg, stage)
    if not path.is_file():
        return False
    try:
        return read_json(path).get("fingerprint") == fingerprint(cfg, stage)
    except (OSError, ValueError):
        return False

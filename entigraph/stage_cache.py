"""The stage cache: a finished stage folder stored by fingerprint under {run_dir}/.stage-cache, so
runs that share a stage's settings and inputs (the recipes of a study) run it once. An entry never
changes once stored: runs get their own copies (copy-on-write where the file system can: no data
is copied), and only large model weights are shared, as read-only hard links that a stage replaces
by a private copy before it writes (`unshare`), never writes through."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .artifacts import stage_dir
from .config import RunConfig
from .fingerprints import refresh_marker
from .locks import file_lock
from .stages import BY_NAME


SHARE_BYTES = 64 << 20  # model weights at least this large are shared read-only instead of copied
WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")


def cache_entry(cfg: RunConfig, stage: str, fp: str) -> Path:
    return Path(cfg.run_dir) / ".stage-cache" / stage / fp


@contextmanager
def cache_lock(cfg: RunConfig, stage: str, fp: str, echo: Callable[[str], None]):
    """Held while a cached stage is looked up and computed: another process that needs the same
    output (a recipe of a study run beside this one: EntiGraph's synthesis for its budget curve)
    waits, then reuses it, instead of computing it a second time."""
    if not cfg.stage_cache or not BY_NAME[stage].cached or os.environ.get("RANK", "0") != "0":
        yield
        return
    path = cache_entry(cfg, stage, fp).with_name(f"{fp}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path, echo=lambda m: echo(f"[{stage}] another run is computing this stage ({fp}); {m}")):
        yield


def copy_file(src: Path, dst: Path) -> None:
    """A private copy of `src` at `dst` with its modification time (the marker's hashes stay valid).
    copy_file_range lets the file system share the blocks copy-on-write where it can (a reflink on
    btrfs and XFS); elsewhere the bytes are copied. Never a link."""
    st = src.stat()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            left = st.st_size
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), left)
                if n == 0:
                    break
                left -= n
        except (AttributeError, OSError):  # not Linux, or not between these file systems: copy the bytes
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, 1 << 20)
    os.chmod(dst, 0o644)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _shareable(src: Path) -> bool:
    """Large model weights, which only the train stage writes (after `_unshare`). Never an SQLite
    store or an index: those are written in place, by the stage or by `entigraph ask`."""
    return src.suffix in WEIGHTS and src.stat().st_size >= SHARE_BYTES


def _clone_tree(src: Path, dst: Path) -> None:
    """`src` as a new folder `dst` (see the section comment: copies, or read-only links of large files)."""
    def clone(a: str, b: str) -> None:
        a_path, b_path = Path(a), Path(b)
        if _shareable(a_path):
            try:
                os.chmod(a_path, 0o444)  # the inode both names share: read-only for everyone
                os.link(a_path, b_path)
                return
            except OSError:  # another file system
                pass
        copy_file(a_path, b_path)

    shutil.copytree(src, dst, copy_function=clone, ignore=shutil.ignore_patterns("checkpoints", "*.tmp", ".lock"))


def unshare(folder: Path) -> None:
    """Replace every read-only file of `folder` that has another name (a cache entry's link) by a
    private copy, so the stage about to write here cannot change the entry or another run. Writable
    links are someone else's on purpose (the trained-weights store, training/trainer.py): left alone."""
    if not folder.is_dir():
        return
    for f in folder.rglob("*"):
        st = f.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not st.st_mode & 0o222:
            tmp = f.with_name(f".{f.name}.unshare.tmp")
            copy_file(f, tmp)
            os.replace(tmp, f)


def store(cfg: RunConfig, stage: str, fp: str) -> None:
    entry = cache_entry(cfg, stage, fp)
    if entry.exists():
        return
    tmp = entry.with_name(f".{fp}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    entry.parent.mkdir(parents=True, exist_ok=True)
    _clone_tree(stage_dir(cfg.out, stage), tmp)
    for f in tmp.rglob("*"):
        if f.is_file():
            os.chmod(f, 0o444)  # an entry is never written: refuse writers that are not root
    try:
        tmp.rename(entry)
    except OSError:  # another process stored it first
        shutil.rmtree(tmp, ignore_errors=True)
    refresh_marker(cfg, stage)  # the run's shared weights were made read-only: a new ctime


def reuse(cfg: RunConfig, stage: str, fp: str) -> bool:
    """Replace the stage folder by a copy of the cached one for `fp`, if there is one."""
    entry = cache_entry(cfg, stage, fp)
    if not BY_NAME[stage].cached or not (entry / ".done.json").is_file():
        return False
    folder = stage_dir(cfg.out, stage)
    shutil.rmtree(folder, ignore_errors=True)
    _clone_tree(entry, folder)
    refresh_marker(cfg, stage)
    if stage == "eval":  # the eval stage also writes the run's results.json
        copy_file(folder / "results.json", cfg.out / "results.json")
    return True

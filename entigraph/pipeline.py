"""Run the stages in order; each writes under runs/<name>/ and is skipped when already complete.

A stage is complete when its folder holds ``.done.json`` with a fingerprint of what it depends on:
its settings, the files it reads (the corpus, question and replay files; every earlier stage's
outputs, all by content) and the fingerprint of the stage before it. Change a
setting or an input and that stage and everything after it rerun. A stage's marker is removed
before it writes anything, so a killed stage is never complete; interrupted stages resume from
their own files (synthesis store, training checkpoints). One process at a time writes a run
folder: the others are told which PID holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import yaml

from .artifacts import stage_dir
from .config import RunConfig
from .errors import EntigraphError
from .io import atomic_path, file_sha256, read_json, read_jsonl, write_json
from .locks import file_lock, run_lock
from .stages import BY_NAME, MODULE, PIPELINE, STAGES


def uses_backend(cfg: RunConfig, stage: str) -> bool:
    """Whether a stage calls the `backend:` model, so its settings belong in that stage's fingerprint."""
    return BY_NAME[stage].uses_backend(cfg)


def model_stages(cfg: RunConfig) -> list[str]:
    """The stages that will load the `backend:` model: `make demo` builds vLLM's environment only
    when this is not empty."""
    return [s.name for s in PIPELINE if s.needs_model(cfg)]


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


def _refresh_marker(cfg: RunConfig, stage: str) -> None:
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


def stage_function(stage: str) -> tuple[Callable[[RunConfig], dict], Callable[[dict], list[str]] | None]:
    module = MODULE[stage]
    return module.run, getattr(module, "summary_lines", None)


def run_stage(cfg: RunConfig, stage: str, force: bool = False, echo: Callable[[str], None] = print) -> dict:
    with run_lock(cfg.out):
        return _run_stage(cfg, stage, force, echo)


def _run_stage(cfg: RunConfig, stage: str, force: bool, echo: Callable[[str], None]) -> dict:
    if not force and is_complete(cfg, stage):
        done = read_json(marker(cfg, stage))
        echo(f"[{stage}] complete ({done.get('seconds', 0):.1f} s when it ran); skipping")
        return done.get("summary", {})
    for this_or_later in STAGES[STAGES.index(stage):]:  # their inputs are about to change
        marker(cfg, this_or_later).unlink(missing_ok=True)
    expected = fingerprint(cfg, stage)
    with _cache_lock(cfg, stage, expected, echo):
        if cfg.stage_cache and not force and _reuse(cfg, stage, expected):
            done = read_json(marker(cfg, stage))
            echo(f"[{stage}] reused from the stage cache ({expected}; {done.get('seconds', 0):.1f} s when it ran)")
            return done.get("summary", {})
        return _compute(cfg, stage, expected, echo)


def _compute(cfg: RunConfig, stage: str, expected: str, echo: Callable[[str], None]) -> dict:
    echo(f"[{stage}] running")
    run, lines = stage_function(stage)
    clean_temporary_files(stage_dir(cfg.out, stage))
    if os.environ.get("RANK", "0") == "0":
        _unshare(stage_dir(cfg.out, stage))  # a reused stage's shared files: never written through
    start = time.perf_counter()
    try:
        summary = run(cfg) or {}
    except BaseException as e:  # SIGKILL leaves no line; anything else does
        _record_attempt(cfg, stage, expected, time.perf_counter() - start, type(e).__name__)
        raise
    seconds = time.perf_counter() - start
    if os.environ.get("RANK", "0") != "0":  # under the deepspeed launcher only rank 0 keeps the books
        return summary
    write_json(marker(cfg, stage), {
        "stage": stage, "fingerprint": expected, "seconds": seconds,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary,
        "outputs": output_hashes(cfg, stage),
    })
    _record_attempt(cfg, stage, expected, seconds, "done")
    if cfg.stage_cache and BY_NAME[stage].cached:
        _store(cfg, stage, expected)
    for line in (lines(summary) if lines else []):
        echo(f"[{stage}] {line}")
    echo(f"[{stage}] done in {seconds:.1f} s")
    return summary


# ---------------------------------------------------------------------------------------------
# Wall time: every attempt, so a resumed stage's total is not just its last part

def _record_attempt(cfg: RunConfig, stage: str, fp: str, seconds: float, outcome: str) -> None:
    """Append the attempt to history.jsonl; timings.json keeps, per stage, the completing attempt
    and the total of every recorded attempt at the same fingerprint (a failure and its resume)."""
    history = cfg.out / "history.jsonl"
    row = {"stage": stage, "fingerprint": fp, "seconds": round(seconds, 2), "outcome": outcome,
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(history, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if outcome not in ("done", "reused"):
        return
    total = sum(r["seconds"] for r in read_jsonl(history) if r["stage"] == stage and r["fingerprint"] == fp)
    path = cfg.out / "timings.json"
    timings = read_json(path) if path.is_file() else {}
    timings[stage] = round(seconds, 2)
    timings.setdefault("total", {})[stage] = round(total, 2)
    write_json(path, timings)


# ---------------------------------------------------------------------------------------------
# The stage cache: a finished stage folder stored by fingerprint, so runs that share a stage's
# settings and inputs (the recipes of a study) run it once. An entry never changes once stored:
# runs get their own copies (copy-on-write where the file system can: no data is copied), and
# only large model weights are shared, as read-only hard links
# that a stage replaces by a private copy before it writes (`_unshare`), never writes through.

SHARE_BYTES = 64 << 20  # model weights at least this large are shared read-only instead of copied
WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")


def cache_entry(cfg: RunConfig, stage: str, fp: str) -> Path:
    return Path(cfg.run_dir) / ".stage-cache" / stage / fp


@contextmanager
def _cache_lock(cfg: RunConfig, stage: str, fp: str, echo: Callable[[str], None]):
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


def _unshare(folder: Path) -> None:
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


def _store(cfg: RunConfig, stage: str, fp: str) -> None:
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
    _refresh_marker(cfg, stage)  # the run's shared weights were made read-only: a new ctime


def _reuse(cfg: RunConfig, stage: str, fp: str) -> bool:
    """Replace the stage folder by a copy of the cached one for `fp`, if there is one."""
    entry = cache_entry(cfg, stage, fp)
    if not BY_NAME[stage].cached or not (entry / ".done.json").is_file():
        return False
    folder = stage_dir(cfg.out, stage)
    shutil.rmtree(folder, ignore_errors=True)
    _clone_tree(entry, folder)
    _refresh_marker(cfg, stage)
    if stage == "eval":  # the eval stage also writes the run's results.json
        copy_file(folder / "results.json", cfg.out / "results.json")
    _record_attempt(cfg, stage, fp, 0.0, "reused")
    return True


def save_config(cfg: RunConfig) -> None:
    """The settings of the last command, beside its outputs (written under the run lock)."""
    with atomic_path(cfg.out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def clean_temporary_files(folder: Path) -> None:
    """Temporary files a killed process left behind (safe under the run lock: no writer is alive)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.rglob("*.tmp"):
        if f.is_file():
            f.unlink(missing_ok=True)


def run_all(cfg: RunConfig, start: str | None = None, force: bool = False,
            echo: Callable[[str], None] = print) -> dict[str, dict]:
    with run_lock(cfg.out):
        save_config(cfg)
        stages = STAGES[STAGES.index(start):] if start else STAGES
        return {stage: run_stage(cfg, stage, force=force, echo=echo) for stage in stages}

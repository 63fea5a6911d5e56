"""File locks that never hang silently: a lock is held by a live process or it is cleared.

Two kinds of lock reach this project:
- flock-based locks (``filelock.FileLock``: the model conversion, the packed data). The kernel drops
  them when their holder dies, so they are never stale, but a wait can be long: `file_lock` says
  who holds one (PID and command line) as soon as it has to wait, and again every `every_s`.
- batons (``torch.utils.file_baton.FileBaton``): torch creates ``<extension dir>/lock`` with
  O_CREAT|O_EXCL while it builds a C++ extension (DeepSpeed's shm comm op), keeps it open and deletes
  it when done; waiters poll for the file to go, forever and in silence. A builder killed mid-build
  leaves the file behind and hangs every later run. `wait_for_batons` removes such stale batons (no
  process holds the file open; where /proc cannot tell, nothing changed beside it for `idle_s`) and
  waits for live ones, saying who holds them.
Holders are found in /proc (Linux); elsewhere messages say so and staleness falls back to idleness.
A cache shared with other machines is out of sight: their builders look like no holder at all.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import EntigraphError
from .secrets import mask

Echo = Callable[[str], None]
EVERY_S = 30.0  # between two "still waiting" lines
POLL_S = 1.0  # between two checks of a baton
# A baton exists a moment before its creator's descriptor shows in /proc: younger ones are not judged.
SETTLE_S = 2.0
IDLE_S = 600.0  # without /proc: a baton with nothing written beside it for this long is stale
PROC = Path("/proc")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_by(path: Path) -> list[int] | None:
    """PIDs of the processes that have `path` open, from /proc/*/fd; None where that cannot be told
    (no /proc, or a process of the file's owner whose descriptors we may not read)."""
    if not (PROC / "self" / "fd").is_dir():
        return None
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        return []
    target, pids, blind = os.path.realpath(path), [], False
    for pid in _pids():
        try:
            fds = os.listdir(PROC / str(pid) / "fd")
        except PermissionError:
            blind = blind or _uid(pid) == owner
            continue
        except OSError:  # it exited meanwhile
            continue
        if any(_link(pid, fd) == target for fd in fds):
            pids.append(pid)
    return None if blind else pids


def flock_holders(path: Path) -> list[int]:
    """PIDs holding a flock or POSIX lock on `path`, from /proc/locks (matched by inode)."""
    try:
        inode = path.stat().st_ino
        lines = (PROC / "locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter's line ("1: -> FLOCK ..."), not a holder's
            continue
        if len(fields) >= 6 and fields[5].rsplit(":", 1)[-1] == str(inode) and fields[4].isdigit():
            pids.append(int(fields[4]))
    return pids


def describe(pids: list[int] | None) -> str:
    """'PID 12 (python -m entigraph train demo.yaml)' for each holder, for a message."""
    if pids is None:
        return "a process this system cannot name (no /proc)"
    if not pids:
        return "no process found"
    return ", ".join(f"PID {pid}" + (f" ({cmd})" if (cmd := command_line(pid)) else "") for pid in pids)


def command_line(pid: int, limit: int = 200) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return mask(raw.replace(b"\0", b" ").decode(errors="replace").strip())[:limit]  # masked: argv may hold a key


@contextmanager
def file_lock(path: str | Path, echo: Echo = say, every_s: float = EVERY_S, wait: bool = True) -> Iterator[bool]:
    """``filelock.FileLock(path)``, held for the block; while it waits it says who holds the lock
    at once and every `every_s`. With `wait` off it does not wait: the block runs at once and is
    told (the yielded bool) whether it holds the lock."""
    from filelock import FileLock, Timeout

    lock, timeout = FileLock(str(path)), 0.0
    while True:
        try:
            lock.acquire(timeout=timeout)
            break
        except Timeout:
            if not wait:
                yield False
                return
            holders = flock_holders(Path(path)) or open_by(Path(path))
            echo(f"waiting for the lock {path}, held by {describe(holders)}")
            timeout = every_s
    try:
        yield True
    finally:
        lock.release()


def stale_reason(baton: Path, settle_s: float = SETTLE_S, idle_s: float = IDLE_S) -> str | None:
    """Why `baton` is stale, or None while it may be live (or is gone)."""
    try:
        age = time.time() - baton.stat().st_mtime
    except FileNotFoundError:
        return None
    if age < settle_s:
        return None
    pids = open_by(baton)
    if pids is not None:
        return None if pids else "no process holds it open (its holder was killed)"
    idle = time.time() - _last_change(baton.parent)
    return f"nothing changed beside it for {idle:.0f} s" if idle >= idle_s else None


def clear_stale_batons(root: Path, echo: Echo = say, settle_s: float = SETTLE_S,
                       idle_s: float = IDLE_S) -> list[Path]:
    """Remove every stale ``lock`` baton under `root`, with a line for each; returns them."""
    return _clear(root, sorted(root.rglob("lock")) if root.is_dir() else [], echo, settle_s, idle_s)


def wait_for_batons(root: Path, echo: Echo = say, every_s: float = EVERY_S, poll_s: float = POLL_S,
                    settle_s: float = SETTLE_S, idle_s: float = IDLE_S) -> list[Path]:
    """Return once no baton under `root` is left: stale ones removed (returned), live ones waited
    for, saying who holds them at once and every `every_s`; one whose holder dies is removed."""
    removed = clear_stale_batons(root, echo, settle_s, idle_s)
    for baton in sorted(root.rglob("lock")) if root.is_dir() else []:
        next_line = 0.0
        while baton.exists():
            if _clear(root, [baton], echo, settle_s, idle_s):
                removed.append(baton)
                break
            if time.monotonic() >= next_line:
                echo(f"waiting for {baton} (a torch extension build), held by {describe(open_by(baton))}")
                next_line = time.monotonic() + every_s
            time.sleep(poll_s)
    return removed


def _clear(root: Path, batons: list[Path], echo: Echo, settle_s: float, idle_s: float) -> list[Path]:
    if not batons:
        return []
    # Cleaners take turns: two could judge one stale baton, and the slower would then delete the
    # fresh baton a builder created after the faster one's removal.
    with file_lock(root / ".entigraph-batons.lock", echo):
        return [b for b in batons if _remove_if_stale(b, echo, settle_s, idle_s)]


def _remove_if_stale(baton: Path, echo: Echo, settle_s: float, idle_s: float) -> bool:
    if not baton.is_file() or not (reason := stale_reason(baton, settle_s, idle_s)):
        return False
    baton.unlink(missing_ok=True)
    echo(f"removed the stale lock {baton}: {reason}")
    return True


def _pids() -> Iterator[int]:
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            yield int(entry.name)


def _uid(pid: int) -> int | None:
    try:
        return (PROC / str(pid)).stat().st_uid
    except OSError:
        return None


def _link(pid: int, fd: str) -> str:
    try:
        return os.readlink(PROC / str(pid) / "fd" / fd)
    except OSError:
        return ""


def _last_change(folder: Path) -> float:
    """Newest modification time in `folder` (a build writes its objects there)."""
    times = [folder.stat().st_mtime]
    for path in folder.rglob("*"):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    return max(times)


# ---------------------------------------------------------------------------------------------
# The run folder's lock: one writer per runs/<name>/ (an flock on its .lock, holding the PID)

_HELD: set[str] = set()


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """One writer per run folder. Re-entrant within a process; under the deepspeed launcher only
    rank 0 takes it (every rank runs the train stage)."""
    key = str(folder.resolve())
    if os.environ.get("RANK", "0") != "0" or key in _HELD:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel releases it when its holder dies
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EntigraphError(f"{folder} is being written by another entigraph process (PID {holder}); "
                             "wait for it to finish or stop it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        os.ftruncate(fd, 0)
        os.close(fd)


def run_held(folder: Path) -> bool:
    """Whether another process holds the folder's run lock (a study's worker beside this one)."""
    path = folder / ".lock"
    return path.is_file() and any(pid != os.getpid() for pid in flock_holders(path))


def wait_for_run(folder: Path) -> None:
    """Until the process that holds the folder's run lock lets go of it (ends or dies)."""
    with open(folder / ".lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        fcntl.flock(f, fcntl.LOCK_UN)

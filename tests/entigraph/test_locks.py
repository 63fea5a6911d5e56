"""entigraph.locks: a stale torch baton is removed with a line, a live one is waited for with its
holder named, and a FileLock wait names its holder; with real processes, SIGKILL included."""

import os
import subprocess
import sys
import time

import pytest

from entigraph import locks, models

# A torch FileBaton: create the file exclusively and keep it open while "building".
BATON = "import os, sys, time; os.open(sys.argv[1], os.O_CREAT | os.O_EXCL); print('ready', flush=True); time.sleep(60)"
FLOCK = ("import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
         "print('ready', flush=True); time.sleep(60)")


@pytest.fixture
def holder():
    started = []

    def start(code, path):
        p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        started.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def aged(path, seconds=60):
    """Back-date a file past the settling time a fresh baton gets."""
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def baton(tmp_path):
    ext = tmp_path / "torch_extensions" / "deepspeed_shm_comm"
    ext.mkdir(parents=True)
    return ext / "lock"


def test_a_baton_left_by_a_killed_build_is_removed_with_a_line(tmp_path, holder):
    lock = baton(tmp_path)
    builder = holder(BATON, lock)
    assert locks.open_by(lock) == [builder.pid]
    builder.kill()  # SIGKILL mid-build: the file stays, nobody holds it
    builder.wait()
    aged(lock)
    lines = []
    assert locks.wait_for_batons(tmp_path / "torch_extensions", echo=lines.append) == [lock]
    assert not lock.exists()
    assert len(lines) == 1 and "removed the stale lock" in lines[0] and str(lock) in lines[0]


def test_a_fresh_baton_is_not_judged_before_its_holder_can_show(tmp_path):
    lock = baton(tmp_path)
    os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
    assert locks.clear_stale_batons(tmp_path, echo=print, settle_s=60) == [] and lock.exists()


def test_a_live_baton_is_kept_and_its_holder_named_until_it_dies(tmp_path, holder):
    lock = baton(tmp_path)
    builder = holder(BATON, lock)
    aged(lock)
    assert locks.clear_stale_batons(tmp_path, echo=print) == [] and lock.exists()
    lines = []

    def echo(line):
        lines.append(line)
        if len(lines) == 2:  # two "waiting" lines: now the builder dies mid-wait
            builder.kill()
            builder.wait()

    removed = locks.wait_for_batons(tmp_path, echo=echo, every_s=0.1, poll_s=0.05)
    assert removed == [lock] and not lock.exists()
    assert all(f"held by PID {builder.pid} (" in line and "python" in line for line in lines[:2])
    assert "removed the stale lock" in lines[-1]


def test_without_proc_a_baton_is_stale_only_after_idle_time(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "open_by", lambda path: None)
    lock = baton(tmp_path)
    lock.touch()
    aged(lock)
    assert locks.stale_reason(lock, idle_s=600) is None  # its folder changed just now
    aged(lock, 700), aged(lock.parent, 700)
    assert "nothing changed" in locks.stale_reason(lock, idle_s=600)


def test_a_file_lock_wait_names_its_holder_and_keeps_saying_it(tmp_path, holder):
    path = tmp_path / "model.lock"
    other = holder(FLOCK, path)
    assert locks.flock_holders(path) == [other.pid]
    lines = []

    def echo(line):
        lines.append(line)
        if len(lines) == 3:
            other.kill()  # the kernel drops its flock
            other.wait()

    with locks.file_lock(path, echo=echo, every_s=0.1):
        assert locks.flock_holders(path) == [os.getpid()]
    assert len(lines) == 3 and all(f"held by PID {other.pid} (" in line for line in lines)


def test_model_conversion_waits_with_the_holder_named(tmp_path, holder, monkeypatch, capsys):
    target = tmp_path / "smollm2-135m-instruct"
    other = holder(FLOCK, str(target) + ".lock")
    monkeypatch.setattr(models, "_package_dir", lambda package: tmp_path)

    def convert(folder, gguf, out):  # the holder dies while this process waits, then it converts
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", convert)
    killer = subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(0.5); os.kill({other.pid}, 9)"])
    assert models.resolve_lm(models.DEFAULT_LM, str(tmp_path)) == str(target)
    killer.wait()
    assert f"waiting for the lock {target}.lock, held by PID {other.pid}" in capsys.readouterr().err

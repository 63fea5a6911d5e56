"""The server manager (entigraph/backends/server.py) against a fake vLLM server on 127.0.0.1:
started, health-checked and stopped on success, failure, SIGINT, SIGTERM and the parent's death
(checked by PID); a server that dies mid-call is restarted or its requests go to the fallback,
with every request answered exactly once."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from entigraph.backends.base import Generation, Request
from entigraph.backends.openai import OpenAIBackend
from entigraph.backends.server import (
    ServerBackend,
    ServerError,
    ServerProcess,
    free_port,
)
from entigraph.config import SamplingConfig
from entigraph.backends import server

FAKE = Path(__file__).parent / "fake_vllm_server.py"


def gone(pid: int, wait_s: float = 5.0) -> bool:
    """True once no process has this PID (a zombie child counts as gone once reaped by us)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it if it is a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def fake(tmp_path: Path, *extra: str, timeout: float = 20.0) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, str(FAKE), "--port", str(port), "--served-model-name", "m", *extra]
    return ServerProcess(cmd, port=port, log_path=tmp_path / "server.log", startup_timeout_s=timeout,
                         name="fake server")


def requests(n: int, tag: str = "q") -> list[Request]:
    return [Request([{"role": "user", "content": f"context shared by all\n{tag}{i}"}], SamplingConfig(), i)
            for i in range(n)]


def client(url: str) -> OpenAIBackend:
    return OpenAIBackend(url, "m", concurrency=4, timeout_s=10, max_retries=1, backoff_s=0.05)


class FakeFallback:
    name = "hf"
    model = "m"

    def __init__(self):
        self.seen: list[str] = []
        self.closed = False

    def generate(self, reqs):
        self.seen += [r.messages[-1]["content"].splitlines()[-1] for r in reqs]
        return [Generation(f"fallback: {r.messages[-1]['content'].splitlines()[-1]}", 3, 2) for r in reqs]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        self.closed = True


# ---------------------------------------------------------------------------------------------
# ServerProcess

def test_start_health_stop_kills_the_whole_group(tmp_path):
    server = fake(tmp_path, "--child", str(tmp_path / "child.pid"))
    with server:
        assert server.healthy() and server.url.startswith("http://127.0.0.1:")
        pid, child = server.pid, int((tmp_path / "child.pid").read_text())
        assert not gone(pid, 0.1) and not gone(child, 0.1)
    assert gone(pid) and gone(child)  # the leader and what it spawned
    assert not server.alive()
    server.stop()  # twice is harmless


def test_stopped_when_the_block_raises(tmp_path):
    server = fake(tmp_path)
    with pytest.raises(RuntimeError), server:
        pid = server.pid
        raise RuntimeError("the stage failed")
    assert gone(pid)


def test_a_server_that_exits_while_starting_is_an_error_with_its_last_log_line(tmp_path):
    server = fake(tmp_path, "--exit-at-start", "--pidfile", str(tmp_path / "pid"))
    with pytest.raises(ServerError, match="exited with code 3.*refusing to start"):
        server.start()
    assert gone(int((tmp_path / "pid").read_text())) and server.proc is None


def test_a_server_that_never_becomes_healthy_is_stopped_at_the_deadline(tmp_path):
    server = fake(tmp_path, "--never-ready", "--pidfile", str(tmp_path / "pid"), timeout=1.5)
    start = time.monotonic()
    with pytest.raises(ServerError, match="did not answer /v1/models"):
        server.start()
    assert time.monotonic() - start < 10
    assert gone(int((tmp_path / "pid").read_text()))


# ---------------------------------------------------------------------------------------------
# ServerBackend: restart, failover, nothing lost or repeated

def served(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_generate_answers_every_request_in_order(tmp_path):
    backend = ServerBackend(fake(tmp_path), client, label="m")
    try:
        gens = backend.generate(requests(6))
        assert [g.text for g in gens] == [f"answer: q{i}" for i in range(6)]
        assert backend.name == "vllm-server" and backend.detail == {"requested": "vllm-server",
                                                                    "engine": "vllm-server", "restarts": 0}
        pid = backend.server.pid
    finally:
        backend.close()
    assert gone(pid)


def test_a_server_that_dies_mid_call_is_restarted_and_only_the_missing_requests_resent(tmp_path, caplog):
    log = tmp_path / "served.txt"
    server = fake(tmp_path, "--die-after", "3", "--die-once", str(tmp_path / "died"), "--served", str(log),
                  "--delay", "0.05")
    backend = ServerBackend(server, client, label="m", max_restarts=2, fallback=FakeFallback)
    try:
        first_pid = backend.server.pid
        with caplog.at_level(logging.WARNING):
            gens = backend.generate(requests(10))
        assert [g.text for g in gens] == [f"answer: q{i}" for i in range(10)]
        assert all(g.finish_reason == "stop" for g in gens)
        assert sorted(served(log)) == sorted(f"q{i}" for i in range(10))  # each answered once
        assert backend.restarts == 1 and backend.name == "vllm-server" and backend.fallback_backend is None
        assert gone(first_pid) and backend.server.pid != first_pid
        assert any("restarting it (1/2)" in r.getMessage() for r in caplog.records)
    finally:
        pid = backend.server.pid
        backend.close()
    assert gone(pid)


def test_restarts_spent_the_fallback_generates_the_rest_once(tmp_path, caplog):
    log = tmp_path / "served.txt"
    server = fake(tmp_path, "--die-after", "2", "--served", str(log), "--delay", "0.05")  # dies every time
    fb = FakeFallback()
    backend = ServerBackend(server, client, label="m", max_restarts=1, fallback=lambda: fb)
    try:
        with caplog.at_level(logging.WARNING):
            gens = backend.generate(requests(8))
        by_server = served(log)
        assert len(by_server) + len(fb.seen) == 8 and not set(by_server) & set(fb.seen)
        assert sorted(by_server + fb.seen) == sorted(f"q{i}" for i in range(8))
        for i, g in enumerate(gens):
            assert g.text in (f"answer: q{i}", f"fallback: q{i}")
        assert backend.name == "hf" and backend.detail["engine"] == "hf" and backend.detail["restarts"] == 1
        assert "fallback_reason" in backend.detail
        assert sum("falling back to the hf backend" in r.getMessage() for r in caplog.records) == 1
        assert not backend.server.alive()
        later = backend.generate(requests(2, tag="later"))  # later calls stay on the fallback
        assert [g.text for g in later] == ["fallback: later0", "fallback: later1"]
    finally:
        backend.close()
    assert fb.closed


def test_a_server_that_cannot_start_falls_back_at_once_or_fails_without_a_fallback(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        backend = ServerBackend(fake(tmp_path, "--exit-at-start"), client, label="m", fallback=FakeFallback)
    assert backend.name == "hf" and "exited with code 3" in backend.detail["fallback_reason"]
    assert [g.text for g in backend.generate(requests(2))] == ["fallback: q0", "fallback: q1"]
    backend.close()
    with pytest.raises(ServerError, match="backend.fallback: none"):
        ServerBackend(fake(tmp_path, "--exit-at-start"), client, label="m", fallback=None)


def test_errors_from_a_healthy_server_stay_errors_without_a_restart(tmp_path):
    backend = ServerBackend(fake(tmp_path), client, label="m", fallback=FakeFallback)
    try:
        reqs = requests(3)
        reqs[1].messages[-1]["content"] += " bad-request"
        gens = backend.generate(reqs)
        assert [g.finish_reason for g in gens] == ["stop", "error", "stop"] and "HTTP 400" in gens[1].error
        assert backend.restarts == 0 and backend.fallback_backend is None
    finally:
        backend.close()


# ---------------------------------------------------------------------------------------------
# Signals: the server is stopped on SIGINT and SIGTERM, and dies with a SIGKILLed parent

DRIVER = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C raises KeyboardInterrupt even when the suite runs as a background job (which starts
    # with SIGINT ignored, and Python keeps an ignored SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    from test_server import fake, client, requests
    from entigraph.backends.server import ServerBackend
    from pathlib import Path
    tmp = Path({tmp!r})
    backend = ServerBackend(fake(tmp, "--child", str(tmp / "child.pid"), "--delay", "30"), client, label="m")
    try:
        (tmp / "server.pid").write_text(str(backend.server.pid))
        backend.generate(requests(2))  # blocks: each answer takes 30 s
    finally:
        backend.close()
""")


def start_driver(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), tmp=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "server.pid").exists() or not (tmp_path / "child.pid").exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # inside generate
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_server_is_stopped_when_the_stage_is_interrupted(tmp_path, sig):
    proc = start_driver(tmp_path)
    server, child = int((tmp_path / "server.pid").read_text()), int((tmp_path / "child.pid").read_text())
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert gone(server) and gone(child), "orphan server process"


def test_the_server_dies_with_a_killed_parent(tmp_path):
    proc = start_driver(tmp_path)
    server = int((tmp_path / "server.pid").read_text())
    proc.kill()  # SIGKILL: no handler runs; PR_SET_PDEATHSIG stops the server
    proc.wait(timeout=30)
    assert gone(server, wait_s=15), "orphan server process"
    child = int((tmp_path / "child.pid").read_text())
    if not gone(child, 0.5):  # the fake's own child has no death signal; vLLM's workers watch their parent
        os.kill(child, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# The synthesize stage with backend.kind vllm-server (a fake interpreter in backend.vllm.python)

def fake_python(tmp_path: Path, *extra: str) -> str:
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\" {' '.join(extra)}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_the_synthesize_stage_runs_on_the_server_and_stops_it(tmp_path, tiny_lm):
    from synth_inputs import tiny_config, write_inputs

    from entigraph import artifacts
    from entigraph.stages import synthesize

    cfg = tiny_config(tmp_path, tiny_lm, backend="vllm-server", max_passages=6)
    served_log = tmp_path / "served.txt"
    cfg.backend.vllm.python = fake_python(tmp_path, "--served", str(served_log), "--pidfile", str(tmp_path / "pid"))
    cfg.backend.vllm.startup_timeout_s = 30
    write_inputs(cfg)
    summary = synthesize.run(cfg, progress=False)
    assert summary["passages"] == 6 and summary["backend"] == "vllm-server"
    assert summary["backend_detail"] == {"requested": "vllm-server", "engine": "vllm-server", "restarts": 0}
    rows = artifacts.synthetic(cfg.out)
    assert all(r.backend == "vllm-server" and r.text.startswith("answer: ") for r in rows)
    assert len(served(served_log)) == 6
    assert gone(int((tmp_path / "pid").read_text()))
    # the same tasks on hf: task ids do not depend on the backend kind, so a rerun resumes them all
    cfg.backend.kind = "hf"
    again = synthesize.run(cfg, progress=False)
    assert again["resumed"] == 6 and again["generated"] == 0


def test_the_synthesize_stage_falls_back_to_hf_when_the_server_cannot_start(tmp_path, tiny_lm, caplog):
    from synth_inputs import tiny_config, write_inputs

    from entigraph.stages import synthesize

    cfg = tiny_config(tmp_path, tiny_lm, backend="vllm-server", max_passages=4)
    cfg.backend.vllm.python = str(tmp_path / "no-such-venv" / "bin" / "python")
    write_inputs(cfg)
    with caplog.at_level(logging.WARNING):
        summary = synthesize.run(cfg, progress=False)
    assert summary["passages"] == 4 and summary["backend"] == "hf"
    assert "no vLLM interpreter" in summary["backend_detail"]["fallback_reason"]
    lines = [r.getMessage() for r in caplog.records if "falling back to the hf backend" in r.getMessage()]
    assert len(lines) == 1


@pytest.mark.parametrize("cores, reserved", [(2, "0"), (4, "0"), (16, None)])
def test_small_machines_keep_no_core_for_the_vllm_scheduler(tmp_path, monkeypatch, cores, reserved):
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.setattr(server.os, "cpu_count", lambda: cores)
    env = server.vllm_environment(tmp_path, 2.0)
    assert env.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == reserved
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")  # the user's setting wins
    assert server.vllm_environment(tmp_path, 2.0)["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"

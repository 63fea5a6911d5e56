"""Synthesis on a real local Ray cluster: the driver killed mid-run resumes to the same store as an
uninterrupted local run (same task ids and texts, no duplicates, nothing missing)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synth_inputs import tiny_config, write_inputs

ray = pytest.importorskip("ray")

from entigraph.stages import synthesize as synthesis
from entigraph.synthesis.store import Store

HERE = Path(__file__).resolve().parent
PASSAGES = 24


def config(root, model, executor="local", address=None):
    cfg = tiny_config(Path(root), model, max_passages=PASSAGES, batch_size=2)
    cfg.backend.sampling.max_new_tokens = 24
    cfg.synthesis.executor, cfg.synthesis.ray_address, cfg.synthesis.ray_workers = executor, address, 2
    return cfg


def stored(cfg):
    with Store(cfg.out / "synthesize" / "store.sqlite") as store:
        return list(store.passages(None))


def committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def cluster():
    """A local cluster: the head and its worker processes on this machine, 2 CPUs."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.slow
def test_driver_killed_mid_run_resumes_to_the_local_store(tmp_path, tiny_lm, cluster):
    reference = config(tmp_path / "ref", tiny_lm)
    write_inputs(reference)
    synthesis.run(reference, progress=False)
    expected = {(r.task_id, r.seq, r.text) for r in stored(reference)}
    assert len(expected) == PASSAGES

    killed = config(tmp_path / "killed", tiny_lm, "ray", cluster)
    write_inputs(killed)
    db = killed.out / "synthesize" / "store.sqlite"
    script = tmp_path / "run_synth.py"
    script.write_text(
        "import sys\nsys.path[:0] = [sys.argv[3]]\nfrom test_ray import config\n"
        "from entigraph.stages import synthesize as synthesis\n"
        "synthesis.run(config(sys.argv[1], sys.argv[2], 'ray', sys.argv[4]), progress=False)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{HERE}:{HERE.parent}:{HERE.parents[1]}"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), tiny_lm, str(HERE), cluster],
                            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "driver.log").open("w"))
    deadline = time.monotonic() + 180
    while proc.poll() is None and committed(db) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = committed(db)
    log = (tmp_path / "driver.log").read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL and 0 < partial < PASSAGES, (proc.returncode, partial, log)

    summary = synthesis.run(killed, progress=False)  # resumes on the same cluster (this process's)
    rows = stored(killed)
    assert summary["executor"] == "ray" and summary["resumed"] == partial and summary["passages"] == PASSAGES
    assert len(rows) == len({r.task_id for r in rows}) == PASSAGES  # no duplicates, nothing missing
    assert {(r.task_id, r.seq, r.text) for r in rows} == expected  # the local run's texts
    with Store(db) as store:
        assert store.totals()["attempts"] == PASSAGES
    workers = summary["workers"]
    assert len(workers) == 2 and sum(w["requests"] for w in workers) == PASSAGES - partial
    assert all(w["failures"] == 0 for w in workers) and all(w["batches"] > 0 for w in workers)
    assert len({w["pid"] for w in workers} | {os.getpid()}) == 3  # two actor processes besides the driver


@pytest.mark.slow
def test_a_batch_whose_worker_dies_goes_to_another_and_is_counted(cluster, tmp_path):
    """Each actor holds an openai backend (a loopback fake server); actor 0 is killed with its batch
    in flight: the batch is answered by actor 1, and worker 0's failure is in the summary."""
    from test_backend_openai import FaultServer

    from entigraph.backends.base import Request
    from entigraph.config import RunConfig, SamplingConfig
    from entigraph.synthesis.ray_executor import RayExecutor

    srv = FaultServer()
    try:
        cfg = RunConfig(name="t", run_dir=str(tmp_path))
        cfg.backend.kind, cfg.backend.openai.base_url, cfg.backend.openai.model = "openai", srv.url, "tiny"
        cfg.synthesis.executor, cfg.synthesis.ray_workers = "ray", 2
        ex = RayExecutor(cfg)
        try:
            assert (ex.name, ex.model) == ("openai", "tiny") and ex.count_tokens("abcdefgh") == 3
            reqs = [Request([{"role": "user", "content": f"q{i}"}], SamplingConfig(max_new_tokens=3), i) for i in range(4)]
            ray.kill(ex.actors[0], no_restart=False)  # dies; Ray restarts it later
            ex.inflight[0] += 1
            gens = ex._result(reqs, (0, ex.actors[0].generate.remote(reqs)))
            assert [g.text for g in gens] == [f"answer to q{i}" for i in range(4)]
            workers = ex.summary()["workers"]
            assert workers[0]["failures"] == 1 and workers[0]["errors"] and workers[1]["requests"] == 4
            assert ex.inflight == [0, 0]
        finally:
            ex.close()
    finally:
        srv.stop()

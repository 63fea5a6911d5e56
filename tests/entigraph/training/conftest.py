"""A tiny run folder with the train stage's inputs: extract/documents.jsonl and filter/kept.jsonl."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from entigraph.config import RunConfig
from entigraph.io import write_jsonl
from entigraph.records import Document, SynthPassage, to_dict

WORDS = ("the harbour guild of lumen bay built tidal clock in mara velt and oskar brenn studied "
         "salt marshes near kettle point a passage is window document entities co-occur").split()


def make_run(root: Path, tiny_lm: str, n_passages: int = 24, n_docs: int = 3, seed: int = 0) -> RunConfig:
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    cfg = RunConfig(name="t", run_dir=str(root))
    cfg.models.base = tiny_lm
    docs = [Document(doc_id=f"d{i}", title=f"D{i}", text=text(150)) for i in range(n_docs)]
    kept = [SynthPassage(task_id=f"t{i}", mode="pair", entities=[], doc_ids=[], passage_ids=[],
                         text=text(rng.randint(30, 80))) for i in range(n_passages)]
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(d) for d in docs])
    write_jsonl(cfg.out / "filter" / "kept.jsonl", [to_dict(p) for p in kept])
    t = cfg.train
    t.block_size, t.threads, t.save_steps, t.logging_steps = 64, 1, 4, 2
    t.replay.self_passages, t.replay.self_max_new_tokens = 4, 24
    return cfg


@pytest.fixture
def run_cfg(tmp_path, tiny_lm) -> RunConfig:
    return make_run(tmp_path / "runs", tiny_lm)


@pytest.fixture(name="make_run")
def make_run_fixture(tiny_lm):
    """make_run(root) -> RunConfig: a fresh run folder on the tiny model."""
    return lambda root: make_run(root, tiny_lm)


REPO = Path(__file__).resolve().parents[3]

# Trains until the given step, then SIGKILLs itself: a kill between two checkpoints, at a step
# the test controls (an outside kill races a tiny model that trains 80 steps a second).
KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from entigraph.config import load_config
from entigraph.training.trainer import train

class KillAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

train(load_config(sys.argv[1]), callbacks=[KillAt()])
"""


@pytest.fixture
def train_until_killed(tmp_path):
    """train_until_killed(config_path, step) -> CompletedProcess: trains the run of a config file in
    a subprocess that SIGKILLs itself at the end of that step."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def run(config: Path, step: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(config), str(step)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    return run

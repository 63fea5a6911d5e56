"""Two training processes (torchrun, gloo on CPU, DeepSpeed ZeRO-2): the same loss curve as one
process with the same global batch, and a run whose rank 1 is SIGKILLed resumes to the same end.
(Checkpoints fall on logged steps: the Trainer's logged loss after a resume averages only the
steps since the checkpoint.)"""

import signal
import subprocess
import sys

import pytest
import yaml

from entigraph.config import MixtureSource
from entigraph.io import read_json
from entigraph.stages.train import run as train_stage

# Rank 1 kills itself after the given step: torchrun then stops rank 0, as on a cluster.
KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from entigraph.config import load_config
from entigraph.training.trainer import train

class KillRank1(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[2]) and os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)

train(load_config(sys.argv[1]), callbacks=[KillRank1()])
"""


def configure(cfg, processes: int):
    t = cfg.train
    t.deepspeed, t.bf16, t.val_fraction = "zero2", False, 0.1
    t.mixture = [MixtureSource(source="synthetic", epochs=1.0), MixtureSource(source="replay", share=0.1)]
    t.micro_batch_size, t.save_steps, t.threads = 2, 4, 1  # checkpoints at logged steps
    t.grad_accum, t.processes = (2, 1) if processes == 1 else (1, processes)  # global batch 4 either way
    t.replay.source = "none"
    return cfg


@pytest.mark.slow
def test_two_gloo_processes_match_one_and_resume_after_a_rank_is_killed(tmp_path, make_run):
    one = configure(make_run(tmp_path / "one"), 1)
    ref = train_stage(one)
    two = configure(make_run(tmp_path / "two"), 2)
    got = train_stage(two)
    assert got["world_size"] == 2 and got["global_batch"] == ref["global_batch"] == 4
    assert got["steps"] == ref["steps"] and got["data_hash"] == ref["data_hash"]
    curve, want = read_json(two.out / "train" / "loss.json"), read_json(one.out / "train" / "loss.json")
    assert curve["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
    assert got["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-4)

    killed = configure(make_run(tmp_path / "killed"), 2)
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(killed.to_dict()))
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(config), "6"], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "SIGKILL" in proc.stderr + str(-signal.SIGKILL), proc.stderr[-2000:]
    assert not (killed.out / "train" / "model").exists()
    resumed = train_stage(killed)  # the stage launches both ranks again; they resume at step 4
    assert resumed["resumed_from_step"] == 4 and resumed["steps"] == got["steps"]
    assert resumed["val_loss"] == pytest.approx(got["val_loss"], rel=1e-4)
    assert read_json(killed.out / "train" / "loss.json")["train_loss"] == pytest.approx(curve["train_loss"], rel=1e-4)

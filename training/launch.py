"""Several training processes on one machine: the train stage launches them with torchrun.

`train.processes: N` runs N ranks of the same trainer (gloo on CPU, one GPU each with CUDA), the
code path of a multi-node DeepSpeed run on one machine. The stage process only waits: each rank
reads the run's config, rank 0 writes the model and the summary, a rerun resumes from the last
checkpoint after any rank was killed (torchrun then stops the others).

    python -m entigraph.training.launch CONFIG.yaml     # one rank (torchrun starts N of these)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from entigraph import artifacts
from entigraph.config import RunConfig, load_config
from entigraph.errors import EntigraphError
from entigraph.io import atomic_path, read_json


def launch(cfg: RunConfig) -> dict:
    """Run the train stage as `cfg.train.processes` local ranks; returns rank 0's summary."""
    out = artifacts.stage_dir(cfg.out, "train")
    config = out / "launch.yaml"
    with atomic_path(config) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // cfg.train.processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.train.processes}",
           "-m", "entigraph.training.launch", str(config)]
    proc = subprocess.run(cmd, env=env, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-20000:])  # the ranks' own tracebacks, for the record
        errors = [line.strip() for line in proc.stderr.splitlines() if re.match(r"\s*\w+(Error|Exception)\b", line)]
        why = errors[-1] if errors else proc.stderr.strip().splitlines()[-1:]
        raise EntigraphError(f"train: a training process failed (exit {proc.returncode}): {str(why)[:400]}")
    return read_json(out / "summary.json")


def main(argv: list[str]) -> int:
    from entigraph.training.trainer import train

    train(load_config(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
